"""Zoo: the lazy, chainable query object over one architecture group of a store, and
building one from an opened store (:func:`open_zoo`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from wspace.errors import (
    CoordinateNotFoundError,
    LayerNotFoundError,
    SchemaMismatchError,
    TensorNotFoundError,
    WspaceError,
    listing,
)
from wspace.layout import Layout
from wspace.query.coords import (
    as_slice,
    clean_record,
    data_array,
    layer_param_variables,
    lazy_model_variables,
    model_variables,
    param_variables,
    tensor_array,
)
from wspace.query.direct import direct_array, layer_reader
from wspace.query.lazy import side_by_side
from wspace.query.select import row_position, selection_mask
from wspace.query.zoo_torch import ZooTorchMixin
from wspace.query.zoo_weightspace import ZooWeightSpaceMixin
from wspace.store.backend import StoreLike
from wspace.store.chunks import RowSource
from wspace.store.handle import StoreHandle
from wspace.store.metaread import LazyColumns

__all__ = ["Zoo"]


class Zoo(ZooTorchMixin, ZooWeightSpaceMixin):
    """A set of weight rows of one architecture, lazily backed by a store.

    A Zoo wraps an :class:`xarray.Dataset` whose data variable ``weights`` has dims
    ``(model, param)`` and is a Dask array: nothing is read until ``.values``, ``.compute()``
    or iteration. Row metadata are coordinates on ``model`` and the columns of
    :attr:`models`; ``layer``, ``tensor`` and ``index`` are coordinates on ``param``. Every
    selection returns a new Zoo. The torch methods (``to_torch``, ``state_dict``, ``module``,
    ``batches``, ``dataset``) come from :class:`~wspace.query.zoo_torch.ZooTorchMixin`, the
    weight-space ones (``permute``, ``version``, ``stats``, ``split``, ``features``,
    ``canonical``) from :class:`~wspace.query.zoo_weightspace.ZooWeightSpaceMixin`.

    Examples
    --------
    >>> import wspace
    >>> from wspace.testing import tiny_zoo
    >>> url = tiny_zoo("memory://doc-zoo", n_models=4)
    >>> zoo = wspace.open(url)
    >>> zoo.sel(cls="church").layer("dense_1").shape
    (2, 85)
    """

    def __init__(
        self,
        layers: Mapping[str, da.Array],
        models: pd.DataFrame | None,
        layout: Layout,
        *,
        url: str = "",
        arch: str | None = None,
        handle: StoreHandle | None = None,
        positions: np.ndarray | None = None,
        source: RowSource | None = None,
        lazy_columns: LazyColumns | None = None,
    ) -> None:
        # per-layer Dask arrays over all rows of the store, each in its storage chunking, and
        # the positions of this zoo's rows among them (None: all rows, in order)
        self._layers = dict(layers)
        self._positions = positions
        # the scalar metadata of these rows; None: read from lazy_columns when first needed
        self._models_frame = None if models is None else models.reset_index(drop=True)
        self._layout = layout
        self._url = url
        self._arch = arch or layout.name
        self._handle = handle
        self._source = source  # reads rows directly (no Dask graph) for .values and friends
        # every metadata column is read when first used; JSON ones (curves) for these rows only
        self._lazy = lazy_columns
        if models is None and lazy_columns is None:
            raise SchemaMismatchError("a Zoo needs its metadata: models or lazy_columns")
        self._frame_cache: pd.DataFrame | None = None
        self._coord_cache: tuple[dict[str, xr.Variable], dict[str, Any]] | None = None
        self._ds: xr.Dataset | None = None
        self._weights_data: da.Array | None = None
        # the weights graph over all rows, shared by the zoos selected from this one (one
        # getitem on it is cheaper than slicing, rechunking and joining every layer again)
        self._all_weights: list[da.Array] = []

    # -- what it is --------------------------------------------------------------------------
    @property
    def ds(self) -> xr.Dataset:
        """The dataset: ``weights (model, param)`` with model and param coordinates."""
        if self._ds is None:
            ds = self.weights.to_dataset()
            arch = self._layout.architecture or ""
            ds.attrs = {"store": self._url, "arch": self._arch, "architecture": arch}
            self._ds = ds
        return self._ds

    @property
    def weights(self) -> xr.DataArray:
        """All weights, ``(model, param)``, lazy.

        The data is a Dask array (every layer in the row blocks of the widest layer);
        converting it to numpy, also after selecting rows or parameters of it, reads the rows
        directly, without running a Dask graph.
        """
        if self._weights_data is None:
            if not self._all_weights:
                layers = [self._layers[layer] for layer in self._layout.layers]
                self._all_weights.append(side_by_side(layers, self._layout))
            data = self._all_weights[0]
            if self._positions is not None:
                data = data[as_slice(self._positions)]
            if self._source is not None:
                widths = [self._layout.layer_size(layer) for layer in self._layout.layers]
                read = layer_reader(self._source, self._layout.layers, widths)
                data = direct_array(data, read, self._rows())
            self._weights_data = data
        variables, indexes = self._coord_variables()
        coords = {**param_variables(self._layout), **variables}
        return data_array(self._weights_data, coords, indexes, "weights", {})

    @property
    def models(self) -> pd.DataFrame:
        """Row metadata, one row per model row, in zoo order (a copy)."""
        return self._frame().copy()

    @property
    def _models(self) -> pd.DataFrame:
        """The scalar metadata columns of these rows (read on first use)."""
        if self._models_frame is None:
            assert self._lazy is not None
            self._models_frame = self._lazy.frame(self._positions)
        return self._models_frame

    def _frame(self) -> pd.DataFrame:
        """Every metadata column (JSON columns decoded now, for these rows only)."""
        if self._lazy is None or not self._lazy.names:
            return self._models
        if self._frame_cache is None:
            self._frame_cache = self._lazy.with_columns(self._models, self._rows())
        return self._frame_cache

    def _columns(self) -> list[str]:
        return list(self._lazy.order) if self._lazy is not None else list(self._models.columns)

    def _column(self, name: str) -> pd.Series:
        if self._lazy is not None and (self._models_frame is None or name in self._lazy.names):
            return self._lazy.column(name, self._positions)
        return self._models[name]

    @property
    def layout(self) -> Layout:
        """The parameter layout of this architecture group."""
        return self._layout

    @property
    def url(self) -> str:
        """Where the store lives."""
        return self._url

    @property
    def archs(self) -> list[str]:
        """Architecture groups of the store."""
        return self._handle.archs if self._handle is not None else [self._arch]

    def arch(self, name: str) -> Zoo:
        """The zoo of another architecture group of the same store."""
        if self._handle is None:
            raise WspaceError("this zoo is not attached to a store")
        from wspace.query.opening import open_zoo

        return open_zoo(self._handle, name)

    def __len__(self) -> int:
        if self._models_frame is None and self._lazy is not None:
            return self._lazy.n_rows if self._positions is None else len(self._positions)
        return len(self._models)

    def __repr__(self) -> str:
        cols = ", ".join(c for c in self._columns() if c != "model")
        return (
            f"<wspace.Zoo {self.url!r} arch={self._arch!r}: {len(self)} rows x "
            f"{self._layout.size} params, {len(self._layout.layers)} layers; "
            f"columns: {cols or '(none)'}>"
        )

    def _layer_data(self, layer: str) -> da.Array:
        data = self._layers[layer]
        return data if self._positions is None else data[as_slice(self._positions)]

    def _coord_variables(self) -> tuple[dict[str, xr.Variable], dict[str, Any]]:
        """The model coordinates as xarray variables, and the ``model`` index (cached)."""
        if self._coord_cache is None:
            lazy = self._lazy
            if lazy is None or self._models_frame is not None:
                self._coord_cache = model_variables(self._models)
            else:  # only model now, the other columns when first used (one batched read)
                columns = {name: _known_dtype(lazy, name) for name in lazy.scalars}
                names = self._column("model")
                self._coord_cache = lazy_model_variables(names, columns, lambda: self._models)
        return self._coord_cache

    def _where(self) -> str:
        return f"store {self.url!r} (arch {self._arch!r})"

    # -- selecting rows ----------------------------------------------------------------------
    def isel(self, model: Any = None, **indexers: Any) -> Zoo:
        """Select rows by position (``int``, slice, array of ints or booleans)."""
        if indexers:
            raise CoordinateNotFoundError(
                f"{self._where()}: isel() selects rows along 'model' only; use layer()/tensor() "
                f"for parameters (got {listing(indexers)})"
            )
        if model is None:
            return self
        positions = np.atleast_1d(np.arange(len(self))[model])
        base = positions if self._positions is None else self._positions[positions]
        selected = Zoo(
            self._layers,
            None if self._models_frame is None else self._models_frame.iloc[positions],
            self._layout,
            url=self._url,
            arch=self._arch,
            handle=self._handle,
            positions=base,
            source=self._source,
            lazy_columns=self._lazy,
        )
        selected._all_weights = self._all_weights
        return selected

    def sel(self, **selectors: Any) -> Zoo:
        """Select rows by metadata values: ``sel(cls="church", step=20)``.

        A value may be a scalar (equality), a list/tuple/set/array (any of), a ``slice``
        (inclusive range) or a callable on the column (returning booleans). A scalar that no
        row has raises :class:`CoordinateNotFoundError` (:class:`ModelNotFoundError` for
        ``model``) listing the values that exist.
        """
        mask = selection_mask(
            len(self), self._columns(), self._column, selectors, where=self._where()
        )
        return self.isel(np.flatnonzero(mask))

    def where(self, condition: Callable[[pd.DataFrame], Any] | Any) -> Zoo:
        """Select rows where ``condition`` holds.

        ``condition`` is a callable on the metadata DataFrame (``lambda m: m.accuracy > 0.9``)
        or a boolean array/Series/DataArray of one value per row.

        The callable receives every column, JSON ones (training curves) decoded for every
        row: the first call pays for decoding them (~60 ms for four 20-point curves on 2,000
        rows). :meth:`sel` reads only the columns it names
        (``sel(accuracy=lambda a: a > 0.9)``).
        """
        result = condition(self._frame()) if callable(condition) else condition
        mask = np.asarray(getattr(result, "values", result), dtype=bool)
        if mask.shape != (len(self),):
            raise SchemaMismatchError(
                f"{self._where()}: where() needs one boolean per row ({len(self)}); got "
                f"shape {mask.shape}"
            )
        return self.isel(np.flatnonzero(mask))

    def _position(self, i: int | str, step: int | None = None) -> int:
        columns = self._columns()

        def column(name: str) -> pd.Series | None:  # only model (and step) for a name
            return self._column(name) if name in columns else None

        return row_position(len(self), column, i, step, where=self._where())

    # -- selecting parameters ----------------------------------------------------------------
    def layer(self, name: str) -> xr.DataArray:
        """The parameters of one layer, ``(model, param)``, lazy, with all coordinates.

        The data is a Dask array; converting it to numpy (``.values``, ``np.asarray``), also
        after selecting rows or parameters of it, reads the rows directly, without running a
        Dask graph.
        """
        try:
            self._layout.layer_slice(name)
        except LayerNotFoundError as exc:
            raise LayerNotFoundError(f"{self._where()}: {exc}") from None
        data = self._layer_data(name)
        if self._source is not None:
            size = self._layout.layer_size(name)
            data = direct_array(data, layer_reader(self._source, [name], [size]), self._rows())
        variables, indexes = self._coord_variables()
        params = layer_param_variables(self._layout, name)
        attrs = {"store": self._url, "arch": self._arch, "layer": name}
        return data_array(data, {**params, **variables}, indexes, name, attrs)

    def tensor(self, name: str) -> xr.DataArray:
        """One tensor in its shape, ``(model, *shape)``, lazy.

        Names are ``"<layer>/<param>"``. Besides the stored names, the other framework's name
        resolves to a converted view: ``"dense_1/kernel"`` in a torch-made zoo is the Keras
        kernel (transposed, and for a Dense after Flatten with rows in Keras' (h, w, c)
        order); ``"conv2d/weight"`` in a Keras-made zoo is the torch weight.
        """
        try:
            spec, index, shape = self._layout.view(name)
        except TensorNotFoundError as exc:
            raise TensorNotFoundError(f"{self._where()}: {exc}") from None
        offset = spec.offset - self._layout.layer_slice(spec.layer).start
        return tensor_array(self.layer(spec.layer), offset, spec.size, index, shape, name)

    # -- materialising -----------------------------------------------------------------------
    @property
    def values(self) -> np.ndarray:
        """All weights as a ``(rows, params)`` float32 numpy array (reads them).

        Each layer is read in its own storage chunking, so every chunk is read once.
        """
        out = np.empty((len(self), self._layout.size), dtype=np.float32)
        layers = self._layout.layers
        columns = [self._layout.layer_slice(layer) for layer in layers]
        if self._source is not None:  # the direct path: concurrent reads, decoded in place
            self._source.read(self._rows(), layers, out, columns)
            return out
        targets = [out[:, cols] for cols in columns]
        sources = [self._layer_data(layer) for layer in layers]
        da.store(sources, targets, lock=False)  # chunks land in place: no second copy
        return out

    def _rows(self) -> np.ndarray:
        """Positions of this zoo's rows among the store's visible rows."""
        return np.arange(len(self)) if self._positions is None else self._positions

    def to_zarr(self, dst: StoreLike, *, storage_options: Mapping[str, Any] | None = None) -> str:
        """Publish this zoo's rows (any selection) as a self-describing Zarr snapshot at ``dst``.

        ``dst`` (a path or fsspec URL, reached with ``storage_options``) becomes a store whose
        root group is an archive: ``xarray.open_zarr(dst)`` reads it without wspace (one
        array per layer, the metadata columns and parameter coordinates as coordinates), and
        ``wspace.open(dst)`` opens it back with the same rows. See ``docs/format-spec.md``.
        Returns the snapshot's URL.

        Raises
        ------
        StoreExistsError
            Something is already at ``dst``.

        Examples
        --------
        >>> import wspace
        >>> from wspace.testing import tiny_zoo
        >>> zoo = wspace.open(tiny_zoo("memory://doc-to-zarr-src", n_models=4))
        >>> url = zoo.sel(cls="church").to_zarr("memory://doc-to-zarr")
        >>> len(wspace.open(url)), list(wspace.open(url).models["model"])
        (2, ['church_0', 'church_2'])
        """
        from wspace.query.publish import zoo_to_zarr

        return zoo_to_zarr(self, dst, storage_options=storage_options)

    def compute(self) -> Zoo:
        """A copy with the weights read into memory."""
        values = self.values
        layers = {
            layer: da.from_array(values[:, self._layout.layer_slice(layer)], chunks=-1)
            for layer in self._layout.layers
        }
        return Zoo(
            layers, self._frame(), self._layout, url=self._url, arch=self._arch, handle=self._handle
        )

    def row(self, i: int | str, *, step: int | None = None) -> np.ndarray:
        """The flat vector of one row (by position, or by model name and ``step``)."""
        row: np.ndarray = self.isel(self._position(i, step)).values[0]
        return row

    def rows(self, batch_size: int = 256) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
        """Iterate ``(metadata, flat vector)`` over rows, reading ``batch_size`` rows at once."""
        for start in range(0, len(self), batch_size):
            block = self.isel(slice(start, start + batch_size)).values
            records = self._frame().iloc[start : start + batch_size].to_dict("records")
            for meta, vector in zip(records, block, strict=True):
                yield clean_record(meta), vector


def _known_dtype(columns: LazyColumns, name: str) -> np.dtype[Any] | None:
    """The dtype of column ``name`` as a coordinate when known without reading it (text:
    object, floats: float64 — integers and booleans change dtype with missing values)."""
    kinds = columns.kinds.get(name, set())
    if len(kinds) != 1 or len(columns.jobs.get(name, [])) != len(columns.pieces):
        return None
    return {"str": np.dtype(object), "float": np.dtype(np.float64)}.get(next(iter(kinds)))
