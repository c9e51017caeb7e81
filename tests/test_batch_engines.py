"""Batch workers run the engine, precision and threads the job asks for, and the report says which.

The two engines give other bytes on the same photo (checked here first), so an
output equal to `bgclear remove` with one engine, and unequal to it with the
other, shows which engine the workers really ran; the report must name the same.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batch_fixtures import make_photos, outputs, read_report, reference_cutouts, run_batch_cli


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def _auto() -> tuple[str, str]:
    """(engine, precision) ``auto`` resolves to on this machine."""
    from bgclear.engines import EngineOptions, choose

    engine, precision, _device = choose(EngineOptions(device="auto"))
    return engine, precision


def _other() -> tuple[list[str], tuple[str, str]]:
    """Options asking for the engine ``auto`` does not pick here, and the (engine, precision) they give."""
    if _auto()[0] == "openvino":
        return ["--engine", "onnxruntime"], ("onnxruntime", "f32")
    return ["--engine", "openvino", "--precision", "f32"], ("openvino", "f32")


def _engines(report: dict) -> list[tuple[str, str, int]]:
    return [(e["engine"], e["precision"], e["threads"]) for e in report["engines"]]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    make_photos(root, 4, size=(400, 300))
    return root


@pytest.fixture(scope="module")
def references(photos, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """`bgclear remove` with the automatic engine and with the other one: they must differ for these tests to mean anything."""
    from bgclear.engines import installed

    if not installed("openvino"):
        pytest.skip("OpenVINO is not installed: one engine only, nothing to tell apart")
    refs = {"auto": reference_cutouts(photos, tmp_path_factory.mktemp("auto")),
            "other": reference_cutouts(photos, tmp_path_factory.mktemp("other"), _other()[0])}
    assert all(refs["auto"][name] != refs["other"][name] for name in refs["auto"])
    return refs


def test_the_pool_picks_the_automatic_engine_with_all_cores(photos, references, tmp_path):
    """One pool worker: ``auto`` resolved in the worker, every core its threads."""
    dst = tmp_path / "out"
    result = run_batch_cli(photos, dst, "--backend", "local", "-j", "1")
    assert result.returncode == 0, result.stderr
    report = read_report(dst)
    assert report["options"]["engine"] == "auto" and report["options"]["precision"] == "auto"
    assert _engines(report) == [(*_auto(), _cpus())]
    assert outputs(dst) == references["auto"]


def test_the_pool_runs_the_engine_asked_for(photos, references, tmp_path):
    """The other engine on two pool workers: each runs it, with half the cores."""
    options, (engine, precision) = _other()
    dst = tmp_path / "out"
    result = run_batch_cli(photos, dst, "--backend", "local", "-j", "2", *options)
    assert result.returncode == 0, result.stderr
    report = read_report(dst)
    assert report["backend"] == "process-pool"
    assert _engines(report) == [(engine, precision, max(1, _cpus() // 2))]
    assert f"on {engine} {precision}, {max(1, _cpus() // 2)} thread(s) each" in result.stderr
    assert outputs(dst) == references["other"]


def test_ray_workers_run_the_engine_asked_for(photos, references, tmp_path):
    """The same on the embedded Ray: the actor's session is built with the job's engine and the CPUs it reserves."""
    pytest.importorskip("ray.data", reason="pip install 'bgclear[ray]'")
    options, (engine, precision) = _other()
    dst = tmp_path / "out"
    result = run_batch_cli(photos, dst, "--backend", "ray", "-j", "1", *options, env={"RAY_ADDRESS": ""})
    assert result.returncode == 0, result.stderr
    report = read_report(dst)
    assert report["backend"] == "ray" and report["cpus_per_worker"] == _cpus()
    assert _engines(report) == [(engine, precision, _cpus())]
    assert outputs(dst) == references["other"]
