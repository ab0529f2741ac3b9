"""Labelled datasets uploaded by merchants (POST /v1/datasets), stored in Redis for training.

The API writes a dataset after validating it (api/datasets.py), the training worker reads it
back. The original image bytes are kept, so training preprocesses them exactly as served
photos are (core.preprocessing via core.data.load_image_folder). Datasets do not expire:
training jobs and the models made from them refer to them by id. Key layout: store.keys.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import redis

from store.keys import DATASETS_KEY, dataset_images_key, dataset_key, tenant_datasets_key
from store.records import decode_hash, now_iso

ID_PATTERN = re.compile(r"ds-[0-9a-f]{12}")
FASHION_MNIST = "fashion-mnist"  # the built-in dataset's name where a dataset id may go
WRITE_BATCH = 256  # images per HSET: bounded command size for big datasets


def is_dataset_id(name: str) -> bool:
    return ID_PATTERN.fullmatch(name) is not None


class DatasetStore:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def create(self, tenant: str, labels: Sequence[str],
               images: Sequence[tuple[int, bytes]], name: str | None = None) -> dict[str, Any]:
        """Store a validated dataset: `images` are (label index, bytes). One MULTI, so a
        dataset is never seen without all of its images."""
        dataset_id = f"ds-{uuid.uuid4().hex[:12]}"
        counts = [0] * len(labels)
        fields: dict[str, bytes] = {}
        for label, data in images:
            fields[f"{label}:{counts[label]}"] = data
            counts[label] += 1
        record = {"id": dataset_id, "name": name or "", "tenant": tenant, "created_at": now_iso(),
                  "labels": json.dumps(list(labels)), "counts": json.dumps(counts),
                  "total": len(images), "size_bytes": sum(len(d) for _, d in images)}
        names = list(fields)
        with self.r.pipeline() as pipe:
            for start in range(0, len(names), WRITE_BATCH):
                batch = names[start:start + WRITE_BATCH]
                pipe.hset(dataset_images_key(dataset_id), mapping={n: fields[n] for n in batch})
            pipe.hset(dataset_key(dataset_id), mapping=record)
            pipe.zadd(DATASETS_KEY, {dataset_id: time.time()})
            pipe.zadd(tenant_datasets_key(tenant), {dataset_id: time.time()})
            pipe.execute()
        return dataset_summary({k: str(v) for k, v in record.items()})

    def get(self, dataset_id: str, tenant: str | None = None) -> dict[str, Any] | None:
        """The dataset; None when there is none, or (`tenant` given) another tenant owns it."""
        if not is_dataset_id(dataset_id):
            return None
        raw = self.r.hgetall(dataset_key(dataset_id))
        record = decode_hash(raw)
        if not record or (tenant is not None and record.get("tenant") != tenant):
            return None
        return dataset_summary(record)

    def list_datasets(self, limit: int, tenant: str | None = None) -> list[dict[str, Any]]:
        """Newest first: every tenant's, or one tenant's."""
        index = DATASETS_KEY if tenant is None else tenant_datasets_key(tenant)
        ids = [i.decode() for i in self.r.zrevrange(index, 0, limit - 1)]
        found = (self.get(i) for i in ids)
        return [d for d in found if d is not None]

    def iter_images(self, dataset_id: str) -> Iterator[tuple[int, int, bytes]]:
        """(label index, n, bytes) for every image, streamed (HSCAN) rather than in one reply."""
        for name, data in self.r.hscan_iter(dataset_images_key(dataset_id), count=WRITE_BATCH):
            label, n = name.decode().split(":")
            yield int(label), int(n), data


def dataset_summary(record: dict[str, str]) -> dict[str, Any]:
    labels, counts = json.loads(record["labels"]), json.loads(record["counts"])
    return {"id": record["id"], "name": record.get("name") or None,
            "created_at": record["created_at"], "labels": labels,
            "classes": [{"label": lbl, "count": n} for lbl, n in zip(labels, counts,
                                                                       strict=True)],
            "total": int(record["total"]), "size_bytes": int(record["size_bytes"])}
