# fashion-tagger: one image for the API, the workers and flower (docker-compose.yml).
# CPU wheels of torch by default (small); build the GPU worker image with
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TAGGER_DATA_DIR=/data

WORKDIR /app
# Dependencies first (cached layer), then the code.
COPY pyproject.toml README.md ./
COPY core ./core
COPY store ./store
COPY worker ./worker
COPY api ./api
COPY cli ./cli
RUN pip install --extra-index-url "${TORCH_INDEX}" . "flower==2.2.0"

RUN useradd --create-home --uid 10001 tagger && mkdir -p /data && chown tagger /data
USER tagger
VOLUME ["/data"]
EXPOSE 8000

# The API by default; docker-compose.yml overrides the command for workers and flower.
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
