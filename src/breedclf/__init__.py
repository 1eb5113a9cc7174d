"""breedclf: fine-tune, debug, tune and serve pretrained image classifiers."""

__version__ = "0.1.0"
