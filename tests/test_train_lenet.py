"""wspace.train.lenet: one-vs-all LeNet-5 training on digits (real torch and scikit-learn)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from wspace.architectures import LeNet5
from wspace.errors import SchemaMismatchError
from wspace.train import (
    DataSplit,
    TrainResult,
    evaluate,
    load_digits,
    one_vs_all_labels,
    train_one_vs_all,
)

METRICS = {"accuracy", "precision", "recall", "f1", "auc"}
CURVES = {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}
TARGET = 7  # "seven"
EPOCHS = 5
# 5 epochs on "seven" vs the rest: over seeds 0..11 the validation accuracy was 0.974..0.996
# (majority rate 0.900) and the AUC 0.998..1.000.
MIN_ACCURACY = 0.95
MIN_AUC = 0.98


@dataclass
class Trained:
    result: TrainResult
    calls: list[tuple[int, dict[str, float]]]
    weights_at_call: list[torch.Tensor]


@pytest.fixture(scope="module")
def trained() -> Trained:
    calls: list[tuple[int, dict[str, float]]] = []
    weights: list[torch.Tensor] = []

    def on_epoch(epoch: int, model: LeNet5, metrics: dict[str, float]) -> None:
        assert isinstance(model, LeNet5)
        calls.append((epoch, metrics))
        weights.append(model.dense_1.weight.detach().clone())

    result = train_one_vs_all(load_digits(), TARGET, seed=0, epochs=EPOCHS, on_epoch=on_epoch)
    return Trained(result, calls, weights)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_one_vs_all_labels() -> None:
    labels = one_vs_all_labels(torch.tensor([3, 7, 7, 0, 9]), 7)
    assert labels.dtype == torch.float32
    assert labels.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]


def test_training_beats_majority_clearly(trained: Trained) -> None:
    result = trained.result
    data = load_digits()
    assert result.majority_rate == pytest.approx(data.majority_rate(TARGET))
    assert result.metrics["accuracy"] >= MIN_ACCURACY > result.majority_rate + 0.04
    assert result.metrics["auc"] >= MIN_AUC
    assert result.metrics["f1"] > 0.7
    # and the loss went down
    assert result.curves["train_loss"][-1] < result.curves["train_loss"][0]
    assert result.curves["val_loss"][-1] < result.curves["val_loss"][0]


def test_result_fields(trained: Trained) -> None:
    result = trained.result
    assert set(result.metrics) == METRICS
    for key, value in result.metrics.items():
        assert 0.0 <= value <= 1.0, key
    assert set(result.curves) == CURVES
    assert all(len(values) == EPOCHS for values in result.curves.values())
    for key in ("train_accuracy", "val_accuracy"):
        assert all(0.0 <= v <= 1.0 for v in result.curves[key])
    assert all(v >= 0.0 and math.isfinite(v) for v in result.curves["val_loss"])
    assert result.curves["val_accuracy"][-1] == result.metrics["accuracy"]
    data = load_digits()
    assert result.n_train == len(data.train_y)
    assert result.n_positive == int((data.train_y == TARGET).sum())
    assert result.seconds > 0
    model = result.model
    assert isinstance(model, LeNet5) and not model.training
    assert all(p.device.type == "cpu" for p in model.parameters())
    # the returned model is the trained one: it reproduces the reported metrics
    again = evaluate(model, data.val_x, one_vs_all_labels(data.val_y, TARGET))
    assert again["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert again["auc"] == pytest.approx(result.metrics["auc"])


def test_on_epoch_called_each_epoch(trained: Trained) -> None:
    calls = trained.calls
    assert [epoch for epoch, _ in calls] == list(range(1, EPOCHS + 1))
    for i, (_, metrics) in enumerate(calls):
        assert METRICS | {"loss", "train_loss", "train_accuracy"} <= set(metrics)
        assert metrics["accuracy"] == trained.result.curves["val_accuracy"][i]
        assert metrics["loss"] == trained.result.curves["val_loss"][i]
        assert metrics["train_loss"] == trained.result.curves["train_loss"][i]
    # the callback saw the weights of each epoch, the last ones being the returned weights
    assert not torch.equal(trained.weights_at_call[0], trained.weights_at_call[-1])
    assert torch.equal(trained.weights_at_call[-1], trained.result.model.dense_1.weight)


def test_same_seed_bit_identical_other_seed_differs() -> None:
    data = load_digits()
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    threads = torch.get_num_threads()
    kwargs = {"epochs": 2, "negatives": 200}
    a = train_one_vs_all(data, 3, seed=11, **kwargs)  # type: ignore[arg-type]
    torch.manual_seed(12345)  # the global RNG plays no part
    np.random.seed(54321)
    b = train_one_vs_all(data, 3, seed=11, **kwargs)  # type: ignore[arg-type]
    c = train_one_vs_all(data, 3, seed=12, **kwargs)  # type: ignore[arg-type]
    state_a, state_b, state_c = _state(a.model), _state(b.model), _state(c.model)
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert a.curves == b.curves and a.metrics == b.metrics
    assert not torch.equal(state_a["dense.weight"], state_c["dense.weight"])
    assert not torch.equal(state_a["conv2d.weight"], state_c["conv2d.weight"])
    # the global random state was neither used nor changed, the thread count untouched
    torch.set_rng_state(torch_state)
    np.random.set_state(numpy_state)
    assert torch.get_num_threads() == threads
    before = torch.get_rng_state()
    train_one_vs_all(data, 3, seed=11, epochs=1, negatives=50)
    assert torch.equal(before, torch.get_rng_state())


def test_negatives_subset() -> None:
    data = load_digits()
    n_positive = int((data.train_y == 2).sum())
    result = train_one_vs_all(data, 2, seed=5, epochs=1, negatives=100)
    assert result.n_positive == n_positive
    assert result.n_train == n_positive + 100
    with pytest.raises(ValueError, match="negative training images"):
        train_one_vs_all(data, 2, seed=5, epochs=1, negatives=len(data.train_y))
    with pytest.raises(ValueError, match="negative training images"):
        train_one_vs_all(data, 2, seed=5, epochs=1, negatives=0)


def test_bad_arguments() -> None:
    data = load_digits()
    with pytest.raises(ValueError, match="not a class"):
        train_one_vs_all(data, 10, seed=0, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        train_one_vs_all(data, 1, seed=0, epochs=0)
    with pytest.raises(ValueError, match="seed"):
        train_one_vs_all(data, 1, seed=-1, epochs=1)
    with pytest.raises(ValueError, match="init must be"):
        train_one_vs_all(data, 1, seed=0, epochs=1, init="glorot")
    small = DataSplit(
        "tiny", ("a", "b"), torch.zeros(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]),
        torch.zeros(2, 3, 16, 16), torch.tensor([0, 1]),
    )  # fmt: skip
    with pytest.raises(SchemaMismatchError, match=r"\(N, 3, 32, 32\).*\(4, 3, 16, 16\)"):
        train_one_vs_all(small, 1, seed=0, epochs=1)


class _Oracle(nn.Module):
    """Outputs a fixed probability per image, read from the image's first pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, :1]


def test_evaluate_known_answers() -> None:
    y01 = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0])
    x = torch.zeros(5, 3, 32, 32)
    oracle = _Oracle()
    # perfect probabilities
    x[:, 0, 0, 0] = torch.tensor([0.9, 0.2, 0.8, 0.1, 0.3])
    m = evaluate(oracle, x, y01, batch_size=2)
    assert m["accuracy"] == m["precision"] == m["recall"] == m["f1"] == m["auc"] == 1.0
    expected_loss = -np.mean(np.log([0.9, 0.8, 0.8, 0.9, 0.7]))
    assert m["loss"] == pytest.approx(expected_loss, rel=1e-6)
    # always "negative": accuracy = majority rate, precision/recall/f1 0 (no division error)
    x[:, 0, 0, 0] = 0.1
    oracle.train()
    m = evaluate(oracle, x, y01)
    assert oracle.training  # mode restored
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["precision"] == m["recall"] == m["f1"] == 0.0
    assert m["auc"] == 0.5
    # one class only: AUC undefined
    assert math.isnan(evaluate(oracle, x, torch.zeros(5))["auc"])
    with pytest.raises(SchemaMismatchError):
        evaluate(oracle, x, torch.zeros(4))
