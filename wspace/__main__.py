"""``python -m wspace`` runs the command line."""

from wspace.cli import app

app()
