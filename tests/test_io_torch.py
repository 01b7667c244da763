"""Folders of torch state_dict files and of safetensors files, one per row."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

import wspace
from wspace.cli import app
from wspace.errors import FormatError, SourceNotFoundError, UnsafePickleError
from wspace.io import export_zoo, import_zoo
from wspace.io.torch_ import load_state_dict
from wspace.testing import assert_rows_equal


def small_net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(), torch.nn.Linear(8, 3)
    )
    with torch.no_grad():
        net[1].running_mean.uniform_()
    net[1].num_batches_tracked += seed
    return net


def unique(prefix: str) -> str:
    return f"memory://{prefix}-{uuid.uuid4().hex}"


@pytest.fixture
def state_dicts(tmp_path: Path) -> tuple[Path, dict[str, dict]]:
    """net_0@1.pt, net_0@2.pt, net_1@1.pt, and sub/net_2.pt (no step)."""
    src = tmp_path / "pt"
    (src / "sub").mkdir(parents=True)
    files = {"net_0@1.pt": 0, "net_0@2.pt": 1, "net_1@1.pt": 2, "sub/net_2.pt": 3}
    saved = {}
    for name, seed in files.items():
        state = small_net(seed).state_dict()
        torch.save(state, src / name)
        saved[name] = state
    return src, saved


def log_state(url: str) -> tuple[int, int]:
    handle = wspace.store.open_store(url)
    return len(handle.state_records), sum(a.n_rows for a in handle.state.archs.values())


def test_state_dict_import(state_dicts):
    src, saved = state_dicts
    url = unique("sd")
    report = import_zoo("state-dict", src, url, progress=False, arch="small")
    assert report.models == ["net_0", "net_1", "sub/net_2"] and report.rows == 4
    zoo = wspace.open(url)
    assert zoo.layout.name == "small"
    assert zoo.layout.tensor_names == (
        "0/weight",
        "0/bias",
        "1/weight",
        "1/bias",
        "1/running_mean",
        "1/running_var",
        "3/weight",
        "3/bias",
    )
    models = zoo.models
    assert models["model"].tolist() == ["net_0", "net_0", "net_1", "sub/net_2"]
    assert models["step"].tolist()[:3] == [1, 2, 1] and pd.isna(models["step"].iloc[3])
    for i, name in enumerate(saved):
        got = zoo.state_dict(i)
        for key, tensor in got.items():
            assert torch.equal(tensor, saved[name][key]), (name, key)


@pytest.mark.parametrize("fmt", ["state-dict", "safetensors"])
def test_round_trip_keeps_arrays_names_order_and_metadata(fmt, tmp_path):
    lay = wspace.Layout.from_torch(small_net(0), name="small")
    url = unique("made")
    wspace.create(url, lay)
    with wspace.writer(url) as w:
        for i, (model, step) in enumerate([("b", 3), ("b", 1), ("a", None), ("c/d", 0)]):
            meta = {"cls": ["x", "y"][i % 2], "seed": i} if step is None else {"step": step}
            meta.update(seed=i, accuracy=0.1 * i, ok=i % 2 == 0, curve=[0.5, 0.25 * i])
            if i == 2:
                meta["note"] = "only here"
            w.append(small_net(i), model=model, **meta)
    zoo = wspace.open(url)
    out = tmp_path / "out"
    files = export_zoo(zoo, out, fmt, progress=False)
    ext = ".pt" if fmt == "state-dict" else ".safetensors"
    assert [f.relative_to(out).as_posix() for f in files][:4] == [
        f"b@3{ext}",
        f"b@1{ext}",
        f"a{ext}",
        f"c/d@0{ext}",
    ]
    again = unique("again")
    report = import_zoo(fmt, out, again, progress=False)
    assert report.archs == ["small"]
    back = wspace.open(again)
    assert back.layout == zoo.layout
    # rows of a model are committed together, so the first import is grouped by model
    assert back.models["model"].tolist() == ["b", "b", "a", "c/d"]
    assert_rows_equal(back.values, zoo.values)
    pd.testing.assert_frame_equal(back.models, zoo.models)
    # a third generation is identical to the second
    out2 = tmp_path / "out2"
    export_zoo(back, out2, fmt, progress=False)
    third = unique("third")
    import_zoo(fmt, out2, third, progress=False)
    assert_rows_equal(wspace.open(third).values, back.values)
    pd.testing.assert_frame_equal(wspace.open(third).models, back.models)
    # importing the export into the store it came from adds nothing
    before = log_state(url)
    assert import_zoo(fmt, out, url, progress=False).skipped == ["b", "a", "c/d"]
    assert log_state(url) == before


def test_exported_files_are_plain_for_other_tools(tmp_path):
    url = unique("plain")
    lay = wspace.Layout.from_torch(small_net(0))
    wspace.create(url, lay)
    with wspace.writer(url) as w:
        w.append(small_net(5), model="church_3", step=20, cls="church", accuracy=0.93)
    zoo = wspace.open(url)
    export_zoo(zoo, tmp_path / "st", "safetensors", progress=False)
    with safe_open(str(tmp_path / "st/church_3@20.safetensors"), framework="pt") as f:
        header = f.metadata()
        assert header["model"] == "church_3" and header["cls"] == "church"
        assert header["step"] == "20" and header["accuracy"] == "0.93"
        assert header["format"] == "pt"
    export_zoo(zoo, tmp_path / "pt", "state-dict", progress=False)
    net = small_net(0)
    net.load_state_dict(torch.load(tmp_path / "pt/church_3@20.pt", weights_only=True), strict=False)
    assert torch.equal(net[0].weight, small_net(5)[0].weight)
    line = json.loads((tmp_path / "pt/metadata.jsonl").read_text())
    assert line == {
        "file": "church_3@20.pt",
        "row": {"model": "church_3", "step": 20, "cls": "church", "accuracy": 0.93},
    }


def test_foreign_safetensors_header_becomes_string_columns(tmp_path):
    src = tmp_path / "st"
    src.mkdir()
    for i in range(2):
        state = {k: v.contiguous() for k, v in small_net(i).state_dict().items()}
        save_file(state, str(src / f"m{i}.safetensors"), {"format": "pt", "author": f"x{i}"})
    url = unique("foreign")
    import_zoo("safetensors", src, url, progress=False)
    zoo = wspace.open(url)
    assert zoo.models[["model", "author"]].values.tolist() == [["m0", "x0"], ["m1", "x1"]]
    assert "format" not in zoo.models
    assert zoo.layout.size == sum(v.numel() for v in small_net(0).state_dict().values()) - 1


def test_import_into_every_kind_of_store(spot, tmp_path):
    src = tmp_path / "lin"
    src.mkdir()
    for i in range(2):
        torch.manual_seed(i)
        torch.save(torch.nn.Linear(4, 2).state_dict(), src / f"lin{i}.pt")
    report = import_zoo("state-dict", src, spot.url, storage_options=spot.options, progress=False)
    assert report.rows == 2
    zoo = wspace.open(spot.url, storage_options=spot.options)
    torch.manual_seed(1)
    np.testing.assert_array_equal(
        zoo.row("lin1"),
        np.concatenate([p.detach().numpy().ravel() for p in torch.nn.Linear(4, 2).parameters()]),
    )


# -- bad input -----------------------------------------------------------------------------------
class Payload:
    """Unpickling this would create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_unsafe_file_is_refused_and_nothing_runs(state_dicts, tmp_path):
    src, _ = state_dicts
    marker = tmp_path / "pwned"
    torch.save({"0.weight": Payload(marker)}, src / "zz_evil.pt")
    url = unique("unsafe")
    import_zoo("state-dict", src / "sub", url, progress=False)
    before = log_state(url)
    with pytest.raises(
        UnsafePickleError, match=r"zz_evil\.pt: refused .*GLOBAL io\.open was not an allowed"
    ):
        import_zoo("state-dict", src, url, progress=False)
    assert not marker.exists()
    assert log_state(url) == before


def test_a_file_that_does_not_match_the_first(state_dicts):
    src, _ = state_dicts
    state = small_net(9).state_dict()
    state["3.weight"] = torch.zeros(3, 9)
    torch.save(state, src / "net_1@2.pt")
    url = unique("mismatch")
    import_zoo("state-dict", src / "sub", url, progress=False)
    before = log_state(url)
    with pytest.raises(
        FormatError, match=r"net_1@2\.pt: .*shapes '3\.weight \(3, 9\) \(not \(3, 8\)\)"
    ):
        import_zoo("state-dict", src, url, progress=False)
    assert log_state(url) == before
    assert set(wspace.open(url).models["model"]) == {"net_2"}  # named relative to sub/


def test_checkpoint_dicts_need_the_key_option(tmp_path):
    src = tmp_path / "ckpt"
    src.mkdir()
    for i in range(2):
        torch.save({"model_state_dict": small_net(i).state_dict(), "epoch": i}, src / f"r{i}.pt")
    with pytest.raises(FormatError, match="pass -O key=NAME"):
        import_zoo("state-dict", src, unique("ckpt"), progress=False)
    url = unique("ckpt")
    report = import_zoo("state-dict", src, url, progress=False, key="model_state_dict")
    assert report.rows == 2
    with pytest.raises(SourceNotFoundError, match="no folder"):
        import_zoo("state-dict", tmp_path / "missing", url, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceNotFoundError, match=r"no \.pt/\.pth files under"):
        import_zoo("state-dict", tmp_path / "empty", url, progress=False)


def test_load_state_dict_refuses_what_is_not_a_state_dict(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(FormatError, match="holds a list"):
        load_state_dict(tmp_path / "list.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(
        FormatError, match=r"junk\.pt: not a readable .*: Unsupported operand"
    ) as info:
        load_state_dict(tmp_path / "junk.pt")
    assert not isinstance(info.value, UnsafePickleError)  # damaged, not a payload


def test_cli_round_trip(state_dicts, tmp_path):
    src, _ = state_dicts
    url = str(tmp_path / "cli.zarr")
    runner = CliRunner()
    out = runner.invoke(app, ["import", "state-dict", str(src), url, "-O", "arch=small"])
    assert out.exit_code == 0, out.output
    assert "imported 4 row(s) of 3 model(s)" in out.output
    out = runner.invoke(
        app, ["export", url, str(tmp_path / "st"), "--format", "safetensors", "--where", "step=1"]
    )
    assert out.exit_code == 0, out.output
    names = sorted(p.name for p in (tmp_path / "st").iterdir())
    assert names == ["net_0@1.safetensors", "net_1@1.safetensors"]


# -- property ------------------------------------------------------------------------------------
layers = st.lists(st.from_regex(r"[a-z]{1,3}", fullmatch=True), min_size=1, max_size=3, unique=True)
params = st.lists(
    st.sampled_from(["weight", "bias", "w", "running_mean"]), min_size=1, max_size=2, unique=True
)
meta_values = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=6),
    st.booleans(),
    st.lists(st.integers(0, 9), max_size=3),
)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    names=st.tuples(layers, params).map(lambda lp: [f"{a}.{b}" for a in lp[0] for b in lp[1]]),
    shapes=st.lists(st.lists(st.integers(1, 3), max_size=3), min_size=6, max_size=6),
    meta=st.dictionaries(
        st.sampled_from(["cls", "x/y", "format", "wspace.row", "seed"]), meta_values
    ),
    fmt=st.sampled_from(["state-dict", "safetensors"]),
)
def test_any_state_dict_round_trips(tmp_path_factory, names, shapes, meta, fmt):
    src = tmp_path_factory.mktemp("any")
    rng = np.random.default_rng(0)
    states = []
    for i in range(2):
        state = {
            name: torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
            for name, shape in zip(names, shapes, strict=False)
        }
        states.append(state)
        torch.save(state, src / f"m{i}@{i}.pt")
    url = unique("any")
    import_zoo("state-dict", src, url, progress=False)
    with wspace.writer(url) as w:
        w.append(states[0], model="extra", step=7, **meta)
    zoo = wspace.open(url)
    out = tmp_path_factory.mktemp("out")
    export_zoo(zoo, out, fmt, progress=False)
    again = unique("any2")
    import_zoo(fmt, out, again, progress=False)
    back = wspace.open(again)
    assert back.layout == zoo.layout
    assert_rows_equal(back.values, zoo.values)
    pd.testing.assert_frame_equal(back.models, zoo.models)
