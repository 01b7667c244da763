"""Training data for zoo generation: images ``(N, 3, 32, 32)`` in [0, 1] with integer labels.

Two sources, both offline:

- ``digits`` — scikit-learn's bundled 8x8 hand-written digits, upsampled to 32x32 and replicated to
  three channels, split train/validation with a fixed stratified split;
- ``imagenette`` — a local copy of Imagenette in torchvision's ImageFolder layout (never
  downloaded), the data set of the LeNet-5 hypernetwork zoo (docs/formats.md).

scikit-learn, torchvision and PIL are imported when first needed: they are slow to import and
most users of :mod:`wspace.train` need only one of them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wspace.errors import DataSetNotFoundError, listing

__all__ = [
    "DIGIT_CLASSES",
    "IMAGENETTE_CLASSES",
    "IMAGENETTE_WNIDS",
    "DataSplit",
    "load_dataset",
    "load_digits",
    "load_imagenette",
]

DIGIT_CLASSES: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)  # fmt: skip
"""Class names of ``digits``; index = label (so model names read ``seven_3``)."""

IMAGENETTE_WNIDS: dict[str, str] = {
    "n01440764": "tench",
    "n02102040": "english_springer",
    "n02979186": "cassette_player",
    "n03000684": "chain_saw",
    "n03028079": "church",
    "n03394916": "french_horn",
    "n03417042": "garbage_truck",
    "n03425413": "gas_pump",
    "n03445777": "golf_ball",
    "n03888605": "parachute",
}
"""ImageNet wnid -> class name of the 10 Imagenette classes, in label order."""

IMAGENETTE_CLASSES: tuple[str, ...] = tuple(IMAGENETTE_WNIDS.values())
"""Class names of ``imagenette`` (docs/formats.md); index = label."""

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True, slots=True, eq=False)
class DataSplit:
    """Images ``(N, 3, 32, 32)`` float32 in [0, 1] (NCHW) and int64 labels, train and validation.

    Instances may be cached and shared (:func:`load_digits`): do not modify the tensors in place.

    Examples
    --------
    >>> data = load_digits()
    >>> data.name, data.classes[7], tuple(data.train_x.shape[1:])
    ('digits', 'seven', (3, 32, 32))
    """

    name: str
    """Data set name: ``"digits"``, ``"digits-inverted"`` or ``"imagenette"``."""
    classes: tuple[str, ...]
    """Class names; index = label."""
    train_x: torch.Tensor
    """Training images, ``(N, 3, H, W)`` float32 in [0, 1]."""
    train_y: torch.Tensor
    """Training labels, ``(N,)`` int64 in ``range(len(classes))``."""
    val_x: torch.Tensor
    """Validation images, ``(M, 3, H, W)`` float32 in [0, 1]."""
    val_y: torch.Tensor
    """Validation labels, ``(M,)`` int64."""

    def majority_rate(self, target: int) -> float:
        """Validation accuracy of always answering "not ``target``" (one-vs-all on ``target``).

        Examples
        --------
        >>> data = load_digits()
        >>> round(data.majority_rate(7), 3)
        0.9
        """
        if not 0 <= target < len(self.classes):
            raise ValueError(
                f"target {target} is not a class of {self.name!r} (0..{len(self.classes) - 1})"
            )
        return float((self.val_y != target).double().mean())

    def __repr__(self) -> str:
        return (
            f"DataSplit({self.name!r}, {len(self.classes)} classes, "
            f"train {tuple(self.train_x.shape)}, val {tuple(self.val_x.shape)})"
        )


def load_digits(*, val_fraction: float = 0.3, seed: int = 0) -> DataSplit:
    """scikit-learn's hand-written digits as 32x32 RGB images, with a stratified split.

    The 8x8 images (values 0..16) are scaled to [0, 1], upsampled to 32x32 (bilinear,
    ``align_corners=False``) and replicated to three channels. The split is
    ``train_test_split(stratify=labels, test_size=val_fraction, random_state=seed)``. Results
    are cached per ``(val_fraction, seed)``: the same :class:`DataSplit` object comes back.

    Parameters
    ----------
    val_fraction
        Share of the 1,797 images held out for validation, in (0, 1).
    seed
        ``random_state`` of the split.

    Examples
    --------
    >>> data = load_digits()
    >>> tuple(data.train_x.shape), tuple(data.val_x.shape)
    ((1257, 3, 32, 32), (540, 3, 32, 32))
    >>> load_digits() is data
    True
    """
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), not {val_fraction!r}")
    return _load_digits(float(val_fraction), int(seed))


@functools.lru_cache(maxsize=8)
def _load_digits(val_fraction: float, seed: int) -> DataSplit:
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0)
    images = F.interpolate(images[:, None], size=(32, 32), mode="bilinear", align_corners=False)
    x = images.clamp_(0.0, 1.0).repeat(1, 3, 1, 1).contiguous()
    y = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    train_idx, val_idx = train_test_split(
        np.arange(len(y)), test_size=val_fraction, random_state=seed, stratify=bunch.target
    )
    train_i, val_i = torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(val_idx))
    return DataSplit(
        name="digits",
        classes=DIGIT_CLASSES,
        train_x=x[train_i].contiguous(),
        train_y=y[train_i].contiguous(),
        val_x=x[val_i].contiguous(),
        val_y=y[val_i].contiguous(),
    )


def _layout_help(root: Path) -> str:
    return (
        f"expected an ImageFolder tree {root}/train/<class>/*.JPEG and {root}/val/<class>/*.JPEG "
        "with exactly the 10 Imagenette class folders, named by wnid "
        f"({', '.join(IMAGENETTE_WNIDS)}) or by name ({', '.join(IMAGENETTE_CLASSES)})"
    )


def _class_folders(split_dir: Path, root: Path) -> list[Path]:
    """The class folders of ``split_dir`` in label order; raise if they are not the 10 classes."""
    by_label: dict[int, Path] = {}
    unknown: list[str] = []
    labels = {name: i for i, name in enumerate(IMAGENETTE_CLASSES)}
    labels.update({wnid: i for i, wnid in enumerate(IMAGENETTE_WNIDS)})
    folders = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    duplicates: list[str] = []
    for folder in folders:
        label = labels.get(folder.name)
        if label is None:
            unknown.append(folder.name)
        elif label in by_label:
            duplicates.append(f"{by_label[label].name} and {folder.name}")
        else:
            by_label[label] = folder
    missing = [
        f"{wnid} ({name})"
        for i, (wnid, name) in enumerate(IMAGENETTE_WNIDS.items())
        if i not in by_label
    ]
    if unknown or duplicates or missing:
        problems = []
        if missing:
            problems.append(f"missing class folders: {', '.join(missing)}")
        if unknown:
            problems.append(f"unexpected folders: {listing(unknown)}")
        if duplicates:
            problems.append(f"one class twice: {'; '.join(duplicates)}")
        raise DataSetNotFoundError(
            f"{split_dir} does not hold the 10 Imagenette classes ({'; '.join(problems)}); "
            f"{_layout_help(root)}"
        )
    return [by_label[i] for i in range(len(IMAGENETTE_CLASSES))]


def image_files(folder: Path, layout_help: str) -> list[Path]:
    """The image files of a class folder, sorted; raise (with ``layout_help``) if none."""
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_EXTENSIONS
    )
    if not files:
        raise DataSetNotFoundError(
            f"class folder {folder} holds no images ({', '.join(_IMAGE_EXTENSIONS)}); {layout_help}"
        )
    return files


def read_images(files: Sequence[Path], size: int) -> torch.Tensor:
    """Images ``(N, 3, size, size)`` in [0, 1]: PIL, RGB, torchvision ``Resize`` + ``ToTensor``."""
    from PIL import Image
    from torchvision import transforms

    transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])

    def read(path: Path) -> torch.Tensor:
        with Image.open(path) as image:
            tensor: torch.Tensor = transform(image.convert("RGB"))
        return tensor

    # Decoding and resizing release the GIL: threads give a near-linear speed-up.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        images = list(pool.map(read, files))
    return torch.stack(images).contiguous()


def load_imagenette(root: str | os.PathLike[str], *, size: int = 32) -> DataSplit:
    """Imagenette from a local ImageFolder tree, resized to ``size`` x ``size`` RGB in [0, 1].

    ``root/train/<class>/*.JPEG`` and ``root/val/<class>/*.JPEG``, with the 10 Imagenette class
    folders named by wnid (``n01440764``, as distributed) or by class name (``tench``); labels
    follow :data:`IMAGENETTE_CLASSES`. Images are read with PIL and transformed with
    torchvision's ``Resize((size, size))`` and ``ToTensor()``. Nothing is ever downloaded.

    Parameters
    ----------
    root
        The folder holding ``train/`` and ``val/`` (e.g. an extracted ``imagenette2-160``).
    size
        Side of the square images (LeNet-5 reads 32).

    Raises
    ------
    DataSetNotFoundError
        ``root``, ``train/`` or ``val/`` is missing, the class folders are not the 10 expected,
        or a class folder holds no images; the message states the expected layout.

    Examples
    --------
    >>> load_imagenette("/nonexistent/imagenette")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    wspace.errors.DataSetNotFoundError: no Imagenette at /nonexistent/imagenette: the folder ...
    """
    if int(size) < 1:
        raise ValueError(f"size must be a positive number of pixels, not {size!r}")
    root_path = Path(os.fspath(root)).expanduser()
    if not root_path.is_dir():
        raise DataSetNotFoundError(
            f"no Imagenette at {root_path}: the folder does not exist; {_layout_help(root_path)}"
        )
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for split in ("train", "val"):
        split_dir = root_path / split
        if not split_dir.is_dir():
            found = sorted(p.name for p in root_path.iterdir())
            raise DataSetNotFoundError(
                f"no Imagenette at {root_path}: {split}/ is missing (found {listing(found)}); "
                f"{_layout_help(root_path)}"
            )
        files: list[Path] = []
        labels: list[int] = []
        for label, folder in enumerate(_class_folders(split_dir, root_path)):
            class_files = image_files(folder, _layout_help(root_path))
            files += class_files
            labels += [label] * len(class_files)
        splits[split] = (read_images(files, int(size)), torch.tensor(labels, dtype=torch.int64))
    return DataSplit(
        name="imagenette",
        classes=IMAGENETTE_CLASSES,
        train_x=splits["train"][0],
        train_y=splits["train"][1],
        val_x=splits["val"][0],
        val_y=splits["val"][1],
    )


def load_dataset(
    name: str, *, root: str | os.PathLike[str] | None = None, seed: int = 0
) -> DataSplit:
    """Load a training data set by name: ``"digits"``, ``"digits-inverted"``, ``"imagenette"``,
    ``"imagenette:<root>"`` or ``"folder:<root>"`` (any local ImageFolder tree,
    :func:`wspace.train.image_folder.load_image_folder`).

    ``seed`` picks the train/validation split of ``digits``; Imagenette has a fixed split and
    needs ``root`` (or the ``imagenette:<root>`` name). ``digits-inverted`` is ``digits`` with
    every image ``1 - x`` (white digits on black become black on white): a second offline data
    set for sweeps.

    Examples
    --------
    >>> load_dataset("digits").name
    'digits'
    """
    if name == "digits":
        return load_digits(seed=seed)
    if name == "digits-inverted":
        base = load_digits(seed=seed)
        return DataSplit(
            name="digits-inverted",
            classes=base.classes,
            train_x=1.0 - base.train_x,
            train_y=base.train_y,
            val_x=1.0 - base.val_x,
            val_y=base.val_y,
        )
    if name.startswith("folder:"):
        from wspace.train.image_folder import load_image_folder

        return load_image_folder(name.removeprefix("folder:"))
    if name.startswith("imagenette:"):
        return load_imagenette(name.removeprefix("imagenette:"))
    if name == "imagenette":
        if root is None:
            raise DataSetNotFoundError(
                "the imagenette data set needs root=<folder with train/ and val/>; it is never "
                "downloaded"
            )
        return load_imagenette(root)
    raise ValueError(
        f"unknown data set {name!r}; known: 'digits', 'digits-inverted', 'imagenette', "
        "'imagenette:<root>', 'folder:<root>'"
    )
