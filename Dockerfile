# syntax=docker/dockerfile:1.7
# fashion-tagger images, one target per role (docker-compose.yml builds each):
#   docker build --target api        -t fashion-tagger-api .          # no torch
#   docker build --target flower     -t fashion-tagger-flower .       # no torch
#   docker build --target worker-cpu -t fashion-tagger-worker-cpu .   # CPU inference
#   docker build --target worker-train --build-arg TORCH_VARIANT=cu128 \
#                -t fashion-tagger-worker-gpu .                       # training / GPU inference
# Layer order, per target: the base image, the dependencies (read from pyproject.toml alone,
# so they are cached until pyproject.toml changes), then the code, installed without
# dependencies. A code change rebuilds only the last two layers of each target.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
# Production by default: every process refuses to start without TAGGER_API_KEYS and
# TAGGER_WEBHOOK_SECRET, so `docker run -p 8000:8000 fashion-tagger-api` never serves an open
# tenant on 0.0.0.0 (core.settings). TAGGER_ENV=development opts out, knowingly.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    TAGGER_ENV=production \
    TAGGER_DATA_DIR=/data
WORKDIR /app
RUN useradd --create-home --uid 10001 tagger && mkdir -p /data && chown tagger /data
# Only what pip needs to know the dependencies: pyproject.toml and the script that reads it.
COPY pyproject.toml deploy/requirements.py /build/

# -- dependency layers ------------------------------------------------------------------------

FROM base AS deps-api
RUN --mount=type=cache,target=/root/.cache/pip \
    python /build/requirements.py api --pyproject /build/pyproject.toml > /build/req.txt \
    && pip install -r /build/req.txt

FROM base AS deps-flower
RUN --mount=type=cache,target=/root/.cache/pip \
    python /build/requirements.py flower --pyproject /build/pyproject.toml > /build/req.txt \
    && pip install -r /build/req.txt

# torch first, in a layer of its own (the biggest, and the one that changes least), from the
# index of the chosen build: cpu (default), cu126, cu128... (download.pytorch.org/whl/<variant>).
# Its version is the one pinned in pyproject.toml.
FROM base AS deps-torch
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/${TORCH_VARIANT}
RUN --mount=type=cache,target=/root/.cache/pip \
    python /build/requirements.py train --pyproject /build/pyproject.toml \
        --only torch,torchvision > /build/torch.txt \
    && pip install --index-url "${TORCH_INDEX}" -r /build/torch.txt

# The CPU inference worker: the extras in WORKER_EXTRAS, torch (CPU build) only if they name
# it. The worker serves each model's ONNX export with onnxruntime and never imports torch
# (worker.model), so the default installs none; --build-arg WORKER_EXTRAS=worker-cpu,train
# adds it (a CPU worker that can also export a version registered without its ONNX file).
FROM base AS deps-worker-cpu
ARG WORKER_EXTRAS=worker-cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN --mount=type=cache,target=/root/.cache/pip \
    python /build/requirements.py "${WORKER_EXTRAS}" --pyproject /build/pyproject.toml \
        --only torch,torchvision > /build/torch.txt \
    && if [ -s /build/torch.txt ]; then \
        pip install --index-url "${TORCH_INDEX}" -r /build/torch.txt; fi
RUN --mount=type=cache,target=/root/.cache/pip \
    python /build/requirements.py "${WORKER_EXTRAS}" --pyproject /build/pyproject.toml \
        --exclude torch,torchvision > /build/req.txt \
    && pip install -r /build/req.txt

FROM deps-torch AS deps-train
RUN --mount=type=cache,target=/root/.cache/pip \
    python /build/requirements.py train --pyproject /build/pyproject.toml \
        --exclude torch,torchvision > /build/req.txt \
    && pip install -r /build/req.txt

# -- the code ---------------------------------------------------------------------------------
# .dockerignore keeps tests, benchmarks, docs and local state out of the context. `--no-deps`:
# the layers above hold every dependency; pip must not reach for anything here.

FROM deps-api AS api
COPY . /src
RUN pip install --no-deps --no-cache-dir /src && rm -rf /src
USER tagger
EXPOSE 8000
# One uvicorn process per container by default (scale with replicas); with --workers N set
# PROMETHEUS_MULTIPROC_DIR to an empty directory so /metrics sums every process (docs/DEPLOY.md).
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]

FROM deps-flower AS flower
COPY . /src
RUN pip install --no-deps --no-cache-dir /src && rm -rf /src
USER tagger
EXPOSE 5555
# Never without a password: FLOWER_BASIC_AUTH=user:password (comma-separated for several).
CMD ["sh", "-c", ": \"${FLOWER_BASIC_AUTH:?set FLOWER_BASIC_AUTH=user:password}\"; exec celery -A worker.app flower --port=5555 --basic-auth=\"$FLOWER_BASIC_AUTH\""]

FROM deps-worker-cpu AS worker-cpu
COPY . /src
RUN pip install --no-deps --no-cache-dir /src && rm -rf /src
USER tagger
VOLUME ["/data"]
CMD ["celery", "-A", "worker.app", "worker", "-n", "inference@%h", \
     "-Q", "interactive,bulk,webhooks", "--pool", "prefork", "--loglevel", "INFO"]

FROM deps-train AS worker-train
COPY . /src
RUN pip install --no-deps --no-cache-dir /src && rm -rf /src
USER tagger
VOLUME ["/data"]
CMD ["celery", "-A", "worker.app", "worker", "-n", "training@%h", \
     "-Q", "training", "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO"]
