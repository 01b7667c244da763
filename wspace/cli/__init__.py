"""The ``wspace`` command line: :data:`app`, the console script's entry point.

Its commands live by job: :mod:`~wspace.cli.store_commands` (info, ls, compact, canonicalize,
verify, vacuum), :mod:`~wspace.cli.io_commands` (import, formats, export),
:mod:`~wspace.cli.demo_command`, :mod:`~wspace.cli.train_commands` and
:mod:`~wspace.cli.report_commands`; what they share is in :mod:`~wspace.cli.common`.
"""

from __future__ import annotations

import typer

from wspace.cli import io_commands, store_commands
from wspace.cli.common import apply_where, reports_errors
from wspace.cli.demo_command import demo
from wspace.cli.report_commands import report_app
from wspace.cli.train_commands import train_app

__all__ = ["app", "apply_where", "reports_errors"]

app = typer.Typer(
    help="wspace: store, query and check neural-network weight zoos (Zarr v3 stores; reads "
    "any fsspec URL, writes local paths, file://, memory:// and s3:// (others: "
    "WSPACE_ATOMIC_CREATE)). Exit codes: 0 ok, 1 verification found damage, 2 bad input or "
    "error.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
store_commands.register(app)
io_commands.register(app)
app.command()(demo)
app.add_typer(train_app, name="train")
app.add_typer(report_app, name="report")
