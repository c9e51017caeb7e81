"""MobileSAM's ONNX export, made once at pull time and cached beside the weights.

``bgclear models pull mobilesam`` fetches ``mobile_sam.pt`` and then calls :func:`prepare`, which
exports the encoder and the decoder (:class:`~.model.EncoderGraph`, :class:`~.model.DecoderGraph`)
to ``<model cache>/mobilesam-onnx/<weights sha256[:16]>-g<GRAPH_VERSION>/``, checks that the
exported graphs load and agree with PyTorch, and writes ``manifest.json`` (the weights' sha256,
graph version, PyTorch version, and each file's sha256) last. An export is kept while the
weights, :data:`GRAPH_VERSION` and the PyTorch version are unchanged and the files hash as
recorded; otherwise it is made again.

:func:`exported_graphs` finds the export at run time and verifies its files; it needs neither
PyTorch nor the ``.pt`` file.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from ...errors import ChecksumError, ModelError, ModelNotFoundError
from ...models.registry import ModelSpec, cache_dir
from ...models.store import publish_folder, pull_command, read_manifest, sha256_file, verify_file
from . import INPUT_SIZE, MASK_SIZE

log = logging.getLogger("bgclear")

#: Bump when model code changes what the exported graphs compute.
GRAPH_VERSION = 1
OPSET = 17
FILES = ("encoder.onnx", "decoder.onnx")
ENCODER_INPUTS = ("image",)
DECODER_INPUTS = ("features", "coords", "labels", "mask", "has_mask")


def export_dir(spec: ModelSpec) -> Path:
    return cache_dir() / f"{spec.name}-onnx" / f"{spec.sha256[:16]}-g{GRAPH_VERSION}"


def exported_graphs(spec: ModelSpec) -> tuple[Path, Path]:
    """(encoder.onnx, decoder.onnx) of ``spec``'s current export, sha256-verified.

    Raises :class:`ModelNotFoundError` naming the pull command when there is no current export,
    :class:`ChecksumError` when a file changed since it was written.
    """
    folder = export_dir(spec)
    manifest = read_manifest(folder)
    if not manifest or manifest.get("weights_sha256") != spec.sha256 or manifest.get("graph_version") != GRAPH_VERSION:
        raise ModelNotFoundError(
            f"model {spec.name!r} has no ONNX export for this bgclear (looked in {folder}); "
            f"make it with '{pull_command(spec)}' (needs PyTorch, once)"
        )
    paths = tuple(folder / name for name in FILES)
    try:
        for path in paths:
            verify_file(path, manifest["files"][path.name])
    except (OSError, KeyError, ChecksumError) as exc:
        raise ChecksumError(f"model {spec.name!r}: the ONNX export in {folder} is damaged ({exc}); "
                            f"run '{pull_command(spec)} --force'") from None
    return paths  # type: ignore[return-value]


def _current(spec: ModelSpec, torch_version: str) -> bool:
    manifest = read_manifest(export_dir(spec))
    if not manifest or manifest.get("torch") != torch_version:
        return False
    try:
        exported_graphs(spec)
    except ModelError:
        return False
    return True


def prepare(spec: ModelSpec, weights: Path, force: bool = False) -> Path:
    """Make (or keep) the ONNX export of ``weights``; return its folder. Set-up time only."""
    try:
        import torch
    except ImportError:
        if not force:
            try:  # an export already made for these weights serves as it is
                exported_graphs(spec)
                return export_dir(spec)
            except ModelError:
                pass
        raise ModelError(f"{spec.name}: exporting the network to ONNX needs PyTorch once, at set-up: "
                         f"pip install torch==2.13.0, then '{pull_command(spec)}'") from None
    if not force and _current(spec, torch.__version__):
        return export_dir(spec)
    folder = export_dir(spec)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".", suffix=".part"))
    try:
        digests = _export(weights, tmp)
        manifest = {"weights_sha256": spec.sha256, "graph_version": GRAPH_VERSION, "torch": torch.__version__,
                    "opset": OPSET, "files": digests}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        publish_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s: ONNX export written to %s", spec.name, folder)
    return folder


def _export(weights: Path, folder: Path) -> dict[str, str]:
    """Export both graphs into ``folder``, check them against PyTorch; {file name: sha256}."""
    import warnings

    import torch

    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise ModelError("exporting MobileSAM to ONNX needs the onnx package: pip install onnx") from None

    from .model import DecoderGraph, EncoderGraph, load_mobile_sam

    model = load_mobile_sam(weights)
    g = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, INPUT_SIZE, INPUT_SIZE, generator=g)
    side = INPUT_SIZE // 16
    dec_args = (torch.randn(1, 256, side, side, generator=g), torch.rand(1, 3, 2, generator=g) * INPUT_SIZE,
                torch.tensor([[1.0, 0.0, -1.0]]), torch.randn(1, 1, MASK_SIZE, MASK_SIZE, generator=g), torch.ones(1))
    n = {1: "points"}
    # The wrappers must be in eval mode: the exporter restores each module's mode afterwards, and a
    # wrapper left in training mode would switch the network's batch norms to batch statistics.
    encoder, decoder = EncoderGraph(model).eval(), DecoderGraph(model).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracing notes
        torch.onnx.export(encoder, (image,), str(folder / FILES[0]), input_names=list(ENCODER_INPUTS),
                          output_names=["features"], opset_version=OPSET, dynamo=False)
        torch.onnx.export(decoder, dec_args, str(folder / FILES[1]), input_names=list(DECODER_INPUTS),
                          output_names=["masks", "iou"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"coords": n, "labels": n})
        want = [model.encode(image).numpy(), *(t.numpy() for t in model.decode(*dec_args))]
    _check_against(folder, image.numpy(), [a.numpy() for a in dec_args], want)
    return {name: sha256_file(folder / name) for name in FILES}


def _check_against(folder: Path, image, dec_args, want) -> None:
    """The exported graphs, run by onnxruntime, must reproduce PyTorch's outputs."""
    import numpy as np
    import onnxruntime as ort

    enc = ort.InferenceSession(str(folder / FILES[0]), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(folder / FILES[1]), providers=["CPUExecutionProvider"])
    got = enc.run(None, {ENCODER_INPUTS[0]: image}) + dec.run(None, dict(zip(DECODER_INPUTS, dec_args)))
    for name, a, b in zip(("features", "masks", "iou"), want, got):
        err = float(np.abs(a - b).max() / max(float(np.abs(a).max()), 1e-6))
        if not err < 1e-3:
            raise ModelError(f"the ONNX export's {name} differ from PyTorch's (relative error {err:.2g}); not kept")
