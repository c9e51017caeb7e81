"""Real HEIC, AVIF and TIFF files for the tests, and an ICC profile that is not sRGB.

HEIC is written by pillow-heif (libheif + x265), AVIF by Pillow's own plugin
(libavif), without registering anything with Pillow. Not a conftest: the test
modules and the hostile corpus import what they use.
"""

from __future__ import annotations

import io
import struct

from PIL import Image

#: sRGB's colorants, adapted to the D50 profile connection space (as in sRGB profiles).
SRGB_D50 = {"r": (0.4361, 0.2225, 0.0139), "g": (0.3851, 0.7169, 0.0971), "b": (0.1431, 0.0606, 0.7141)}
D50 = (0.9642, 1.0, 0.8249)


def heic(img: Image.Image, *, quality: int = 95, more: list[Image.Image] | None = None, primary: int = 0,
         **save: object) -> bytes:
    """``img`` (and ``more`` images in the same file, ``primary`` the primary one's index) as HEIC."""
    import pillow_heif

    heif = pillow_heif.from_pillow(img)
    for extra in more or []:
        heif.add_from_pillow(extra)
    buf = io.BytesIO()
    heif.save(buf, quality=quality, chroma=444, primary_index=primary, **save)
    return buf.getvalue()


def avif(img: Image.Image, *, quality: int = 95, **save: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "AVIF", quality=quality, subsampling="4:4:4", **save)
    return _without_times(buf.getvalue())


def _without_times(data: bytes) -> bytes:
    """An image sequence's movie, track and media headers stamp the time of writing:
    zero them, so that the same pixels always give the same bytes."""
    buf = bytearray(data)
    for kind in (b"mvhd", b"tkhd", b"mdhd"):
        i = buf.find(kind)
        while i >= 0:
            width = 8 if buf[i + 4] == 1 else 4  # version 1: 64-bit times
            buf[i + 8:i + 8 + 2 * width] = bytes(2 * width)
            i = buf.find(kind, i + 4)
    return bytes(buf)


def encode(img: Image.Image, fmt: str, **save: object) -> bytes:
    """Any format by name: HEIC, AVIF, or what Pillow writes."""
    if fmt in ("HEIC", "HEIF"):
        return heic(img, **save)  # type: ignore[arg-type]
    if fmt == "AVIF":
        return avif(img, **save)  # type: ignore[arg-type]
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def patch_ispe(data: bytes, w: int, h: int) -> bytes:
    """A HEIC/AVIF whose every 'ispe' (image spatial extent) property claims w x h."""
    buf = bytearray(data)
    i = buf.find(b"ispe")
    while i >= 0:
        buf[i + 8:i + 16] = struct.pack(">II", w, h)
        i = buf.find(b"ispe", i + 4)
    return bytes(buf)


def exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(values: tuple[float, float, float]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in values)


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(4 + 4 + 2 + 1 + 67)


def rgb_profile(description: str, colorants: dict[str, tuple[float, float, float]], gamma: float = 2.2) -> bytes:
    """A matrix/TRC display profile (ICC v2) with the given D50 colorants and a pure gamma."""
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    tags = [(b"desc", _desc(description)), (b"wtpt", _xyz(D50)), (b"cprt", b"text" + bytes(4) + b"none\0\0\0\0"),
            (b"rXYZ", _xyz(colorants["r"])), (b"gXYZ", _xyz(colorants["g"])), (b"bXYZ", _xyz(colorants["b"])),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ " + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
              + b"acsp" + b"APPL" + bytes(4) + bytes(8) + bytes(8) + bytes(4) + b"".join(_s15(v) for v in D50)
              + b"lcms" + bytes(16) + bytes(28))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def swapped_profile() -> bytes:
    """Red and blue primaries exchanged: a file's pure red is, in this profile, sRGB's pure blue.
    An unmistakable test that a decoder applies the profile rather than ignoring it."""
    return rgb_profile("bgclear test: red and blue exchanged", {"r": SRGB_D50["b"], "g": SRGB_D50["g"], "b": SRGB_D50["r"]})
