"""The restricted unpickler: what plain pickles of weights hold loads; nothing else runs."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wspace.errors import CorruptDataError, UnsafePickleError
from wspace.io import import_zoo
from wspace.io.safe_pickle import load, loads


class WritesMarker:
    """A payload whose unpickling creates a file (as an attacker's would run a command)."""

    def __init__(self, marker: Path, how: str = "system") -> None:
        self.marker, self.how = str(marker), how

    def __reduce__(self):
        if self.how == "system":
            return (os.system, (f"touch {self.marker}",))
        if self.how == "exec":
            return (exec, (f"open({self.marker!r}, 'w').write('x')",))
        return (subprocess.call, (["touch", self.marker],))


class HiddenInStorage:
    """The payload inside the bytes that torch.storage._load_from_bytes would torch.load."""

    def __init__(self, marker: Path) -> None:
        self.payload = pickle.dumps(WritesMarker(marker), protocol=2)

    def __reduce__(self):
        return (torch.storage._load_from_bytes, (self.payload,))


@pytest.mark.parametrize(
    ("how", "global_name"),
    [("system", "posix.system"), ("exec", "builtins.exec"), ("call", "subprocess.call")],
)
def test_reduce_payload_is_refused_and_never_runs(tmp_path, how, global_name):
    marker = tmp_path / "marker"
    path = tmp_path / "lenet5_onevall_wghts_bymodel_20240101_000000.pkl"
    evil = [
        {
            "model": "church_1",
            "parameters_by_layer": {},
            "parameters_flat": WritesMarker(marker, how),
        }
    ]
    path.write_bytes(pickle.dumps(evil))
    with pytest.raises(UnsafePickleError, match=f"{path}.*refused global '{global_name}'"):
        load(path)
    with pytest.raises(UnsafePickleError, match="nothing from the file was run"):
        import_zoo("modelwise-pickle", path, str(tmp_path / "z.zarr"), progress=False)
    assert not marker.exists() and not (tmp_path / "z.zarr").exists()
    assert isinstance(UnsafePickleError("x"), pickle.UnpicklingError)
    if how == "system":  # the payload is real: plain pickle.load runs it
        code = f"import pickle; pickle.load(open({str(path)!r}, 'rb'))"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
        assert marker.exists()


def test_payload_inside_a_tensor_storage_is_refused_by_torch(tmp_path):
    marker = tmp_path / "marker"
    data = pickle.dumps([HiddenInStorage(marker)])
    with pytest.raises(UnsafePickleError, match="torch refused a tensor's storage"):
        loads(data, "storage.pkl")
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        np.array(["a", 1], dtype=object),  # object arrays could hold anything
        np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]),
        bytearray(b"xy"),  # builtins.bytearray
        np.float32(1.5),  # numpy scalars: not part of the formats
    ],
    ids=["object-array", "structured-array", "bytearray", "numpy-scalar"],
)
def test_types_outside_the_formats_are_refused(payload):
    with pytest.raises(UnsafePickleError, match="x.pkl: refused"):
        loads(pickle.dumps([payload]), "x.pkl")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_weights_load_exactly(protocol):
    rng = np.random.default_rng(0)
    data = [
        {
            "model": "church_1",
            "count": 3,
            "scale": 0.5,
            "tensor": torch.from_numpy(rng.standard_normal((5, 5, 3, 6), dtype=np.float32)),
            "view": torch.arange(12.0).reshape(3, 4).T,  # non-contiguous strides
            "param": torch.nn.Parameter(torch.ones(3)),
            "arrays": [rng.standard_normal(7).astype(np.float32), np.arange(4, dtype=np.int64)],
            "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
        }
    ]
    back = loads(pickle.dumps(data, protocol=protocol), "ok.pkl")[0]
    expected = data[0]
    assert list(back) == list(expected)
    assert back["model"] == "church_1" and back["count"] == 3 and back["scale"] == 0.5
    for key in ("tensor", "view", "param"):
        assert type(back[key]) is torch.Tensor
        assert torch.equal(back[key], expected[key].detach())
    for got, want in zip(back["arrays"], expected["arrays"], strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert np.array_equal(back["fortran"], expected["fortran"])


def test_numpy_1_module_paths_are_admitted():
    data = pickle.dumps(np.arange(3, dtype=np.float32), protocol=2)
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert old != data or b"numpy.core.multiarray" in data
    np.testing.assert_array_equal(loads(old, "np1.pkl"), np.arange(3, dtype=np.float32))


def test_codecs_encode_only_for_latin1_bytes():
    class Rot13:
        def __reduce__(self):
            import _codecs

            return (_codecs.encode, ("abc", "rot13"))

    assert loads(pickle.dumps([b"\x00\xff"], protocol=2), "p2.pkl") == [b"\x00\xff"]
    with pytest.raises(UnsafePickleError, match="refused _codecs.encode\\('rot13'\\)"):
        loads(pickle.dumps(Rot13(), protocol=2), "rot.pkl")


def test_truncated_and_garbage_pickles(tmp_path):
    data = pickle.dumps([torch.zeros(1000)])
    with pytest.raises(CorruptDataError, match="cut.pkl: not a readable pickle"):
        loads(data[: len(data) // 2], "cut.pkl")
    with pytest.raises(CorruptDataError, match="junk.pkl: not a readable pickle"):
        loads(b"\x80\x04garbage", "junk.pkl")
