"""The ``wspace`` commands that move zoos between stores and published formats: ``import``,
``formats`` and ``export``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

import wspace
from wspace.cli.common import ARCH, OPTIONS, WHERE, apply_where, reports_errors, storage_options
from wspace.errors import WspaceError

__all__ = ["register"]


def _format_help(*, export: bool = False) -> str:
    from wspace.io import FORMATS
    from wspace.io.builtin import PUBLISHED

    shown = [*FORMATS.values(), *(PUBLISHED if export else ())]
    return "\n\n".join(f"{f.name}: {f.summary}" for f in shown)


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


@reports_errors
def import_(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="Format name (see above), or auto.")],
    src: Annotated[str, typer.Argument(metavar="SRC", help="File or folder to import.")],
    url: Annotated[str, typer.Argument(metavar="DST_URL", help="Store: path or fsspec URL.")],
    storage_option: OPTIONS = None,
    option: FORMAT_OPTIONS = None,
) -> None:
    from wspace.io import AUTO, detect_format, import_zoo

    if fmt == AUTO:
        fmt = detect_format(src).name
        typer.echo(f"format {fmt} (detected)")
    report = import_zoo(
        fmt, src, url, storage_options=storage_options(storage_option), **_format_options(option)
    )
    typer.echo(
        f"imported {report.rows} row(s) of {len(set(report.models))} model(s) into "
        f"{report.url} ({', '.join(report.archs) or 'no architecture'}); "
        f"{len(report.skipped)} already there"
    )


@reports_errors
def formats_() -> None:
    """List the formats (built-in, then those of plugins) with their options and defaults."""
    from wspace.io import FORMATS, formats

    found = formats()
    for name, fmt in found.items():
        builtin = name in FORMATS or type(fmt).__module__.startswith("wspace.io.")
        origin = "" if builtin else f"  [plugin: {type(fmt).__module__}]"
        typer.echo(f"{name}: {fmt.summary}{origin}")
        for kind, options in (("import", fmt.import_options()), ("export", fmt.export_options())):
            shown = ", ".join(f"{k}={p.default!r}" for k, p in options.items()) or "none"
            if kind == "export" and not fmt.exports:
                shown = "(cannot export)"
            typer.echo(f"  {kind} options: {shown}")


@reports_errors
def export(
    url: Annotated[str, typer.Argument(metavar="SRC_URL", help="Store: path or fsspec URL.")],
    dst: Annotated[str, typer.Argument(help="Folder (or file) to write.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="Format name (see above).")],
    storage_option: OPTIONS = None,
    where: WHERE = None,
    arch: ARCH = None,
    option: FORMAT_OPTIONS = None,
) -> None:
    from wspace.io import export_zoo

    zoo = apply_where(
        wspace.open(url, storage_options=storage_options(storage_option), arch=arch), where
    )
    files = export_zoo(zoo, dst, fmt, **_format_options(option))
    typer.echo(f"exported {len(zoo)} row(s) to {len(files)} file(s) under {dst}")


def register(app: typer.Typer) -> None:
    """Add ``import``, ``formats`` and ``export`` to ``app``, in this order."""
    app.command(
        "import",
        help="Import SRC, in one of the published formats, into the store DST_URL (created when "
        "missing); re-running skips models already there.\n\nFormats (`wspace formats` lists "
        "them with their options, and those that installed plugins add):\n\n"
        + _format_help()
        + "\n\nauto: the one format that recognises SRC (an error lists the candidates when "
        "several do)",
    )(import_)
    app.command("formats")(formats_)
    app.command(
        "export",
        help="Export the rows of the store SRC_URL (optionally filtered) to DST in a published "
        "format.\n\nFormats:\n\n" + _format_help(export=True),
    )(export)
