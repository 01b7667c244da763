"""Networks per minute of zoo generation with 1 and 2 worker processes (same run, same zoo).

    python -m benchmarks.train_throughput [--nets 8] [--epochs 20] [--out FILE]

Trains the same digits LeNet-5s (same seeds) into a fresh store once per worker count and
reports networks/minute and the speed-up over one worker. Absolute numbers depend on the
machine; the ratio is what to compare.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from wspace.train.data import load_digits
from wspace.train.orchestrate import train_zoo
from wspace.train.worker import TrainSettings


def measure(workers: int, nets: int, epochs: int, root: Path) -> dict[str, float]:
    classes = list(load_digits().classes)
    per_class = -(-nets // len(classes))
    chosen = classes[: -(-nets // per_class)]
    url = str(root / f"zoo-{workers}.zarr")
    start = time.perf_counter()
    report = train_zoo(
        url,
        classes=chosen,
        per_class=per_class,
        settings=TrainSettings(epochs=epochs),
        workers=workers,
        progress=False,
    )
    seconds = time.perf_counter() - start
    return {
        "workers": workers,
        "nets": len(report.trained),
        "seconds": seconds,
        "nets_per_minute": 60 * len(report.trained) / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", type=int, default=8, help="networks per measurement")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(w, args.nets, args.epochs, Path(tmp)) for w in (1, 2)]
    base = rows[0]["nets_per_minute"]
    for row in rows:
        row["speedup_vs_1"] = row["nets_per_minute"] / base
    print(f"{'workers':>7} {'nets':>5} {'seconds':>8} {'nets/min':>9} {'speed-up':>8}")
    for row in rows:
        print(
            f"{row['workers']:>7} {row['nets']:>5} {row['seconds']:>8.1f} "
            f"{row['nets_per_minute']:>9.1f} {row['speedup_vs_1']:>7.2f}x"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "epochs": args.epochs,
                "machine": platform.platform(),
                "cpus": __import__("os").cpu_count(),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
