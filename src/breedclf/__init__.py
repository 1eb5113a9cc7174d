"""breedclf: fine-tune, evaluate, serve and package pretrained image classifiers.

Example:
    >>> import breedclf
    >>> exp = breedclf.Experiment.from_yaml("experiment.yaml")   # doctest: +SKIP
    >>> breedclf.run(exp)                                         # doctest: +SKIP
    >>> model = breedclf.load_model("runs/experiment/model")      # doctest: +SKIP
    >>> model.predict("dog.jpg", top_k=3)                         # doctest: +SKIP

Names are imported on first use, so ``import breedclf.serving`` (an inference container) never
loads the training machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from breedclf._lazy import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:
    from breedclf.config import ExperimentConfig, load_config
    from breedclf.data import ImageFolderDataset, list_datasets, register_dataset
    from breedclf.errors import BreedclfError, ConfigurationError
    from breedclf.experiment import Experiment, RunResult, load_experiment, run
    from breedclf.models import create_model, list_models, list_weights, register_model
    from breedclf.saved_model import Prediction, SavedModel, load_model, save_model
    from breedclf.training import Callback, Trainer

_EXPORTS = {
    "BreedclfError": "breedclf.errors",
    "Callback": "breedclf.training",
    "ConfigurationError": "breedclf.errors",
    "Experiment": "breedclf.experiment",
    "ExperimentConfig": "breedclf.config",
    "ImageFolderDataset": "breedclf.data",
    "Prediction": "breedclf.saved_model",
    "RunResult": "breedclf.experiment",
    "SavedModel": "breedclf.saved_model",
    "Trainer": "breedclf.training",
    "create_model": "breedclf.models",
    "list_datasets": "breedclf.data",
    "list_models": "breedclf.models",
    "list_weights": "breedclf.models",
    "load_config": "breedclf.config",
    "load_experiment": "breedclf.experiment",
    "load_model": "breedclf.saved_model",
    "register_dataset": "breedclf.data",
    "register_model": "breedclf.models",
    "run": "breedclf.experiment",
    "save_model": "breedclf.saved_model",
}

__all__ = [
    "BreedclfError",
    "Callback",
    "ConfigurationError",
    "Experiment",
    "ExperimentConfig",
    "ImageFolderDataset",
    "Prediction",
    "RunResult",
    "SavedModel",
    "Trainer",
    "__version__",
    "create_model",
    "list_datasets",
    "list_models",
    "list_weights",
    "load_config",
    "load_experiment",
    "load_model",
    "register_dataset",
    "register_model",
    "run",
    "save_model",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
