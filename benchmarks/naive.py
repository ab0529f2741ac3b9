"""The common tutorial design, as the baseline the service is measured against: a FastAPI
`POST /predict` per image that queues one Celery task carrying the image (base64), the model
run at batch size 1, and `GET /result/{task_id}` reading Celery's result backend.

It is given the same model (with its test-time augmentation), the same preprocessing and a
model loaded once per process (many tutorials reload it per task; that would make the baseline
even slower).

    celery -A benchmarks.naive worker --concurrency 2     # NAIVE_REDIS_URL=redis://...
    uvicorn benchmarks.naive:web
"""

from __future__ import annotations

import base64
import os

from celery import Celery
from celery.result import AsyncResult
from fastapi import FastAPI, UploadFile

broker = os.environ.get("NAIVE_REDIS_URL", "redis://127.0.0.1:6379/9")
app = Celery("naive", broker=broker, backend=broker)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                worker_prefetch_multiplier=1)

_model = None


def model():
    global _model
    if _model is None:
        import torch

        from core.checkpoint import load_checkpoint
        from core.models import SHIPPED_MODEL_PATH

        torch.set_num_threads(1)  # one per prefork child, as the service does
        _model = load_checkpoint(SHIPPED_MODEL_PATH)
    return _model


@app.task(name="naive.classify")
def classify(image_b64: str) -> dict:
    import torch

    from core.predictions import as_batch, softmax, tta_logits
    from core.preprocessing import preprocess

    net, meta = model()
    x = as_batch([preprocess(base64.b64decode(image_b64))])  # (1, 1, 28, 28)
    with torch.inference_mode():  # the model's own test-time augmentation, as it is served
        logits = tta_logits(lambda b: net(torch.from_numpy(b)).numpy(), x, meta.tta,
                            meta.tta_below)
    probs = softmax(logits)[0]
    index = int(probs.argmax())
    return {"label": meta.labels[index], "label_index": index, "confidence": float(probs[index])}


web = FastAPI(title="naive tutorial service")


@web.post("/predict")
async def predict(file: UploadFile) -> dict:
    task = classify.delay(base64.b64encode(await file.read()).decode())
    return {"task_id": task.id}


@web.get("/result/{task_id}")
def result(task_id: str) -> dict:
    outcome = AsyncResult(task_id, app=app)
    return {"status": outcome.status, "result": outcome.result if outcome.ready() else None}
