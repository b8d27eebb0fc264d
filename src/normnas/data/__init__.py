"""Data sets as in-memory tensors: digits (embedded), CIFAR-10, MNIST, npz, image folder."""

from normnas.data.common import DataWarning
from normnas.data.loaders import DATASET_NAMES, load
from normnas.data.split import DataBundle, Split
from normnas.data.transforms import random_crop_flip

__all__ = ["DATASET_NAMES", "DataBundle", "DataWarning", "Split", "load", "random_crop_flip"]
