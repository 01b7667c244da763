"""Model Zoos: Ray Tune trial folders with result.json and checkpoint_NNNNNN/checkpoints."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import wspace
from wspace.errors import FormatError, SourceNotFoundError, UnsafePickleError
from wspace.io import export_zoo, import_zoo
from wspace.testing import assert_rows_equal


class CNN(torch.nn.Module):
    """The shape of the zoos' small CNNs: a module_list of conv and linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.module_list = torch.nn.ModuleList(
            [
                torch.nn.Conv2d(1, 2, 3),
                torch.nn.Tanh(),
                torch.nn.Conv2d(2, 2, 3),
                torch.nn.Linear(2, 3),
            ]
        )


def make_trial(folder: Path, seed: int, epochs: int = 5, every: int = 2) -> dict[int, dict]:
    """A trial as Ray Tune leaves it: a result line per epoch, a checkpoint every ``every``."""
    torch.manual_seed(seed)
    net = CNN()
    config = {
        "model::type": "CNN",
        "optim::lr": 0.001 * (seed + 1),
        "seed": seed,
        "model::channels": [1, 2, 2],
        "training::nested": {"a": 1, "b": "x"},
    }
    lines, states = [], {}
    for epoch in range(epochs):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.01 * epoch)
        line = {
            "train_loss": 2.0 / (epoch + 1),
            "train_acc": 0.1 * epoch,
            "test_loss": 2.1 / (epoch + 1),
            "test_acc": 0.09 * epoch,
            "done": epoch == epochs - 1,
            "training_iteration": epoch,
            "trial_id": f"t{seed}",
            "date": "2021-05-01_10-00-00",
            "timestamp": 1619856000 + epoch,
            "time_this_iter_s": 1.5,
            "config": config,
        }
        lines.append(line)
        if epoch % every == 0:
            ckpt = folder / f"checkpoint_{epoch:06d}"
            ckpt.mkdir(parents=True)
            torch.save(net.state_dict(), ckpt / "checkpoints")
            torch.save({"state": {}, "param_groups": []}, ckpt / "optimizer")
            states[epoch] = {k: v.clone() for k, v in net.state_dict().items()}
    (folder / "result.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (folder / "params.json").write_text(json.dumps(config))
    return states


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    src = tmp_path_factory.mktemp("zoo") / "tune_zoo_mnist"
    states = {}
    for seed in range(2):
        trial = f"experiment/NN_tune_trainable_{seed:05d}_{seed}_seed={seed}"
        states[trial] = make_trial(src / trial, seed)
    url = f"memory://model-zoos-{uuid.uuid4().hex}"
    import_zoo("model-zoos", src, url, progress=False)
    return src, states, url


def log_state(url: str) -> tuple[int, int]:
    handle = wspace.store.open_store(url)
    return len(handle.state_records), sum(a.n_rows for a in handle.state.archs.values())


def test_rows_are_checkpoints_with_their_epoch_metrics(imported):
    _, states, url = imported
    zoo = wspace.open(url)
    assert zoo.layout.name == "model-zoos"
    assert zoo.layout.tensor_names[:2] == ("module_list.0/weight", "module_list.0/bias")
    models = zoo.models
    trial = "experiment/NN_tune_trainable_00001_1_seed=1"
    assert models["model"].tolist() == [next(iter(states))] * 3 + [trial] * 3
    assert models["step"].tolist() == [0, 2, 4] * 2
    run = models[models["model"] == trial]
    assert run["test_acc"].tolist() == [0.0, 0.09 * 2, 0.09 * 4]
    assert run["training_iteration"].tolist() == [0, 2, 4]
    assert run["result_line"].tolist() == [0, 2, 4]
    assert run["config.optim::lr"].tolist() == [0.002] * 3
    assert run["config.model::channels"].iloc[0] == [1, 2, 2]
    assert run["config.training::nested"].iloc[0] == {"a": 1, "b": "x"}
    assert run["done"].tolist() == [False, False, True]
    extra = run["result_extra"].iloc[0]
    assert [i for i, _ in extra] == [1, 3] and extra[0][1]["test_acc"] == 0.09
    assert run["result_extra"].iloc[1:].isna().all()
    for i, epoch in enumerate((0, 2, 4)):
        got = zoo.sel(model=trial).state_dict(i)
        for key, tensor in states[trial][epoch].items():
            assert torch.equal(got[key], tensor)


def test_round_trip(imported, tmp_path):
    src, _, url = imported
    zoo = wspace.open(url)
    out = tmp_path / "out"
    export_zoo(zoo, out, "model-zoos", progress=False)
    for trial in sorted(p.parent for p in src.rglob("result.json")):
        rel = trial.relative_to(src)
        original = [json.loads(x) for x in (trial / "result.json").read_text().splitlines()]
        written = [json.loads(x) for x in (out / rel / "result.json").read_text().splitlines()]
        assert written == original
        assert json.loads((out / rel / "params.json").read_text()) == original[0]["config"]
        ckpts = sorted(p.name for p in (out / rel).iterdir() if p.name.startswith("checkpoint_"))
        assert ckpts == ["checkpoint_000000", "checkpoint_000002", "checkpoint_000004"]
        net = CNN()
        net.load_state_dict(torch.load(out / rel / "checkpoint_000004/checkpoints"))
        expected = torch.load(trial / "checkpoint_000004/checkpoints", weights_only=True)
        for key, tensor in net.state_dict().items():
            assert torch.equal(tensor, expected[key])
    again = f"memory://model-zoos-again-{uuid.uuid4().hex}"
    import_zoo("model-zoos", out, again, progress=False)
    back = wspace.open(again)
    assert back.layout == zoo.layout
    assert_rows_equal(back.values, zoo.values)
    pd.testing.assert_frame_equal(back.models, zoo.models)


def test_exporting_late_checkpoints_keeps_every_result_line(imported, tmp_path):
    _, _, url = imported
    late = wspace.open(url).where(lambda m: m.step >= 2)
    export_zoo(late, tmp_path / "late", "model-zoos", progress=False)
    trial = "experiment/NN_tune_trainable_00000_0_seed=0"
    lines = (tmp_path / "late" / trial / "result.json").read_text().splitlines()
    # epochs 1 and 3 come from result_extra, kept on the (not exported) epoch-0 row
    assert [json.loads(x)["training_iteration"] for x in lines] == [1, 2, 3, 4]
    assert not (tmp_path / "late" / trial / "checkpoint_000000").exists()


def test_reimport_adds_nothing(imported):
    src, _, url = imported
    before = log_state(url)
    report = import_zoo("model-zoos", src, url, progress=False)
    assert report.rows == 0 and len(report.skipped) == 2 and log_state(url) == before


def test_lines_without_training_iteration_pair_by_line_number(tmp_path):
    trial = tmp_path / "zoo" / "trial"
    make_trial(trial, 0, epochs=3, every=1)
    lines = [json.loads(x) for x in (trial / "result.json").read_text().splitlines()]
    for line in lines:
        del line["training_iteration"]
    (trial / "result.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    url = f"memory://model-zoos-lines-{uuid.uuid4().hex}"
    import_zoo("model-zoos", trial, url, progress=False)  # a trial folder itself
    models = wspace.open(url).models
    assert models["model"].tolist() == ["trial"] * 3
    assert models["train_loss"].tolist() == [2.0, 1.0, 2.0 / 3]


# -- bad input -----------------------------------------------------------------------------------
@pytest.fixture
def copies(imported, tmp_path) -> tuple[Path, str, tuple[int, int]]:
    src, _, _ = imported
    shutil.copytree(src, tmp_path / "src")
    url = f"memory://model-zoos-bad-{uuid.uuid4().hex}"
    import_zoo("model-zoos", tmp_path / "src" / "experiment", url, progress=False)
    make_trial(tmp_path / "src/experiment/new_trial", 7)
    return tmp_path / "src/experiment", url, log_state(url)


def test_result_line_that_is_not_json(copies):
    src, url, before = copies
    with (src / "new_trial/result.json").open("a") as f:
        f.write("{truncated\n")
    with pytest.raises(FormatError, match=r"new_trial/result\.json line 6: not JSON"):
        import_zoo("model-zoos", src, url, progress=False)
    assert log_state(url) == before


def test_checkpoint_of_another_shape(copies):
    src, url, before = copies
    state = torch.load(src / "new_trial/checkpoint_000002/checkpoints", weights_only=True)
    state["module_list.3.weight"] = torch.zeros(3, 5)
    torch.save(state, src / "new_trial/checkpoint_000002/checkpoints")
    with pytest.raises(FormatError, match=r"new_trial/checkpoint_000002/checkpoints: its tensors"):
        import_zoo("model-zoos", src, url, progress=False)
    assert log_state(url) == before


def test_unsafe_checkpoint_and_missing_state_dict(copies, tmp_path):
    src, url, before = copies
    marker = tmp_path / "ran"
    torch.save({"x": _Evil(marker)}, src / "new_trial/checkpoint_000004/checkpoints")
    with pytest.raises(UnsafePickleError, match=r"checkpoint_000004/checkpoints: refused"):
        import_zoo("model-zoos", src, url, progress=False)
    assert not marker.exists()
    (src / "new_trial/checkpoint_000004/checkpoints").unlink()
    with pytest.raises(SourceNotFoundError, match=r"checkpoint_000004: no 'checkpoints'"):
        import_zoo("model-zoos", src, url, progress=False)
    assert log_state(url) == before


def test_export_needs_steps(tmp_path):
    url = f"memory://model-zoos-nostep-{uuid.uuid4().hex}"
    wspace.create(url, wspace.Layout.from_torch(CNN()))
    with wspace.writer(url) as w:
        w.append(CNN(), model="m")
    with pytest.raises(FormatError, match="every row needs a step"):
        export_zoo(wspace.open(url), tmp_path / "x", "model-zoos", progress=False)
    assert np.isfinite(wspace.open(url).values).all()


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))
