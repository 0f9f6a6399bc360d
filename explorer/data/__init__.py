"""Data sets by name, what they share, the image decoder and the on-device loader."""

from explorer.data.base import (
    BUILT_IN_IMAGE_DATASETS,
    CIFAR10,
    DATASET_NAMES,
    FOLDER_PREFIX,
    IMAGE_DATASETS_HELP,
    POINT_DATASETS,
    SHAPES,
    SHAPES_DATASETS,
    SHAPES_EASY,
    ImageDataset,
    PointDataset,
    check_dataset_name,
    check_image_size,
)
from explorer.data.datasets import load_dataset
from explorer.data.images import ImageError, load_image
from explorer.data.loader import DeviceLoader

__all__ = [
    "BUILT_IN_IMAGE_DATASETS",
    "CIFAR10",
    "DATASET_NAMES",
    "FOLDER_PREFIX",
    "IMAGE_DATASETS_HELP",
    "POINT_DATASETS",
    "SHAPES",
    "SHAPES_DATASETS",
    "SHAPES_EASY",
    "DeviceLoader",
    "ImageDataset",
    "ImageError",
    "PointDataset",
    "check_dataset_name",
    "check_image_size",
    "load_dataset",
    "load_image",
]
