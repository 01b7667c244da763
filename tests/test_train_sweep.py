"""NWS-style sweeps: drawn networks into architecture groups, snapshots, NWS export round trip."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import wspace
from wspace.errors import FormatError, WspaceError
from wspace.io import export_zoo, import_zoo
from wspace.io.nws_arch import CSV_COLUMNS, NWSArchitecture, nws_layout
from wspace.train.nets import NWSNet, nws_net_layout
from wspace.train.sweep import run_sweep
from wspace.train.sweep_spec import FIELDS, SweepSpec, load_spec

# tiny networks on 64 training images: 20 epochs of 2 batches each, a second or two per network
SPEC = """
name = "tiny"
networks = 3
seed = 1
[dataset]
train_images = 64
[architecture]
filter_size = [3, 5]
depth_conv = 3
depth_fc = 2
width_conv = [2, 4]
width_fc = 16
[optimisation]
batch_size = 32
epochs = 20
lrate = { log_uniform = [1e-3, 1e-2] }
"""
DRAWN = [f for f in FIELDS] + ["seed"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, SweepSpec]:
    root = tmp_path_factory.mktemp("sweep")
    spec_file = root / "spec.toml"
    spec_file.write_text(SPEC)
    url = str(root / "zoo.zarr")
    out = subprocess.run(
        [sys.executable, "-m", "wspace", "train", "sweep", str(spec_file), url],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "3 trained" in out.stdout
    return url, load_spec(spec_file)


def _groups(url: str) -> dict[str, wspace.Zoo]:
    return {a: wspace.open(url, arch=a) for a in wspace.info(url)["archs"]}


def test_sweep_fills_one_group_per_architecture_with_20_snapshots(sweep) -> None:
    url, spec = sweep
    groups = _groups(url)
    configs = {f"net_{i:05d}": spec.draw(i) for i in range(3)}
    expected = {NWSArchitecture.from_mapping(c, m).name for m, c in configs.items()}
    assert len(expected) >= 2 and set(groups) == expected
    seen = set()
    for arch, zoo in groups.items():
        models = zoo.models
        for model, rows in models.groupby("model"):
            seen.add(model)
            config = configs[str(model)]
            assert NWSArchitecture.from_mapping(config, "x").name == arch
            assert sorted(rows["step"]) == list(range(1, 21))  # 20 epochs, 20 snapshots
            assert sorted(rows["snapshot"]) == list(range(1, 21))
            for field in DRAWN:  # metadata = the drawn values
                values = rows[field].tolist()
                assert all(v == config[field] for v in values), field
            first = rows[rows["snapshot"] == 1].iloc[0]
            assert len(first["error_curve"]) == 20 and first["stat"][0] == 20
            last = rows[rows["step"] == 20].iloc[0]
            assert 0 <= last["valid_error"] <= 100 and last["iteration"] == 40
        # the layout is the module's, and the NWS layout of the drawn architecture
        arch_fields = NWSArchitecture.from_mapping(models.iloc[0].to_dict(), "x")
        reference = nws_layout(
            **{
                f: getattr(arch_fields, f)
                for f in (
                    "filter_size",
                    "depth_conv",
                    "depth_fc",
                    "width_conv",
                    "width_fc",
                    "batch_norm",
                )
            }
        )
        assert [(t.name, t.shape) for t in zoo.layout] == [(t.name, t.shape) for t in reference]
    assert seen == set(configs)
    # weights move during training: first and last snapshots differ
    zoo = next(iter(groups.values()))
    model = zoo.models["model"].iloc[0]
    assert not np.array_equal(
        zoo.sel(model=model, step=1).values, zoo.sel(model=model, step=20).values
    )


def test_rerun_skips_committed_networks(sweep, tmp_path: Path) -> None:
    url, spec = sweep
    before = sum(len(z) for z in _groups(url).values())
    report = run_sweep(spec, url, progress=False)
    assert report.skipped == 3 and report.trained == []
    assert sum(len(z) for z in _groups(url).values()) == before == 60


def test_nws_export_of_a_sweep_imports_back_equal(sweep, tmp_path: Path) -> None:
    url, _ = sweep
    out, back = tmp_path / "nws", str(tmp_path / "back.zarr")
    for zoo in _groups(url).values():
        export_zoo(zoo, out, "nws", progress=False)
    header = (out / "tiny.csv").read_text().splitlines()[0].split(",")
    assert header[: len(CSV_COLUMNS)] == list(CSV_COLUMNS)
    import_zoo("nws", out, back, progress=False)
    for arch, zoo in _groups(url).items():
        again = wspace.open(back, arch=arch)
        a = zoo.models.sort_values(["model", "step"])
        b = again.models.sort_values(["model", "step"])
        np.testing.assert_array_equal(zoo.values[a.index], again.values[b.index])
        assert set(b.columns) - set(a.columns) == {"meta_csv"}  # the exported meta.csv text
        for column in a.columns:
            for x, y in zip(a[column], b[column], strict=True):
                if isinstance(x, list):
                    np.testing.assert_array_equal(np.asarray(x, float), np.asarray(y, float))
                elif isinstance(x, float) and math.isnan(x):
                    assert isinstance(y, float) and math.isnan(y), column
                else:
                    assert x == y, column


def test_fixed_mode_uses_the_fixed_architecture(tmp_path: Path) -> None:
    spec = SweepSpec(networks=2, seed=3)
    spec.distributions.update(train_images=32, batch_size=32, epochs=3, dataset="digits")
    spec.fixed.update(width_conv=2, width_fc=8)
    url = str(tmp_path / "fixed.zarr")
    report = run_sweep(spec, url, fixed=True, snapshots=3, progress=False)
    assert report.archs == ["nws-f5-c3x2-d2x8-bn1"] and len(report.trained) == 2
    zoo = wspace.open(url)
    assert sorted(zoo.models["step"]) == [1, 1, 2, 2, 3, 3]
    # the optimisation draws are those of the non-fixed sweep
    assert zoo.sel(model="net_00001").models["lrate"].iloc[0] == spec.draw(1)["lrate"]


def test_spec_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[architecture]\nfilter_sise = [3]\n")
    with pytest.raises(FormatError, match="filter_sise"):
        load_spec(bad)
    bad.write_text("[optimisation]\nlrate = { normal = [0, 1] }\n")
    with pytest.raises(FormatError, match="lrate"):
        load_spec(bad)
    with pytest.raises(FormatError, match="no such file"):
        load_spec(tmp_path / "missing.toml")
    spec = SweepSpec(networks=1)
    spec.distributions["epochs"] = 5
    with pytest.raises(WspaceError, match="20 snapshots need epochs >= 20"):
        run_sweep(spec, str(tmp_path / "z.zarr"), progress=False)
    assert not (tmp_path / "z.zarr").exists()


def test_draws_are_reproducible_and_follow_the_distributions() -> None:
    spec = SweepSpec(seed=7)
    draws = [spec.draw(i) for i in range(200)]
    assert draws[5] == SweepSpec(seed=7).draw(5) and draws[5] != SweepSpec(seed=8).draw(5)
    assert {d["filter_size"] for d in draws} == {3, 5, 7}
    assert {d["optimizer"] for d in draws} == {"adam", "rmsprop", "momentum"}
    assert all(2e-4 <= d["lrate"] <= 5e-3 for d in draws)


@pytest.mark.parametrize("bn", [True, False])
def test_module_layout_is_the_nws_layout(bn: bool) -> None:
    arch = NWSArchitecture(7, 5, 3, 4, 64, bn)
    net = NWSNet(arch, generator=torch.Generator().manual_seed(0))
    layout = nws_net_layout(net)
    reference = nws_layout(7, 5, 3, 4, 64, bn)
    assert layout.name == reference.name
    assert [(t.name, t.shape) for t in layout] == [(t.name, t.shape) for t in reference]
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 20)


def _image_folder(root: Path, classes: list[str], per_class: int) -> None:
    """A tiny ImageFolder tree of PNG images (class k: images of brightness about k / n)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for k, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                noise = rng.integers(0, 40, size=(12, 12, 3))
                pixels = np.clip(k * 200 // len(classes) + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


def _spec(text: str, tmp_path: Path) -> SweepSpec:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return load_spec(path)


def test_a_sweep_trains_on_a_local_image_folder(tmp_path: Path) -> None:
    data = tmp_path / "shapes"
    _image_folder(data, ["dark", "light", "mid"], per_class=8)
    text = SPEC.replace("networks = 3", "networks = 1")
    text = text.replace("train_images = 64", f'train_images = 24\ndataset = ["folder:{data}"]')
    url = str(tmp_path / "zoo.zarr")
    report = run_sweep(_spec(text, tmp_path), url, progress=False)
    assert report.trained == ["net_00000"]
    zoo = wspace.open(url, arch=report.archs[0])
    assert set(zoo.models["dataset"]) == {f"folder:{data}"}
    assert sorted(zoo.models["step"]) == list(range(1, 21))


def test_image_folder_problems_are_named(tmp_path: Path) -> None:
    from wspace.errors import DataSetNotFoundError
    from wspace.train.data import load_dataset

    data = tmp_path / "bad"
    _image_folder(data, ["a", "b"], per_class=2)
    (data / "val" / "b").rename(data / "val" / "c")
    with pytest.raises(DataSetNotFoundError, match=r"train/ has classes 'a', 'b' but val/ has"):
        load_dataset(f"folder:{data}")
    many = tmp_path / "many"
    _image_folder(many, [f"c{k:02d}" for k in range(21)], per_class=1)
    spec = _spec(SPEC.replace("train_images = 64", f'dataset = ["folder:{many}"]'), tmp_path)
    with pytest.raises(FormatError, match=r"has 21 classes; the sweep's networks have 20 outputs"):
        run_sweep(spec, str(tmp_path / "z.zarr"), progress=False)
