"""What every command shares: how a command fails."""

from __future__ import annotations

import sys

import click


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` to stderr and exit with ``code`` (2: usage or set-up problem)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
