"""Keep / remove points and boxes through the pipeline: validation, the pure helpers, the
session's per-image cache, and the real MobileSAM on a real photo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from bgclear.errors import InputError, ModelError
from bgclear.memo import ByteBoundedCache, pixels_key
from bgclear.promptable import Prediction
from bgclear.stages.touchup import carve, check_prompts, drop_object, fuse, honoured, is_subject, ordered_clicks, subject_box
from conftest import SAMPLE


@pytest.mark.parametrize("keep,drop,box,size,message", [
    ([(math.nan, 3)], (), None, None, "keep point 1 (nan, 3.0) is not a finite number"),
    ([(1, 2, 3)], (), None, None, "keep must be a list of (x, y) pairs"),
    ([(0, 0)] * 40, [(1, 1)] * 40, None, None, "80 points given; at most 64"),
    ((), (), (10, 10, 10, 50), None, "has no area"),
    ((), [(5, 500)], None, (100, 100), "drop point 1 (5, 500) is outside the 100x100 image"),
    ([(100, 5)], (), None, (100, 100), "keep point 1 (100, 5) is outside"),
    ((), (), (200, 200, 300, 300), (100, 100), "has no area inside the 100x100 image"),
    ((), (), ("a", 1, 2, 3), None, "box must be four numbers"),
])
def test_bad_prompts_are_input_errors_naming_the_problem(keep, drop, box, size, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        check_prompts(keep, drop, box, size)
    assert info.value.code == "invalid_option"


def test_subject_box_in_source_pixels():
    prob = np.zeros((50, 100), np.float32)
    prob[10:20, 30:60] = 1.0
    box = subject_box(prob, (200, 100))  # the map covers a 200x100 source: scale 2
    assert box == (60.0, 20.0, 120.0, 40.0)
    assert subject_box(np.zeros((4, 4), np.float32), (4, 4)) is None


def test_fuse_keeps_soft_values_where_both_agree_and_only_a_sure_answer_overrules():
    auto = np.array([[0.7, 0.9, 0.2, 0.6]], np.float32)
    prompted = np.array([[0.95, 0.1, 0.1, 0.45]], np.float32)
    np.testing.assert_allclose(fuse(auto, prompted), [[0.7, 0.1, 0.2, 0.6]])


def _square(shape, rows, cols, value=1.0):
    out = np.zeros(shape, np.float32)
    out[rows, cols] = value
    return out


def test_a_remove_click_takes_the_largest_answer_that_is_not_the_subject():
    shape = (40, 100)
    subject = _square(shape, slice(5, 35), slice(5, 45))
    stray = _square(shape, slice(10, 30), slice(60, 90))  # a wrongly kept thing beside the subject
    current = np.maximum(subject, stray)
    part = _square(shape, slice(15, 25), slice(70, 80))
    whole_of_both = np.maximum(current, _square(shape, slice(0, 40), slice(45, 60)))
    at = (20, 75)
    # The decoder's three answers: a part, the stray object, and everything (the subject included).
    assert drop_object([part, stray, whole_of_both], at, current) is stray
    # An answer holding a keep click is the subject: never taken; the smallest answer is the fall-back.
    assert drop_object([part, stray, whole_of_both], at, current, kept=[(20, 65)]) is part
    # An answer lying mostly outside the cutout is not the thing that was kept by mistake.
    spread = _square(shape, slice(0, 40), slice(50, 100))
    assert drop_object([part, spread], at, current) is part
    # An answer that does not hold the click is not what was clicked.
    assert drop_object([_square(shape, slice(0, 5), slice(60, 90)), part], at, current) is part


def test_an_answer_is_the_subject_when_removing_it_would_undo_the_cutout():
    shape = (40, 100)
    subject = _square(shape, slice(5, 35), slice(5, 45))
    stray = _square(shape, slice(10, 30), slice(60, 90))
    current = np.maximum(subject, stray)
    assert not is_subject(stray, current)
    assert is_subject(stray, current, kept=[(20, 75)])  # it holds a keep click
    assert is_subject(np.maximum(subject, stray), current)  # it takes more than half the cutout


def test_carving_removes_only_the_part_at_the_click():
    shape = (40, 100)
    current = _square(shape, slice(5, 35), slice(5, 95))  # the subject with a wrong part fused to it
    at = (20, 85)
    # The decoder's cutout without the clicked part; it also redrew a far corner of the subject.
    rest = current.copy()
    rest[5:35, 75:95] = 0.0
    rest[5:10, 5:10] = 0.0
    part = carve(rest, at, current)
    assert part is not None and part[at] == 1.0 and part[20, 80] == 1.0
    assert part[7, 7] == 0.0 and part[20, 40] == 0.0  # the far change is not what was asked
    assert carve(current, at, current) is None  # the answer keeps the clicked pixel
    most = current.copy()
    most[5:35, 20:95] = 0.0
    assert carve(most, at, current) is None  # it would take most of the cutout away
    assert carve(rest, at, current, kept=[(20, 90)]) is None  # the part holds a keep click


def test_clicks_keep_their_order_and_a_wrong_order_is_refused():
    keep, drop = [(1, 1), (2, 2)], [(9, 9)]
    assert ordered_clicks(keep, drop) == [((1, 1), True), ((2, 2), True), ((9, 9), False)]
    assert ordered_clicks(keep, drop, [True, False, True]) == [((1, 1), True), ((9, 9), False), ((2, 2), True)]
    with pytest.raises(ValueError, match="order names 1 keep and 2 remove clicks; there are 2 and 1"):
        ordered_clicks(keep, drop, [True, False, False])
    prob = _square((10, 10), slice(0, 5), slice(0, 10))  # top half in, over a 100x100 source
    assert honoured(prob, (100, 100), [((50, 20), True), ((50, 80), False), ((50, 90), True)]) == 2


def test_cached_decoder_answers_count_their_arrays():
    cache = ByteBoundedCache(10_000)
    answer = Prediction(np.zeros((10, 10), np.float32), 0.9, np.zeros((5, 5), np.float32))
    cache.put("k", "answers", [answer, answer])
    assert cache.nbytes == 2 * (400 + 100)


def test_byte_bounded_cache_evicts_least_recently_used():
    cache = ByteBoundedCache(3 * 400)
    for i in range(3):
        cache.put(f"k{i}", "p", np.zeros(100, np.float32))
    assert cache.get("k0", "p") is not None  # k0 now most recent
    cache.put("k3", "p", np.zeros(100, np.float32))
    assert cache.get("k1", "p") is None and cache.get("k0", "p") is not None and len(cache) == 3
    cache.put("big", "p", np.zeros(10_000, np.float32))  # larger than the whole cache: not kept
    assert cache.get("big", "p") is None and cache.nbytes == 1200
    assert pixels_key(np.zeros((2, 2), np.uint8)) != pixels_key(np.zeros((2, 3), np.uint8))
    assert pixels_key(np.ones((2, 2), np.uint8)) == pixels_key(np.ones((2, 2), np.uint8))


@pytest.fixture(scope="module")
def session():
    from bgclear import Session

    s = Session(segmenter="u2netp")
    try:
        s.promptable
    except ModelError as exc:
        pytest.skip(str(exc))
    return s


@pytest.fixture(scope="module")
def two_cats() -> np.ndarray:
    """A real photo beside its mirror image: two subjects, the automatic cutout keeps both."""
    cat = np.asarray(Image.open(SAMPLE).convert("RGB"))
    return np.ascontiguousarray(np.hstack([cat, cat[:, ::-1]]))


def test_a_remove_click_takes_one_subject_out_and_leaves_the_other(session, two_cats):
    w = two_cats.shape[1] // 2
    auto = session.remove(two_cats).alpha
    assert auto[:, :w].mean() > 0.5 and auto[:, w:].mean() > 0.5
    after = session.remove(two_cats, drop=[(w + w // 2, 150)])
    assert after.alpha.shape == auto.shape  # full resolution
    assert after.alpha[:, w:].mean() < 0.5 * auto[:, w:].mean()
    assert after.alpha[:, :w].mean() > 0.9 * auto[:, :w].mean()
    assert after.alpha[150, w + w // 2] < 0.5


def test_a_second_click_on_the_same_photo_reuses_both_encoders(session, two_cats):
    session.cache.clear()
    first = session.remove(two_cats, drop=[(700, 150)])
    assert "segment" in first.timings and "embed" in first.timings
    again = session.remove(two_cats.copy(), drop=[(700, 150)], keep=[(200, 150)])
    assert "segment" not in again.timings and "embed" not in again.timings and "prompts" in again.timings


def test_prompts_are_checked_before_any_model_runs(session, two_cats):
    session.cache.clear()
    with pytest.raises(InputError, match="outside the 902x300 image"):
        session.remove(two_cats, keep=[(5000, 10)])
    key = pixels_key(two_cats)
    assert session.cache.get(key, "probability") is not None  # the automatic segmentation ran
    assert session.cache.get(key, "embedding") is None  # the encoder did not
    with pytest.raises(InputError, match="no area"):
        session.remove(two_cats, box=(10, 10, 10, 200))


def test_without_the_promptable_weights_the_error_says_how_to_fetch_them(tmp_path, monkeypatch):
    from bgclear.promptable import PromptableSegmenter

    monkeypatch.setenv("BGCLEAR_HOME", str(tmp_path))  # an empty model cache
    with pytest.raises(ModelError, match="bgclear models pull mobilesam"):
        PromptableSegmenter("mobilesam")


def test_cache_entries_unused_for_longer_than_max_age_are_dropped():
    import time

    cache = ByteBoundedCache(10_000, max_age=0.2)
    cache.put("a", "p", np.zeros(10, np.float32))
    assert cache.get("a", "p") is not None
    time.sleep(0.3)
    assert cache.get("a", "p") is None and cache.nbytes == 0 and len(cache) == 0


def test_a_plain_cutout_keeps_nothing_about_the_image(session, two_cats):
    session.cache.clear()
    session.remove(two_cats)
    assert len(session.cache) == 0


def test_second_opinion_checks_the_automatic_cutout_without_clicks(session, two_cats):
    from bgclear import Session

    checked = Session(segmenter="u2netp", second_opinion=True)
    plain = session.remove(two_cats)
    second = checked.remove(two_cats)
    assert "embed" in second.timings and "prompts" in second.timings and "embed" not in plain.timings
    assert second.alpha.shape == plain.alpha.shape
    # Both cats are subjects: a second opinion must not take either away.
    w = two_cats.shape[1] // 2
    assert second.alpha[:, :w].mean() > 0.8 * plain.alpha[:, :w].mean()
    assert second.alpha[:, w:].mean() > 0.8 * plain.alpha[:, w:].mean()


def test_with_the_second_opinion_clicks_start_from_the_cutout_the_user_saw(session):
    from bgclear import Session
    from bgclear.stages.touchup import touch_up

    checked = Session(segmenter="u2netp", second_opinion=True)
    cat = np.asarray(Image.open(SAMPLE).convert("RGB"))
    plain_prep, prep = session.prepare(cat, reuse=True), checked.prepare(cat, reuse=True)
    seen = checked.probability(prep)
    assert ((seen >= 0.5) != (session.probability(plain_prep) >= 0.5)).any()  # the second opinion changed something
    clicked = checked.probability(prep, drop=[(5, 5)])
    expected = touch_up(checked.promptable, checked.embedding(prep), seen, drop=[(5, 5)])
    np.testing.assert_array_equal(clicked, expected)


def test_a_click_with_the_second_opinion_runs_the_encoder_once_even_without_a_cache(session):
    from bgclear import Session

    checked = Session(segmenter="u2netp", second_opinion=True, cache_bytes=0)
    prep = checked.prepare(np.asarray(Image.open(SAMPLE).convert("RGB")), reuse=True)
    assert prep.key == ""  # nothing can be kept between the second opinion and the click
    real, calls = checked.promptable.embed, []
    checked.promptable.embed = lambda rgb: calls.append(1) or real(rgb)  # counts, and runs the real encoder
    checked.probability(prep, drop=[(5, 5)])
    assert len(calls) == 1


def test_cli_second_opinion_flag(session, tmp_path):  # session: skips without the MobileSAM weights
    import subprocess
    import sys

    out = tmp_path / "cut.png"
    r = subprocess.run([sys.executable, "-m", "bgclear.cli", "remove", str(SAMPLE), "-o", str(out), "--segmenter", "u2netp",
                        "--second-opinion"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == Image.open(SAMPLE).size
