"""The ``wspace`` commands that inspect and maintain a store: ``info``, ``ls``, ``compact``,
``canonicalize``, ``verify`` and ``vacuum``."""

from __future__ import annotations

import json
from typing import Annotated

import pandas as pd
import typer

import wspace
from wspace.cli.common import (
    ARCH,
    OPTIONS,
    URL,
    WHERE,
    apply_where,
    reports_errors,
    storage_options,
)
from wspace.errors import CoordinateNotFoundError, listing
from wspace.store.maintenance import info_text

__all__ = ["register"]


@reports_errors
def info(
    url: URL,
    storage_option: OPTIONS = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Summarise a store: rows, models, architectures and layouts, columns, segments, bytes."""
    summary = wspace.info(url, storage_options=storage_options(storage_option))
    if as_json:
        for arch in summary["archs"].values():
            arch["layout"] = arch["layout"].to_dict("records")
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    typer.echo(info_text(summary))


@reports_errors
def ls(
    url: URL,
    storage_option: OPTIONS = None,
    where: WHERE = None,
    limit: Annotated[int, typer.Option(help="Rows to show (0: all).")] = 20,
    arch: ARCH = None,
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns.")] = None,
) -> None:
    """List the rows of a store with their metadata."""
    zoo = apply_where(
        wspace.open(url, storage_options=storage_options(storage_option), arch=arch), where
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
    shown = frame if limit <= 0 else frame.head(limit)
    with pd.option_context("display.max_columns", 20, "display.width", 160):
        typer.echo(shown.to_string(index=False) if len(shown) else "(no rows)")
    if len(shown) < len(frame):
        typer.echo(f"... {len(frame) - len(shown)} more of {len(frame)} rows (--limit 0: all)")


@reports_errors
def compact(
    url: URL,
    storage_option: OPTIONS = None,
    arch: Annotated[str | None, typer.Option(help="Only this architecture.")] = None,
) -> None:
    """Merge writer segments into read-optimised archives (atomic for readers)."""
    done = wspace.compact(url, arch=arch, storage_options=storage_options(storage_option))
    if not done:
        typer.echo("nothing to compact")
    for name, rows in done.items():
        typer.echo(f"compacted {rows} rows of {name!r}")


@reports_errors
def canonicalize(
    url: URL,
    storage_option: OPTIONS = None,
    method: Annotated[str, typer.Option(help="sort (incoming-weight norm) or match.")] = "sort",
    arch: ARCH = None,
    reference: Annotated[str, typer.Option(help="match: reference row (position or model).")] = "0",
) -> None:
    """Store per-row permutations to a canonical form (zoo.canonical(method) applies them)."""
    from wspace.weightspace.canonical import canonicalize as run
    from wspace.weightspace.canonical import save_canonical

    options = storage_options(storage_option)
    zoo = wspace.open(url, storage_options=options, arch=arch)
    ref: int | str = int(reference) if reference.lstrip("-").isdigit() else reference
    done = run(zoo, method, reference=ref)  # type: ignore[arg-type]
    path = save_canonical(url, done, storage_options=options)
    typer.echo(
        f"canonical form {method!r} of {len(zoo)} rows stored at {path} (version {done.version})"
    )


@reports_errors
def verify(url: URL, storage_option: OPTIONS = None) -> None:
    """Re-read every chunk; list damaged ones by model and layer (exit 1 if any)."""
    report = wspace.verify(url, storage_options=storage_options(storage_option))
    for p in report.problems:
        tensors = f" tensors={','.join(p.tensors)}" if p.tensors else ""
        typer.echo(
            f"DAMAGED arch={p.arch} layer={p.item}{tensors} segment={p.segment} "
            f"rows={p.rows[0]}-{p.rows[1] - 1} models={','.join(p.models)}: {p.error}"
        )
    typer.echo(
        f"{report.chunks_checked} chunks checked, {len(report.problems)} damaged"
        + (f" ({len(report.damaged_models)} models)" if report.problems else "")
    )
    if not report.ok:
        raise typer.Exit(1)


@reports_errors
def vacuum(
    url: URL,
    storage_option: OPTIONS = None,
    grace: Annotated[
        float, typer.Option(help="Keep data younger than this many seconds.")
    ] = 3600.0,
    dry_run: Annotated[bool, typer.Option(help="Only report what would be removed.")] = False,
) -> None:
    """Delete uncommitted and superseded data older than a grace period."""
    removed = wspace.vacuum(
        url, grace_seconds=grace, dry_run=dry_run, storage_options=storage_options(storage_option)
    )
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"{verb} {len(removed['segments'])} segment(s) and {len(removed['chunks'])} chunk(s), "
        f"{removed['bytes']:,} bytes"
    )


def register(app: typer.Typer) -> None:
    """Add the store commands to ``app``, in the order ``wspace --help`` lists them."""
    app.command()(info)
    app.command("ls")(ls)
    app.command()(compact)
    app.command()(canonicalize)
    app.command()(verify)
    app.command()(vacuum)
