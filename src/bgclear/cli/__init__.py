"""The ``bgclear`` command line: a thin shell over :func:`bgclear.remove`, one module per command."""

from __future__ import annotations

import importlib
import logging

import click

from .. import __version__
from ..process import prefer_small_pages
from .common import fail
from .doctor import doctor
from .evaluate import eval_command
from .models import models_group
from .remove import remove_command

log = logging.getLogger("bgclear")

__all__ = ["main"]


class _Commands(click.Group):
    """The command group; ``batch`` and ``serve`` are imported when they are asked for, not at
    start-up (they pull in Ray and the web framework, and ``bgclear.distributed`` itself uses the
    shared options of :mod:`.options`)."""

    lazy = {"batch": ("bgclear.distributed", "batch_command"), "serve": ("bgclear.server", "serve_command")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy:
            return super().get_command(ctx, name)
        module, attr = self.lazy[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as exc:  # the server extra is not installed
            if name != "serve":
                raise
            return _serve_missing(exc.name)


def _serve_missing(missing: str | None) -> click.Command:
    @click.command("serve")
    def serve_missing() -> None:
        """Start the web page and HTTP API (needs: pip install 'bgclear[server]')."""
        fail(f"the server needs the 'server' extra ({missing} is missing): pip install 'bgclear[server]'")

    return serve_missing


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bgclear")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Remove the background from photos: full-resolution transparent PNGs."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    prefer_small_pages()


main.add_command(remove_command, "remove")
main.add_command(models_group, "models")
main.add_command(doctor, "doctor")
main.add_command(eval_command, "eval")
