"""InSPyReNet on PyTorch: checkpoint formats load strictly and match the reference network.

The reference is transparent-background's model code (``pip install --no-deps
transparent-background==1.3.4 kornia``); only its network modules are imported
(its package ``__init__`` pulls a GUI and downloaders), with timm's three
helpers stubbed because timm needs torchvision. Comparisons use random weights
saved to temporary checkpoints: no real weights are needed or fetched.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install 'bgclear[torch]')")
from torch import nn  # noqa: E402

from bgclear.errors import ChecksumError, ModelError  # noqa: E402
from bgclear.networks.inspyrenet.checkpoints import infer_architecture, load_inspyrenet, read_state_dict  # noqa: E402
from bgclear.networks.inspyrenet.model import dilate  # noqa: E402
from bgclear.networks.inspyrenet.res2net import res2net50_v1b  # noqa: E402

TINY = dict(embed_dim=32, depths=[2, 2, 2, 2], num_heads=[2, 2, 4, 4], window_size=4)


def reference_modules():
    """transparent-background's InSPyReNet and Swin modules, or skip."""
    stubbed = "transparent_background" in sys.modules
    if not stubbed and (importlib.util.find_spec("transparent_background") is None
                        or importlib.util.find_spec("kornia") is None):
        pytest.skip("reference not installed: pip install --no-deps transparent-background==1.3.4 && pip install kornia")
    try:
        import timm.layers  # noqa: F401
    except Exception:  # timm absent or unable to import without torchvision: stub the three helpers used
        timm = types.ModuleType("timm")
        layers = types.ModuleType("timm.layers")

        class DropPath(nn.Identity):  # identity in eval mode, which is all inference uses
            def __init__(self, *a, **k):
                super().__init__()

        layers.DropPath = DropPath
        layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
        layers.trunc_normal_ = nn.init.trunc_normal_
        timm.layers = layers
        sys.modules["timm"], sys.modules["timm.layers"] = timm, layers
    if not stubbed:
        pkg = types.ModuleType("transparent_background")  # skip its __init__ (GUI, downloads)
        pkg.__path__ = list(importlib.util.find_spec("transparent_background").submodule_search_locations)
        sys.modules["transparent_background"] = pkg
    import transparent_background.backbones.SwinTransformer as swin
    import transparent_background.InSPyReNet as net

    return net, swin


def tame(model: nn.Module, seed: int = 0) -> None:
    """Random weights with unit-ish activations (default inits overflow sigmoid after a few levels)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("threshold"):
                p.fill_(0.5)
            elif p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            else:
                scale = 1.0 if name.endswith("weight") else 0.0
                p.copy_(scale + 0.1 * torch.randn(p.shape, generator=g))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


def calibrate(ref, x) -> None:
    """Scale each Laplacian head so its output has unit spread: the blend then has edges to work on."""
    with torch.no_grad():
        for i, name in enumerate(["attention2", "attention1", "attention0"]):
            lap = ref.forward_inspyre(x)["laplacian"][i]
            bn = getattr(ref, name).conv_out4.bn
            bn.weight.div_(lap.std())
            bn.bias.div_(lap.std())


def rel_err(a, b) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


@pytest.fixture(scope="module")
def tiny_reference():
    net, swin = reference_modules()
    torch.manual_seed(0)
    backbone = swin.SwinTransformer(**TINY)
    ref = net.InSPyReNet(backbone, [32, 32, 64, 128, 256], 16, [128, 128], threshold=None).eval()
    tame(ref)
    calibrate(ref, torch.randn(1, 3, 160, 224, generator=torch.Generator().manual_seed(1)))
    return ref


def save_variants(sd: dict, folder) -> dict:
    """The same tensors in every checkpoint layout the loader accepts."""
    from safetensors.torch import save_file

    paths = {k: folder / k for k in ("latest.pth", "ckpt_base.pth", "dataparallel.pth", "wrapped.pth", "w.safetensors")}
    torch.save(sd, paths["latest.pth"])  # research repository: model.state_dict()
    torch.save(sd, paths["ckpt_base.pth"])  # transparent-background: the same, renamed
    torch.save({f"module.{k}": v for k, v in sd.items()}, paths["dataparallel.pth"])
    torch.save({"state_dict": sd, "epoch": torch.tensor(3)}, paths["wrapped.pth"])
    save_file({k: v.contiguous() for k, v in sd.items()}, str(paths["w.safetensors"]))
    return paths


def test_every_format_restores_every_tensor(tiny_reference, tmp_path):
    sd = tiny_reference.state_dict()
    for name, path in save_variants(sd, tmp_path).items():
        model, arch = load_inspyrenet(path, (128, 128))
        assert arch == {"backbone": "swin", "embed_dim": 32, "depths": (2, 2, 2, 2), "heads": (2, 2, 4, 4),
                        "window": 4, "depth": 16}, name
        got = model.state_dict()
        assert set(got) == set(sd), name
        for k, v in sd.items():
            assert torch.equal(got[k], v), (name, k)


def test_forward_matches_reference(tiny_reference, tmp_path):
    torch.save(tiny_reference.state_dict(), tmp_path / "latest.pth")
    ours, _ = load_inspyrenet(tmp_path / "latest.pth", (128, 128))
    x = torch.randn(1, 3, 160, 224, generator=torch.Generator().manual_seed(2))  # not square, not base-sized
    with torch.inference_mode():
        ref = tiny_reference.forward_inspyre(x)
        sal, lap = ours(x)
        for a, b in zip(ref["saliency"] + ref["laplacian"], sal + lap):
            assert a.shape == b.shape and rel_err(a, b) < 1e-4
        tiny_reference.threshold = None
        assert torch.allclose(tiny_reference.forward_inference(x), ours.predict(x), atol=1e-4)


def test_pyramid_blending_matches_reference(tiny_reference, tmp_path):
    torch.save(tiny_reference.state_dict(), tmp_path / "latest.pth")
    ours, _ = load_inspyrenet(tmp_path / "latest.pth", (128, 128))
    g = torch.Generator().manual_seed(3)
    x_lr, x_hr = torch.randn(1, 3, 128, 128, generator=g), torch.randn(1, 3, 192, 256, generator=g)
    with torch.inference_mode():
        tiny_reference.threshold = 64
        ref = tiny_reference.forward_inference(x_hr, x_lr)
        got = ours.predict_blended(x_hr, x_lr)
        tiny_reference.threshold = None
        single = ours.predict(x_hr)
    assert ref.shape == got.shape == (1, 1, 192, 256)
    assert float(ref.std()) > 0.01, "degenerate test: the blend output is flat"
    assert torch.allclose(ref, got, atol=1e-4)
    assert not torch.allclose(got, single, atol=1e-3), "blending must differ from a single HR pass"


def test_morphology_matches_kornia():
    kornia_morph = pytest.importorskip("kornia.morphology")
    import cv2

    x = torch.rand(1, 1, 37, 53, generator=torch.Generator().manual_seed(4))
    for k in (5, 9, 17):
        kernel = torch.tensor(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).float()
        assert torch.allclose(dilate(x, k), kornia_morph.dilation(x, kernel))
        assert torch.allclose(-dilate(-x, k), kornia_morph.erosion(x, kernel))


def test_full_size_swin_b_checkpoint_loads_and_matches(tmp_path):
    """The real layout: InSPyReNet_SwinB as transparent-background builds it (~90 M parameters)."""
    net, _ = reference_modules()
    torch.manual_seed(0)
    ref = net.InSPyReNet_SwinB(depth=64, pretrained=False, base_size=[384, 384], threshold=None).eval()
    torch.save(ref.state_dict(), tmp_path / "ckpt_fast.pth")
    ours, arch = load_inspyrenet(tmp_path / "ckpt_fast.pth", (384, 384))
    assert arch == {"backbone": "swin", "embed_dim": 128, "depths": (2, 2, 18, 2), "heads": (4, 8, 16, 32),
                    "window": 12, "depth": 64}
    assert len(ours.state_dict()) == len(ref.state_dict())
    x = torch.randn(1, 3, 192, 192, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        a = ref.forward_inspyre(x)["saliency"]
        b = ours(x)[0]
    for u, v in zip(a, b):
        assert rel_err(u, v) < 1e-4


def test_res2net_checkpoint_round_trip(tmp_path):
    from bgclear.networks.inspyrenet.model import InSPyReNet

    torch.manual_seed(0)
    backbone = res2net50_v1b()
    model = InSPyReNet(backbone, backbone.out_channels, 64, (64, 64)).eval()
    sd = model.state_dict()
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "latest.pth")
    loaded, arch = load_inspyrenet(tmp_path / "latest.pth", (64, 64))
    assert arch == {"backbone": "res2net", "layers": (3, 4, 6, 3), "depth": 64}
    got = loaded.state_dict()
    assert set(got) == set(sd) and all(torch.equal(got[k], v) for k, v in sd.items())
    with torch.inference_mode():
        out = loaded.predict(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, 1, 64, 96) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_bad_checkpoints_are_refused_clearly(tiny_reference, tmp_path):
    sd = dict(tiny_reference.state_dict())
    sd.pop("attention0.threshold")
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(ModelError, match="1 missing and 1 unexpected"):
        load_inspyrenet(tmp_path / "broken.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        read_state_dict(tmp_path / "junk.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="not an InSPyReNet checkpoint"):
        infer_architecture(read_state_dict(tmp_path / "other.pth"))


def test_segmenter_modes_through_the_registry(tiny_reference, tmp_path, monkeypatch):
    from bgclear.backends import make_segmenter
    from bgclear.models.registry import get_model
    from bgclear.models.local import add_local_model

    monkeypatch.setenv("BGCLEAR_HOME", str(tmp_path / "home"))
    ckpt = tmp_path / "ckpt.pth"
    torch.save(tiny_reference.state_dict(), ckpt)
    rgb = (np.random.default_rng(0).random((300, 420, 3)) * 255).astype(np.uint8)
    add_local_model("tiny-base", ckpt, "inspyrenet", mode="base", base_size=128)
    add_local_model("tiny-hr", ckpt, "inspyrenet", mode="pyramid", base_size=128)
    assert get_model("tiny-hr").extra["mode"] == "pyramid" and len(get_model("tiny-hr").sha256) == 64
    base = make_segmenter("tiny-base", device="cpu").predict(rgb)
    assert base.shape == (128, 128) and base.dtype == np.float32 and 0 <= base.min() and base.max() <= 1
    seg = make_segmenter("tiny-hr", device="cpu")
    seg.hr_side, seg.threshold = 256, 160  # HR pass at 256 px shorter side: blended
    assert seg.predict(rgb).shape == (256, 352)
    seg.threshold = 1000  # HR size not above the threshold: LR pass alone
    assert seg.predict(rgb).shape == (128, 128)
    ckpt.write_bytes(ckpt.read_bytes() + b"x")  # changed after registration
    with pytest.raises(ChecksumError):
        make_segmenter("tiny-base", device="cpu")


def test_placeholder_names_register_with_companions(tiny_reference, tmp_path, monkeypatch):
    from bgclear.models.registry import get_model
    from bgclear.models.store import model_path
    from bgclear.models.local import add_local_model

    monkeypatch.setenv("BGCLEAR_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelError, match="bgclear models add inspyrenet PATH"):
        from bgclear.backends import make_segmenter

        make_segmenter("inspyrenet", device="cpu")
    ckpt = tmp_path / "ckpt_base.pth"
    torch.save(tiny_reference.state_dict(), ckpt)
    names = [s.name for s in add_local_model("inspyrenet", ckpt)]
    assert names == ["inspyrenet", "inspyrenet-hr"]
    assert get_model("inspyrenet-hr").extra["mode"] == "pyramid"
    assert model_path(get_model("inspyrenet-hr")) == ckpt.resolve()


def test_cuda_request_without_cuda_is_an_error():
    from bgclear.engines.torch import resolve_device

    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ModelError, match="unknown device"):
        resolve_device("tpu")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ModelError, match="--device cpu"):
        resolve_device("cuda")
