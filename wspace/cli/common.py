"""What the ``wspace`` commands share: argument types, ``--storage-option`` and ``--where``
parsing, and :func:`reports_errors`, which turns wspace errors into one line and exit 2."""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd
import typer

import wspace
from wspace.errors import CoordinateNotFoundError, WspaceError, listing

__all__ = [
    "ARCH",
    "OPTIONS",
    "URL",
    "WHERE",
    "apply_where",
    "reports_errors",
    "storage_options",
]

URL = Annotated[
    str, typer.Argument(help="Store: local path or fsspec URL (s3://..., memory://...).")
]
OPTIONS = Annotated[
    list[str] | None,
    typer.Option(
        "--storage-option",
        "-o",
        metavar="KEY=VALUE",
        help="fsspec storage option, repeatable (e.g. -o endpoint_url=http://...).",
    ),
]
WHERE = Annotated[
    list[str] | None,
    typer.Option("--where", "-w", help="Filter COLUMN=VALUE, COLUMN>VALUE, ... (repeatable)."),
]
ARCH = Annotated[str | None, typer.Option(help="Architecture group.")]

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "==": operator.eq,
    "=": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
_WHERE = re.compile(r"^\s*([^=!<>\s]+)\s*(>=|<=|!=|==|=|>|<)\s*(.*?)\s*$")


def storage_options(pairs: list[str] | None) -> dict[str, Any] | None:
    """The fsspec storage options of repeated ``--storage-option KEY=VALUE`` arguments.

    ``endpoint_url`` and ``region_name`` also go into ``client_kwargs`` (s3fs reads them
    there); ``true``/``false`` become booleans.

    Parameters
    ----------
    pairs
        The ``KEY=VALUE`` strings, or ``None`` when none were given.

    Returns
    -------
    dict or None
        The options, ``None`` when there are none.

    Raises
    ------
    WspaceError
        A pair has no ``=``.

    Examples
    --------
    >>> storage_options(["anon=true", "region_name=eu"])
    {'anon': True, 'client_kwargs': {'region_name': 'eu'}}
    """
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise WspaceError(f"storage option {pair!r} is not KEY=VALUE")
        if key in ("endpoint_url", "region_name"):
            out.setdefault("client_kwargs", {})[key] = value
            if key == "endpoint_url":
                out["endpoint_url"] = value
        else:
            out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def apply_where(zoo: wspace.Zoo, expressions: list[str] | None) -> wspace.Zoo:
    """Filter a zoo by ``column<op>value`` expressions (``cls=church``, ``accuracy>=0.9``)."""
    models = zoo.models
    for expression in expressions or []:
        match = _WHERE.match(expression)
        if not match:
            raise WspaceError(f"--where {expression!r}: expected COLUMN=VALUE or COLUMN>VALUE")
        column, op, text = match.groups()
        if column not in models.columns:
            raise CoordinateNotFoundError(
                f"--where {expression!r}: no column {column!r}; columns: {listing(models.columns)}"
            )
        value: Any = text
        if pd.api.types.is_numeric_dtype(models[column].dtype) and not pd.api.types.is_bool_dtype(
            models[column].dtype
        ):
            try:
                value = float(text)
            except ValueError:
                raise WspaceError(f"--where {expression!r}: {column} is numeric") from None
        elif pd.api.types.is_bool_dtype(models[column].dtype):
            value = text.lower() in ("1", "true", "yes")
        mask = _OPS[op](models[column], value)
        zoo = zoo.where(np.asarray(mask.fillna(False), dtype=bool))
        models = zoo.models
    return zoo


P = ParamSpec("P")
R = TypeVar("R")


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Run a command so that a wspace or storage error ends it with one line and exit status 2.

    A :class:`~wspace.errors.WspaceError` or :class:`OSError` (a missing file, a store that
    cannot be reached) is printed as ``wspace: error: MESSAGE`` on stderr and the command exits
    with status 2. Anything else is a bug and keeps its traceback.
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (WspaceError, OSError) as exc:
            typer.echo(f"wspace: error: {exc}", err=True)
            raise typer.Exit(2) from None

    return run
