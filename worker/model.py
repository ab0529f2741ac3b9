"""The models a worker process serves, by registry version. Only the process that runs tasks
imports this module (lazily, see worker.tasks), never a prefork parent.

Two backends (TAGGER_INFERENCE_BACKEND, "auto" by default):
- `onnx`, the CPU worker: each version's ONNX export from the registry, run by onnxruntime.
  Torch is never imported (preprocessing, routing and post-processing are numpy), so a
  worker process stays small;
- `torch`, the GPU worker (and a CPU worker asked for it): the checkpoint's weights, eagerly.
`auto` is torch where torch is installed and an NVIDIA device is present, else onnx.

A worker needs nothing but Redis: what a version needs is downloaded from the registry once
and kept under <data dir>/models/ and <data dir>/cache/onnx/ (checked against the registry's
weights digest, so a file left from another Redis is never served under a reused name). A
photo model that routes Fashion-MNIST-like images to a partner (core.routing) is served as
the pair: the partner is the registry version with the digest its metadata names.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from core.metadata import ModelMeta
from core.predictor import Predictor
from core.routing import RoutedPredictor
from core.settings import Settings
from store.registry import ModelRecord, ModelRegistry, RegistryError, checkpoint_metadata

log = logging.getLogger(__name__)

CAPACITY = 3  # versions kept loaded per process: the active one, a pinned one, the previous
# onnxruntime's arena keeps the memory of the largest batch it ran: micro-batches of 64 held a
# worker process at 184 MiB after 10,000 images where 512 held it at 261, at the same speed
# (measured in-process on 2 cores); the ORT forward pass is as fast at 64 as at 256.
ONNX_MICRO_BATCH = 64
NVIDIA_DEVICE = Path("/dev/nvidiactl")


class UnknownModel(LookupError):
    pass


def inference_backend(settings: Settings) -> str:
    """onnx or torch, decided without importing torch (see the module docstring)."""
    if settings.inference_backend != "auto":
        return settings.inference_backend
    if settings.device == "cuda":
        return "torch"
    if settings.device == "cpu":
        return "onnx"
    has_torch = importlib.util.find_spec("torch") is not None
    return "torch" if has_torch and NVIDIA_DEVICE.exists() else "onnx"


class ModelCache:
    """The last CAPACITY servables this process used, by version, loaded on demand.

    A task keeps the predictor it was given until it ends, so evicting a version (or activating
    another) never changes the model of a chunk in flight.
    """

    def __init__(self, registry: ModelRegistry, settings: Settings, threads: int,
                 capacity: int = CAPACITY) -> None:
        self.registry = registry
        self.settings = settings
        self.threads = threads
        self.capacity = capacity
        self.backend = inference_backend(settings)
        self._loaded: OrderedDict[str, Predictor | RoutedPredictor] = OrderedDict()
        self._singles: dict[str, Predictor] = {}  # partners are shared between pairs
        self._lock = threading.Lock()  # the threads pool may ask for a version concurrently

    def get(self, version: str) -> Predictor | RoutedPredictor:
        with self._lock:
            predictor = self._loaded.get(version)
            if predictor is None:
                predictor = self._load(version)
                self._loaded[version] = predictor
                while len(self._loaded) > self.capacity:
                    evicted, _ = self._loaded.popitem(last=False)
                    self._singles.pop(evicted, None)
            self._loaded.move_to_end(version)
            return predictor

    def _load(self, version: str) -> Predictor | RoutedPredictor:
        record = self.registry.get(version)
        if record is None:
            raise UnknownModel(f"model version {version} is not in the registry")
        model = self._single(record)
        partner_digest = record.meta.get("route_fashion_mnist_to")
        if not partner_digest:
            return model
        partner = self.registry.with_digest(partner_digest)
        if partner is None:
            raise UnknownModel(f"model version {version} routes Fashion-MNIST images to"
                               f" weights {partner_digest[:12]}, which are not in the registry")
        pair = RoutedPredictor(model, self._single(partner))
        pair.version = version
        log.info("serving %s as a pair: photos to %s, Fashion-MNIST images to %s", version,
                 version, partner.version)
        return pair

    def _single(self, record: ModelRecord) -> Predictor:
        if record.version in self._singles:
            return self._singles[record.version]
        meta = ModelMeta.model_validate(record.meta)
        if self.backend == "onnx":
            predictor = Predictor.from_onnx(self._onnx(record), meta, threads=self.threads,
                                            micro_batch=ONNX_MICRO_BATCH)
        else:
            predictor = Predictor.from_checkpoint(
                self._local_checkpoint(record).read_bytes(), device=self.settings.device,
                backend="torch", threads=self.threads)
        predictor.version = version = record.version  # results name the registry version
        log.info("loaded model %s (%s, %s threads, backend %s)", version, meta.arch,
                 self.threads, predictor.backend)
        self._singles[version] = predictor
        return predictor

    def _local_checkpoint(self, record: ModelRecord) -> Path:
        path = self.settings.data_dir / "models" / f"{record.version}.safetensors"
        digest = record.meta.get("weights_sha256")
        if path.is_file() and digest:
            try:
                if checkpoint_metadata(path.read_bytes()).get("weights_sha256") == digest:
                    return path
            except RegistryError:
                pass  # a damaged cache file: downloaded again below
        data = self.registry.checkpoint(record.version)
        if data is None:
            raise UnknownModel(f"model version {record.version} has no checkpoint bytes")
        _write_atomically(path, data)
        return path

    def _onnx(self, record: ModelRecord) -> bytes:
        """The version's ONNX export: from the local cache, else the registry (a trained
        version brings its own, a seeded one its shipped file); a version registered without
        one gets it from the first worker with torch that loads it."""
        digest = record.meta.get("weights_sha256") or record.version
        cached = self.settings.data_dir / "cache" / "onnx" / f"{digest}.onnx"
        if cached.is_file():
            return cached.read_bytes()
        data = self.registry.onnx(record.version) if record.has_onnx else None
        if data is None:
            data = self._export(record)
            self.registry.put_onnx(record.version, data)
        _write_atomically(cached, data)
        return data

    def _export(self, record: ModelRecord) -> bytes:
        if importlib.util.find_spec("torch") is None:
            raise UnknownModel(
                f"model version {record.version} has no ONNX export in the registry, and this"
                " worker has no torch to make one: start a worker with torch once (it exports"
                " and registers it), or register the version with its ONNX file")
        from core.checkpoint import load_checkpoint
        from core.export import export_onnx

        model, meta = load_checkpoint(self._local_checkpoint(record))
        return export_onnx(model, tuple(meta.input_shape))


def _write_atomically(path: Path, data: bytes) -> None:
    """Several prefork children may fetch the same version at once: readers never see a half
    file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
