"""``wspace report``: reports computed from a zoo, and :class:`ReportGroup`, which lets
``wspace report URL`` stand for ``wspace report all URL``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import wspace
from wspace.cli.common import ARCH, OPTIONS, URL, reports_errors, storage_options

__all__ = ["ReportGroup", "report_app"]


class ReportGroup(TyperGroup):
    """The ``wspace report`` commands: ``report [NAME] URL``, where NAME defaults to ``all``.

    The first word names a report when a store URL follows it; a lone word is the store. So
    ``wspace report URL`` is ``wspace report all URL``, ``wspace report metrics URL`` prints
    the metrics table, and ``wspace report metrics`` (or ``./metrics``) reports on the store
    at ``./metrics``. A word followed by options that only its report takes (``report metrics
    --csv t.csv``) stays that report, which then asks for its URL. What a command line means
    never depends on which folders exist.
    """

    default_command = "all"

    # ctx and the commands are typer's vendored click types, which typer does not export
    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        """The report ``args[0]`` names when a URL (or ``--help``) follows it, else ``all``."""
        name, rest = args[0], args[1:]
        command = self.commands.get(name)
        default = self.commands[self.default_command]
        if command is not None and (
            any(arg in ctx.help_option_names for arg in rest)
            or _parsed_url(command, name, rest, ctx) is not None
            or _parsed_url(default, self.default_command, args, ctx) is None
        ):
            return name, command, rest
        return self.default_command, default, args


def _parsed_url(command: Any, name: str, args: list[str], ctx: Any) -> str | None:
    """The URL in ``args`` parsed as ``command``'s command line (None: none, or no valid line)."""
    probe = command.make_context(name, list(args), parent=ctx, resilient_parsing=True)
    url = probe.params.get("url")
    return None if url is None else str(url)


report_app = typer.Typer(
    cls=ReportGroup,
    help="Reports computed from a zoo: `wspace report URL --out DIR` writes the full report "
    "(Markdown, HTML, figures; same as `report all URL`); `wspace report metrics URL` prints "
    "the metrics table. A lone word is always the store: `wspace report metrics` reports on "
    "./metrics.",
    no_args_is_help=True,
    subcommand_metavar="[all|metrics] URL [OPTIONS]",
    context_settings={"ignore_unknown_options": True},  # options before the URL go to `all`
)


@report_app.command("metrics")
@reports_errors
def report_metrics(
    url: URL,
    storage_option: OPTIONS = None,
    by: Annotated[str, typer.Option(help="Column to group networks by.")] = "cls",
    csv: Annotated[
        str | None, typer.Option(help="Also write the table as CSV to this path.")
    ] = None,
    arch: ARCH = None,
) -> None:
    """Per-class min/max/avg of accuracy, precision, recall and F1 (the dataset card's table)."""
    from wspace.analysis.metrics import flat_columns, metrics_table

    zoo = wspace.open(url, storage_options=storage_options(storage_option), arch=arch)
    table = metrics_table(zoo, by=by)
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
@reports_errors
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
    arch: ARCH = None,
) -> None:
    """Write report.md, report.html and figures: metrics, curves, classifiers, divergences."""
    from wspace.analysis.report import write_report

    zoo = wspace.open(url, storage_options=storage_options(storage_option), arch=arch)
    result = write_report(zoo, out, by=by, fast=fast, seed=seed, meta=meta, meta_epochs=meta_epochs)
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
