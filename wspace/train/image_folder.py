"""Any local image data set in torchvision's ImageFolder layout, as a training data set.

``root/train/<class>/<image>`` and ``root/val/<class>/<image>``: the class folders (the same
names under both) are the classes, in sorted order, as torchvision's ``ImageFolder`` numbers
them. Sweeps name such a data set ``folder:<root>`` (an MNIST or CIFAR-10 folder the user has,
say); nothing is ever downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from wspace.errors import DataSetNotFoundError, listing
from wspace.train.data import DataSplit, image_files, read_images

__all__ = ["load_image_folder"]


def _layout_help(root: Path) -> str:
    return (
        f"expected an ImageFolder tree {root}/train/<class>/<image> and "
        f"{root}/val/<class>/<image> with the same class folders in both"
    )


def _classes(split_dir: Path, root: Path) -> list[str]:
    if not split_dir.is_dir():
        found = sorted(p.name for p in root.iterdir())
        raise DataSetNotFoundError(
            f"no image folder data set at {root}: {split_dir.name}/ is missing (found "
            f"{listing(found)}); {_layout_help(root)}"
        )
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if not classes:
        raise DataSetNotFoundError(f"{split_dir} holds no class folders; {_layout_help(root)}")
    return classes


def load_image_folder(root: str | os.PathLike[str], *, size: int = 32) -> DataSplit:
    """A local ImageFolder tree, resized to ``size`` x ``size`` RGB in [0, 1].

    Parameters
    ----------
    root
        The folder holding ``train/`` and ``val/``, each with one folder per class.
    size
        Side of the square images (the sweep's networks read 32).

    Returns
    -------
    DataSplit
        Named ``folder:<root>``; classes are the class folder names, sorted.

    Raises
    ------
    DataSetNotFoundError
        ``root``, ``train/`` or ``val/`` is missing, the two splits have different class
        folders, or a class folder holds no images; the message states the expected layout.

    Examples
    --------
    >>> load_image_folder("/nonexistent/cifar")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    wspace.errors.DataSetNotFoundError: no image folder data set at /nonexistent/cifar: ...
    """
    if int(size) < 1:
        raise ValueError(f"size must be a positive number of pixels, not {size!r}")
    root_path = Path(os.fspath(root)).expanduser()
    if not root_path.is_dir():
        raise DataSetNotFoundError(
            f"no image folder data set at {root_path}: the folder does not exist; "
            f"{_layout_help(root_path)}"
        )
    classes = _classes(root_path / "train", root_path)
    val_classes = _classes(root_path / "val", root_path)
    if val_classes != classes:
        raise DataSetNotFoundError(
            f"{root_path}: train/ has classes {listing(classes)} but val/ has "
            f"{listing(val_classes)}; {_layout_help(root_path)}"
        )
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for split in ("train", "val"):
        files: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(classes):
            found = image_files(root_path / split / name, _layout_help(root_path))
            files += found
            labels += [label] * len(found)
        splits[split] = (read_images(files, int(size)), torch.tensor(labels, dtype=torch.int64))
    return DataSplit(
        name=f"folder:{root}",
        classes=tuple(classes),
        train_x=splits["train"][0],
        train_y=splits["train"][1],
        val_x=splits["val"][0],
        val_y=splits["val"][1],
    )
