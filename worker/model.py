"""Loading the model a worker process serves. Imports torch: only the process that runs tasks
imports this module (lazily, see worker.tasks), never a prefork parent.
"""

from __future__ import annotations

import logging

from core.predictor import Predictor
from core.settings import Settings

log = logging.getLogger(__name__)


def load_predictor(settings: Settings, threads: int) -> Predictor:
    """TAGGER_MODEL_PATH if set, else the shipped model; device from TAGGER_DEVICE (auto)."""
    # The ONNX export of a model takes seconds: cache it by weights digest for every child.
    options = {"device": settings.device, "threads": threads,
               "onnx_cache_dir": settings.data_dir / "cache" / "onnx"}
    if settings.model_path is not None:
        predictor = Predictor.from_checkpoint(settings.model_path, **options)
    else:
        predictor = Predictor.default(**options)
    log.info("loaded model %s (%s threads, device %s)", predictor.version, threads,
             settings.device)
    return predictor
