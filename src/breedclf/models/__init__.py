"""Model registry, builders and weights loading.

Every model is an :class:`ImageClassifier` (ordered backbone stages → pooling → dropout → linear
head) that carries the :class:`~breedclf.preprocessing.PreprocessSpec` of its weights::

    from breedclf.models import create_model, list_models

    list_models("efficientnet*")
    list_weights("resnet50")  # variants, preprocessing, ImageNet accuracy, files
    model = create_model("efficientnet_lite0", num_classes=133)  # pretrained "DEFAULT" weights
"""

from breedclf.models._classifier import ImageClassifier
from breedclf.models._efficientnet_lite import efficientnet_lite0
from breedclf.models._factory import (
    MODELS,
    ModelBuilder,
    create_model,
    get_default_dropout,
    get_model_builder,
    list_models,
    list_weights,
    register_model,
)
from breedclf.models._torchvision import (
    efficientnet_b0,
    efficientnet_b1,
    efficientnet_b2,
    efficientnet_b3,
    efficientnet_b4,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
)
from breedclf.models._weights import WeightsInfo, load_weights, read_state_dict

__all__ = [
    "MODELS",
    "ImageClassifier",
    "ModelBuilder",
    "WeightsInfo",
    "create_model",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_lite0",
    "get_default_dropout",
    "get_model_builder",
    "list_models",
    "list_weights",
    "load_weights",
    "read_state_dict",
    "register_model",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
]
