"""Datasets, image decoding and data loading."""

from breedclf.data._check import ImageCheckReport, check_images
from breedclf.data._datasets import (
    DATASETS,
    DatasetSplits,
    DogImagesDataset,
    ImageFolderDataset,
    Sample,
    create_dataset,
    list_datasets,
    load_manifest,
    register_dataset,
    stratified_split,
)
from breedclf.data._images import IMAGE_EXTENSIONS, ImageSource, load_image, to_rgb
from breedclf.data._loading import (
    Batch,
    EpochSampler,
    ImageDataset,
    SkippedImageWarning,
    collate_batch,
    create_dataloader,
    resolve_num_workers,
)
from breedclf.data._textures import TexturesDataset, write_textures

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "Batch",
    "DatasetSplits",
    "DogImagesDataset",
    "EpochSampler",
    "ImageCheckReport",
    "ImageDataset",
    "ImageFolderDataset",
    "ImageSource",
    "Sample",
    "SkippedImageWarning",
    "TexturesDataset",
    "check_images",
    "collate_batch",
    "create_dataloader",
    "create_dataset",
    "list_datasets",
    "load_image",
    "load_manifest",
    "register_dataset",
    "resolve_num_workers",
    "stratified_split",
    "to_rgb",
    "write_textures",
]
