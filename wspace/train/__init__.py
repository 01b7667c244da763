"""Zoo generation: training data sets and the one-vs-all LeNet-5 training of the reference zoo.

>>> from wspace.train import load_digits, train_one_vs_all
>>> result = train_one_vs_all(load_digits(), 7, seed=0, epochs=1)
>>> len(result.curves["val_accuracy"])
1
"""

from __future__ import annotations

from wspace.train.data import (
    DIGIT_CLASSES,
    IMAGENETTE_CLASSES,
    IMAGENETTE_WNIDS,
    DataSplit,
    load_dataset,
    load_digits,
    load_imagenette,
)
from wspace.train.lenet import (
    EpochCallback,
    TrainResult,
    evaluate,
    one_vs_all_labels,
    train_one_vs_all,
)

__all__ = [
    "DIGIT_CLASSES",
    "IMAGENETTE_CLASSES",
    "IMAGENETTE_WNIDS",
    "DataSplit",
    "EpochCallback",
    "TrainResult",
    "evaluate",
    "load_dataset",
    "load_digits",
    "load_imagenette",
    "one_vs_all_labels",
    "train_one_vs_all",
]
