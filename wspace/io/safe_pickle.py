"""A restricted unpickler for untrusted pickles of weights: no code from the file ever runs.

``pickle.load`` calls whatever callable a file names, so a downloaded pickle can run anything.
:class:`RestrictedUnpickler` resolves the globals a pickle asks for against a short allow-list
and refuses every other one with :class:`~wspace.errors.UnsafePickleError` before anything is
called. Admitted:

- containers and scalars written with plain opcodes (``list``, ``dict``, ``tuple``, ``set``,
  ``str``, ``bytes``, ``int``, ``float``, ``bool``, ``None``: no global, no call),
  ``builtins.list``, ``collections.OrderedDict`` and ``_codecs.encode(text, "latin1")`` (how
  protocols 0-2 write bytes); the format modules then check the structure they expect;
- numpy arrays (``numpy.core`` and numpy 2's ``numpy._core`` paths) of boolean or numeric
  dtypes, rebuilt by :func:`numpy.ndarray.__new__`, never through the file's callables;
- torch tensors as plain ``pickle.dump`` writes them: ``torch._utils._rebuild_tensor_v2`` (and
  ``_rebuild_parameter``) over a storage from ``torch.storage._load_from_bytes``. The storage
  bytes are read with ``torch.load(..., weights_only=True)`` (torch's own restricted loader),
  never ``weights_only=False``, and the tensor is rebuilt from checked integers.

Examples
--------
>>> import io, pickle, numpy as np
>>> data = pickle.dumps([{"a": np.arange(3, dtype=np.float32)}])
>>> loads(data, "doc.pkl")
[{'a': array([0., 1., 2.], dtype=float32)}]
>>> class Evil:
...     def __reduce__(self):
...         return (print, ("pwned",))
>>> loads(pickle.dumps(Evil()), "evil.pkl")
Traceback (most recent call last):
...
wspace.errors.UnsafePickleError: evil.pkl: refused global 'builtins.print' ...
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wspace.errors import CorruptDataError, UnsafePickleError

__all__ = ["RestrictedUnpickler", "load", "loads"]

_NUMERIC_KINDS = frozenset("biuf")


def _check_dtype(dtype: np.dtype[Any], where: str) -> np.dtype[Any]:
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise UnsafePickleError(f"{where}: refused numpy dtype {dtype} (numeric dtypes only)")
    return dtype


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits only the few globals of :mod:`wspace.io.safe_pickle`.

    Parameters
    ----------
    file
        Binary file object to read.
    where
        The file's name, for error messages.
    """

    def __init__(self, file: Any, where: str) -> None:
        super().__init__(file)
        self.where = where
        make: Callable[..., Any] = self._reconstruct
        self._allowed: dict[tuple[str, str], Any] = {
            ("builtins", "list"): list,
            ("_codecs", "encode"): self._latin1,
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): self._dtype,
            ("numpy.core.multiarray", "_reconstruct"): make,
            ("numpy._core.multiarray", "_reconstruct"): make,
            ("numpy.core.numeric", "_frombuffer"): self._frombuffer,
            ("numpy._core.numeric", "_frombuffer"): self._frombuffer,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("torch.storage", "_load_from_bytes"): self._load_storage,
        }

    def find_class(self, module: str, name: str) -> Any:
        """The safe stand-in for global ``module.name``; :class:`UnsafePickleError` otherwise."""
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.where}: refused global '{module}.{name}' (only lists, dicts, strings, "
                "numbers, numpy arrays and torch tensors are read from pickles); nothing from "
                "the file was run"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        """Persistent ids are refused (plain pickles of weights have none)."""
        raise UnsafePickleError(f"{self.where}: refused persistent id {pid!r}")

    def _latin1(self, text: Any, encoding: Any = "utf-8") -> bytes:
        # protocols 0-2 write bytes as _codecs.encode(text, "latin1"); nothing else is needed
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise UnsafePickleError(f"{self.where}: refused _codecs.encode({encoding!r})")
        return text.encode("latin1")

    # -- numpy ---------------------------------------------------------------------------------
    def _dtype(self, spec: Any, align: Any = False, copy: Any = False) -> np.dtype[Any]:
        if not isinstance(spec, str):
            raise UnsafePickleError(f"{self.where}: refused numpy dtype {spec!r}")
        return _check_dtype(np.dtype(spec), self.where)

    def _reconstruct(self, subtype: Any, shape: Any, dtype_code: Any) -> np.ndarray:
        # numpy's _reconstruct(ndarray, (0,), b'b'): an empty array whose BUILD sets the data
        if subtype is not np.ndarray or not isinstance(dtype_code, bytes | str):
            raise UnsafePickleError(f"{self.where}: refused array of type {subtype!r}")
        return np.ndarray.__new__(np.ndarray, _ints(shape, self.where), np.dtype(dtype_code))  # type: ignore[arg-type]

    def _frombuffer(self, buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        if not isinstance(buffer, bytes | bytearray | pickle.PickleBuffer) or order not in "CF":
            raise UnsafePickleError(f"{self.where}: refused numpy buffer of {type(buffer)}")
        if not isinstance(dtype, np.dtype):
            raise UnsafePickleError(f"{self.where}: refused numpy dtype {dtype!r}")
        _check_dtype(dtype, self.where)
        flat = np.frombuffer(bytes(buffer), dtype=dtype)
        return flat.reshape(_ints(shape, self.where), order=order).copy(order="C")

    # -- torch ---------------------------------------------------------------------------------
    def _load_storage(self, data: Any) -> Any:
        import torch

        if not isinstance(data, bytes):
            raise UnsafePickleError(f"{self.where}: refused torch storage of {type(data)}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # TypedStorage is deprecated
            try:
                storage = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
            except pickle.UnpicklingError as exc:
                raise UnsafePickleError(
                    f"{self.where}: torch refused a tensor's storage ({exc})"
                ) from None
        if not isinstance(storage, torch.storage.TypedStorage):
            raise UnsafePickleError(f"{self.where}: refused torch storage {type(storage)}")
        return storage

    def _rebuild_tensor(
        self,
        storage: Any,
        offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any = False,
        hooks: Any = None,
        metadata: Any = None,
    ) -> Any:
        import torch

        if not isinstance(storage, torch.storage.TypedStorage):
            raise UnsafePickleError(f"{self.where}: refused tensor over {type(storage)}")
        if hooks or metadata:
            raise UnsafePickleError(f"{self.where}: refused tensor with hooks or metadata")
        sizes = _ints(size, self.where)
        strides = _ints(stride, self.where)
        (start,) = _ints((offset,), self.where)
        if len(sizes) != len(strides):
            raise UnsafePickleError(f"{self.where}: tensor size {sizes} vs stride {strides}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            base = torch.empty(0, dtype=storage.dtype)
            try:
                return base.set_(storage.untyped(), start, sizes, strides)
            except RuntimeError as exc:
                raise CorruptDataError(f"{self.where}: inconsistent tensor ({exc})") from None

    def _rebuild_parameter(self, data: Any, requires_grad: Any, hooks: Any) -> Any:
        import torch

        if not isinstance(data, torch.Tensor) or hooks:
            raise UnsafePickleError(f"{self.where}: refused parameter of {type(data)}")
        return data


def _ints(values: Any, where: str) -> tuple[int, ...]:
    if not isinstance(values, tuple | list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values
    ):
        raise UnsafePickleError(f"{where}: refused shape {values!r} (non-negative ints only)")
    return tuple(values)


def loads(data: bytes, where: str = "<bytes>") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    return _load(io.BytesIO(data), where)


def load(path: str | os.PathLike[str]) -> Any:
    """Unpickle the file at ``path`` with :class:`RestrictedUnpickler`.

    Raises
    ------
    UnsafePickleError
        The file asks for a global outside the allow-list (named in the message).
    CorruptDataError
        The file is not a complete pickle (truncated, garbage).
    """
    where = repr(os.fspath(path))
    with Path(path).open("rb") as f:
        return _load(f, where)


def _load(file: Any, where: str) -> Any:
    try:
        return RestrictedUnpickler(file, where).load()
    except (UnsafePickleError, CorruptDataError):
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        RuntimeError,
        MemoryError,
        OverflowError,
    ) as exc:
        raise CorruptDataError(
            f"{where}: not a readable pickle ({type(exc).__name__}: {exc})"
        ) from exc
