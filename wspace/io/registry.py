"""The registry of formats: the built-in ones and those that installed packages add.

A third-party package adds a format by naming a :class:`~wspace.io.format.Format` subclass (or
instance) in the entry-point group :data:`GROUP`, under the format's name::

    [project.entry-points."wspace.formats"]
    my-format = "my_package.my_module:MyFormat"

Plugins are loaded once per process, when a format is first looked up. One that cannot be
loaded (an import error, not a Format, a name that differs from the entry point's or that a
built-in format has) is left out with a :class:`~wspace.errors.WspaceWarning` naming the entry
point; asking for it by name raises an error that says why.

Examples
--------
>>> get_format("nws").summary
'NWS run folders (weights/NNN.bin float64) + split CSVs'
>>> get_format("nwz")
Traceback (most recent call last):
wspace.errors.WspaceError: unknown format 'nwz'; formats: 'keras-h5', ...
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from wspace.errors import FormatError, SourceNotFoundError, WspaceError, WspaceWarning, listing
from wspace.io.builtin import BUILTIN, PUBLISHED
from wspace.io.format import Format

__all__ = ["AUTO", "GROUP", "detect_format", "formats", "get_format"]

GROUP = "wspace.formats"
"""Entry-point group of third-party formats."""
AUTO = "auto"
"""The format name that asks :func:`detect_format` to choose (reserved)."""


@dataclass(frozen=True, slots=True)
class _Plugins:
    loaded: dict[str, Format]
    broken: dict[str, str]
    """Name -> why it was left out."""


def formats() -> dict[str, Format]:
    """Every format by name: the built-in ones, then those of plugins.

    Examples
    --------
    >>> list(formats())[:3]
    ['keras-h5', 'modelwise-pickle', 'layerwise-pickle']
    """
    return {**{f.name: f for f in (*BUILTIN, *PUBLISHED)}, **_plugins().loaded}


def get_format(name: str) -> Format:
    """The format ``name``; an error listing the known ones (or why a plugin failed).

    Raises
    ------
    WspaceError
        No format has that name, or the plugin registering it could not be loaded.
    """
    known = formats()
    if name in known:
        return known[name]
    broken = _plugins().broken
    if name in broken:
        raise WspaceError(f"format {name!r} is not available: {broken[name]}")
    raise WspaceError(f"unknown format {name!r}; formats: {listing(known)} (or {AUTO!r})")


def detect_format(src: str | os.PathLike[str]) -> Format:
    """The one format whose :meth:`~wspace.io.format.Format.can_open` accepts ``src``.

    Raises
    ------
    SourceNotFoundError
        ``src`` does not exist.
    WspaceError
        Several formats accept it (the message lists them: name one).
    FormatError
        None does (the message lists the known formats).
    """
    path = Path(src)
    if not path.exists():
        raise SourceNotFoundError(f"{str(path)!r}: no such file or folder")
    known = formats()
    matches = [f.name for f in known.values() if _can_open(f, path)]
    if len(matches) == 1:
        return known[matches[0]]
    if matches:
        raise WspaceError(
            f"{str(path)!r} could be read by several formats: {listing(matches)}; "
            "name the one to use instead of 'auto'"
        )
    raise FormatError(
        f"{str(path)!r} is in none of the formats wspace can detect; name one of "
        f"{listing(known)} instead of 'auto'"
    )


def _can_open(fmt: Format, path: Path) -> bool:
    try:
        return bool(fmt.can_open(path))
    except Exception as exc:  # a format's bug (a plugin's, say) must not stop detection
        warnings.warn(
            f"format {fmt.name!r}: can_open({str(path)!r}) failed "
            f"({type(exc).__name__}: {exc}); taken as no",
            WspaceWarning,
            stacklevel=3,
        )
        return False


@functools.cache
def _plugins() -> _Plugins:
    builtin = {f.name for f in (*BUILTIN, *PUBLISHED)}
    loaded: dict[str, Format] = {}
    broken: dict[str, str] = {}
    for entry in importlib.metadata.entry_points(group=GROUP):
        where = f"entry point {entry.name!r} = {entry.value!r} (group {GROUP!r})"
        try:
            fmt = _load(entry)
        except Exception as exc:  # third-party code: any error leaves the plugin out
            broken[entry.name] = f"{where} could not be loaded: {type(exc).__name__}: {exc}"
            continue
        if entry.name in builtin or entry.name == AUTO or entry.name in loaded:
            why = "a built-in format's" if entry.name in builtin else "taken"
            broken.setdefault(entry.name, f"{where}: the name is {why}; left out")
            continue
        loaded[entry.name] = fmt
    for why in broken.values():
        warnings.warn(f"wspace format plugin left out: {why}", WspaceWarning, stacklevel=4)
    return _Plugins(loaded, broken)


def _load(entry: importlib.metadata.EntryPoint) -> Format:
    obj = entry.load()
    if isinstance(obj, type) and issubclass(obj, Format):
        obj = obj()
    if not isinstance(obj, Format):
        raise TypeError(f"{obj!r} is not a wspace.io.Format subclass or instance")
    if getattr(obj, "name", None) != entry.name:
        raise TypeError(
            f"its format is named {getattr(obj, 'name', None)!r}; the entry point must be "
            "named like the format"
        )
    if not isinstance(getattr(obj, "summary", None), str):
        raise TypeError("its format has no summary (a str class attribute)")
    return obj
