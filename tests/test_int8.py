"""Int8 segmenters: the engine choice, NNCF quantisation on a real photo, the ISNet quantisation made at
pull time, and damaged or missing int8 files. Real runtimes, real weights throughout."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bgclear.engines as engines
from bgclear.engines import EngineOptions, available, choose
from bgclear.errors import ChecksumError, ModelError
from bgclear.models import int8 as int8_module
from bgclear.models.int8 import calibration_views, int8_dir, quantize, quantized_model
from bgclear.models.registry import get_model
from bgclear.models.store import model_path
from bgclear.stages.segment import INT8_UNSURE_LIMIT, OnnxSegmenter, model_input, unsure_fraction

pytestmark = pytest.mark.skipif(available()["openvino"] is None, reason="openvino is not installed")
CAT = Path(__file__).resolve().parents[1] / "examples" / "cat.png"


def test_int8_is_only_ever_asked_for(monkeypatch):
    monkeypatch.setattr(engines, "native_bf16", lambda: True)
    assert choose(EngineOptions(), int8=True) == ("openvino", "bf16", "cpu")
    assert choose(EngineOptions(precision="int8"), int8=True) == ("openvino", "int8", "cpu")
    monkeypatch.setattr(engines, "native_bf16", lambda: False)
    assert choose(EngineOptions(), int8=True) == ("onnxruntime", "f32", "cpu")
    assert choose(EngineOptions(precision="int8"), int8=True) == ("openvino", "int8", "cpu")


def test_int8_asked_where_it_cannot_run_says_what_to_do():
    with pytest.raises(ModelError, match="onnxruntime does not run the int8 networks; use --engine openvino"):
        choose(EngineOptions(engine="onnxruntime", precision="int8"), int8=True)
    with pytest.raises(ModelError, match=r"no int8 version here: it is made by 'bgclear models pull NAME'.*bgclear\[int8\]"):
        choose(EngineOptions(precision="int8"), int8=False)


def test_a_quantisation_that_strays_from_f32_is_refused(tmp_path):
    """U2NetP calibrated on one photo answers far from its f32 self (measured ~0.23 mean difference):
    the check after quantising refuses it and writes nothing."""
    pytest.importorskip("nncf")
    spec = get_model("u2netp")
    try:
        weights = model_path(spec)
    except ModelError as exc:
        pytest.skip(str(exc))
    photo = np.asarray(Image.open(CAT).convert("RGB"))
    with pytest.raises(ModelError, match=r"u2netp: the int8 network differs from f32 by 0\.\d+ on a calibration photo "
                                         r"\(limit 0\.03\); not kept"):
        quantize(spec, weights, [photo], tmp_path / "model.xml")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def isnet_int8():
    """The int8 ISNet that ``bgclear models pull isnet`` (the README's set-up) makes wherever NNCF is installed."""
    pytest.importorskip("nncf")
    spec = get_model("isnet")
    try:
        model_path(spec, verify=False)
    except ModelError as exc:
        pytest.skip(str(exc))
    xml = quantized_model(spec)
    assert xml is not None, f"no int8 ISNet in {int8_dir(spec)}: run 'bgclear models pull isnet'"
    return spec, xml.parent


def test_the_default_model_has_an_int8_version_that_answers_like_f32(isnet_int8):
    spec, folder = isnet_int8
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["worst_mean_difference"] < int8_module.MAX_MEAN_DIFFERENCE
    assert manifest["calibration"] == int8_module.CALIBRATION_SOURCE.package
    assert (folder / "model.bin").stat().st_size < 0.6 * model_path(spec).stat().st_size  # int8 weights
    seg = OnnxSegmenter(spec, EngineOptions(engine="openvino", precision="int8", threads=2))
    ref = OnnxSegmenter(spec, EngineOptions(engine="openvino", precision="f32", threads=2))
    assert (seg.engine.name, seg.engine.precision) == ("openvino", "int8")
    photo = np.asarray(Image.open(CAT).convert("RGB"))
    a, b = ref.predict(photo), seg.predict(photo)
    assert a.shape == b.shape == (1024, 1024) and float(np.abs(a - b).mean()) < 0.02
    assert ((a >= .5) & (b >= .5)).sum() / ((a >= .5) | (b >= .5)).sum() > 0.97


def test_a_damaged_int8_file_is_an_error_when_asked_and_does_not_touch_auto(isnet_int8, monkeypatch, tmp_path, caplog):
    spec, folder = isnet_int8
    broken = tmp_path / "int8"
    broken.mkdir()
    for path in folder.iterdir():
        broken.joinpath(path.name).write_bytes(path.read_bytes())
    data = bytearray(broken.joinpath("model.bin").read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.joinpath("model.bin").write_bytes(bytes(data))
    monkeypatch.setattr(int8_module, "int8_dir", lambda s: broken)
    with pytest.raises(ChecksumError, match="int8 quantisation in .* is damaged .*bgclear models pull isnet --force"):
        OnnxSegmenter(spec, EngineOptions(engine="openvino", precision="int8"))
    with caplog.at_level(logging.WARNING, logger="bgclear"):
        seg = OnnxSegmenter(spec, EngineOptions(engine="openvino", precision="auto", threads=2))
    assert seg.engine.precision in ("f32", "bf16") and not seg.guarded and caplog.text == ""


def test_int8_answers_only_photos_the_network_is_sure_of(isnet_int8, disc_photo):
    """A photo with a wide unsure area (the sample cat: ~11 % of pixels between 0.2 and 0.8) is answered
    again without int8; a clear one (a red disc on blue) keeps the int8 answer."""
    spec, _ = isnet_int8
    cat = np.asarray(Image.open(CAT).convert("RGB"))
    seg = OnnxSegmenter(spec, EngineOptions(engine="openvino", precision="int8", threads=2))
    ref = OnnxSegmenter(spec, EngineOptions(engine="openvino", precision="auto", threads=2))
    assert seg.guarded and seg._careful is None
    raw = seg.engine.run({seg._input: seg.preprocess(disc_photo)})[0]
    assert unsure_fraction(raw) < INT8_UNSURE_LIMIT
    assert np.array_equal(seg.predict(disc_photo), np.clip(raw.reshape(raw.shape[-2:]), 0, 1))
    assert seg._careful is None  # not even loaded
    raw = seg.engine.run({seg._input: seg.preprocess(cat)})[0]
    assert unsure_fraction(raw) > INT8_UNSURE_LIMIT
    assert np.array_equal(seg.predict(cat), ref.predict(cat))
    assert seg._careful is not None and seg._careful.precision == ref.engine.precision


def test_unsure_fraction_counts_values_strictly_between_0_2_and_0_8():
    assert unsure_fraction(np.array([0.0, 0.2, 0.21, 0.5, 0.79, 0.8, 1.0])) == pytest.approx(3 / 7)


def test_a_quantisation_of_other_weights_or_another_recipe_is_not_used(isnet_int8, monkeypatch):
    spec, folder = isnet_int8
    monkeypatch.setattr(int8_module, "int8_dir", lambda s: folder)
    assert quantized_model(spec) == folder / "model.xml"
    assert quantized_model(dataclasses.replace(spec, sha256="0" * 64)) is None
    assert quantized_model(get_model("u2net")) is None  # no int8 entry at all
    monkeypatch.setattr(int8_module, "RECIPE_VERSION", int8_module.RECIPE_VERSION + 1)
    assert quantized_model(spec) is None


def test_calibration_views_are_whole_mirrored_and_closer():
    photo = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    whole, mirrored, closer = calibration_views(photo)
    assert whole is photo and np.array_equal(mirrored, photo[:, ::-1]) and closer.shape == (6, 12, 3)
    assert model_input(get_model("isnet"), closer).shape == (1, 3, 1024, 1024)


def test_quantising_sends_no_telemetry_and_writes_nothing_to_the_home_folder(tmp_path):
    """NNCF reports each quantisation through openvino_telemetry unless it is imported blocked
    (run in a fresh process: NNCF silences itself under pytest, which would hide a leak)."""
    pytest.importorskip("nncf")
    code = (
        "from bgclear.engines.openvino import import_openvino, import_without_telemetry\n"
        "import_openvino()\n"  # openvino first, as a pull does: the block must still hold for NNCF
        "nncf = import_without_telemetry('nncf')\n"
        "from nncf.telemetry import wrapper\n"
        "print(type(wrapper.telemetry).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNCF_")}
    env["HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "MagicMock"  # NNCF's own stub: nothing is sent
    assert not (tmp_path / "intel").exists()


def test_a_session_in_int8_still_answers_clicks(isnet_int8):
    """The promptable segmenter has no int8 version: under precision="int8" it runs as under auto."""
    from bgclear import Session

    session = Session(precision="int8", threads=2)
    photo = np.asarray(Image.open(CAT).convert("RGB"))
    cut = session.remove(photo, keep=[(225.0, 150.0)])
    assert session.segmenter.engine.precision == "int8"
    assert session.promptable.runtime.split()[-1] in ("bf16", "f32")
    assert cut.alpha.shape == photo.shape[:2]
