"""Format options: one keyword argument each; from the command line, ``-O KEY=VALUE`` strings.

:func:`bind_options` turns what a user gave (``-O`` strings, or keywords of
:func:`wspace.io.import_zoo`) into the keyword arguments of a format's method: an alias
(``commit_every``, ``batch_size``) becomes its option, an option the method does not take is
refused naming the format and its options, and a string becomes the option's type.
:func:`option_bool` and :func:`option_int` check a value of one option.

Examples
--------
>>> def export(zoo, dst, *, progress=True, overwrite: bool = True, batch_rows: int = 64): ...
>>> bind_options("demo", export, {"overwrite": "false", "batch_size": "8"})
{'overwrite': False, 'batch_rows': 8}
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from wspace.errors import WspaceError, listing

__all__ = [
    "ALIASES",
    "COMMON",
    "bind_options",
    "expect_format",
    "keyword_options",
    "option_bool",
    "option_int",
]

ALIASES = {"commit_every": "commit_rows", "batch_size": "batch_rows"}
"""Other names of an option (``commit_every=10`` is ``commit_rows=10``)."""
COMMON = ("storage_options", "progress")
"""Keyword arguments of every format method that are not format options."""


def keyword_options(method: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The options of a format method: its keyword-only parameters but :data:`COMMON`.

    Examples
    --------
    >>> def import_(src, url, *, progress=True, pattern="*.h5"): ...
    >>> list(keyword_options(import_))
    ['pattern']
    """
    return {
        name: p
        for name, p in inspect.signature(method).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in COMMON
    }


def bind_options(fmt: str, method: Callable[..., Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``method`` (of format ``fmt``) for the options ``given``.

    Aliases (:data:`ALIASES`) become their option; a string value becomes a bool
    (:func:`option_bool`), int (:func:`option_int`, any integer) or float when the option is
    annotated so; other values pass as given, for the method to check.

    Raises
    ------
    WspaceError
        An option ``method`` does not take (the message names ``fmt`` and its options), one
        given under two names, or a string that is not of the option's type.
    """
    known = keyword_options(method)
    out: dict[str, Any] = {}
    unknown = []
    for name, value in given.items():
        option = ALIASES.get(name, name) if name not in known else name
        if option not in known or option in COMMON:
            unknown.append(name)
            continue
        if option in out:
            names = [n for n in given if ALIASES.get(n, n) == option]
            raise WspaceError(f"options {listing(names)} are the same option; give one")
        out[option] = _typed(value, name, _annotation(method, option))
    if unknown:
        raise WspaceError(
            f"format {fmt!r} has no option(s) {listing(unknown)}; its options here: "
            f"{listing(known) if known else 'none'}"
        )
    return out


def _annotation(method: Callable[..., Any], name: str) -> Any:
    """The type of option ``name`` of ``method``: its annotation, else its default's type."""
    parameter = inspect.signature(method).parameters[name]
    annotation = parameter.annotation
    if isinstance(annotation, str):  # postponed (``from __future__ import annotations``)
        try:
            annotation = eval(annotation, getattr(method, "__globals__", {}))
        except Exception:  # a name imported only for type checkers: use the default's type
            annotation = inspect.Parameter.empty
    if annotation is inspect.Parameter.empty:
        default = parameter.default
        return None if default is None or default is inspect.Parameter.empty else type(default)
    return annotation


def _typed(value: Any, name: str, annotation: Any) -> Any:
    if not isinstance(value, str):
        return value
    types = typing.get_args(annotation) or (annotation,)
    if bool in types:
        return option_bool(value, name)
    if int in types:
        try:
            return int(value)
        except ValueError:
            raise WspaceError(f"option {name}={value!r}: expected an integer") from None
    if float in types:
        try:
            return float(value)
        except ValueError:
            raise WspaceError(f"option {name}={value!r}: expected a number") from None
    return value


def option_bool(value: Any, name: str) -> bool:
    """A boolean option given as a bool or as a command-line string (``true``/``false``).

    Examples
    --------
    >>> option_bool("yes", "overwrite"), option_bool(False, "overwrite")
    (True, False)
    """
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise WspaceError(f"option {name}={value!r}: expected true or false")


def option_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """An integer option (at least ``minimum``) given as an int or a command-line string.

    Examples
    --------
    >>> option_int("64", "batch_rows")
    64
    """
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise WspaceError(f"option {name}={value!r}: expected an integer") from None
    if isinstance(value, bool) or number < minimum:
        raise WspaceError(f"option {name}={value!r}: expected an integer >= {minimum}")
    return number


def expect_format(fmt: str, *names: str) -> None:
    """Refuse a format name that the calling module does not implement."""
    if fmt not in names:
        raise WspaceError(f"this module handles format(s) {listing(names)}, not {fmt!r}")
