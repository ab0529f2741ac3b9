"""The models a worker process serves, by registry version. Imports torch: only the process
that runs tasks imports this module (lazily, see worker.tasks), never a prefork parent.

A worker needs nothing but Redis: a version's checkpoint is downloaded from the registry once
and kept under <data dir>/models/{version}.safetensors (checked against the registry's weights
digest, so a file left from another Redis is never served under a reused name).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from core.checkpoint import load_checkpoint
from core.export import cached_onnx
from core.predictor import Predictor
from core.settings import Settings
from store.registry import ModelRecord, ModelRegistry, RegistryError, checkpoint_metadata

log = logging.getLogger(__name__)

CAPACITY = 3  # versions kept loaded per process: the active one, a pinned one, the previous


class UnknownModel(LookupError):
    pass


class ModelCache:
    """The last CAPACITY predictors this process used, by version, loaded on demand.

    A task keeps the predictor it was given until it ends, so evicting a version (or activating
    another) never changes the model of a chunk in flight.
    """

    def __init__(self, registry: ModelRegistry, settings: Settings, threads: int,
                 capacity: int = CAPACITY) -> None:
        self.registry = registry
        self.settings = settings
        self.threads = threads
        self.capacity = capacity
        self._loaded: OrderedDict[str, Predictor] = OrderedDict()
        self._lock = threading.Lock()  # the threads pool may ask for a version concurrently

    def get(self, version: str) -> Predictor:
        with self._lock:
            predictor = self._loaded.get(version)
            if predictor is None:
                predictor = self._load(version)
                self._loaded[version] = predictor
                while len(self._loaded) > self.capacity:
                    self._loaded.popitem(last=False)
            self._loaded.move_to_end(version)
            return predictor

    def _load(self, version: str) -> Predictor:
        record = self.registry.get(version)
        if record is None:
            raise UnknownModel(f"model version {version} is not in the registry")
        model, meta = load_checkpoint(self._local_checkpoint(record))
        onnx_dir = self.settings.data_dir / "cache" / "onnx"
        self._ensure_onnx(record, model, meta.weights_sha256, onnx_dir)
        predictor = Predictor(model, meta, device=self.settings.device, threads=self.threads,
                              onnx_cache_dir=onnx_dir)
        predictor.version = version  # results name the registry version, not the digest
        log.info("loaded model %s (%s, %s threads, backend %s)", version, meta.arch,
                 self.threads, predictor.backend)
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

    def _ensure_onnx(self, record: ModelRecord, model, digest: str, onnx_dir: Path) -> None:
        """Every version gets its ONNX export in the registry (downloads need it; the API has
        no torch to make it): a trained version brings its own, a seeded one gets it from the
        first worker that loads it. Either way the local cache is filled, so the onnx backend
        does not export again."""
        if not digest:
            return
        cached = onnx_dir / f"{digest}.onnx"
        if record.has_onnx:
            if not cached.is_file():
                data = self.registry.onnx(record.version)
                if data:
                    _write_atomically(cached, data)
            return
        self.registry.put_onnx(record.version, cached_onnx(model, digest, onnx_dir))


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
