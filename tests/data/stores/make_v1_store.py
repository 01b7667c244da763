"""Write ``v1-main.zarr``: a small store in the on-storage format of wspace main 4e461f9.

Kept so that later versions of wspace are tested against bytes an older wspace wrote
(``tests/test_fixture_store.py``). Re-running this with a newer wspace writes that version's
format instead, so do not re-run it to "refresh" the fixture: add a new fixture.

The store holds two architecture groups (``small``: a conv + fc layout with snapshots, and
``mlp``), metadata columns of several kinds (str, int with missing values, float, bool, a JSON
list), rows from two writers, a compaction with later appends on top, and a replaced row.
``expected.json`` lists every visible row with its metadata and the sha256 of its weights.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

import wspace
from wspace.layout import Layout
from wspace.testing import SMALL_LAYOUT

MLP = {
    "name": "mlp",
    "tensors": [
        {"name": "fc1/weight", "shape": [6, 5]},
        {"name": "fc1/bias", "shape": [6]},
        {"name": "fc2/weight", "shape": [2, 6]},
        {"name": "fc2/bias", "shape": [2]},
    ],
}


def weights(size: int, *key: int) -> np.ndarray:
    rng = np.random.default_rng(list(key))
    return (rng.standard_normal(size) * 0.1).astype(np.float32)


def main(out: Path) -> None:
    url = str(out / "v1-main.zarr")
    shutil.rmtree(url, ignore_errors=True)
    small, mlp = Layout.from_dict(SMALL_LAYOUT), Layout.from_dict(MLP)
    wspace.create(url, small)
    wspace.add_arch(url, mlp)
    w1, w2 = wspace.writer(url), wspace.writer(url)
    for i in range(4):
        for step in (1, 2):
            meta = {"cls": ["church", "tench"][i % 2], "accuracy": 0.5 + i / 10 + step / 100}
            if i != 2:
                meta["seed"] = i
            meta["curve"] = [float(step), float(i)]
            (w1 if i % 2 else w2).append(
                weights(small.size, 0, i, step), model=f"s{i}", step=step, arch="small", **meta
            )
    for i in range(3):
        w1.append(
            weights(mlp.size, 1, i),
            model=f"m{i}",
            arch="mlp",
            cls="golf",
            seed=i,
            accuracy=0.25 * i,
            good=bool(i % 2),
        )
    w1.commit()
    w2.commit()
    wspace.compact(url)
    with wspace.writer(url) as w:
        w.append(
            weights(small.size, 0, 9, 1),
            model="s9",
            step=1,
            arch="small",
            cls="church",
            accuracy=0.99,
            curve=[1.0],
        )
        w.append(
            weights(small.size, 0, 1, 77),
            model="s1",
            step=2,
            arch="small",
            cls="tench",
            seed=1,
            accuracy=0.11,
            curve=[2.0, 1.0],
            replace=True,
        )
    with wspace.writer(url) as w:
        w.append(weights(mlp.size, 1, 3), model="m3", arch="mlp", cls="parachute", accuracy=0.7)
    expected = {}
    for arch in ("small", "mlp"):
        zoo = wspace.open(url, arch=arch)
        rows = []
        for i in range(len(zoo)):
            meta = {
                k: (
                    None
                    if v is None or (isinstance(v, float) and np.isnan(v))
                    else (v.item() if hasattr(v, "item") else v)
                )
                for k, v in zoo.models.iloc[i].to_dict().items()
            }
            vec = np.asarray(zoo.values[i], dtype=np.float32)
            meta["sha256"] = hashlib.sha256(vec.tobytes()).hexdigest()
            rows.append(meta)
        expected[arch] = rows
    (out / "v1-main.expected.json").write_text(json.dumps(expected, indent=1, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
