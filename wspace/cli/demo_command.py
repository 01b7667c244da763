"""``wspace demo``: train, query and report on a small digits zoo in one command."""

from __future__ import annotations

from typing import Annotated

import typer

from wspace.cli.common import reports_errors

__all__ = ["demo"]


@reports_errors
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
    """The main job: train a digits LeNet-5 zoo in 2 processes, query it, write its report."""
    from wspace.demo import run_demo

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
