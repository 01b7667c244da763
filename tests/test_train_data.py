"""wspace.train.data: digits (scikit-learn, offline) and a local Imagenette ImageFolder tree."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wspace.errors import DataSetNotFoundError
from wspace.train import (
    DIGIT_CLASSES,
    IMAGENETTE_CLASSES,
    IMAGENETTE_WNIDS,
    DataSplit,
    load_dataset,
    load_digits,
    load_imagenette,
)
from wspace.train import data as data_module

N_DIGITS = 1797


# --- digits -----------------------------------------------------------------------------------


def test_digits_shapes_dtypes_and_range() -> None:
    data = load_digits()
    assert data.name == "digits"
    assert data.classes == DIGIT_CLASSES and data.classes[7] == "seven"
    for x, y in ((data.train_x, data.train_y), (data.val_x, data.val_y)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.ndim == 4 and tuple(x.shape[1:]) == (3, 32, 32) and len(x) == len(y)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert float(x.max()) > 0.9  # scaled by 16, not by 255
        assert set(y.tolist()) == set(range(10))
        # three identical channels
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    assert len(data.train_x) + len(data.val_x) == N_DIGITS


def test_digits_split_sizes_follow_val_fraction() -> None:
    for fraction in (0.3, 0.2, 0.5):
        data = load_digits(val_fraction=fraction)
        assert len(data.val_y) == math.ceil(fraction * N_DIGITS)  # sklearn rounds the test up
        assert len(data.train_y) == N_DIGITS - len(data.val_y)


def test_digits_split_is_stratified() -> None:
    for seed in (0, 1):
        data = load_digits(seed=seed)
        all_y = torch.cat([data.train_y, data.val_y])
        for label in range(10):
            overall = float((all_y == label).double().mean())
            in_val = float((data.val_y == label).double().mean())
            assert abs(in_val - overall) <= 0.02, (seed, label, in_val, overall)


def test_digits_cached_and_deterministic() -> None:
    first = load_digits(seed=3)
    assert load_digits(seed=3) is first
    data_module._load_digits.cache_clear()
    again = load_digits(seed=3)
    assert again is not first
    for name in ("train_x", "train_y", "val_x", "val_y"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    other = load_digits(seed=4)
    assert not torch.equal(first.val_y, other.val_y)


def test_digits_bad_val_fraction() -> None:
    for fraction in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="val_fraction"):
            load_digits(val_fraction=fraction)


def test_majority_rate() -> None:
    data = load_digits()
    for target in range(10):
        expected = float(np.mean(data.val_y.numpy() != target))
        assert data.majority_rate(target) == pytest.approx(expected)
        assert 0.85 < data.majority_rate(target) < 0.95
    with pytest.raises(ValueError, match="not a class"):
        data.majority_rate(10)


def test_datasplit_is_frozen_and_repr() -> None:
    data = load_digits()
    with pytest.raises(AttributeError):
        data.name = "other"  # type: ignore[misc]
    assert "digits" in repr(data) and "(1257, 3, 32, 32)" in repr(data)


# --- imagenette -------------------------------------------------------------------------------


def _color(label: int) -> tuple[int, int, int]:
    return (20 * label + 10, 240 - 20 * label, 128)


def _make_tree(
    root: Path,
    folders: list[str],
    *,
    suffix: str = ".png",
    n_train: int = 2,
    n_val: int = 1,
    splits: tuple[str, ...] = ("train", "val"),
) -> Path:
    """An ImageFolder tree of solid-colour images (class ``i`` has colour ``_color(i)``)."""
    for split, count in (("train", n_train), ("val", n_val)):
        if split not in splits:
            continue
        for label, folder in enumerate(folders):
            directory = root / split / folder
            directory.mkdir(parents=True)
            for k in range(count):
                size = (40 + 7 * k, 30 + 5 * label)  # any size: resized on load
                image = Image.new("RGB", size, _color(label % 10))
                image.save(directory / f"img_{k:03d}{suffix}")
    return root


def _check_colors(data: DataSplit, tolerance: float) -> None:
    for x, y in ((data.train_x, data.train_y), (data.val_x, data.val_y)):
        for image, label in zip(x, y.tolist(), strict=True):
            expected = torch.tensor(_color(label), dtype=torch.float32) / 255.0
            pixel_means = image.mean(dim=(1, 2))
            assert torch.allclose(pixel_means, expected, atol=tolerance), (label, pixel_means)


def test_imagenette_wnid_folders_jpeg(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "imagenette", list(IMAGENETTE_WNIDS), suffix=".JPEG")
    (root / "train" / "n01440764" / "notes.txt").write_text("ignored: not an image")
    data = load_imagenette(root)
    assert data.name == "imagenette" and data.classes == IMAGENETTE_CLASSES
    assert tuple(data.train_x.shape) == (20, 3, 32, 32) and tuple(data.val_x.shape) == (
        10,
        3,
        32,
        32,
    )
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert data.train_y.tolist() == [i for i in range(10) for _ in range(2)]
    assert data.val_y.tolist() == list(range(10))
    assert float(data.train_x.min()) >= 0.0 and float(data.train_x.max()) <= 1.0
    _check_colors(data, tolerance=4 / 255)  # JPEG is lossy
    assert data.majority_rate(0) == pytest.approx(0.9)


def test_imagenette_name_folders_png_any_order_and_size(tmp_path: Path) -> None:
    # folders named by class; written in reverse order: labels still follow IMAGENETTE_CLASSES
    names = list(IMAGENETTE_CLASSES)
    root = tmp_path / "nette"
    _make_tree(root, names, n_train=3)
    data = load_imagenette(str(root), size=16)
    assert tuple(data.train_x.shape) == (30, 3, 16, 16)
    assert data.train_y.tolist() == [i for i in range(10) for _ in range(3)]
    _check_colors(data, tolerance=1e-6)  # PNG is exact


def test_imagenette_grayscale_becomes_rgb(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "nette", list(IMAGENETTE_WNIDS))
    Image.new("L", (20, 20), 200).save(root / "val" / "n01440764" / "gray.png")
    data = load_imagenette(root)
    assert len(data.val_y) == 11
    gray = data.val_x[0]  # sorted file order: class 0's gray.png comes first
    assert data.val_y[:2].tolist() == [0, 0]
    assert tuple(gray.shape) == (3, 32, 32)
    assert torch.allclose(gray, torch.full_like(gray, 200 / 255))


def test_imagenette_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataSetNotFoundError, match=r"does not exist.*train/<class>") as info:
        load_imagenette(tmp_path / "absent")
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path / "absent") in str(info.value)


def test_imagenette_missing_val(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "nette", list(IMAGENETTE_WNIDS), splits=("train",))
    with pytest.raises(DataSetNotFoundError, match=r"val/ is missing.*'train'.*val/<class>"):
        load_imagenette(root)


def test_imagenette_wrong_classes(tmp_path: Path) -> None:
    folders = [*list(IMAGENETTE_WNIDS)[:9], "dog"]
    root = _make_tree(tmp_path / "nette", folders)
    with pytest.raises(DataSetNotFoundError) as info:
        load_imagenette(root)
    message = str(info.value)
    assert "missing class folders: n03888605 (parachute)" in message
    assert "unexpected folders: 'dog'" in message
    assert "ImageFolder tree" in message and "n01440764" in message and "tench" in message


def test_imagenette_class_twice(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "nette", list(IMAGENETTE_WNIDS))
    _make_tree(tmp_path / "extra", ["tench"])
    (tmp_path / "extra" / "train" / "tench").rename(root / "train" / "tench")
    with pytest.raises(DataSetNotFoundError, match="one class twice: n01440764 and tench"):
        load_imagenette(root)


def test_imagenette_empty_class_folder(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "nette", list(IMAGENETTE_WNIDS))
    for file in (root / "val" / "n03888605").iterdir():
        file.unlink()
    with pytest.raises(DataSetNotFoundError, match=r"n03888605 holds no images"):
        load_imagenette(root)


# --- load_dataset -----------------------------------------------------------------------------


def test_load_dataset(tmp_path: Path) -> None:
    assert load_dataset("digits") is load_digits()
    assert load_dataset("digits", seed=1) is load_digits(seed=1)
    root = _make_tree(tmp_path / "nette", list(IMAGENETTE_CLASSES))
    assert load_dataset("imagenette", root=str(root)).classes == IMAGENETTE_CLASSES
    with pytest.raises(DataSetNotFoundError, match="root="):
        load_dataset("imagenette")
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        load_dataset("mnist")
