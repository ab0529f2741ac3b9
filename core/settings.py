"""One settings class for every process (CLI, API, worker), read from `TAGGER_*` env vars.

Entry points call `get_settings()` once and pass typed values down; modules never read
`os.environ` themselves.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Device = Literal["auto", "cpu", "cuda"]


def _default_fashion_mnist_dir() -> Path:
    # The repository sits beside `shared/` on development and CI machines.
    return Path(__file__).resolve().parent.parent.parent / "shared" / "fashion-mnist"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAGGER_", extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("var")
    fashion_mnist_dir: Path = Field(default_factory=_default_fashion_mnist_dir)
    # The labelled real product photos (manifest.csv, images/): photo training and evaluation.
    photos_dir: Path = Field(default_factory=lambda: _default_fashion_mnist_dir().parent
                             / "real-photos")
    device: Device = "auto"
    # How a worker computes logits (worker.model): onnx (onnxruntime, no torch in the process),
    # torch (eager; the GPU worker), or auto (torch where torch and an NVIDIA device are, else
    # onnx).
    inference_backend: Literal["auto", "onnx", "torch"] = "auto"
    torch_threads: int = Field(default=0, ge=0, description="0 = one per available core")

    redis_url: str | None = None
    result_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    api_keys: str = Field(default="", description="key:tenant[:operator], comma separated")
    allow_public_bind: bool = False

    max_upload_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_items_per_job: int = Field(default=100_000, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    max_archive_uncompressed_bytes: int = Field(default=2 * 1024**3, gt=0)
    chunk_size: int = Field(default=256, gt=0)
    # Single-image batches an API process keeps out at a time (api.batcher); more requests
    # wait and go out together. About one per inference worker process.
    interactive_in_flight: int = Field(default=2, ge=1)

    fetch_allow_private: bool = False
    fetch_timeout_s: float = Field(default=10.0, gt=0, description="one network operation")
    # One URL in all: DNS, connect, every redirect and the body (a slow-drip host ends here).
    fetch_deadline_s: float = Field(default=30.0, gt=0)
    webhook_secret: str = "dev-webhook-secret"

    # Service (worker/, api/). None => the shipped model (Predictor.default()).
    model_path: Path | None = None
    # Defaults for a 2-core CPU box: 2 prefork children with 1 torch thread each keep both
    # cores busy through decode + preprocess (pure Python, one core) and the forward pass.
    worker_pool: Literal["prefork", "solo", "threads"] = "prefork"
    worker_concurrency: int = Field(default=0, ge=0, description="0 = one per available core")
    task_time_limit_s: int = Field(default=1800, gt=0, description="hard limit for one chunk")
    # Redis redelivers an unacked task after this long; it must exceed the longest task or a
    # slow chunk runs twice (harmless, results are idempotent, but wasted work).
    broker_visibility_timeout_s: int = Field(default=7200, gt=0)
    # Every job ends, whatever dies (docs/DESIGN.md, "Reliability model"). A worker renews the
    # lease of each chunk it works on every third of `chunk_lease_s`; the reaper (in every
    # worker and API process, one at a time, every `reaper_interval_s`) queues again a chunk
    # whose lease lapsed, ends jobs past their deadline, ends an upload that stopped writing
    # for `upload_stall_s` (its API died) and resends undelivered webhooks.
    chunk_lease_s: float = Field(default=60.0, ge=1)
    reaper_interval_s: float = Field(default=5.0, gt=0)
    upload_stall_s: float = Field(default=30.0, ge=1)
    # A chunk task that raises is retried this often, with exponential backoff and jitter;
    # after that its remaining items are recorded as errors.
    chunk_retries: int = Field(default=4, ge=0, le=20)
    max_deadline_s: int = Field(default=7 * 24 * 3600, gt=0, description="deadline_s limit")
    # Training jobs (worker/trainer.py). A run longer than the visibility timeout may be
    # delivered twice; the job's lease makes the second delivery stand aside (store.training).
    training_time_limit_s: int = Field(default=6 * 3600, gt=60, description="one training job")
    # A training worker renews its job's lease 6 times per lease; a job not renewed for two
    # leases (+10 s) is ended as failed ("worker lost"), see store.training.
    training_lease_s: float = Field(default=30.0, ge=1, le=600)
    # Datasets uploaded for training (POST /v1/datasets); kept in Redis with their images.
    dataset_min_images_per_class: int = Field(default=5, ge=1)
    dataset_max_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    # Service processes log JSON lines (one object per line, with the job id); "text" for
    # the plain formats of uvicorn and Celery.
    log_format: Literal["json", "text"] = "json"

    # Bounded and fair (docs/DESIGN.md, "Limits, quotas and backpressure").
    # Any body that is not an upload (JSON: training jobs) is refused past this (413), before
    # it is read; an upload past TAGGER_MAX_UPLOAD_BYTES likewise.
    max_json_bytes: int = Field(default=64 * 1024, gt=0)
    # One-image jobs (POST /v1/classify) are kept this long; bulk jobs TAGGER_RESULT_TTL_S.
    single_result_ttl_s: int = Field(default=3600, gt=60)
    # Redis's memory budget in bytes: the embedded server and compose run with this
    # `maxmemory` (noeviction). An external Redis's own `maxmemory`, when set, wins.
    redis_maxmemory: int = Field(default=2 * 1024**3, gt=0)
    # Admission: new submissions get 503 + Retry-After once Redis uses this fraction of its
    # budget, or the inputs waiting in it reach `admission_input_fraction` of it: the rest is
    # headroom for results, task messages and what is already uploading.
    admission_memory_fraction: float = Field(default=0.8, gt=0, le=1)
    admission_input_fraction: float = Field(default=0.5, gt=0, le=1)
    # Per-tenant quotas (429 + Retry-After): the defaults, and JSON overrides per tenant,
    # e.g. '{"shop": {"requests": "1000/second", "active_jobs": 20}}' (api.quotas).
    quota_requests: str = Field(default="100/second", description="a `limits` rate string")
    quota_active_jobs: int = Field(default=8, ge=1, description="bulk jobs queued or running")
    quota_queued_items: int = Field(default=200_000, ge=1, description="items not yet done")
    quota_queued_bytes: int = Field(default=256 * 1024**2, ge=1, description="their images")
    quota_streams: int = Field(default=16, ge=1, description="event streams, per API process")
    quota_training_jobs: int = Field(default=1, ge=1, description="queued or running")
    tenant_quotas: dict[str, dict[str, str | int]] = Field(default_factory=dict)
    # Event streams one API process serves at once (each holds a pooled Redis connection).
    sse_max_streams: int = Field(default=256, ge=1)

    # The remote client (`fashion-tagger submit/jobs/status/...`): which server, which key.
    server_url: str = "http://127.0.0.1:8000"
    api_key: str | None = None

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret_safe(cls, value: str, info) -> str:
        if info.data.get("env") == "production" and value == "dev-webhook-secret":
            raise ValueError("set TAGGER_WEBHOOK_SECRET in production")
        return value

    @field_validator("api_keys")
    @classmethod
    def _api_keys_safe(cls, value: str, info) -> str:
        if info.data.get("env") == "production" and not value.strip():
            raise ValueError("set TAGGER_API_KEYS in production (no keys = one open tenant)")
        return value

    @model_validator(mode="after")
    def _visibility_exceeds_time_limit(self) -> Settings:
        if self.broker_visibility_timeout_s <= self.task_time_limit_s:
            raise ValueError("TAGGER_BROKER_VISIBILITY_TIMEOUT_S must exceed"
                             " TAGGER_TASK_TIME_LIMIT_S")
        return self

    def resolved_threads(self) -> int:
        return self.torch_threads or available_cores()


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity, unlike cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@lru_cache
def get_settings() -> Settings:
    return Settings()
