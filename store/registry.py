"""The model registry: immutable model versions in Redis, and which one is active.

A checkpoint's metadata is read from the safetensors header with json/struct only (torch-free;
core.checkpoint, which imports torch, reads the same header). Nothing here expires: versions
are kept for rollback. Key layout: store.keys.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from store import scripts
from store.keys import (
    ACTIVATIONS_KEY,
    ACTIVE_MODEL_KEY,
    MODEL_PREFIX,
    MODELS_INDEX_KEY,
    MODELS_SEQ_KEY,
    checkpoint_key,
    model_key,
    onnx_key,
)
from store.records import decode_hash, now_iso

# Same key as core.checkpoint.METADATA_KEY (that module imports torch); a test keeps them equal.
METADATA_KEY = "fashion_tagger"
VERSION_PATTERN = re.compile(r"v[1-9][0-9]{0,8}")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit


class RegistryError(ValueError):
    """Bytes that are not a fashion-tagger checkpoint."""


def is_version(name: str) -> bool:
    """Only `v<n>` names reach Redis: anything else would build someone else's key."""
    return VERSION_PATTERN.fullmatch(name) is not None


def checkpoint_metadata(data: bytes) -> dict[str, Any]:
    """Our metadata from a safetensors header, without torch: the file starts with the header
    length (u64, little endian) and the header JSON, whose __metadata__ holds ours as JSON."""
    try:
        (length,) = struct.unpack("<Q", data[:8])
        if length > min(MAX_HEADER_BYTES, len(data) - 8):
            raise RegistryError("safetensors header longer than the file")
        header = json.loads(data[8:8 + length])
        meta = json.loads(header["__metadata__"][METADATA_KEY])
    except (struct.error, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise RegistryError(f"not a fashion-tagger safetensors checkpoint ({exc!r})") from exc
    if not isinstance(meta, dict) or not {"arch", "labels"} <= meta.keys():
        raise RegistryError("checkpoint metadata lacks arch/labels")
    return meta


@dataclass(frozen=True)
class ModelRecord:
    version: str
    registered_at: str
    source: str  # "seed:<file name>" or "training-job:<id>"
    size_bytes: int
    meta: dict[str, Any]  # the checkpoint's metadata (core.checkpoint.ModelMeta as a dict)
    has_onnx: bool

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def arch(self) -> str:
        return str(self.meta["arch"])

    @property
    def val_accuracy(self) -> float | None:
        value = self.meta.get("metrics", {}).get("val_accuracy")
        return float(value) if value is not None else None


def _record(raw: dict[bytes, bytes], has_onnx: bool) -> ModelRecord:
    fields = decode_hash(raw)
    return ModelRecord(version=fields["version"], registered_at=fields["registered_at"],
                       source=fields["source"], size_bytes=int(fields["size_bytes"]),
                       meta=json.loads(fields["meta"]), has_onnx=has_onnx)


class ModelRegistry:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client  # binary client: checkpoints are bytes
        self._register = scripts.register(client, "register_model")
        self._activate = scripts.register(client, "activate_model")
        self._seed = scripts.register(client, "seed_models")

    # -- writing (workers; activation also from the API) ---------------------------------

    def register(self, checkpoint: bytes, source: str, onnx: bytes | None = None,
                 only_if_empty: bool = False) -> str | None:
        """Add a version (atomically: bytes, record, index); returns its name. With
        `only_if_empty`, only when the registry has no version yet (else None), and the new
        version becomes active: the race-free seed of an empty registry."""
        if only_if_empty and self.r.zcard(MODELS_INDEX_KEY):
            return None  # the common case, without parsing anything; the script re-checks
        meta = checkpoint_metadata(checkpoint)
        args = [MODEL_PREFIX, int(only_if_empty), int(only_if_empty), now_iso(), source,
                len(checkpoint), json.dumps(meta), checkpoint, onnx or b""]
        version = self._register(keys=[MODELS_SEQ_KEY, MODELS_INDEX_KEY, ACTIVE_MODEL_KEY],
                                 args=args)
        return version.decode() if version else None

    def seed(self, models: Sequence[tuple[bytes, bytes | None, str]]) -> list[str]:
        """Register (checkpoint, ONNX export or None, source) models into an EMPTY registry,
        all at once, the last one active (a routed pair: its partner first). Returns the new
        versions, or [] when the registry already has a version."""
        if self.r.zcard(MODELS_INDEX_KEY):
            return []  # the common case, without parsing anything; the script re-checks
        args: list[Any] = [MODEL_PREFIX, now_iso()]
        for checkpoint, onnx, source in models:
            args += [source, len(checkpoint), json.dumps(checkpoint_metadata(checkpoint)),
                     checkpoint, onnx or b""]
        versions = self._seed(keys=[MODELS_SEQ_KEY, MODELS_INDEX_KEY, ACTIVE_MODEL_KEY],
                              args=args)
        return [v.decode() for v in versions] if versions else []

    def activate(self, version: str) -> bool:
        """Serve `version` for new jobs; False if there is no such version."""
        if not is_version(version):
            return False
        entry = json.dumps({"version": version, "at": now_iso()})
        keys = [model_key(version), ACTIVE_MODEL_KEY, ACTIVATIONS_KEY]
        return self._activate(keys=keys, args=[version, entry]) == 1

    def put_onnx(self, version: str, data: bytes) -> bool:
        """Store the ONNX export once (a version is immutable: the first writer wins)."""
        return bool(self.r.set(onnx_key(version), data, nx=True))

    # -- reading ---------------------------------------------------------------------------

    def active(self) -> str | None:
        value = self.r.get(ACTIVE_MODEL_KEY)
        return value.decode() if value else None

    def exists(self, version: str) -> bool:
        return is_version(version) and bool(self.r.exists(model_key(version)))

    def get(self, version: str) -> ModelRecord | None:
        if not is_version(version):
            return None
        with self.r.pipeline(transaction=False) as pipe:
            pipe.hgetall(model_key(version))
            pipe.exists(onnx_key(version))
            raw, has_onnx = pipe.execute()
        return _record(raw, bool(has_onnx)) if raw else None

    def list_versions(self) -> list[ModelRecord]:
        """Every version, oldest first."""
        versions = [v.decode() for v in self.r.zrange(MODELS_INDEX_KEY, 0, -1)]
        with self.r.pipeline(transaction=False) as pipe:
            for version in versions:
                pipe.hgetall(model_key(version))
                pipe.exists(onnx_key(version))
            replies = pipe.execute()
        return [_record(raw, bool(onnx)) for raw, onnx in zip(replies[::2], replies[1::2],
                                                              strict=True) if raw]

    def with_digest(self, weights_sha256: str) -> ModelRecord | None:
        """The oldest version whose weights have this SHA-256 (how a photo model names the
        model it routes Fashion-MNIST images to)."""
        return next((r for r in self.list_versions()
                     if r.meta.get("weights_sha256") == weights_sha256), None)

    def checkpoint(self, version: str) -> bytes | None:
        return self.r.get(checkpoint_key(version)) if is_version(version) else None

    def onnx(self, version: str) -> bytes | None:
        return self.r.get(onnx_key(version)) if is_version(version) else None


def activation_decision(policy: str, new: ModelRecord, active: ModelRecord | None
                        ) -> tuple[bool, str]:
    """Whether a freshly trained version should become active, and why (shown to clients).

    `if_better` compares validation accuracy with the active version, and only between models
    with the same labels: accuracies over different label sets say nothing about each other.
    """
    if policy == "never":
        return False, "not activated (activate=never)"
    if policy == "always" or active is None:
        return True, "activated"
    if active.labels != new.labels:
        return False, f"not activated: its labels differ from the active {active.version}"
    if new.val_accuracy is None:
        return False, "not activated: no validation accuracy to compare"
    if active.val_accuracy is None or new.val_accuracy > active.val_accuracy:
        was = f"{active.val_accuracy:.4f}" if active.val_accuracy is not None else "unknown"
        return True, (f"activated: validation accuracy {new.val_accuracy:.4f} beats {was}"
                      f" ({active.version})")
    return False, (f"not activated: validation accuracy {new.val_accuracy:.4f} does not beat"
                   f" {active.val_accuracy:.4f} ({active.version})")
