"""Batch workers run the engine, precision and threads the job asks for, and the report says which.

Each engine gives other bytes on the same photo (checked here first), so an
output equal to `bgclear remove` with that engine, and unequal to it with the
other, shows which engine the workers really ran; the report must name the same.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batch_fixtures import make_photos, outputs, read_report, reference_cutouts, run_batch_cli

ONNXRUNTIME = ["--engine", "onnxruntime"]


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def _auto() -> tuple[str, str]:
    """(engine, precision) ``auto`` resolves to on this machine: the fastest engine installed."""
    from bgclear.engines import EngineOptions, choose

    engine, precision, _device = choose(EngineOptions(device="auto"))
    return engine, precision


def _engines(report: dict) -> list[tuple[str, str, int]]:
    return [(e["engine"], e["precision"], e["threads"]) for e in report["engines"]]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    make_photos(root, 4, size=(400, 300))
    return root


@pytest.fixture(scope="module")
def references(photos, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """`bgclear remove` with the automatic engine and with onnxruntime: they must differ for these tests to mean anything."""
    refs = {"auto": reference_cutouts(photos, tmp_path_factory.mktemp("auto")),
            "onnxruntime": reference_cutouts(photos, tmp_path_factory.mktemp("ort"), ONNXRUNTIME)}
    if _auto() == ("onnxruntime", "f32"):
        pytest.skip("auto is onnxruntime f32 here (OpenVINO not installed): nothing to tell apart")
    assert all(refs["auto"][name] != refs["onnxruntime"][name] for name in refs["auto"])
    return refs


def test_the_pool_picks_the_fastest_engine_with_all_cores(photos, references, tmp_path):
    """One pool worker: ``auto`` resolved in the worker, every core its threads."""
    dst = tmp_path / "out"
    result = run_batch_cli(photos, dst, "--backend", "local", "-j", "1")
    assert result.returncode == 0, result.stderr
    report = read_report(dst)
    assert report["options"]["engine"] == "auto" and report["options"]["precision"] == "auto"
    assert _engines(report) == [(*_auto(), _cpus())]
    assert outputs(dst) == references["auto"]


def test_the_pool_runs_the_engine_asked_for(photos, references, tmp_path):
    """--engine onnxruntime on two pool workers: each runs it, with half the cores."""
    dst = tmp_path / "out"
    result = run_batch_cli(photos, dst, "--backend", "local", "-j", "2", *ONNXRUNTIME)
    assert result.returncode == 0, result.stderr
    report = read_report(dst)
    assert report["backend"] == "process-pool"
    assert _engines(report) == [("onnxruntime", "f32", max(1, _cpus() // 2))]
    assert f"on onnxruntime f32, {max(1, _cpus() // 2)} thread(s) each" in result.stderr
    assert outputs(dst) == references["onnxruntime"]


def test_ray_workers_run_the_engine_asked_for(photos, references, tmp_path):
    """The same on the embedded Ray: the actor's session is built with the job's engine and the CPUs it reserves."""
    pytest.importorskip("ray.data", reason="pip install 'bgclear[ray]'")
    dst = tmp_path / "out"
    result = run_batch_cli(photos, dst, "--backend", "ray", "-j", "1", *ONNXRUNTIME, env={"RAY_ADDRESS": ""})
    assert result.returncode == 0, result.stderr
    report = read_report(dst)
    assert report["backend"] == "ray" and report["cpus_per_worker"] == _cpus()
    assert _engines(report) == [("onnxruntime", "f32", _cpus())]
    assert outputs(dst) == references["onnxruntime"]
