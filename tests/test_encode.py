import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bgclear.io.encode import encode, normalise_format
from bgclear.errors import InputError


@settings(max_examples=25, deadline=None)
@given(w=st.integers(1, 64), h=st.integers(1, 64), channels=st.sampled_from([1, 3, 4]))
def test_png_round_trip_is_exact(w, h, channels):
    shape = (h, w) if channels == 1 else (h, w, channels)
    arr = np.random.default_rng(w * 7 + h).integers(0, 256, shape, dtype=np.uint8)
    img = Image.open(io.BytesIO(encode(arr, "png")))
    assert img.size == (w, h)
    np.testing.assert_array_equal(np.asarray(img), arr)


def test_jpg_flattens_rgba_onto_white_and_webp_keeps_alpha():
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :15, 3] = 255
    jpg = Image.open(io.BytesIO(encode(rgba, "jpeg")))
    assert jpg.mode == "RGB" and jpg.size == (30, 20)
    px = np.asarray(jpg).astype(int)
    assert px[10, 25].min() > 240 and px[10, 5, 0] > 240 and px[10, 5, 1] < 20
    webp = Image.open(io.BytesIO(encode(rgba, "webp")))
    assert webp.mode == "RGBA" and np.asarray(webp)[10, 25, 3] == 0


def test_unknown_format():
    assert normalise_format(".JPG") == "jpg"
    with pytest.raises(InputError):
        normalise_format("gif")


@settings(max_examples=10, deadline=None)
@given(h=st.integers(1, 1200), threads=st.integers(1, 6))
def test_png_bytes_do_not_depend_on_the_thread_count(h, threads):
    from bgclear.io.png import encode_png

    arr = np.random.default_rng(h).integers(0, 256, (h, 17, 4), dtype=np.uint8)
    one = encode_png(arr, threads=1)
    assert encode_png(arr, threads=threads) == one
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(one))), arr)
