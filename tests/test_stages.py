"""Each pipeline stage on synthetic images with known alpha."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgclear.stages.compose import Shadow, compose, parse_color, parse_margin, subject_box
from bgclear.errors import InputError
from bgclear.stages.foreground import estimate_foreground
from bgclear.stages.matte import ClosedFormRefiner, ColourLineRefiner, GuidedRefiner, guided_filter
from bgclear.stages.segment import upsample_probability
from bgclear.stages.tiles import band_tiles
from bgclear.stages.trimap import BACKGROUND, FOREGROUND, UNKNOWN, band_radius, make_trimap
from conftest import composite, soft_disc


def test_band_radius_scales_with_image():
    assert band_radius(6000, 4000) == 6 * band_radius(1000, 600)
    assert band_radius(10, 10) >= 3


def test_trimap_band_around_edge_and_grey_interior_decided():
    h, w = 400, 400
    prob = soft_disc(w, h, soft=2)
    prob[180:220, 180:220] = 0.7  # unsure interior far from the edge
    tri = make_trimap(prob, radius=8)
    assert set(np.unique(tri)) == {BACKGROUND, UNKNOWN, FOREGROUND}
    assert tri[200, 200] == FOREGROUND  # grey interior decided by 0.5, not left unknown
    assert tri[0, 0] == BACKGROUND
    edge_x = int(w / 2 + 0.3 * w)
    assert tri[200, edge_x] == UNKNOWN
    width = int((tri[200] == UNKNOWN).sum())
    assert 2 * 2 * 8 - 4 <= width <= 2 * 2 * 8 + 6  # two crossings of a ~2r band


def test_tiles_cover_every_masked_pixel_once():
    rng = np.random.default_rng(0)
    mask = rng.random((700, 900)) > 0.995
    seen = np.zeros(mask.shape, np.int32)
    for orows, ocols, irows, icols in band_tiles(mask, tile=128, pad=10):
        rows = slice(orows.start + irows.start, orows.start + irows.stop)
        cols = slice(ocols.start + icols.start, ocols.start + icols.stop)
        seen[rows, cols] += 1
    assert seen[mask].min() == 1 and seen.max() == 1


def _sad(a, b):
    return float(np.abs(a - b).sum())


@pytest.mark.parametrize(
    "refiner,max_ratio", [(GuidedRefiner(), 0.7), (ClosedFormRefiner(), 0.3), (ColourLineRefiner(), 0.3)]
)
def test_refiner_recovers_edge_better_than_blurry_coarse(refiner, max_ratio):
    h, w = 300, 400
    gt = soft_disc(w, h, soft=3)
    img = composite(gt, noise=2)
    # A coarse mask as a low-resolution segmenter gives it: right place, smeared edge.
    small = upsample_probability(gt, (w // 4, h // 4))
    coarse = upsample_probability(small, (w, h))
    tri = make_trimap(coarse)
    alpha = refiner.refine(img, tri, coarse)
    assert alpha.shape == gt.shape and alpha.dtype == np.float32
    assert alpha.min() >= 0 and alpha.max() <= 1
    assert np.all(alpha[tri == FOREGROUND] == 1) and np.all(alpha[tri == BACKGROUND] == 0)
    assert _sad(alpha, gt) < max_ratio * _sad(coarse, gt)


def test_guided_filter_preserves_constant_and_follows_edges():
    guide = np.zeros((50, 60, 3), np.float32)
    guide[:, 30:] = 1.0
    src = np.full((50, 60), 0.3, np.float32)
    np.testing.assert_allclose(guided_filter(guide, src, 4, 1e-3), 0.3, atol=1e-4)
    step = (guide[..., 0] > 0.5).astype(np.float32)
    blurred = np.clip(step + np.random.default_rng(0).normal(0, 0.05, step.shape), 0, 1).astype(np.float32)
    out = guided_filter(guide, blurred, 4, 1e-4)
    assert abs(out[:, 25].mean()) < 0.05 and abs(out[:, 35].mean() - 1) < 0.05


def test_foreground_estimation_removes_old_background_colour():
    h, w = 200, 300
    ramp = np.clip((np.arange(w, dtype=np.float32) - 140) / 16, 0, 1)  # soft edge 16 px wide
    alpha = np.tile(ramp, (h, 1))
    img = composite(alpha, fg=(230, 200, 40), bg=(20, 40, 220))
    fg = estimate_foreground(img, alpha)
    band = (alpha > 0.2) & (alpha < 0.8)
    observed_blue = img[band][:, 2].mean()
    estimated_blue = fg[band][:, 2].astype(float).mean()
    assert estimated_blue < 0.6 * observed_blue  # true foreground blue is 40, observed ~130
    assert fg[band][:, 0].astype(float).mean() > img[band][:, 0].astype(float).mean() + 40  # red moves towards 230
    np.testing.assert_array_equal(fg[alpha >= 1], img[alpha >= 1])


def test_parse_color():
    assert parse_color("#ff8000") == (255, 128, 0)
    assert parse_color("f80") == (255, 136, 0)
    assert parse_color("White") == (255, 255, 255)
    assert parse_color("transparent") is None and parse_color(None) is None
    for bad in ("#12345", "chartreuse-ish", (1, 2), (0, 0, 300)):
        with pytest.raises(InputError):
            parse_color(bad)


def test_compose_background_shadow_and_crop():
    h, w = 200, 300
    alpha = np.zeros((h, w), np.float32)
    alpha[50:100, 100:150] = 1
    fg = np.full((h, w, 3), 200, np.uint8)
    rgba, box = compose(fg, alpha)
    assert rgba.shape == (h, w, 4) and box is None
    flat, _ = compose(fg, alpha, background=(0, 0, 255))
    assert flat.shape == (h, w, 3) and flat[0, 0].tolist() == [0, 0, 255] and flat[75, 125].tolist() == [200, 200, 200]
    shadowed, _ = compose(fg, alpha, shadow=Shadow(opacity=0.15))
    below = shadowed[108, 130]
    assert 0 < below[3] <= 0.15 * 255 + 1 and below[:3].tolist() == [0, 0, 0]
    assert shadowed[75, 125, 3] == 255 and shadowed[75, 125, :3].tolist() == [200, 200, 200]
    cropped, box = compose(fg, alpha, crop=True, crop_margin=10)
    assert box == (90, 40, 160, 110) and cropped.shape == (70, 70, 4)
    assert parse_margin("10%", (0, 0, 50, 100)) == 10
    with pytest.raises(InputError):
        Shadow(opacity=2)
    assert subject_box(np.zeros((5, 5), np.float32)) is None


@settings(max_examples=20, deadline=None)
@given(w=st.integers(2, 120), h=st.integers(2, 120), tw=st.integers(1, 300), th=st.integers(1, 300))
def test_upsample_probability_geometry(w, h, tw, th):
    prob = np.random.default_rng(w * h).random((h, w)).astype(np.float32)
    out = upsample_probability(prob, (tw, th))
    assert out.shape == (th, tw) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1


def test_sample_at_matches_a_full_resize_without_building_it():
    import cv2

    from bgclear.stages.tiles import sample_at, upsample_region

    low = np.random.default_rng(0).random((40, 60, 6)).astype(np.float32)
    full = (3000, 2000)
    ref = np.dstack([cv2.resize(low[..., :3], full), cv2.resize(low[..., 3:], full)])
    rng = np.random.default_rng(1)
    ys, xs = rng.integers(0, 2000, 50_000), rng.integers(0, 3000, 50_000)  # more than remap's 32767 limit
    # remap interpolates on a 1/32 px grid: for random (not smooth) maps that is up to 1/32 of a neighbour step
    np.testing.assert_allclose(sample_at(low, full, ys, xs), ref[ys, xs], atol=1 / 32 + 1e-3)
    region = upsample_region(low[..., :4], full, slice(100, 300), slice(50, 400))
    np.testing.assert_allclose(region, cv2.resize(low[..., :4], full)[100:300, 50:400], atol=1e-4)


def test_prefer_small_pages_turns_numpy_huge_page_advice_off_unless_the_user_chose(monkeypatch):
    import subprocess
    import sys

    code = ("import numpy, bgclear.process as p; from numpy._core.multiarray import _set_madvise_hugepage as s; "
            "changed = p.prefer_small_pages(); print(changed, s(True))")  # s() returns the previous setting
    env = {k: v for k, v in __import__("os").environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]
    out = subprocess.run([sys.executable, "-c", code], env={**env, "NUMPY_MADVISE_HUGEPAGE": "1"},
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_enlarging_for_the_model_keeps_a_hard_edge_hard():
    """Photos under the model's size are enlarged; the outline the network sees must stay
    sharp (a soft one gives a grey mask), and shrinking must not alias."""
    from bgclear.stages.segment import resize_for_model

    small = np.zeros((200, 300, 3), np.uint8)
    small[:, 150:] = 255
    big = resize_for_model(small, (1024, 1024)).astype(int)[512, :, 0]
    ramp = np.count_nonzero((big > 12) & (big < 243))
    assert ramp <= 3, ramp  # Lanczos: 2 px; bilinear spreads it over 4
    stripes = np.zeros((2000, 2000, 3), np.uint8)
    stripes[:, ::2] = 255
    shrunk = resize_for_model(stripes, (1000, 1000)).astype(int)
    assert np.abs(shrunk - 127).max() <= 1  # each output pixel averages one black and one white column


def test_release_free_memory_gives_freed_heap_back():
    from bgclear.process import release_free_memory

    if not release_free_memory():
        pytest.skip("no glibc malloc_trim here")
    held = [bytearray(100_000) for _ in range(2000)]  # ~200 MB of medium blocks: heap, not mmap
    del held[::2]
    before = _rss_mb()
    release_free_memory()
    assert _rss_mb() < before - 50, (before, _rss_mb())
    del held


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_settle_histogram_smoothing_equals_scipy_gaussian_filter():
    from scipy.ndimage import gaussian_filter

    from bgclear.stages.settle import smooth_histogram

    rng = np.random.default_rng(5)
    for shape, sigma in [((16, 16, 16), 1.0), ((8, 12, 5), 0.7), ((32, 32, 32), 2.0)]:
        hist = rng.poisson(3.0, shape).astype(np.float64)
        np.testing.assert_allclose(smooth_histogram(hist, sigma), gaussian_filter(hist, sigma, mode="constant"), rtol=1e-10, atol=1e-12)
