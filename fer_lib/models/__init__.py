"""The audio-visual emotion model: `build_model(cfg)` -> `EmotionModel`, whose forward returns `EmotionModelOutput`."""

from fer_lib.models.model import PRETRAINED_PARTS, CheckpointMismatchError, EmotionModel, EmotionModelOutput, build_model
from fer_lib.models.pretrained import PretrainedLoadError

__all__ = [
    "PRETRAINED_PARTS",
    "CheckpointMismatchError",
    "EmotionModel",
    "EmotionModelOutput",
    "PretrainedLoadError",
    "build_model",
]
