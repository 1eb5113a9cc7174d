"""breedclf: fine-tune, debug, tune and serve pretrained image classifiers.

Example:
    >>> import breedclf
    >>> exp = breedclf.Experiment.from_yaml("experiment.yaml")   # doctest: +SKIP
    >>> breedclf.run(exp)                                         # doctest: +SKIP
    >>> model = breedclf.load_model("runs/experiment/model")      # doctest: +SKIP
    >>> model.predict("dog.jpg", top_k=3)                         # doctest: +SKIP
"""

from breedclf.config import ExperimentConfig, load_config
from breedclf.data import ImageFolderDataset, list_datasets, register_dataset
from breedclf.errors import BreedclfError, ConfigurationError
from breedclf.experiment import Experiment, RunResult, load_experiment, run
from breedclf.models import create_model, list_models, register_model
from breedclf.saved_model import Prediction, SavedModel, load_model, save_model
from breedclf.training import Callback, Trainer

__version__ = "0.1.0"

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
    "load_config",
    "load_experiment",
    "load_model",
    "register_dataset",
    "register_model",
    "run",
    "save_model",
]
