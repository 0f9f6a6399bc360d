"""Data sets by name and the on-device loader."""

from explorer.data.datasets import DATASET_NAMES, POINT_DATASETS, ImageDataset, PointDataset, load_dataset
from explorer.data.loader import DeviceLoader

__all__ = ["DATASET_NAMES", "POINT_DATASETS", "DeviceLoader", "ImageDataset", "PointDataset", "load_dataset"]
