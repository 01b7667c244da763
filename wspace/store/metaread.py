"""Reading metadata columns: every column on demand, scalar ones vectorised.

``open`` reads no metadata column: :class:`LazyColumns` knows the columns from the commit log
and reads a column the first time it is used — every scalar column at once, in one batched
fetch, when the zoo's frame or coordinates are asked for (``zoo.models``, ``zoo.ds``,
``zoo.layer``); only the columns named by ``sel``, and ``model`` (with ``step``) for
``zoo.row(name)``. Scalar columns (numbers, booleans, strings) become pandas columns with
vectorised numpy operations. JSON columns (training curves, dicts) are the bulk of the
metadata and the slow part to decode — one ``json.loads`` per value: on 300 trained rows with
four curve columns they took 60% of ``open``. They are read and decoded only when a caller
asks for them (``zoo.models``, ``sel``/``where`` on them, row records), and then only for the
rows asked for, with one ``json.loads`` per column. A column that cannot be read raises
:class:`~wspace.errors.CorruptDataError` naming it when it is first used.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from zarr.core.sync import sync

from wspace.errors import CorruptDataError, StorageError
from wspace.store.backend import Backend
from wspace.store.chunks.layer import open_arrays
from wspace.store.codecs import ChunkDecoder, chunk_decoder
from wspace.store.columns import MISSING_STR, decode, to_series
from wspace.store.log import ArchState, Piece

__all__ = ["LazyColumns", "read_metadata", "read_models"]

Job = tuple[int, str, str, str]
"""(piece index, column, kind, array path)."""


def _read(
    backend: Backend,
    arch: str,
    jobs: list[Job],
    pieces: list[Piece],
    metas: dict[str, bytes | None] | None = None,
) -> list[np.ndarray]:
    """The stored values of each job's piece rows (all pieces' rows, live or not);
    ``metas``: the ``zarr.json`` of column arrays already fetched (added to)."""
    if not jobs:
        return []
    paths = [j[3] for j in jobs]
    spans = [(pieces[i].start, pieces[i].stop) for (i, *_) in jobs]
    try:
        out = _read_direct(backend, paths, spans, [j[1] for j in jobs], metas)
        slow = [k for k, v in enumerate(out) if v is None]
        if slow:
            arrays = open_arrays(backend, [paths[k] for k in slow])

            async def read_one(k: int, array: Any) -> Any:
                try:
                    return await array._async_array.getitem(slice(*spans[k]))
                except Exception as exc:
                    raise ValueError(f"column {jobs[k][1]!r}: {exc}") from exc

            async def read_all() -> list[Any]:
                return list(
                    await asyncio.gather(
                        *(read_one(k, a) for k, a in zip(slow, arrays, strict=True))
                    )
                )

            for k, raw in zip(slow, sync(read_all()), strict=True):
                out[k] = np.asarray(raw)
    except (CorruptDataError, StorageError):
        raise
    except Exception as exc:
        raise CorruptDataError(
            f"store {backend.url!r}: metadata of architecture {arch!r} is unreadable: {exc}"
        ) from exc
    return [v for v in out if v is not None]


def _chain(meta: dict[str, Any]) -> tuple[str, int, str, ChunkDecoder] | None:
    """``(kind, chunk rows, key separator, decoder)`` of a column array wspace wrote, from its
    ``zarr.json``; ``None`` for anything else (zarr reads it then)."""
    if meta.get("zarr_format") != 3 or len(meta.get("shape", ())) != 1:
        return None
    if meta.get("chunk_key_encoding", {}).get("name") != "default":
        return None
    decoder = chunk_decoder(meta.get("codecs", []))
    if decoder is None:
        return None
    if decoder.strings and meta.get("data_type") == "string":
        kind = "str"
    elif not decoder.strings and meta.get("data_type") == "float64":
        kind = "f8"
    else:
        return None
    rows = meta["chunk_grid"]["configuration"]["chunk_shape"][0]
    sep = (meta["chunk_key_encoding"].get("configuration") or {}).get("separator", "/")
    return kind, int(rows), str(sep), decoder


def _read_direct(
    backend: Backend,
    paths: list[str],
    spans: list[tuple[int, int]],
    columns: list[str],
    metas: dict[str, bytes | None] | None = None,
) -> list[np.ndarray | None]:
    """Read column slices: their ``zarr.json`` and chunks fetched at once, decoded here.

    zarr would open an array object per column and decode strings to numpy's StringDType,
    which pandas turns back into Python objects; for 100,000 names that costs twice the
    decoding itself. ``None`` for a column whose codecs are not the ones wspace writes.
    """
    known = {} if metas is None else metas
    missing = [p for p in dict.fromkeys(paths) if p not in known]
    known.update(zip(missing, backend.read_many(f"{p}/zarr.json" for p in missing), strict=True))
    plans: list[tuple[int, str, list[str], int, ChunkDecoder] | None] = []
    keys: list[str] = []
    for path, (start, stop) in zip(paths, spans, strict=True):
        raw = known[path]
        chain = None if raw is None else _chain(json.loads(raw))
        if chain is None or stop <= start:
            plans.append(None)
            continue
        kind, rows, sep, decoder = chain
        first, last = start // rows, (stop - 1) // rows
        names = [f"{path}/c{sep}{c}" for c in range(first, last + 1)]
        plans.append((len(keys), kind, names, first * rows, decoder))
        keys += names
    datas = backend.read_many(keys)
    out: list[np.ndarray | None] = []
    for plan, (start, stop), column in zip(plans, spans, columns, strict=True):
        if plan is None:
            out.append(None)
            continue
        at, kind, names, offset, decoder = plan
        parts = []
        for key, data in zip(names, datas[at : at + len(names)], strict=True):
            if data is None:
                raise ValueError(f"column {column!r}: chunk {key} is missing")
            try:
                parts.append(decoder.decode(data, "<f8"))
            except Exception as exc:  # checksum (ValueError) or codec errors on garbage
                raise ValueError(f"column {column!r}, chunk {key}: {exc}") from exc
        merged = np.concatenate(parts) if len(parts) > 1 else parts[0]
        out.append(merged[start - offset : stop - offset])
    return out


def _fast_series(name: str, kind: str, raw: np.ndarray) -> pd.Series | None:
    """A column of one kind from its stored values, vectorised; ``None``: use the general path."""
    if kind == "float":
        return pd.Series(np.asarray(raw, dtype=np.float64), name=name)
    if kind in ("int", "bool"):
        values = np.asarray(raw, dtype=np.float64)
        missing = np.isnan(values)
        if kind == "int":
            if not missing.any():
                return pd.Series(values.astype(np.int64), name=name)
            ints = np.where(missing, 0, values).astype(np.int64)
            return pd.Series(pd.arrays.IntegerArray(ints, missing), name=name)
        if not missing.any():
            return pd.Series(values.astype(bool), name=name)
        return pd.Series(
            pd.arrays.BooleanArray(np.where(missing, 0, values) != 0, missing), name=name
        )
    if kind == "str":
        values = np.asarray(raw, dtype=object)
        values[values == MISSING_STR] = None
        return pd.Series(values, dtype=object, name=name)
    return None


def _frame(columns: dict[str, pd.Series], n_rows: int) -> pd.DataFrame:
    """``columns`` as a DataFrame of ``n_rows`` rows indexed from 0.

    pandas 3 turns string column labels into an Arrow-backed Index; the first one in a
    process imports ``pyarrow.pandas_compat`` (7-14 ms). Object labels would avoid it but
    make ``zoo.models`` differ from a frame a user builds (``assert_frame_equal`` fails on
    the labels' dtype), so the frame is built only when asked for: selections, rows by name
    and the coordinates of a DataArray read single columns.
    """
    return pd.DataFrame(columns, index=pd.RangeIndex(n_rows))


def read_metadata(
    backend: Backend, arch: str, state: ArchState, pieces: list[Piece]
) -> tuple[pd.DataFrame, LazyColumns]:
    """The scalar metadata columns of the visible rows (a DataFrame, row order, read now), and
    every column (:class:`LazyColumns`; the JSON ones unread)."""
    columns = LazyColumns.of(backend, arch, state, pieces)
    return columns.frame(), columns


def read_models(backend: Backend, arch: str, state: ArchState, pieces: list[Piece]) -> pd.DataFrame:
    """Every metadata column of the visible rows (JSON columns decoded), in row order."""
    frame, lazy = read_metadata(backend, arch, state, pieces)
    return lazy.with_columns(frame, np.arange(len(frame))) if lazy.names else frame


class LazyColumns:
    """The metadata columns of a zoo's visible rows, each read and decoded when first used.

    Scalar columns are decoded for every visible row and kept (one pandas Series each);
    JSON columns are kept as their stored text and decoded for the rows asked for.

    Parameters
    ----------
    backend, arch, pieces
        Where the rows are.
    jobs
        Per column, the arrays holding it (pieces without it give missing values).
    kinds
        Per column, its kinds in the pieces (``{"json"}``: a JSON column).
    order
        Every column of the zoo (scalar and JSON), ``model`` first, in the order the frame
        shows them.
    """

    def __init__(
        self,
        backend: Backend,
        arch: str,
        pieces: list[Piece],
        jobs: dict[str, list[Job]],
        kinds: dict[str, set[str]],
        order: list[str],
    ) -> None:
        self.backend = backend
        self.arch = arch
        self.pieces = pieces
        self.jobs = jobs
        self.kinds = kinds
        self.order = order
        self.n_rows = sum(p.n_live for p in pieces)
        self._series: dict[str, pd.Series] = {}
        self._frame: pd.DataFrame | None = None
        self._raw: dict[str, np.ndarray] = {}
        self._metas: dict[str, bytes | None] = {}  # zarr.json of each column array

    @classmethod
    def of(cls, backend: Backend, arch: str, state: ArchState, pieces: list[Piece]) -> LazyColumns:
        """The columns of the rows of ``pieces`` (from the commit log: reads nothing)."""
        kinds: dict[str, set[str]] = {}
        jobs: dict[str, list[Job]] = {}
        for i, piece in enumerate(pieces):
            for name, (kind, key) in state.columns[piece.segment].items():
                kinds.setdefault(name, set()).add(kind)
                job = (i, name, kind, f"{state.location(piece.segment)}/{key}")
                jobs.setdefault(name, []).append(job)
        order = ["model", *[c for c in jobs if c != "model"]]
        return cls(backend, arch, pieces, jobs, kinds, order)

    @property
    def names(self) -> list[str]:
        """The JSON columns."""
        return [n for n in self.order if self.kinds.get(n) == {"json"}]

    @property
    def scalars(self) -> list[str]:
        """The scalar columns (``model`` first): the columns of :meth:`frame`."""
        return [n for n in self.order if self.kinds.get(n) != {"json"}]

    def model_names(self) -> np.ndarray:
        """The ``model`` column as an object array (reads it if need be)."""
        names: np.ndarray = self.column("model").to_numpy(dtype=object)
        return names

    def column(self, name: str, positions: np.ndarray | None = None) -> pd.Series:
        """Column ``name`` at ``positions`` (all rows by default), indexed from 0, as the
        frame's column (scalar) or decoded objects (JSON); reads it if need be."""
        if name in self.names:
            return pd.Series(self.values(name, positions), dtype=object, name=name)
        if self._frame is not None:
            series = self._frame[name]
        else:
            self._load([name])
            series = self._series[name]
        return series if positions is None else series.iloc[positions].reset_index(drop=True)

    def frame(
        self, positions: np.ndarray | None = None, names: list[str] | None = None
    ) -> pd.DataFrame:
        """The scalar columns (or those of ``names`` that exist) at ``positions`` (all rows by
        default), indexed from 0 (reads the columns not read yet, in one batched fetch)."""
        if names is not None:
            names = [n for n in names if n in self.scalars]
        if names is not None and self._frame is None:
            self._load(names)
            some = _frame({n: self._series[n] for n in names}, self.n_rows)
            return some if positions is None else some.iloc[positions].reset_index(drop=True)
        if names is not None:
            return self.frame(positions)[names]
        if self._frame is None:
            self._load(self.scalars)
            self._frame = _frame(
                {n: self._series[n] for n in self.order if n in self._series}, self.n_rows
            )
        if positions is None:
            return self._frame
        return self._frame.iloc[positions].reset_index(drop=True)

    def _fetch(self, jobs: list[Job]) -> list[np.ndarray]:
        """The stored values of ``jobs`` (:func:`_read`); on remote storage the first fetch
        also gets the ``zarr.json`` of every column array, so later ones take one round trip
        (a local store reads only those it needs: 24 files cost ~1 ms of a first ``row()``)."""
        if not self._metas and jobs and self.backend.local_root() is None:
            every = list(dict.fromkeys(j[3] for js in self.jobs.values() for j in js))
            metas = self.backend.read_many(f"{p}/zarr.json" for p in every)
            self._metas.update(zip(every, metas, strict=True))
        return _read(self.backend, self.arch, jobs, self.pieces, self._metas)

    def _load(self, names: list[str]) -> None:
        """Read and decode the scalar columns ``names`` not read yet (one batched fetch)."""
        todo = [n for n in names if n not in self._series]
        if not todo:
            return
        jobs = [job for n in todo for job in self.jobs.get(n, [])]
        raws = self._fetch(jobs)
        parts: dict[str, dict[int, np.ndarray]] = {n: {} for n in todo}
        for (i, name, _, _), raw in zip(jobs, raws, strict=True):
            live = self.pieces[i].live
            parts[name][i] = raw if live is None else raw[live]
        for name in todo:
            self._series[name] = self._build(name, parts[name])

    def _build(self, name: str, got: dict[int, np.ndarray]) -> pd.Series:
        """Column ``name`` from its stored values per piece (pieces without it: missing)."""
        kinds = self.kinds.get(name, set())
        if not kinds:  # no piece has it (no rows): an empty column of objects
            return pd.Series(np.full(self.n_rows, None, dtype=object), dtype=object, name=name)
        if len(kinds) == 1 and len(got) == len(self.pieces):
            (kind,) = kinds
            merged = np.concatenate([got[i] for i in range(len(self.pieces))])
            series = _fast_series(name, kind, merged)
            if series is not None:
                return series
        kind_of = {i: k for i, _, k, _ in self.jobs[name]}
        pieces_values = []
        for i, piece in enumerate(self.pieces):
            if i in got:
                values = decode(kind_of[i], got[i])
                pieces_values.append(values.astype(object) if len(kinds) > 1 else values)
            else:
                pieces_values.append(np.full(piece.n_live, None, dtype=object))
        merged = np.concatenate(pieces_values) if pieces_values else np.empty(0, object)
        return to_series(name, kinds, merged)

    def raw(self, name: str) -> np.ndarray:
        """Stored JSON text of column ``name`` for every visible row (``None``: missing)."""
        if name not in self._raw:
            jobs = self.jobs[name]
            raws = dict(
                zip(
                    [j[0] for j in jobs],
                    self._fetch(jobs),
                    strict=True,
                )
            )
            parts = []
            for i, piece in enumerate(self.pieces):
                if i in raws:
                    values = np.asarray(raws[i], dtype=object)
                    values = values if piece.live is None else values[piece.live]
                else:
                    values = np.full(piece.n_live, None, dtype=object)
                parts.append(values)
            merged = np.concatenate(parts) if parts else np.empty(0, dtype=object)
            merged[merged == MISSING_STR] = None
            self._raw[name] = merged
        return self._raw[name]

    def with_columns(self, frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
        """``frame`` (scalar columns of the rows at ``positions``, indexed from 0) with the
        JSON columns added, decoded for those rows only; columns in the store's order."""
        out = frame.copy()
        for name in self.names:
            out[name] = pd.Series(self.values(name, positions), dtype=object)
        return out[[c for c in self.order if c in out.columns]]

    def values(self, name: str, positions: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Decoded values of column ``name`` at ``positions`` (all rows by default)."""
        raw = self.raw(name)
        texts = raw if positions is None else raw[np.asarray(positions, dtype=np.int64)]
        out = np.empty(len(texts), dtype=object)
        if not len(texts):
            return out
        try:  # one parse for the whole column
            values = json.loads("[" + ",".join("null" if t is None else t for t in texts) + "]")
        except ValueError as exc:
            raise CorruptDataError(
                f"store {self.backend.url!r}: metadata of architecture {self.arch!r}, column "
                f"{name!r}, holds invalid JSON: {exc}"
            ) from exc
        for i, value in enumerate(values):  # element-wise: lists must stay objects
            out[i] = value
        return out
