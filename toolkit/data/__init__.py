"""CIFAR-10 for training: locate or download the archive, read it safely, split, normalize and batch.

Images are held in memory as uint8 tensors (N, 3, 32, 32); batches come out as normalized float32.
"""

from toolkit.data.batches import CIFAR10_MEAN, CIFAR10_STD, iterate_batches, normalize, split_train_val
from toolkit.data.locate import CIFAR10_MD5, CIFAR10_URL, cache_dir, download_archive, locate_cifar10
from toolkit.data.reader import Cifar10, load_cifar10

__all__ = [
    "CIFAR10_MD5",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10_URL",
    "Cifar10",
    "cache_dir",
    "download_archive",
    "iterate_batches",
    "load_cifar10",
    "locate_cifar10",
    "normalize",
    "split_train_val",
]
