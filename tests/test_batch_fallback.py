"""``bgclear batch`` without Ray: the local process pool, and what both backends share.

Inputs (folder, glob, list file), the "complete and valid" check that resumption
relies on, the report, the destination lock, and a job killed half-way.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from batch_fixtures import (FAST, batch_cmd, decodes_fully, kill_when_outputs, leftovers, make_bad_files,
                            make_photos, outputs, read_report, reference_cutouts, run_batch_cli)
from bgclear.batch import BatchJob
from bgclear.distributed import (LOCK_NAME, DestinationBusy, batch_command, destination_lock, expected_output_size,
                                 output_is_complete, plan_inputs, remove_stale_parts)

LOCAL = ["--backend", "local"]


@pytest.fixture(scope="module")
def shoot(tmp_path_factory) -> Path:
    """Nine small photos (a third in a sub-folder) and two bad files."""
    root = tmp_path_factory.mktemp("shoot")
    photos = make_photos(root, 9, size=(320, 240))
    make_bad_files(root, photos[0])
    return root


@pytest.fixture(scope="module")
def reference(shoot, tmp_path_factory) -> dict[str, bytes]:
    return reference_cutouts(shoot, tmp_path_factory.mktemp("ref"))


# --- the pool: same bytes as `bgclear remove`, bad files reported, resumable -----------------

def test_pool_matches_remove_reports_bad_files_and_resumes(shoot, reference, tmp_path):
    dst = tmp_path / "out"
    first = run_batch_cli(shoot, dst, *LOCAL, "-j", "2")
    assert first.returncode == 1, first.stderr  # two bad files
    assert outputs(dst) == reference  # byte for byte, sub-folder layout kept
    report = read_report(dst)
    assert report["backend"] == "process-pool" and report["workers"] == 2
    assert report["counts"] == {"total": 11, "done": 9, "skipped": 0, "failed": 2}
    reasons = {Path(f["source"]).name: f["reason"] for f in report["failures"]}
    assert "damaged or truncated" in reasons["truncated.jpg"]
    assert "not a recognised image" in reasons["notes.png"]
    assert report["images_per_minute"] > 0 and report["options"]["segmenter"] == "u2netp"
    assert "FAILED" in first.stderr and "truncated.jpg" in first.stderr
    assert not leftovers(dst) and not (dst / LOCK_NAME).exists()

    # Damage two outputs: one cut short, one of the wrong size. Only those are done again.
    truncated, resized = dst / "photo000.png", dst / "shelf" / "photo002.png"
    truncated.write_bytes(truncated.read_bytes()[:4000])
    Image.new("RGBA", (10, 10)).save(resized)
    second = run_batch_cli(shoot, dst, *LOCAL, "-j", "1")
    assert second.returncode == 1
    assert read_report(dst)["counts"] == {"total": 11, "done": 2, "skipped": 7, "failed": 2}
    assert outputs(dst) == reference

    # --overwrite does a valid output again (a list file naming one photo, into the same folder).
    listing = tmp_path / "one.txt"
    listing.write_text(str(shoot / "photo001.jpg") + "\n")
    before = (dst / "photo001.png").stat().st_mtime_ns
    third = run_batch_cli(listing, dst, *LOCAL, "-j", "1", "--overwrite")
    assert third.returncode == 0, third.stderr
    assert read_report(dst)["counts"] == {"total": 1, "done": 1, "skipped": 0, "failed": 0}
    assert (dst / "photo001.png").stat().st_mtime_ns != before
    assert outputs(dst) == reference


def test_killed_job_leaves_only_complete_outputs_and_a_rerun_finishes(tmp_path):
    src = tmp_path / "many"
    make_photos(src, 16, size=(400, 300), sub=None)
    dst = tmp_path / "out"
    at_kill = kill_when_outputs(batch_cmd(src, dst, *LOCAL, "-j", "1"), dst, at_least=3)
    present = outputs(dst)
    assert 3 <= len(present) < 16, "the job must be killed half-way for this test to mean anything"
    assert all(decodes_fully(dst / name) for name in present)  # never a half-written output

    rerun = run_batch_cli(src, dst, *LOCAL, "-j", "2")
    assert rerun.returncode == 0, rerun.stderr
    counts = read_report(dst)["counts"]
    assert counts["skipped"] >= at_kill and counts["done"] >= 1
    assert counts["skipped"] + counts["done"] == 16 and counts["failed"] == 0
    assert len(outputs(dst)) == 16 and all(decodes_fully(dst / n) for n in outputs(dst))
    assert not leftovers(dst), leftovers(dst)  # no *.part, and the dead run's lock was taken over and released
    assert not (dst / LOCK_NAME).exists()


def test_without_ray_the_command_says_so_and_uses_the_pool(shoot, reference, tmp_path, monkeypatch):
    """Registered on the real `bgclear` group, with Ray made unavailable."""
    from bgclear.distributed import job as distributed
    from bgclear.cli import main

    monkeypatch.setattr(distributed, "_ray_available", lambda: "ray is not installed")
    if "batch" not in main.commands:
        monkeypatch.setitem(main.commands, "batch", batch_command)
    dst = tmp_path / "out"
    result = CliRunner().invoke(main, ["batch", str(shoot / "photo*.jpg"), str(dst), *FAST, "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "Ray is not available" in result.output and "process pool" in result.output
    assert read_report(dst)["backend"] == "process-pool"
    top_level = {k: v for k, v in reference.items() if "/" not in k}
    assert outputs(dst) == top_level  # the glob named the top folder only


def test_address_without_ray_is_an_error(tmp_path, monkeypatch, shoot):
    from bgclear.distributed import job as distributed

    monkeypatch.setattr(distributed, "_ray_available", lambda: "ray is not installed")
    result = CliRunner().invoke(batch_command, [str(shoot), str(tmp_path / "o"), *FAST, "--address", "ray://h:10001"])
    assert result.exit_code == 2 and "needs Ray" in result.output


def test_the_job_server_url_is_refused_with_the_command_that_uses_it(tmp_path, shoot):
    """RAY_ADDRESS=http://HEAD:8265 is what Ray's docs export for `ray job submit`; bgclear batch says so."""
    result = CliRunner().invoke(batch_command, [str(shoot), str(tmp_path / "o"), *FAST],
                                env={"RAY_ADDRESS": "http://head:8265"})
    assert result.exit_code == 2 and "ray job submit --address http://head:8265" in result.output
    assert not (tmp_path / "o").exists()


def test_the_local_backend_ignores_a_ray_address_in_the_environment(tmp_path, shoot):
    """Inside a Ray job (Ray sets RAY_ADDRESS) or a shell that exports it, --backend local still runs locally."""
    dst = tmp_path / "o"
    result = CliRunner().invoke(batch_command, [str(shoot / "photo000.jpg"), str(dst), *FAST, *LOCAL, "--no-progress"],
                                env={"RAY_ADDRESS": "127.0.0.9:6379"})
    assert result.exit_code == 0, result.output
    assert read_report(dst)["backend"] == "process-pool" and len(outputs(dst)) == 1


def test_a_missing_model_stops_before_any_work(tmp_path, shoot, monkeypatch):
    monkeypatch.setenv("BGCLEAR_HOME", str(tmp_path / "empty-home"))
    result = CliRunner().invoke(batch_command, [str(shoot), str(tmp_path / "o"), *FAST, *LOCAL])
    assert result.exit_code == 2 and "not installed" in result.output and "bgclear models pull" in result.output
    assert not (tmp_path / "o").exists()


def test_bad_options_are_refused_like_remove(tmp_path, shoot):
    result = CliRunner().invoke(batch_command, [str(shoot), str(tmp_path / "o"), "--bg", "mauve-ish", *LOCAL])
    assert result.exit_code == 2 and "unknown colour" in result.output


# --- SRC: a folder, a glob, a list file ----------------------------------------------------

def _touch_image(path: Path, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 10, 10)).save(path)
    return path


def test_folder_keeps_layout_and_skips_an_output_folder_inside_it(tmp_path):
    src = tmp_path / "in"
    _touch_image(src / "a.jpg")
    _touch_image(src / "deep" / "b.png")
    _touch_image(src / "out" / "old.png")  # DST inside SRC: never an input
    (src / "readme.txt").write_text("x")
    (src / ".hidden.jpg").write_bytes(b"")
    plan = plan_inputs(str(src), src / "out", "png")
    assert plan.kind == "folder"
    assert [(Path(i.src).relative_to(src).as_posix(), Path(i.dest).relative_to(src / "out").as_posix())
            for i in plan.items] == [("a.jpg", "a.png"), ("deep/b.png", "deep/b.png")]
    assert all(os.path.isabs(i.src) and os.path.isabs(i.dest) for i in plan.items)


def test_glob_keeps_the_layout_below_its_fixed_part(tmp_path):
    _touch_image(tmp_path / "shoot" / "day1" / "x.jpg")
    _touch_image(tmp_path / "shoot" / "day2" / "y.jpg")
    _touch_image(tmp_path / "shoot" / "day2" / "z.png")
    plan = plan_inputs(str(tmp_path / "shoot" / "**" / "*.jpg"), tmp_path / "o", "webp")
    assert plan.kind == "glob"
    assert sorted(Path(i.dest).relative_to(tmp_path / "o").as_posix() for i in plan.items) == ["day1/x.webp", "day2/y.webp"]
    with pytest.raises(FileNotFoundError):
        plan_inputs(str(tmp_path / "nothing" / "*.jpg"), tmp_path / "o", "png")


def test_list_file_relative_to_cwd_with_comments_missing_files_and_collisions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _touch_image(tmp_path / "cat" / "a.jpg")
    _touch_image(tmp_path / "cat" / "a.png")  # same output name as a.jpg
    _touch_image(tmp_path / "cat" / "sub" / "b.jpg")
    listing = tmp_path / "todo.txt"
    listing.write_text("# catalogue\ncat/a.jpg\n\ncat/a.png\ncat/sub/b.jpg\ncat/a.jpg\ncat/gone.jpg\n")
    plan = plan_inputs(str(listing), tmp_path / "o", "png")
    assert plan.kind == "list"
    assert [Path(i.dest).relative_to(tmp_path / "o").as_posix() for i in plan.items] == ["a.png", "sub/b.png"]
    refused = {Path(s).name: reason for s, _d, reason in plan.refused}
    assert refused["gone.jpg"] == "no such file"
    assert "already taken" in refused["a.png"]


# --- "complete and valid" ----------------------------------------------------------------------

def test_complete_means_decodes_at_the_rotated_source_size_in_the_right_mode(tmp_path):
    src = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    Image.new("RGB", (60, 40), "red").save(src, exif=exif)
    assert expected_output_size(src) == (40, 60)
    job = BatchJob(segmenter="u2netp")
    out = tmp_path / "portrait.png"
    Image.new("RGBA", (40, 60)).save(out)
    assert output_is_complete(src, out, job)
    assert not output_is_complete(src, out, BatchJob(mask=True))  # a mask is greyscale
    Image.new("RGBA", (60, 40)).save(out)
    assert not output_is_complete(src, out, job)  # unrotated: not what this source gives
    Image.new("RGBA", (30, 20)).save(out)
    assert output_is_complete(src, out, BatchJob(crop=True))  # a crop is within the source
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    assert not output_is_complete(src, out, BatchJob(crop=True))
    assert not output_is_complete(src, tmp_path / "missing.png", job)
    Image.new("RGB", (40, 60)).save(tmp_path / "flat.jpg")
    assert output_is_complete(src, tmp_path / "flat.jpg", BatchJob(fmt="jpg"))


# --- the destination --------------------------------------------------------------------------

def test_lock_refuses_a_live_job_and_takes_over_a_dead_ones(tmp_path):
    import socket
    import subprocess
    import sys

    dst = tmp_path / "o"
    dst.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # bgclear"])
    try:
        cmdline = Path(f"/proc/{live.pid}/cmdline")
        for _ in range(100):  # until it has exec'd: before that it still carries pytest's command line
            if cmdline.exists() and b"bgclear" in cmdline.read_bytes():
                break
            time.sleep(0.05)
        (dst / LOCK_NAME).write_text(json.dumps({"pid": live.pid, "host": socket.gethostname(), "started": "x"}))
        with pytest.raises(DestinationBusy, match="another bgclear batch"):
            with destination_lock(dst):
                pass
    finally:
        live.kill()
        live.wait()
    with destination_lock(dst):  # its holder is gone now
        assert json.loads((dst / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (dst / LOCK_NAME).exists()


def test_stale_temporary_files_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".a.png.k2j_x9az.part", tmp_path / "sub" / ".b.jpg.abcdefgh.part"]
    keep = [tmp_path / "a.png", tmp_path / "notes.part", tmp_path / ".profile"]
    for p in stale + keep:
        p.write_bytes(b"x")
    assert remove_stale_parts(tmp_path) == 2
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)


def test_a_stopped_job_names_the_reason_after_a_colon():
    from bgclear.distributed.job import _root_message

    server_side = ConnectionAbortedError(
        "Initialization failure from server:\nTraceback (most recent call last):\n  File \"proxier.py\", line 9\n"
        "RuntimeError: Proxy failed to Connect to backend!\n")
    assert _root_message(server_side) == "Initialization failure from server: RuntimeError: Proxy failed to Connect to backend!"
    assert _root_message(RuntimeError("one line")) == "one line"
    assert _root_message(RuntimeError()) == "RuntimeError"
    # Ray Data re-raises an actor's death "from SystemException()", a cause with no text.
    died = RuntimeError("The actor died because of an error raised in its creation task\nTraceback (most recent call last):\n"
                        "bgclear.distributed.worker.WorkerInitError: a worker on n1 could not load the models: boom\n")
    died.__cause__ = type("SystemException", (Exception,), {})()
    assert _root_message(died) == "a worker on n1 could not load the models: boom"
    wrapped = RuntimeError("the real reason")
    wrapped.__cause__ = Exception()
    assert _root_message(wrapped) == "the real reason"
