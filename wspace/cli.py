"""The ``wspace`` command line."""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

import wspace
from wspace.errors import CoordinateNotFoundError, WspaceError, listing

app = typer.Typer(
    help="wspace: store, query and check neural-network weight zoos (Zarr v3 stores on any "
    "fsspec URL). Exit codes: 0 ok, 1 verification found damage, 2 bad input or error.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

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


def _options(pairs: list[str] | None) -> dict[str, Any] | None:
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


def _fail(exc: Exception) -> None:
    typer.echo(f"wspace: error: {exc}", err=True)
    raise typer.Exit(2)


@app.command()
def info(
    url: URL,
    storage_option: OPTIONS = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Summarise a store: rows, models, architectures and layouts, columns, segments, bytes."""
    try:
        summary = wspace.info(url, storage_options=_options(storage_option))
    except (WspaceError, OSError) as exc:
        _fail(exc)
        return
    if as_json:
        for arch in summary["archs"].values():
            arch["layout"] = arch["layout"].to_dict("records")
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    typer.echo(f"store      {summary['url']}")
    typer.echo(f"version    {summary['version']} (commit records)")
    typer.echo(f"codec      {summary['codec']}")
    typer.echo(
        f"bytes      {summary['bytes_live']:,} live / {summary['bytes_raw']:,} raw float32 "
        f"(compression {summary['ratio']:.2f}x); {summary['bytes_stored']:,} on storage "
        "incl. superseded data (see `wspace vacuum`)"
    )
    for name, arch in summary["archs"].items():
        typer.echo(
            f"\narchitecture {name!r} ({arch['architecture'] or 'no torch builder'}): "
            f"{arch['rows']} rows, {arch['models']} models, {arch['params']:,} params, "
            f"{arch['live_segments']} live segment(s), "
            f"{arch['segments_on_storage']} on storage"
        )
        typer.echo(arch["layout"].to_string(index=False))
        typer.echo("columns: " + ", ".join(f"{c} ({t})" for c, t in arch["columns"].items()))


@app.command("ls")
def ls(
    url: URL,
    storage_option: OPTIONS = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", "-w", help="Filter COLUMN=VALUE, COLUMN>VALUE, ... (repeatable)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to show (0: all).")] = 20,
    arch: Annotated[str | None, typer.Option(help="Architecture group.")] = None,
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns.")] = None,
) -> None:
    """List the rows of a store with their metadata."""
    try:
        zoo = apply_where(
            wspace.open(url, storage_options=_options(storage_option), arch=arch), where
        )
        frame = zoo.models
        if columns:
            wanted = [c.strip() for c in columns.split(",")]
            missing = [c for c in wanted if c not in frame.columns]
            if missing:
                raise CoordinateNotFoundError(
                    f"no column(s) {missing}; columns: {listing(frame.columns)}"
                )
            frame = frame[wanted]
    except (WspaceError, OSError) as exc:
        _fail(exc)
        return
    shown = frame if limit <= 0 else frame.head(limit)
    with pd.option_context("display.max_columns", 20, "display.width", 160):
        typer.echo(shown.to_string(index=False) if len(shown) else "(no rows)")
    if len(shown) < len(frame):
        typer.echo(f"... {len(frame) - len(shown)} more of {len(frame)} rows (--limit 0: all)")


@app.command()
def compact(
    url: URL,
    storage_option: OPTIONS = None,
    arch: Annotated[str | None, typer.Option(help="Only this architecture.")] = None,
) -> None:
    """Merge writer segments into read-optimised archives (atomic for readers)."""
    try:
        done = wspace.compact(url, arch=arch, storage_options=_options(storage_option))
    except (WspaceError, OSError) as exc:
        _fail(exc)
        return
    if not done:
        typer.echo("nothing to compact")
    for name, rows in done.items():
        typer.echo(f"compacted {rows} rows of {name!r}")


@app.command()
def verify(url: URL, storage_option: OPTIONS = None) -> None:
    """Re-read every chunk; list damaged ones by model and layer (exit 1 if any)."""
    try:
        report = wspace.verify(url, storage_options=_options(storage_option))
    except (WspaceError, OSError) as exc:
        _fail(exc)
        return
    for p in report.problems:
        typer.echo(
            f"DAMAGED arch={p.arch} layer={p.item} segment={p.segment} "
            f"rows={p.rows[0]}-{p.rows[1] - 1} models={','.join(p.models)}: {p.error}"
        )
    typer.echo(
        f"{report.chunks_checked} chunks checked, {len(report.problems)} damaged"
        + (f" ({len(report.damaged_models)} models)" if report.problems else "")
    )
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def vacuum(
    url: URL,
    storage_option: OPTIONS = None,
    grace: Annotated[
        float, typer.Option(help="Keep data younger than this many seconds.")
    ] = 3600.0,
    dry_run: Annotated[bool, typer.Option(help="Only report what would be removed.")] = False,
) -> None:
    """Delete uncommitted and superseded data older than a grace period."""
    try:
        removed = wspace.vacuum(
            url, grace_seconds=grace, dry_run=dry_run, storage_options=_options(storage_option)
        )
    except (WspaceError, OSError) as exc:
        _fail(exc)
        return
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"{verb} {len(removed['segments'])} segment(s) and {len(removed['chunks'])} chunk(s), "
        f"{removed['bytes']:,} bytes"
    )


@app.command()
def demo(
    path: Annotated[str, typer.Argument(help="Where to write the demo store.")] = "demo-zoo.zarr",
    models: Annotated[int, typer.Option(help="LeNet-5 networks to store.")] = 30,
    workers: Annotated[int, typer.Option(help="Writer processes.")] = 2,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing demo store.")] = False,
) -> None:
    """Build a small zoo of torch-initialised LeNet-5s with concurrent writers, and query it."""
    from wspace.demo import run_demo

    try:
        run_demo(path, models=models, workers=workers, overwrite=overwrite, echo=typer.echo)
    except (WspaceError, OSError) as exc:
        _fail(exc)
