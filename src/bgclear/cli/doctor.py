"""``bgclear doctor``: what this install can run."""

from __future__ import annotations

import json

import click

from ..engines.base import ENGINE_CHOICES, PRECISION_CHOICES
from ..engines.device import DEVICE_HELP


@click.command("doctor")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--engine", type=click.Choice(ENGINE_CHOICES), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def doctor(device: str, engine: str, precision: str, as_json: bool) -> None:
    """What this install can run: engines and the one chosen, torch/CUDA, the device, installed models."""
    from ..doctor import doctor_report

    report = doctor_report(device, engine, precision)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    e = report["engines"]
    click.echo(f"python {report['python']} on {report['platform']}; onnxruntime providers {report['onnxruntime_providers']}")
    installed = ", ".join(f"{name} {v}" if v else f"{name} (not installed)" for name, v in e["installed"].items())
    yes = lambda flag: "yes" if flag else "no"  # noqa: E731
    click.echo(f"cpu: {e['cpu']} (native bf16: {yes(e['native_bf16'])}, int8 dot products: {yes(e['native_int8'])}); "
               f"engines: {installed}; default model int8: {yes(e['default_model_int8'])}")
    chosen = e["chosen"]
    click.echo(f"--engine {engine} --precision {precision} -> "
               + (f"{chosen['engine']} {chosen['precision']} on {chosen['device']}" if chosen else e["error"]))
    t = report["torch"]
    if not t["installed"]:
        click.echo(f"torch: not installed ({t['hint']})")
    else:
        problem = f" ({t['cuda_problem']})" if t["cuda_problem"] else ""
        click.echo(f"torch {t['version']} (CUDA build {t['cuda_build']}): CUDA usable {t['cuda_available']}{problem}")
        for d in t["devices"]:
            click.echo(f"  cuda:{d['index']} {d['name']} {d['memory_gib']} GiB sm_{d['capability']}")
        click.echo(f"--device {device} -> {t['chosen_device'] or t['device_error']}")
    for m in report["models"]:
        click.echo(f"  {m['name']:<16} {m['kind']:<9} {m['backend']:<10} {'installed' if m['installed'] else 'not installed'}")
