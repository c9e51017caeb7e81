import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from bgclear.io.decode import decode, sniff_format
from bgclear.errors import InputError
from conftest import encode_pil


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    data = zlib.compress(b"\x00" * 64)
    idat = struct.pack(">I", len(data)) + b"IDAT" + data + struct.pack(">I", zlib.crc32(b"IDAT" + data))
    return b"\x89PNG\r\n\x1a\n" + chunk + idat


@settings(max_examples=25, deadline=None)
@given(w=st.integers(1, 80), h=st.integers(1, 80), fmt=st.sampled_from(["PNG", "WEBP", "BMP", "TIFF"]))
def test_lossless_round_trip_keeps_pixels_and_size(w, h, fmt):
    arr = np.random.default_rng(w * 1000 + h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    kw = {"lossless": True} if fmt == "WEBP" else {}
    out = decode(encode_pil(Image.fromarray(arr), fmt, **kw))
    assert out.rgb.shape == (h, w, 3) and out.rgb.dtype == np.uint8
    np.testing.assert_array_equal(out.rgb, arr)


def test_format_is_sniffed_from_bytes_not_name(tmp_path):
    arr = np.zeros((10, 12, 3), np.uint8)
    p = tmp_path / "really_a_png.jpg"
    p.write_bytes(encode_pil(Image.fromarray(arr), "PNG"))
    assert decode(p).format == "PNG"
    assert sniff_format(b"GIF89a......") == "GIF"
    assert sniff_format(b"<html>") is None


@pytest.mark.parametrize(
    "data,code",
    [
        (b"", "empty"),
        (b"<!DOCTYPE html><html></html>", "unsupported_format"),
        (b"%PDF-1.4 stuff", "unsupported_format"),
        (b"PK\x03\x04zipzip", "unsupported_format"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "unreadable"),
    ],
)
def test_bad_bytes_raise_input_error(data, code):
    with pytest.raises(InputError) as err:
        decode(data)
    assert err.value.code == code
    assert err.value.message


def test_truncated_jpeg_is_unreadable():
    arr = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    data = encode_pil(Image.fromarray(arr), "JPEG", quality=90)
    with pytest.raises(InputError) as err:
        decode(data[: len(data) // 2])
    assert err.value.code == "unreadable"
    assert "truncated" in err.value.message or "damaged" in err.value.message


def test_decompression_bomb_refused_from_header_before_decoding():
    bomb = _png_header_only(65535, 65535)
    assert len(bomb) < 200
    with pytest.raises(InputError) as err:
        decode(bomb, max_pixels=40_000_000)
    assert err.value.code == "too_many_pixels"
    assert "65535x65535" in err.value.message


def test_pixel_cap_is_configurable():
    data = encode_pil(Image.new("RGB", (100, 100)), "PNG")
    decode(data, max_pixels=10_000)
    with pytest.raises(InputError):
        decode(data, max_pixels=9_999)


def test_exif_orientation_is_applied():
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    out = decode(encode_pil(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.rgb.shape[:2] == (40, 20)
    assert out.rgb[:20].mean() > 200 and out.rgb[20:].mean() < 50  # white half now on top


def test_bad_exif_orientation_does_not_lose_the_image():
    img = Image.new("RGB", (30, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 77
    out = decode(encode_pil(img, "JPEG", exif=exif.tobytes()))
    assert out.rgb.shape == (20, 30, 3)


def test_16bit_png_is_scaled_not_clipped():
    arr = np.linspace(0, 65535, 64 * 16).reshape(16, 64).astype(np.uint16)
    out = decode(encode_pil(Image.fromarray(arr), "PNG"))
    assert out.rgb[..., 0].max() == 255 and out.rgb[..., 0].min() == 0
    assert 100 < out.rgb[..., 0].mean() < 155


def test_palette_png_with_transparency_keeps_source_alpha():
    img = Image.new("P", (20, 10), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.paste(1, (10, 0, 20, 10))
    out = decode(encode_pil(img, "PNG", transparency=0))
    assert out.source_alpha is not None
    assert out.source_alpha[:, :10].max() == 0 and out.source_alpha[:, 10:].min() == 1


def test_greyscale_with_alpha_and_cmyk():
    la = Image.fromarray(np.dstack([np.full((8, 8), 100, np.uint8), np.full((8, 8), 128, np.uint8)]), "LA")
    out = decode(encode_pil(la, "PNG"))
    assert out.rgb.shape == (8, 8, 3) and abs(float(out.source_alpha.mean()) - 128 / 255) < 1e-3
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red
    out = decode(encode_pil(cmyk, "JPEG", quality=95))
    assert out.rgb[..., 0].mean() > 200 and out.rgb[..., 2].mean() < 60


def test_animated_gif_takes_first_frame_with_a_warning():
    frames = [Image.new("RGB", (16, 16), (i * 40, 0, 0)) for i in range(5)]
    data = encode_pil(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = decode(data)
    assert out.rgb.shape == (16, 16, 3)
    assert any("5 frames" in w for w in out.warnings)


def test_icc_profile_is_converted_to_srgb():
    img = Image.new("RGB", (8, 8), (200, 100, 50))
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))  # any non-sRGB profile
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    data = encode_pil(img, "PNG", icc_profile=srgb.tobytes())
    assert decode(data).rgb[0, 0].tolist() == [200, 100, 50]
    broken = encode_pil(img, "PNG", icc_profile=b"not a profile at all")
    out = decode(broken)
    assert out.rgb[0, 0].tolist() == [200, 100, 50]
    assert any("profile" in w for w in out.warnings)
    del lab


def test_small_image_warning_and_arrays():
    out = decode(np.zeros((100, 200, 3), np.uint8))
    assert any("small" in w and "original" in w for w in out.warnings)
    big = decode(np.zeros((10, 1200), np.uint8))
    assert big.rgb.shape == (10, 1200, 3) and not big.warnings
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0
    assert decode(rgba).source_alpha[0, 0] == 0
    with pytest.raises(InputError):
        decode(np.zeros((4, 4, 5), np.uint8))
