"""The query layer: the lazy :class:`Zoo` over one architecture group of a store.

It sits on the store layer (:mod:`wspace.store`), which knows nothing of it: ``open`` opens a
:class:`~wspace.store.StoreHandle` and :func:`open_zoo` builds the Zoo from it (per-layer
Dask arrays, metadata columns read when first used, the direct row reader). Feeding zoos to torch is
:mod:`wspace.query.loader` (imported on use: it imports torch).

>>> from wspace.query import Zoo, open
>>> from wspace.testing import tiny_zoo
>>> isinstance(open(tiny_zoo("memory://doc-query", n_models=2)), Zoo)
True
"""

from __future__ import annotations

from wspace.query.opening import open, open_zoo
from wspace.query.zoo import Zoo

__all__ = ["Zoo", "open", "open_zoo"]
