"""The inference layer: one device parser, the engine choice, OpenVINO against onnxruntime,
fall-backs and the compiled-model cache. Real runtimes and the real U2NetP file throughout."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from bgclear.engines import EngineOptions, available, choose, load_onnx
from bgclear.engines.cpu import native_bf16
from bgclear.engines.device import parse_device
from bgclear.errors import ModelError
from bgclear.models.registry import get_model
from bgclear.models.store import model_path

needs_openvino = pytest.mark.skipif(available()["openvino"] is None, reason="openvino is not installed")


@pytest.fixture(scope="module")
def u2netp_path():
    try:
        return model_path(get_model("u2netp"))
    except ModelError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def u2netp_input():
    rng = np.random.default_rng(3)
    return {"input.1": (rng.standard_normal((1, 3, 320, 320)) * 0.5).astype(np.float32)}


@pytest.mark.parametrize("given,expected", [
    (None, "auto"), ("AUTO", "auto"), ("cpu", "cpu"), ("gpu", "cuda"), ("cuda", "cuda"), ("cuda:1", "cuda:1"), ("gpu:2", "cuda:2"),
])
def test_parse_device_accepts_one_set_of_names(given, expected):
    assert parse_device(given) == expected


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", "cuda:", "mps", ""])
def test_parse_device_rejects_others_naming_the_accepted_forms(bad):
    if bad == "":
        assert parse_device(bad) == "auto"  # empty means unset, like None
        return
    with pytest.raises(ModelError, match="use auto, cpu, cuda or cuda:N"):
        parse_device(bad)


def test_torch_device_resolution_uses_the_same_parser():
    pytest.importorskip("torch")
    from bgclear.engines.torch import resolve_device

    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(ModelError, match="use auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")


@needs_openvino
def test_auto_picks_openvino_bf16_where_the_cpu_has_it_natively_and_onnxruntime_elsewhere():
    expected = ("openvino", "bf16", "cpu") if native_bf16() else ("onnxruntime", "f32", "cpu")
    assert choose(EngineOptions()) == expected
    assert choose(EngineOptions(engine="onnxruntime")) == ("onnxruntime", "f32", "cpu")
    assert choose(EngineOptions(precision="f32")) == ("onnxruntime", "f32", "cpu")  # OpenVINO f32: not faster
    assert choose(EngineOptions(engine="openvino", precision="f32")) == ("openvino", "f32", "cpu")
    assert choose(EngineOptions(precision="bf16"))[:2] == ("openvino", "bf16")


def test_unknown_engine_or_precision_is_an_error():
    with pytest.raises(ModelError, match="unknown engine 'tensorflow'"):
        choose(EngineOptions(engine="tensorflow"))
    with pytest.raises(ModelError, match="unknown precision 'int4'"):
        choose(EngineOptions(precision="int4"))


def test_onnxruntime_refuses_bf16_and_names_the_engine_that_has_it(u2netp_path):
    with pytest.raises(ModelError, match="use --engine openvino for bf16"):
        load_onnx(u2netp_path, EngineOptions(engine="onnxruntime", precision="bf16"))


def test_without_openvino_auto_uses_onnxruntime_and_asking_for_it_says_how_to_install():
    # A real interpreter in which the openvino import fails, as on a machine without it.
    code = (
        "import sys; sys.modules['openvino'] = None\n"
        "from bgclear.engines import EngineOptions, choose\n"
        "from bgclear.errors import ModelError\n"
        "print(choose(EngineOptions()))\n"
        "try:\n    choose(EngineOptions(engine='openvino'))\nexcept ModelError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "('onnxruntime', 'f32', 'cpu')" in out.stdout
    assert "ERR --engine openvino is not installed; pip install openvino" in out.stdout


@needs_openvino
def test_openvino_f32_matches_onnxruntime_and_bf16_stays_close(u2netp_path, u2netp_input):
    ref = load_onnx(u2netp_path, EngineOptions(engine="onnxruntime", threads=2))
    f32 = load_onnx(u2netp_path, EngineOptions(engine="openvino", precision="f32", threads=2))
    bf16 = load_onnx(u2netp_path, EngineOptions(engine="openvino", precision="bf16", threads=2))
    assert (f32.name, f32.precision, bf16.precision) == ("openvino", "f32", "bf16")
    assert ref.outputs == f32.outputs and ref.input_names() == f32.input_names()
    a = ref.run(u2netp_input)[0]
    b = f32.run(u2netp_input)[0]
    c = bf16.run(u2netp_input)[0]
    assert a.shape == b.shape == c.shape
    assert np.abs(a - b).max() < 1e-4
    assert np.abs(a - c).max() < 0.05 and np.abs(a - c).mean() < 5e-3


@pytest.mark.parametrize("engine", ["onnxruntime", pytest.param("openvino", marks=needs_openvino)])
def test_an_engine_loaded_for_some_outputs_returns_exactly_those(engine, u2netp_path, u2netp_input):
    every = load_onnx(u2netp_path, EngineOptions(engine=engine, precision="f32", threads=2))
    assert len(every.outputs) > 2
    picked = load_onnx(u2netp_path, EngineOptions(engine=engine, precision="f32", threads=2),
                       outputs=[every.outputs[2], 0])
    assert picked.outputs == [every.outputs[2], every.outputs[0]]
    all_out = every.run(u2netp_input)
    got = picked.run(u2netp_input)
    assert len(got) == 2
    np.testing.assert_allclose(got[0], all_out[2], atol=1e-5)
    np.testing.assert_allclose(got[1], all_out[0], atol=1e-5)
    with pytest.raises(ModelError, match="no output 'nope'; its outputs are"):
        load_onnx(u2netp_path, EngineOptions(engine=engine, precision="f32"), outputs=["nope"])


@needs_openvino
def test_openvino_runs_are_thread_safe(u2netp_path):
    engine = load_onnx(u2netp_path, EngineOptions(engine="openvino", precision="f32", threads=1))
    rng = np.random.default_rng(0)
    inputs = [{"input.1": rng.standard_normal((1, 3, 320, 320)).astype(np.float32)} for _ in range(4)]
    expected = [engine.run(x)[0] for x in inputs]
    results: dict[int, np.ndarray] = {}

    def work(i):
        results[i] = engine.run(inputs[i])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_array_equal(results[i], expected[i])


@needs_openvino
def test_a_file_no_engine_can_load_is_one_warning_and_a_clear_error(tmp_path, caplog, u2netp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(u2netp_path.read_bytes()[: 200_000])
    with caplog.at_level(logging.WARNING, logger="bgclear"):
        with pytest.raises(ModelError, match="neither openvino nor onnxruntime could load"):
            load_onnx(broken, EngineOptions(engine="openvino", precision="f32"), what="segmenter test")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "using onnxruntime f32 instead" in warnings[0].getMessage()


@needs_openvino
def test_compiled_cache_is_keyed_by_version_and_cpu_and_a_damaged_blob_is_recompiled(tmp_path, monkeypatch, u2netp_path, u2netp_input):
    from bgclear.engines.openvino import compile_cache_dir, version

    monkeypatch.setenv("BGCLEAR_HOME", str(tmp_path))
    folder = compile_cache_dir()
    assert folder.parent.name == f"openvino-{version()}" and folder.is_relative_to(tmp_path)
    first = load_onnx(u2netp_path, EngineOptions(engine="openvino", precision="f32")).run(u2netp_input)[0]
    blobs = [p for p in folder.rglob("*") if p.is_file()]
    assert blobs, "compiling should leave a blob in the cache"
    for blob in blobs:  # as if written by a crashed process or another build
        blob.write_bytes(b"\0garbage" * 64)
    again = load_onnx(u2netp_path, EngineOptions(engine="openvino", precision="f32")).run(u2netp_input)[0]
    np.testing.assert_allclose(again, first, atol=1e-6)


def test_session_reports_its_engine(small_session):
    engine = small_session.segmenter.engine
    assert small_session.describe() == f"{engine.name} {engine.precision} on {engine.device}"


@needs_openvino
def test_cli_engine_and_precision_flags_and_doctor(tmp_path):
    from PIL import Image

    from conftest import SAMPLE

    outs = {}
    for engine, precision in [("onnxruntime", "f32"), ("openvino", "f32")]:
        out = tmp_path / f"{engine}.png"
        r = subprocess.run([sys.executable, "-m", "bgclear.cli", "remove", str(SAMPLE), "-o", str(out), "--segmenter", "u2netp",
                            "--engine", engine, "--precision", precision], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs[engine] = np.asarray(Image.open(out))[..., 3].astype(np.int16)
    assert np.abs(outs["onnxruntime"] - outs["openvino"]).max() <= 2
    r = subprocess.run([sys.executable, "-m", "bgclear.cli", "remove", str(SAMPLE), "-o", str(tmp_path / "x.png"),
                        "--engine", "onnxruntime", "--precision", "bf16", "--segmenter", "u2netp"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "use --engine openvino for bf16" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.png").exists()
    r = subprocess.run([sys.executable, "-m", "bgclear.cli", "doctor", "--json", "--engine", "onnxruntime"],
                       capture_output=True, text=True, timeout=300)
    import json

    engines = json.loads(r.stdout)["engines"]
    assert engines["chosen"] == {"engine": "onnxruntime", "precision": "f32", "device": "cpu"}
    assert engines["installed"]["openvino"] and engines["cpu"]


@needs_openvino
def test_loading_openvino_writes_nothing_to_the_home_folder_and_sends_no_telemetry(tmp_path, u2netp_path):
    # OpenVINO's conversion tools keep usage statistics in ~/intel unless told not to;
    # a fresh HOME shows whether anything is written there.
    code = (
        "import sys\n"
        "from bgclear.engines import EngineOptions, load_onnx\n"
        f"load_onnx({str(u2netp_path)!r}, EngineOptions(engine='openvino', precision='f32'))\n"
        "import openvino.tools.ovc.telemetry_utils as t\n"
        "print(t.tm.__name__)\n"
        "import openvino_telemetry\n"  # the application's own import still works afterwards
    )
    env = {**os.environ, "HOME": str(tmp_path), "BGCLEAR_HOME": str(tmp_path / "bgclear")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "openvino.tools.ovc.telemetry_stub"
    assert not (tmp_path / "intel").exists()  # where OpenVINO's telemetry keeps its counter and client id
    assert (tmp_path / "bgclear" / "models" / "compiled").is_dir()  # the compiled-network cache, as intended


def test_the_cli_starts_without_importing_the_web_framework_scipy_or_an_engine():
    # Start-up is paid by every `bgclear remove`: these imports cost ~0.4 s each and are
    # not needed until a server is built, a metric computed or a model loaded.
    code = "import sys, bgclear.cli\nprint(sorted(m for m in ('fastapi', 'scipy.ndimage', 'openvino', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
