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
from typer.core import TyperGroup

import wspace
from wspace.errors import CoordinateNotFoundError, WspaceError, listing
from wspace.store.maintenance import info_text

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
    typer.echo(info_text(summary))


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
def canonicalize(
    url: URL,
    storage_option: OPTIONS = None,
    method: Annotated[str, typer.Option(help="sort (incoming-weight norm) or match.")] = "sort",
    arch: Annotated[str | None, typer.Option(help="Architecture group.")] = None,
    reference: Annotated[str, typer.Option(help="match: reference row (position or model).")] = "0",
) -> None:
    """Store per-row permutations to a canonical form (zoo.canonical(method) applies them)."""
    from wspace.weightspace.canonical import canonicalize as run
    from wspace.weightspace.canonical import save_canonical

    options = _options(storage_option)
    try:
        zoo = wspace.open(url, storage_options=options, arch=arch)
        ref: int | str = int(reference) if reference.lstrip("-").isdigit() else reference
        done = run(zoo, method, reference=ref)  # type: ignore[arg-type]
        path = save_canonical(url, done, storage_options=options)
    except (WspaceError, OSError) as exc:
        _fail(exc)
        return
    typer.echo(
        f"canonical form {method!r} of {len(zoo)} rows stored at {path} (version {done.version})"
    )


@app.command()
def verify(url: URL, storage_option: OPTIONS = None) -> None:
    """Re-read every chunk; list damaged ones by model and layer (exit 1 if any)."""
    try:
        report = wspace.verify(url, storage_options=_options(storage_option))
    except (WspaceError, OSError) as exc:
        _fail(exc)
        return
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


def _format_help() -> str:
    from wspace.io import FORMATS

    return "\n\n".join(f"{f.name}: {f.summary}" for f in FORMATS.values())


def _format_options(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise WspaceError(f"format option {pair!r} is not KEY=VALUE")
        out[key.replace("-", "_")] = value
    return out


FORMAT_OPTIONS = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-O",
        metavar="KEY=VALUE",
        help="Format-specific option, repeatable (see docs/formats.md).",
    ),
]


@app.command(
    "import",
    help="Import SRC, in one of the published formats, into the store DST_URL (created when "
    "missing); re-running skips models already there.\n\nFormats (`wspace formats` lists "
    "them with their options, and those that installed plugins add):\n\n"
    + _format_help()
    + "\n\nauto: the one format that recognises SRC (an error lists the candidates when "
    "several do)",
)
def import_(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="Format name (see above), or auto.")],
    src: Annotated[str, typer.Argument(metavar="SRC", help="File or folder to import.")],
    url: Annotated[str, typer.Argument(metavar="DST_URL", help="Store: path or fsspec URL.")],
    storage_option: OPTIONS = None,
    option: FORMAT_OPTIONS = None,
) -> None:
    from wspace.io import AUTO, detect_format, import_zoo

    try:
        if fmt == AUTO:
            fmt = detect_format(src).name
            typer.echo(f"format {fmt} (detected)")
        report = import_zoo(
            fmt, src, url, storage_options=_options(storage_option), **_format_options(option)
        )
    except (WspaceError, OSError) as exc:
        _fail(exc)
        return
    typer.echo(
        f"imported {report.rows} row(s) of {len(set(report.models))} model(s) into "
        f"{report.url} ({', '.join(report.archs) or 'no architecture'}); "
        f"{len(report.skipped)} already there"
    )


@app.command("formats")
def formats_() -> None:
    """List the formats (built-in, then those of plugins) with their options and defaults."""
    from wspace.io import FORMATS, formats

    try:
        found = formats()
    except (WspaceError, OSError) as exc:
        _fail(exc)
        return
    for name, fmt in found.items():
        builtin = name in FORMATS or type(fmt).__module__.startswith("wspace.io.")
        origin = "" if builtin else f"  [plugin: {type(fmt).__module__}]"
        typer.echo(f"{name}: {fmt.summary}{origin}")
        for kind, options in (("import", fmt.import_options()), ("export", fmt.export_options())):
            shown = ", ".join(f"{k}={p.default!r}" for k, p in options.items()) or "none"
            if kind == "export" and not fmt.exports:
                shown = "(cannot export)"
            typer.echo(f"  {kind} options: {shown}")


@app.command(
    "export",
    help="Export the rows of the store SRC_URL (optionally filtered) to DST in a published "
    "format.\n\nFormats:\n\n" + _format_help(),
)
def export(
    url: Annotated[str, typer.Argument(metavar="SRC_URL", help="Store: path or fsspec URL.")],
    dst: Annotated[str, typer.Argument(help="Folder (or file) to write.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="Format name (see above).")],
    storage_option: OPTIONS = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", "-w", help="Filter COLUMN=VALUE, COLUMN>VALUE, ... (repeatable)."),
    ] = None,
    arch: Annotated[str | None, typer.Option(help="Architecture group.")] = None,
    option: FORMAT_OPTIONS = None,
) -> None:
    from wspace.io import export_zoo

    try:
        zoo = apply_where(
            wspace.open(url, storage_options=_options(storage_option), arch=arch), where
        )
        files = export_zoo(zoo, dst, fmt, **_format_options(option))
    except (WspaceError, OSError) as exc:
        _fail(exc)
        return
    typer.echo(f"exported {len(zoo)} row(s) to {len(files)} file(s) under {dst}")


train_app = typer.Typer(
    help="Generate zoos by training networks into a store.", no_args_is_help=True
)


class _ReportGroup(TyperGroup):
    """``wspace report URL ...`` is ``wspace report all URL ...``; subcommands keep their names."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's (vendored) Context
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["all", *args]  # a store URL (a local folder named like a subcommand: ./NAME)
        return super().parse_args(ctx, args)


report_app = typer.Typer(
    cls=_ReportGroup,
    help="Reports computed from a zoo: `wspace report URL --out DIR` writes the full report "
    "(Markdown, HTML, figures); `wspace report metrics URL` prints the metrics table.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")
app.add_typer(report_app, name="report")


@train_app.command("lenet5")
def train_lenet5(
    url: URL,
    storage_option: OPTIONS = None,
    dataset: Annotated[str, typer.Option(help="digits (offline) or imagenette.")] = "digits",
    root: Annotated[
        str | None, typer.Option(help="Imagenette folder (train/ and val/ class folders).")
    ] = None,
    per_class: Annotated[int, typer.Option(help="Networks per class.")] = 5,
    classes: Annotated[
        str | None, typer.Option(help="Comma-separated positive classes (default: all).")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs per network.")] = 20,
    negatives: Annotated[
        int | None, typer.Option(help="Random negatives per network (default: all others).")
    ] = None,
    snapshots: Annotated[
        bool, typer.Option(help="Also store every epoch's weights as rows with step.")
    ] = False,
    workers: Annotated[int, typer.Option(help="Worker processes (or Dask workers).")] = 2,
    threads: Annotated[int, typer.Option(help="torch threads per worker.")] = 1,
    scheduler: Annotated[
        str | None, typer.Option(help="dask.distributed scheduler address (tcp://HOST:PORT).")
    ] = None,
    dask_local: Annotated[
        bool, typer.Option("--dask-local", help="Run the workers on a local Dask cluster.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Base seed of the networks.")] = 0,
) -> None:
    """Train one-vs-all LeNet-5s (FORMATS.md §1) into URL; re-running resumes.

    Every finished network is committed at once, so Ctrl-C or a killed worker loses only the
    networks in training; run the same command again to complete the zoo.
    """
    from wspace.train.orchestrate import train_zoo
    from wspace.train.worker import TrainSettings

    settings = TrainSettings(
        dataset=dataset, root=root, epochs=epochs, negatives=negatives, snapshots=snapshots
    )
    try:
        report = train_zoo(
            url,
            classes=[c.strip() for c in classes.split(",")] if classes else None,
            per_class=per_class,
            settings=settings,
            workers=workers,
            threads_per_worker=threads,
            scheduler=scheduler,
            dask_local=dask_local,
            seed=seed,
            storage_options=_options(storage_option),
        )
    except (WspaceError, OSError) as exc:
        _fail(exc)
        return
    typer.echo(
        f"{len(report.trained)} trained, {report.skipped} already in the store, "
        f"{report.planned} planned; {report.nets_per_minute:.1f} networks/minute"
    )
    if not report.complete:
        typer.echo(
            f"wspace: error: {report.failed_workers} worker(s) failed; run the same "
            "command again to finish the zoo",
            err=True,
        )
        raise typer.Exit(2)


@report_app.command("metrics")
def report_metrics(
    url: URL,
    storage_option: OPTIONS = None,
    by: Annotated[str, typer.Option(help="Column to group networks by.")] = "cls",
    csv: Annotated[
        str | None, typer.Option(help="Also write the table as CSV to this path.")
    ] = None,
    arch: Annotated[str | None, typer.Option(help="Architecture group.")] = None,
) -> None:
    """Per-class min/max/avg of accuracy, precision, recall and F1 (the dataset card's table)."""
    from wspace.analysis.metrics import flat_columns, metrics_table

    try:
        zoo = wspace.open(url, storage_options=_options(storage_option), arch=arch)
        table = metrics_table(zoo, by=by)
    except (WspaceError, OSError) as exc:
        _fail(exc)
        return
    flat = flat_columns(table)
    typer.echo(
        flat.to_markdown(index=False, floatfmt=".4f")
        if _has_tabulate()
        else flat.to_string(index=False, float_format="{:.4f}".format)
    )
    if csv:
        flat.to_csv(csv, index=False)
        typer.echo(f"wrote {csv}")


@report_app.command("all")
def report_all(
    url: URL,
    storage_option: OPTIONS = None,
    out: Annotated[str, typer.Option("--out", help="Folder to write the report to.")] = "report",
    by: Annotated[str, typer.Option(help="Column that groups the networks (classes).")] = "cls",
    fast: Annotated[
        bool, typer.Option("--fast", help="Quick mode: fewer features, no meta-classifier.")
    ] = False,
    meta: Annotated[
        bool | None,
        typer.Option(
            "--meta/--no-meta",
            help="Run the slice meta-classifiers (default: unless --fast or < 50 networks).",
        ),
    ] = None,
    meta_epochs: Annotated[int, typer.Option(help="Epochs per meta-classifier.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of splits and classifiers.")] = 0,
    arch: Annotated[str | None, typer.Option(help="Architecture group.")] = None,
) -> None:
    """Write report.md, report.html and figures: metrics, curves, classifiers, divergences."""
    from wspace.analysis.report import write_report

    try:
        zoo = wspace.open(url, storage_options=_options(storage_option), arch=arch)
        result = write_report(
            zoo, out, by=by, fast=fast, seed=seed, meta=meta, meta_epochs=meta_epochs
        )
    except (WspaceError, OSError) as exc:
        _fail(exc)
        return
    typer.echo(
        f"wrote {result.markdown} and {result.html} ({len(result.figures)} figures) in "
        f"{result.seconds['total']:.1f} s"
    )


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


@app.command()
def demo(
    path: Annotated[str, typer.Argument(help="Where to write the demo store.")] = "demo-zoo.zarr",
    per_class: Annotated[int, typer.Option(help="Networks per digit class.")] = 3,
    epochs: Annotated[int, typer.Option(help="Training epochs per network.")] = 10,
    workers: Annotated[int, typer.Option(help="Training worker processes.")] = 2,
    classes: Annotated[
        str | None, typer.Option(help="Comma-separated digit classes (default: all ten).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing demo store.")] = False,
    report: Annotated[
        bool,
        typer.Option(
            "--report/--no-report", help="End by writing the zoo's analysis report (fast mode)."
        ),
    ] = True,
    report_out: Annotated[
        str | None,
        typer.Option(help="Folder of the report (default: NAME-report beside NAME.zarr)."),
    ] = None,
) -> None:
    """The main job: train a small digits LeNet-5 zoo with concurrent workers, query it, and
    write its analysis report (Markdown, HTML, figures)."""
    from wspace.demo import run_demo

    try:
        run_demo(
            path,
            per_class=per_class,
            epochs=epochs,
            workers=workers,
            classes=[c.strip() for c in classes.split(",")] if classes else None,
            overwrite=overwrite,
            echo=typer.echo,
            report=report,
            report_out=report_out,
        )
    except (WspaceError, OSError) as exc:
        _fail(exc)
