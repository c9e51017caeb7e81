"""The layout and backdrop stage (bgclear.stages.backdrop) on small synthetic arrays."""

from __future__ import annotations

import numpy as np

from bgclear.stages.backdrop import fit_cover, over, place, restrict_to_box, without_semitransparency


def test_restrict_to_box() -> None:
    alpha = np.ones((10, 20), np.float32)
    out = restrict_to_box(alpha, (5, 2, 15, 8))
    assert out.sum() == 10 * 6 and out[2:8, 5:15].min() == 1 and alpha.min() == 1


def test_without_semitransparency_fills_the_subject_and_keeps_its_rim() -> None:
    alpha = np.zeros((100, 100), np.float32)
    alpha[20:80, 20:80] = 1.0
    alpha[40:60, 40:60] = 0.3  # a see-through window inside the subject
    alpha[20:80, 19] = 0.5  # an anti-aliased rim
    alpha[20:80, 80] = 0.4
    alpha[2:8, 2:8] = 0.2  # a faint smudge away from the subject
    out = without_semitransparency(alpha, edge=2.0)
    assert out[40:60, 40:60].min() == 1.0  # the window is solid
    assert out[50, 19] == 0.5 and out[50, 80] == np.float32(0.4)  # the rim is untouched
    assert out[2:8, 2:8].max() == 0.0 and out[0:15].max() == 0.0
    assert alpha[50, 50] == np.float32(0.3)  # the input is left alone


def test_fit_cover_scales_to_cover_and_centres() -> None:
    image = np.zeros((40, 20, 3), np.uint8)  # portrait: top half 100, bottom half 200
    image[:20] = 100
    image[20:] = 200
    out = fit_cover(image, (60, 30))  # x3 to cover the width; 120 rows, the middle 30 kept
    assert out.shape == (30, 60, 3)
    assert out[0, 0, 0] == 100 and out[-1, -1, 0] == 200 and out[10, 30, 0] == 100 and out[20, 30, 0] == 200
    assert fit_cover(image, (20, 40)) is image


def test_place_offsets_scales_and_clips() -> None:
    colour = np.full((10, 10, 3), 50, np.uint8)
    coverage = np.ones((10, 10), np.float32)
    c, a = place(colour, coverage, (30, 20), 1.0, (-5, 15))
    assert a.shape == (20, 30) and a.sum() == 5 * 5 and a[15:20, 0:5].min() == 1 and c[17, 2, 0] == 50
    c, a = place(colour, coverage, (30, 20), 2.0, (5, 0))
    assert a.sum() == 20 * 20 and a[0:20, 5:25].min() == 1
    _, a = place(colour, coverage, (30, 20), 1.0, (40, 40))
    assert a.sum() == 0


def test_over_colour_photo_and_transparent() -> None:
    colour = np.full((2, 2, 3), 200, np.uint8)
    coverage = np.array([[1.0, 0.5], [0.0, 0.25]], np.float32)
    rgba = over(colour, coverage, None)
    assert rgba.shape == (2, 2, 4) and list(rgba[..., 3].ravel()) == [255, 128, 0, 64]
    rgb = over(colour, coverage, np.zeros((2, 2, 3), np.uint8))
    assert rgb.shape == (2, 2, 3) and list(rgb[..., 0].ravel()) == [200, 100, 0, 50]
    half = np.zeros((2, 2, 4), np.uint8)
    half[..., 3] = 128  # a semi-transparent black backdrop
    out = over(colour, coverage, half)
    assert out.shape == (2, 2, 4)
    assert out[1, 0, 3] == 128 and out[1, 0, 0] == 0  # only the backdrop
    assert out[0, 0, 3] == 255 and out[0, 0, 0] == 200  # only the subject
    a = 0.5 + 0.5 * 128 / 255  # half and half: alpha adds up, colour is the weighted mean
    assert abs(out[0, 1, 3] - a * 255) <= 1 and abs(out[0, 1, 0] - 200 * 0.5 / a) <= 1
    opaque = np.full((2, 2, 4), 255, np.uint8)
    assert over(colour, coverage, opaque).shape == (2, 2, 3)


def test_place_returns_the_layer_itself_when_nothing_moves() -> None:
    colour = np.zeros((4, 6, 3), np.uint8)
    coverage = np.ones((4, 6), np.float32)
    c, a = place(colour, coverage, (6, 4), 1.0, (0.2, -0.3))
    assert c is colour and a is coverage
