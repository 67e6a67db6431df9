"""The Python API in one place; ``aam_core`` re-exports it and the CLI calls it."""

from aam_core.inference import predict
from aam_core.loading import LoadedModel, load_model
from aam_core.training.pretrain import pretrain
from aam_core.training.train import TrainResult, train

__all__ = ["LoadedModel", "TrainResult", "load_model", "predict", "pretrain", "train"]
