"""The query API: lazy selection by metadata and by layer, tensors, modules, batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from zarr.storage import LocalStore, WrapperStore

import wspace
from wspace.architectures import lenet5, lenet5_layout
from wspace.testing import assert_rows_equal, tiny_weights, tiny_zoo

LAYOUT = lenet5_layout()


def expected(indices, step=0):
    return np.stack([tiny_weights(i, LAYOUT.size, step=step) for i in indices])


def test_readme_query_on_every_backend(spot):
    tiny_zoo(spot.url, 6, storage_options=spot.options, writers=2)
    church = wspace.open(spot.url, storage_options=spot.options).sel(cls="church").layer("dense_1")
    assert church.dims == ("model", "param") and church.shape == (3, 85)
    assert list(church["model"].values) == ["church_0", "church_2", "church_4"]
    assert set(church["layer"].values) == {"dense_1"}
    part = LAYOUT.layer_slice("dense_1")
    assert_rows_equal(church.values, expected([0, 2, 4])[:, part])


def test_metadata_selection_semantics(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 8, classes=("church", "tench", "golf_ball"))
    zoo = wspace.open(url)
    assert len(zoo) == 8
    assert zoo.models.columns.tolist() == ["model", "cls", "seed", "accuracy"]
    assert len(zoo.sel(cls=["church", "tench"])) == 6
    assert zoo.sel(seed=slice(2, 4)).models["seed"].tolist() == [2, 3, 4]
    high = zoo.where(lambda m: m.accuracy > 0.8)
    assert high.models["model"].tolist() == ["golf_ball_5", "church_6", "tench_7"]
    assert zoo.isel(model=slice(0, 3)).models["model"].tolist() == [
        "church_0",
        "tench_1",
        "golf_ball_2",
    ]
    chained = zoo.sel(cls="church").isel(model=[1]).where(lambda m: m.seed > 0)
    assert chained.models["model"].tolist() == ["church_3"]
    assert_rows_equal(chained.values, expected([3]))
    assert len(zoo.sel(cls="church", seed=1)) == 0  # both exist, no row has both


def test_unknown_things_list_what_exists(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 4)
    zoo = wspace.open(url)
    with pytest.raises(wspace.LayerNotFoundError, match="dense_9.*dense_1") as e:
        zoo.layer("dense_9")
    assert url in str(e.value)
    with pytest.raises(wspace.TensorNotFoundError, match="conv2d/weight"):
        zoo.tensor("conv2d/nope")
    with pytest.raises(wspace.CoordinateNotFoundError, match="'chruch'.*'church', 'tench'"):
        zoo.sel(cls="chruch")
    with pytest.raises(wspace.CoordinateNotFoundError, match="no metadata column 'klass'.*cls"):
        zoo.sel(klass="church")
    with pytest.raises(wspace.ModelNotFoundError, match="church_99"):
        zoo.sel(model="church_99")
    with pytest.raises(KeyError):  # the builtin it also is
        zoo.layer("nope")


def test_snapshots_by_step_and_by_model(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 3, steps=list(range(1, 21)), writers=2)
    zoo = wspace.open(url)
    assert len(zoo) == 60
    last = zoo.sel(step=20)
    assert sorted(last.models["model"]) == ["church_0", "church_2", "tench_1"]
    for name, i in zip(last.models["model"], last.models["seed"], strict=True):
        assert_rows_equal(last.sel(model=name).values[0], tiny_weights(i, LAYOUT.size, step=20))
    church = zoo.sel(model="church_0")
    assert sorted(church.models["step"]) == list(range(1, 21))
    assert_rows_equal(zoo.row("church_0", step=7), tiny_weights(0, LAYOUT.size, step=7))
    with pytest.raises(wspace.ModelNotFoundError, match="20 rows"):
        zoo.row("church_0")


def test_tensor_shapes_and_keras_view(tmp_path):
    url = str(tmp_path / "z.zarr")
    wspace.create(url, LAYOUT)
    nets = [lenet5(seed=s) for s in range(3)]
    with wspace.writer(url) as w:
        for s, net in enumerate(nets):
            w.append(net, model=f"m{s}", cls="church")
    zoo = wspace.open(url)
    assert zoo.tensor("dense_1/kernel").shape == (3, 84, 1)  # Keras orientation
    assert zoo.tensor("dense_1/weight").shape == (3, 1, 84)  # torch orientation
    assert zoo.tensor("conv2d/kernel").shape == (3, 5, 5, 3, 6)
    got = zoo.tensor("conv2d/weight").values
    np.testing.assert_array_equal(got[1], nets[1].conv2d.weight.detach().numpy())
    np.testing.assert_array_equal(
        zoo.tensor("dense_1/kernel").values[2], nets[2].dense_1.weight.detach().numpy().T
    )


def test_module_and_state_dict_rebuild_the_network(tmp_path):
    url = str(tmp_path / "z.zarr")
    wspace.create(url, LAYOUT)
    net = lenet5(seed=11).eval()
    with wspace.writer(url) as w:
        w.append(net, model="church_11", cls="church")
    zoo = wspace.open(url)
    x = torch.rand(5, 3, 32, 32)
    assert torch.equal(zoo.module(0)(x), net(x))
    assert torch.equal(zoo.module("church_11")(x), net(x))
    sd = zoo.state_dict(0)
    assert sd.keys() == net.state_dict().keys()


def test_batches_stream_every_row_once(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 7)
    zoo = wspace.open(url)
    seen = []
    for batch in zoo.batches(3, shuffle=True, seed=1):
        assert batch.weights.dtype == torch.float32 and batch.weights.shape[1] == LAYOUT.size
        for row, i in zip(batch.weights.numpy(), batch.models["seed"], strict=True):
            assert_rows_equal(row, tiny_weights(int(i), LAYOUT.size))
        seen += batch.models["model"].tolist()
    assert sorted(seen) == sorted(zoo.models["model"])
    assert seen != zoo.models["model"].tolist()  # shuffled
    again = [m for b in zoo.batches(3, shuffle=True, seed=1) for m in b.models["model"]]
    assert again == seen  # seeded
    assert [len(b.positions) for b in zoo.batches(3, drop_last=True)] == [3, 3]
    ds = zoo.dataset(target="cls")
    vector, target = ds[1]
    assert ds.classes == ["church", "tench"] and int(target) == 1
    assert_rows_equal(vector.numpy(), tiny_weights(1, LAYOUT.size))


class CountingStore(WrapperStore[Any]):
    """Counts the keys read through it (a real zarr store wrapper)."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.reads: list[str] = []

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        self.reads.append(key)
        return await self._store.get(key, prototype, byte_range)

    def chunk_reads(self) -> list[str]:
        layers = lenet5_layout().layers  # the layer arrays, not the metadata columns
        return [
            k for k in self.reads if "/c/" in k and k.split("/seg/")[-1].split("/")[1] in layers
        ]


def test_reads_touch_only_the_chunks_needed(tmp_path):
    # 40 rows, one writer, segments of 10 rows per chunk -> 4 chunks per layer
    url = tiny_zoo(str(tmp_path / "z.zarr"), 40, segment_rows=10)
    counting = CountingStore(LocalStore(url, read_only=True))
    zoo = wspace.open(counting)
    church = zoo.sel(cls="church").layer("dense_1")
    assert counting.chunk_reads() == []  # nothing read before compute
    counting.reads.clear()
    church.values
    reads = counting.chunk_reads()
    assert len(reads) == 4 and all("/dense_1/" in k for k in reads)
    counting.reads.clear()
    assert_rows_equal(zoo.isel(model=17).values[0], tiny_weights(17, LAYOUT.size))
    reads = counting.chunk_reads()
    segment = reads[0].split("/seg/")[1].split("/")[0]
    assert sorted(reads) == sorted(
        f"archs/lenet5/seg/{segment}/{layer}/c/1/0" for layer in LAYOUT.layers
    )
    counting.reads.clear()
    zoo.isel(model=17).layer("conv2d").values
    assert len(counting.chunk_reads()) == 1


def test_open_does_not_read_weight_chunks(tmp_path):
    url = tiny_zoo(str(tmp_path / "z.zarr"), 12, writers=3)
    counting = CountingStore(LocalStore(url, read_only=True))
    zoo = wspace.open(counting)
    zoo.sel(cls="tench").where(lambda m: m.seed > 2).layer("conv2d_2")
    zoo.tensor("dense/kernel")
    assert counting.chunk_reads() == []
