"""The audio-visual emotion model: `build_model(cfg)` -> `EmotionModel`, whose forward returns `EmotionModelOutput`."""

from fer_lib.models.model import BRANCHES, CheckpointMismatchError, EmotionModel, EmotionModelOutput, build_model
from fer_lib.models.pretrained import PretrainedLoadError

__all__ = [
    "BRANCHES",
    "CheckpointMismatchError",
    "EmotionModel",
    "EmotionModelOutput",
    "PretrainedLoadError",
    "build_model",
]
