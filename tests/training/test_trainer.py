"""The training loop's contract: steps, losses, learning rates, counters and checkpoints."""

from __future__ import annotations

from breedclf.config import TrainingConfig
from breedclf.models import create_model
from breedclf.training import Trainer
from tests.training.conftest import LoaderFactory

CPU = TrainingConfig(epochs=1, device="cpu")


def test_a_lone_last_training_image_does_not_crash_batchnorm(
    texture_loaders: LoaderFactory,
) -> None:
    # At 32 px, EfficientNet-Lite0's last feature map is 1×1: BatchNorm cannot train on a batch
    # of one image there ("Expected more than 1 value per channel").
    model = create_model("efficientnet_lite0", num_classes=3, weights=None)
    model.preprocess = model.preprocess.with_input_size(32)
    train, valid = texture_loaders(model, n_train=9, n_valid=5, batch_size=4)
    history = Trainer(model, training=CPU).fit(train, valid)
    assert history[0]["train"]["count"] == 8
    assert history[0]["valid"]["count"] == 5  # evaluation keeps its lone last image
