"""A minimal reader of wspace stores written from ``docs/format-spec.md`` alone.

It uses only ``json`` and ``zarr`` (and numpy, which zarr returns): no wspace import. The
section numbers below are the spec's. ``read_store(store)`` returns, per architecture, the
visible rows in order: their flat weight vectors and their metadata, decoded per §7.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

MISSING = "\x00<missing>"
KNOWN_VERSION = 2


def _get(store: Any, key: str) -> Any:
    """The JSON object at ``key``, or None when absent."""
    buf = sync(store.get(key, prototype=default_buffer_prototype()))
    return None if buf is None else json.loads(buf.to_bytes())


def _record(store: Any, version: int) -> Any:
    return _get(store, f"_log/{version:020d}.json")


def _log_records(store: Any) -> list[dict[str, Any]]:
    """§3/§4: the records a replay needs: from the checkpoint if usable, else all."""
    pointer = _get(store, "_log/_last_checkpoint")
    records: list[dict[str, Any]] = []
    if pointer is not None:
        v = pointer["version"]
        cp = _get(store, f"_log/{v:020d}.checkpoint.json")
        if cp is not None and cp.get("format") == 1 and cp.get("version") == v:
            records = [cp["create"], *cp["add_arch"]]
            for entry in cp["archs"].values():
                if entry["compact"] is not None:
                    records.append(entry["compact"])
                records += entry["appends"]
            records.sort(key=lambda r: r["version"])
    if not records:
        v = -1
    while True:  # read v+1, v+2, ... until one is missing
        rec = _record(store, v + 1)
        if rec is None:
            break
        records.append(rec)
        v += 1
    for rec in records:
        if rec["op"] not in ("create", "add_arch", "append", "compact"):
            raise ValueError(f"unknown op {rec['op']!r}: refusing the store")  # §9
    if not records or records[0]["op"] != "create":
        raise ValueError("log does not start with a create record")
    return records


def _layers(layout: dict[str, Any]) -> list[tuple[str, int, int]]:
    """§2: (layer, first offset, size) in order of first appearance."""
    out: list[list[Any]] = []
    for t in layout["tensors"]:
        if out and out[-1][0] == t["layer"]:
            out[-1][2] += t["size"]
        else:
            out.append([t["layer"], t["offset"], t["size"]])
    return [(a, b, c) for a, b, c in out]


def _usable(name: str) -> bool:
    return (
        bool(name)
        and name not in (".", "..", "zarr.json")
        and not name.startswith("__")
        and not re.search(r"[\s/]", name)
    )


def _layer_arrays(layout: dict[str, Any], version: int) -> dict[str, str]:
    """§5: layer -> array name."""
    layers = [name for name, _, _ in _layers(layout)]
    if version < 2:
        return {layer: f"w{i:03d}" for i, layer in enumerate(layers)}
    taken = {"model"}
    out = {}
    for i, layer in enumerate(layers):
        name = layer.replace("/", ".")
        k = 0

        def own(x: str) -> set[str]:
            return {x, f"{x}_param", f"{x}_tensor", f"{x}_index"}

        while not _usable(name) or own(name) & taken:
            name = f"layer_{i:03d}" + ("" if k == 0 else f"_{k}")
            k += 1
        taken |= own(name)
        out[layer] = name
    return out


@dataclass
class Arch:
    """The visible rows of one architecture."""

    layout: dict[str, Any]
    weights: np.ndarray
    columns: dict[str, list[Any]] = field(default_factory=dict)
    keys: list[tuple[str, Any]] = field(default_factory=list)


def _decode(kind: str, raw: np.ndarray) -> list[Any]:
    """§7: stored values -> Python values, None for missing."""
    out: list[Any] = []
    for v in raw.tolist():
        if kind in ("int", "float", "bool"):
            if v != v:
                out.append(None)
            else:
                out.append(int(v) if kind == "int" else bool(v) if kind == "bool" else float(v))
        elif v == MISSING:
            out.append(None)
        else:
            out.append(json.loads(v) if kind == "json" else v)
    return out


def read_store(store: Any) -> dict[str, Arch]:
    """Replay the log of ``store`` (a zarr store) and read every visible row (§3, §5-§7)."""
    records = _log_records(store)
    create = records[0]
    version = create.get("format_version", 1)
    if version > KNOWN_VERSION:
        raise ValueError(f"store format {version} is newer than {KNOWN_VERSION}")
    layouts = dict(create["archs"])
    for rec in records:
        if rec["op"] == "add_arch":
            layouts[rec["arch"]] = rec["layout"]
    out = {}
    for arch, layout in layouts.items():
        compacts = [r for r in records if r["op"] == "compact" and r["arch"] == arch]
        latest = compacts[-1] if compacts else None
        base = latest["base"] if latest else -1
        appends = [
            r for r in records if r["op"] == "append" and r["arch"] == arch and r["version"] > base
        ]
        # pieces: [group path, start, stop, keys, live mask]; columns per segment
        pieces: list[list[Any]] = []
        columns: dict[str, dict[str, list[str]]] = {}
        visible: dict[tuple[str, Any], tuple[int, int]] = {}

        if latest is not None:
            path = latest.get("path")
            path = f"archs/{arch}/seg/{latest['segment']}" if path is None else path
            keys = latest.get("keys")
            if keys is None:  # from a checkpoint: read them from the record itself
                keys = _record(store, latest["version"])["keys"]
            columns[path] = latest["columns"]
            _add(pieces, visible, (path, 0, latest["rows"]), keys, [])
        for rec in appends:
            path = f"archs/{arch}/seg/{rec['segment']}"
            columns[path] = rec["columns"]
            rows = (path, rec["start"], rec["stop"])
            _add(pieces, visible, rows, rec["keys"], rec.get("replaces", []))
        out[arch] = _read_rows(store, layout, version, pieces, columns)
    return out


def _add(
    pieces: list[list[Any]],
    visible: dict[tuple[str, Any], tuple[int, int]],
    rows: tuple[str, int, int],
    keys: list[Any],
    replaces: list[Any],
) -> None:
    """§3 step 2: a new piece; rows it replaces become hidden."""
    path, start, stop = rows
    pieces.append([path, start, stop, [True] * (stop - start)])
    for offset, key in enumerate(map(tuple, keys)):
        if key in visible and list(key) in replaces:
            p, o = visible[key]
            pieces[p][3][o] = False
        if key not in visible or list(key) in replaces:
            visible[key] = (len(pieces) - 1, offset)


def _read_rows(
    store: Any,
    layout: dict[str, Any],
    version: int,
    pieces: list[list[Any]],
    columns: dict[str, dict[str, list[str]]],
) -> Arch:
    layers = _layers(layout)
    arrays = _layer_arrays(layout, version)
    size = sum(s for _, _, s in layers)
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for path, _, _, _ in pieces:
        for name in columns[path]:
            if name not in names:
                names.append(name)
    values: dict[str, list[Any]] = {n: [] for n in names}
    for path, start, stop, live in pieces:
        rows = np.arange(start, stop)[np.array(live, dtype=bool)]
        if not len(rows):
            continue
        block = np.empty((len(rows), size), dtype=np.float32)
        for layer, offset, width in layers:
            array = zarr.open_array(store, path=f"{path}/{arrays[layer]}", mode="r")
            block[:, offset : offset + width] = array[start:stop][rows - start]
        blocks.append(block)
        for name in names:
            spec = columns[path].get(name)
            if spec is None:
                values[name] += [None] * len(rows)
                continue
            kind, key = spec
            raw = np.asarray(zarr.open_array(store, path=f"{path}/{key}", mode="r")[start:stop])
            decoded = _decode(kind, raw)
            values[name] += [decoded[r - start] for r in rows]
    weights = np.concatenate(blocks) if blocks else np.empty((0, size), np.float32)
    return Arch(layout=layout, weights=weights, columns=values)
