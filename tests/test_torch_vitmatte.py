"""ViTMatte refinement: offline loading, reference preprocessing, and the windowed pass.

Small random-weight configs keep this fast on CPU. The ``local`` config uses
windowed attention only and zero absolute position embeddings, which makes the
network translation-equivariant with a finite receptive field: then the
windowed refinement must equal one full-image pass exactly (to float error),
which checks the window placement, padding and blending arithmetic.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install 'bgclear[torch]')")
transformers = pytest.importorskip("transformers", reason="transformers not installed (pip install 'bgclear[torch]')")

from bgclear.errors import ModelError  # noqa: E402
from bgclear.families.vitmatte import (  # noqa: E402
    VitMatteRefiner,
    blend_weights,
    load_vitmatte,
    vitmatte_inputs,
)
from bgclear.stages.trimap import UNKNOWN  # noqa: E402


def tiny_vitmatte(local: bool, seed: int = 0):
    from transformers import VitDetConfig, VitMatteConfig, VitMatteForImageMatting

    backbone = VitDetConfig(
        num_channels=4, image_size=128, pretrain_image_size=64, patch_size=16, hidden_size=32,
        num_attention_heads=2, num_hidden_layers=4, mlp_ratio=2, window_size=2 if local else 4,
        use_absolute_position_embeddings=True, use_relative_position_embeddings=True,
        window_block_indices=[0, 1, 2, 3] if local else [0, 2], residual_block_indices=[] if local else [1],
        out_features=["stage4"],
    )
    config = VitMatteConfig(backbone_config=backbone, hidden_size=32, convstream_hidden_sizes=[8, 16, 24],
                            fusion_hidden_sizes=[32, 16, 8, 8])
    torch.manual_seed(seed)
    model = VitMatteForImageMatting(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # spread-out random weights so alphas vary (default init gives a flat 0.5)
        for name, p in model.named_parameters():
            if "position_embeddings" in name and local:
                p.zero_()
            elif p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            else:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("vitmatte")
    out = {}
    for kind in ("global", "local"):
        tiny_vitmatte(kind == "local").save_pretrained(root / kind)
        out[kind] = root / kind
    return out


def ring_scene(h: int, w: int, seed: int = 0):
    """Noisy photo, a trimap with a ring-shaped unknown band, and the coarse probability."""
    rng = np.random.default_rng(seed)
    rgb = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    d = np.hypot(yy - h / 2, xx - w / 2)
    r = 0.3 * min(h, w)
    trimap = np.where(d < r, 255, 0).astype(np.uint8)
    trimap[np.abs(d - r) < 0.06 * min(h, w)] = UNKNOWN
    return rgb, trimap, (d < r).astype(np.float32)


def test_loads_offline_with_every_tensor(folders, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    model = load_vitmatte(folders["global"])
    ref = transformers.VitMatteForImageMatting.from_pretrained(str(folders["global"]))
    got, want = model.state_dict(), ref.state_dict()
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_mismatched_checkpoint_is_refused(folders, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((folders["global"] / "config.json").read_text())
    sd = load_file(str(folders["global"] / "model.safetensors"))
    sd.pop(next(k for k in sd if k.startswith("decoder.")))
    save_file(sd, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelError, match="missing_keys"):
        load_vitmatte(broken)
    with pytest.raises(ModelError, match="cannot load ViTMatte"):
        load_vitmatte(tmp_path / "nowhere")


def reference_processor():
    """transformers' own ViTMatte preprocessing (the PIL/numpy variant needs no torchvision)."""
    try:
        from transformers.models.vitmatte.image_processing_pil_vitmatte import VitMatteImageProcessorPil as Proc
    except ImportError:
        from transformers import VitMatteImageProcessor as Proc
    return Proc()


def test_inputs_match_the_reference_image_processor():
    rgb, trimap, _ = ring_scene(75, 101)
    ref = reference_processor()(images=rgb, trimaps=trimap, return_tensors="pt")["pixel_values"]
    ours = vitmatte_inputs(rgb, trimap)
    assert ours.shape == ref.shape == (1, 4, 96, 128)
    assert torch.allclose(ours, ref.float(), atol=1e-6)


def test_one_window_equals_the_reference_forward(folders):
    """Window larger than the image: one pass, identical to transformers on processor inputs."""
    rgb, trimap, coarse = ring_scene(150, 190)
    refiner = VitMatteRefiner(folders["global"], device="cpu", window=512, overlap=128)  # one 256 px tile
    alpha = refiner.refine(rgb, trimap, coarse)
    model = transformers.VitMatteForImageMatting.from_pretrained(str(folders["global"])).eval()
    x = reference_processor()(images=rgb, trimaps=trimap, return_tensors="pt")["pixel_values"].float()
    with torch.inference_mode():
        want = model(pixel_values=x).alphas[0, 0, :150, :190].numpy()
    band = trimap == UNKNOWN
    assert want[band].std() > 0.01, "degenerate test: the model output is flat"
    np.testing.assert_allclose(alpha[band], want[band], atol=1e-5)
    np.testing.assert_array_equal(alpha[~band], (trimap[~band] == 255).astype(np.float32))


@pytest.mark.parametrize("window,overlap", [(256, 64), (320, 64), (512, 128)])
def test_windowed_equals_full_pass(folders, window, overlap):
    rgb, trimap, coarse = ring_scene(512, 480)
    refiner = VitMatteRefiner(folders["local"], device="cpu", window=window, overlap=overlap)
    full = refiner.predict_window(rgb, trimap)
    alpha = refiner.refine(rgb, trimap, coarse)
    band = trimap == UNKNOWN
    assert full[band].std() > 0.01
    np.testing.assert_allclose(alpha[band], full[band], atol=2e-5)
    np.testing.assert_array_equal(alpha[~band], (trimap[~band] == 255).astype(np.float32))


def test_windowed_global_model_stays_close_to_full_pass(folders):
    """Real configs have global attention: windows are then an approximation, blended without seams."""
    rgb, trimap, coarse = ring_scene(384, 384)
    refiner = VitMatteRefiner(folders["global"], device="cpu", window=256, overlap=64)
    alpha = refiner.refine(rgb, trimap, coarse)
    band = trimap == UNKNOWN
    assert np.isfinite(alpha).all() and 0 <= alpha.min() and alpha.max() <= 1
    full = refiner.predict_window(rgb, trimap)
    assert np.abs(alpha[band] - full[band]).mean() < 0.1


def test_blend_weights_are_a_partition_of_unity():
    rng = np.random.default_rng(1)
    shape, tile, pad = (700, 530), 128, 48
    gh, gw = -(-shape[0] // tile), -(-shape[1] // tile)
    for _ in range(5):
        active = {(y, x) for y in range(gh) for x in range(gw) if rng.random() < 0.6}
        total = np.zeros(shape, np.float64)
        covered = np.zeros(shape, bool)
        for y, x in active:
            w = blend_weights(shape, tile, pad, (y, x), active)
            r0, c0 = max(0, y * tile - pad), max(0, x * tile - pad)
            total[r0:r0 + w.shape[0], c0:c0 + w.shape[1]] += w
            covered[y * tile:(y + 1) * tile, x * tile:(x + 1) * tile] = True
        np.testing.assert_allclose(total[covered], 1.0, atol=1e-6)


def test_window_must_leave_room_for_overlap(folders):
    with pytest.raises(ModelError, match="at least 4x"):
        VitMatteRefiner(folders["local"], device="cpu", window=256, overlap=96)
