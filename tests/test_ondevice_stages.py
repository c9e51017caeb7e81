"""The torch stages after segmentation (bgclear.stages.ondevice) against the numpy stages, on torch's CPU.

The same code runs on a GPU in production (benchmarks/gpu_check.py checks it there); here
each stage is compared with its numpy twin on real photos (examples/cat.png, natively and
enlarged past the working size so every resize path runs) and on a synthetic soft edge.
Tolerances: the resizes and box filters reproduce OpenCV's tables, so alpha agrees to float
rounding (max 1e-5, mean 1e-7) and a foreground colour by at most one grey level on a
rounding tie (at most 0.1% of pixels).
"""

from __future__ import annotations

import io
import logging

import cv2
import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from bgclear import Session  # noqa: E402
from bgclear.io.decode import decode  # noqa: E402
from bgclear.pipeline import matte_full_resolution, working_probability  # noqa: E402
from bgclear.stages import compose as host_compose  # noqa: E402
from bgclear.stages.foreground import estimate_foreground  # noqa: E402
from bgclear.stages.matte import GuidedRefiner  # noqa: E402
from bgclear.stages.ondevice import compose as device_compose  # noqa: E402
from bgclear.stages.ondevice import foreground, guided, resample, stages_device  # noqa: E402
from bgclear.stages.ondevice import trimap as device_trimap  # noqa: E402
from bgclear.stages.tiles import sample_at  # noqa: E402
from bgclear.stages.trimap import working_trimap  # noqa: E402
from conftest import SAMPLE, composite, soft_disc  # noqa: E402

CPU = torch.device("cpu")
ALPHA_MAX, ALPHA_MEAN = 1e-5, 1e-7
FG_LEVELS, FG_FRACTION = 1, 1e-3


def chw(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float()


@pytest.fixture(scope="module")
def session() -> Session:
    return Session()  # the default ISNet, real weights


@pytest.fixture(scope="module", params=[1.0, 5.3], ids=["cat-native", "cat-x5.3"])
def matted(request, session):
    """(rgb, work_prob, numpy alpha, coarse, trimap) of the cat photo at a scale."""
    rgb = np.ascontiguousarray(decode(SAMPLE).rgb)
    if request.param != 1.0:
        rgb = cv2.resize(rgb, None, fx=request.param, fy=request.param, interpolation=cv2.INTER_CUBIC)
    work = working_probability(rgb, session.segmenter.predict(rgb))
    alpha, coarse, trimap = matte_full_resolution(rgb, work, GuidedRefiner())
    assert 0.02 < (trimap == 128).mean() < 0.3  # a real band, not an empty comparison
    return rgb, work, alpha, coarse, trimap


@pytest.mark.parametrize("src,dst", [((300, 451), (117, 176)), ((3000, 4000), (768, 1024)),
                                     ((100, 80), (50, 40)), ((64, 64), (16, 16)), ((301, 199), (77, 51))])
def test_area_resize_is_cv2_inter_area(src, dst):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (*src, 3), dtype=np.uint8)
    got = resample.resize_area(chw(u8), dst[::-1], to_uint8=True).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, cv2.resize(u8, dst[::-1], interpolation=cv2.INTER_AREA))
    f = rng.random(src, dtype=np.float32)
    ref = cv2.resize(f, dst[::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(resample.resize_area(torch.from_numpy(f), dst[::-1]).numpy() - ref).max() <= 1e-6


@pytest.mark.parametrize("src,dst", [((117, 176), (300, 451)), ((768, 1024), (3000, 4000)),
                                     ((100, 80), (50, 40)), ((100, 80), (33, 27))])
def test_linear_and_nearest_resizes_are_cv2s(src, dst):
    rng = np.random.default_rng(1)
    f = rng.random(src, dtype=np.float32)
    size = dst[::-1]
    ref = cv2.resize(f, size, interpolation=cv2.INTER_LINEAR)
    assert np.abs(resample.resize_linear(torch.from_numpy(f), size).numpy() - ref).max() <= 1e-6
    ys, xs = np.divmod(np.arange(dst[0] * dst[1]), dst[1])
    ref = sample_at(f, size, ys, xs).reshape(dst)
    assert np.abs(resample.resize_linear(torch.from_numpy(f), size, remap=True).numpy() - ref).max() <= 1e-6
    labels = rng.integers(0, 3, src, dtype=np.uint8)
    got = resample.resize_nearest(torch.from_numpy(labels), size).numpy()
    np.testing.assert_array_equal(got, cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST))


@pytest.mark.parametrize("shape,radius", [((300, 451), 5), ((768, 1024), 51), ((20, 30), 40), ((1, 7), 3)])
def test_box_filter_is_cv2_reflect(shape, radius):
    f = np.random.default_rng(2).random((*shape, 3), dtype=np.float32)
    ref = cv2.boxFilter(f, -1, (2 * radius + 1,) * 2, normalize=True, borderType=cv2.BORDER_REFLECT)
    got = resample.box_filter(chw(f), radius).permute(1, 2, 0).numpy()
    assert np.abs(got - ref).max() <= 1e-6


def test_trimap_and_coarse_match(matted):
    rgb, work, _, coarse, trimap = matted
    h, w = rgb.shape[:2]
    small = torch.from_numpy(working_trimap(work, (w, h)))
    np.testing.assert_array_equal(device_trimap.full_trimap(small, (w, h)).numpy(), trimap)
    got = device_trimap.upsample_probability(torch.from_numpy(work), (w, h)).numpy()
    assert np.abs(got - coarse).max() <= 1e-6


def assert_alpha_close(got: np.ndarray, ref: np.ndarray) -> None:
    diff = np.abs(got - ref)
    assert diff.max() <= ALPHA_MAX and diff.mean() <= ALPHA_MEAN, (diff.max(), diff.mean())


def assert_colours_close(got: np.ndarray, ref: np.ndarray) -> None:
    diff = np.abs(got.astype(np.int16) - ref)
    assert diff.max() <= FG_LEVELS and (diff > 0).mean() <= FG_FRACTION, (diff.max(), (diff > 0).mean())


def test_guided_refinement_matches_numpy(matted):
    rgb, _, alpha, coarse, trimap = matted
    got = guided.refine(chw(rgb), torch.from_numpy(trimap), torch.from_numpy(coarse)).numpy()
    assert_alpha_close(got, alpha)


def test_foreground_matches_numpy(matted):
    rgb, _, alpha, _, _ = matted
    got = foreground.estimate_foreground(chw(rgb), torch.from_numpy(alpha)).permute(1, 2, 0).numpy()
    ref = estimate_foreground(rgb, alpha)
    assert_colours_close(got, ref)
    mixed = (alpha > 1 / 512) & (alpha < 1 - 1 / 512)
    assert (got[mixed] != rgb[mixed]).any()  # the correction really ran on the band


def test_foreground_on_a_synthetic_band():
    alpha = soft_disc(2600, 1700, soft=9.0)  # wider than the working size: the resampled passes run
    rgb = composite(alpha, noise=4.0)
    got = foreground.estimate_foreground(chw(rgb), torch.from_numpy(alpha)).permute(1, 2, 0).numpy()
    assert_colours_close(got, estimate_foreground(rgb, alpha))


@pytest.mark.parametrize("background", [None, (10, 200, 30)])
def test_compose_matches_numpy(matted, background):
    rgb, _, alpha, _, _ = matted
    fg = estimate_foreground(rgb, alpha)
    ref, _ = host_compose.compose(fg, alpha, background)
    made = device_compose.rgba if background is None else (lambda f, a: device_compose.flatten(f, a, background))
    got = made(torch.from_numpy(fg).permute(2, 0, 1), torch.from_numpy(alpha)).numpy()
    assert got.shape == ref.shape
    assert_colours_close(got, ref)


def finish_both(session: Session, prepared, **options):
    session.stages_device = None
    host = session.finish(prepared, **options)
    session.stages_device = CPU
    try:
        device = session.finish(prepared, **options)
    finally:
        session.stages_device = None
    return host, device


def decoded_png(cut) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(cut.encode("png"))))


@pytest.mark.parametrize("options", [{}, {"background": "#102030"}, {"shadow": True, "crop": True}],
                         ids=["transparent", "colour", "shadow-crop"])
def test_session_forced_onto_torch_matches_numpy(session, options):
    big = cv2.resize(np.ascontiguousarray(decode(SAMPLE).rgb), (2255, 1500), interpolation=cv2.INTER_CUBIC)
    prepared = session.prepare(big)
    host, device = finish_both(session, prepared, **options)
    assert_alpha_close(device.alpha, host.alpha)
    assert_colours_close(device.foreground, host.foreground)
    np.testing.assert_array_equal(device.trimap, host.trimap)
    assert device.crop_box == host.crop_box
    assert_colours_close(decoded_png(device), decoded_png(host))
    assert set(device.timings) >= {"trimap", "matte", "foreground", "compose"}


def test_source_alpha_multiplies_on_the_device(session):
    alpha = soft_disc(1800, 1200, soft=5.0)
    rgba = np.dstack([composite(alpha, noise=3.0), np.full(alpha.shape, 255, np.uint8)])
    rgba[:, :300, 3] = 0  # the file's own transparency on the left
    prepared = session.prepare(Image.fromarray(rgba))
    host, device = finish_both(session, prepared)
    assert device.alpha[:, :300].max() == 0
    assert_alpha_close(device.alpha, host.alpha)
    assert_colours_close(device.pixels[..., 3], host.pixels[..., 3])  # a float ulp may cross a rounding tie


def test_which_sessions_use_the_device(session, caplog):
    assert session.stages_device is None  # a CPU session keeps the numpy stages
    assert stages_device("cpu", session.segmenter, session.refiner) is None
    assert stages_device("auto", session.segmenter, session.refiner) is None  # the segmenter runs on the CPU
    with caplog.at_level(logging.WARNING, logger="bgclear"):
        chosen = stages_device("cuda", session.segmenter, session.refiner)
    if torch.cuda.is_available():
        assert chosen is not None and chosen.type == "cuda"
    else:
        assert chosen is None and "stay on the CPU" in caplog.text
    assert stages_device("cuda", session.segmenter, object()) is None  # other refiners keep numpy
