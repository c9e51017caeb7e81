"""A generated corpus of hostile, broken and odd image files (issue 5).

``build_corpus()`` returns ~1,500 distinct :class:`Case` objects, deterministically
(every random choice comes from a seeded ``random.Random``), built from real
seed images: ``examples/cat.png`` and images synthesised here with Pillow/numpy.

Each case has a ``name`` (unique, stable: ``category/detail``), the file ``data``
and an ``expect`` class:

* ``"ok"``: must produce a correct cutout (RGBA, the size of the decoded source);
* ``"refuse"``: must raise :class:`bgclear.errors.InputError`;
* ``"either"``: a cutout or an ``InputError``, nothing else.

``code`` optionally names the InputError code a refusal must carry.
``heavy`` marks cases that are slow to process in full (tens of megapixels).

Nothing here touches the network or ../shared; importable by tests and scripts::

    from hostile_corpus import build_corpus
    cases = build_corpus()
"""

from __future__ import annotations

import functools
import io
import random
import shutil
import struct
import subprocess
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

REPO = Path(__file__).resolve().parent.parent
CAT = REPO / "examples" / "cat.png"
SEED = 20261127


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: str  # "ok" | "refuse" | "either"
    code: str | None = None  # the InputError code a refusal must carry, when known
    heavy: bool = False

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]


# ---------------------------------------------------------------- seed images --

def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@functools.lru_cache(maxsize=None)
def _cat(edge: int = 160) -> Image.Image:
    img = Image.open(CAT).convert("RGB")
    img.thumbnail((edge, edge))
    return img


def _synthetic(w: int = 96, h: int = 72, seed: int = 1) -> Image.Image:
    """A disc on a gradient with noise: a subject and a background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = np.dstack([40 + 100 * xx / w, 120 + 0 * yy, 200 - 80 * yy / h])
    inside = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) <= (0.3 * min(w, h)) ** 2
    bg[inside] = (230, 80, 40)
    bg += rng.normal(0, 4, bg.shape)
    return Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _raw_png(w: int, h: int, depth: int, colour: int, rows: bytes | None = None, extra: list[bytes] | None = None,
             ihdr: tuple[int, int] | None = None, idat: bytes | None = None) -> bytes:
    """A PNG written by hand: any bit depth/colour type, optionally lying about its size."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row_bytes = (w * channels * depth + 7) // 8
    if rows is None:
        rng = np.random.default_rng(w * 7 + h + depth + colour)
        rows = b"".join(b"\x00" + rng.integers(0, 256, row_bytes, dtype=np.uint8).tobytes() for _ in range(h))
    iw, ih = ihdr or (w, h)
    out = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", iw, ih, depth, colour, 0, 0, 0))
    for chunk in extra or []:
        out += chunk
    out += _png_chunk(b"IDAT", idat if idat is not None else zlib.compress(rows))
    return out + _png_chunk(b"IEND", b"")


@functools.lru_cache(maxsize=None)
def seeds() -> dict[str, bytes]:
    """Valid files of every accepted container, used as the base of mutations."""
    cat, syn = _cat(), _synthetic()
    rgba = syn.convert("RGBA")
    a = np.asarray(rgba).copy()
    a[..., 3] = np.linspace(0, 255, a.shape[1], dtype=np.uint8)[None, :]
    rgba = Image.fromarray(a)
    return {
        "png": _save(cat, "PNG"),
        "png_rgba": _save(rgba, "PNG"),
        "jpeg": _save(cat, "JPEG", quality=90),
        "jpeg_progressive": _save(cat, "JPEG", quality=80, progressive=True),
        "webp": _save(cat, "WEBP", quality=80),
        "webp_lossless": _save(rgba, "WEBP", lossless=True),
        "gif": _save(syn.convert("P", palette=Image.Palette.ADAPTIVE), "GIF"),
        "tiff": _save(syn, "TIFF", compression="tiff_lzw"),
        "bmp": _save(syn, "BMP"),
    }


# ---------------------------------------------------------------- mutations --

def _truncations(rng: random.Random, name: str, data: bytes, n: int) -> list[Case]:
    n_bytes = len(data)
    offsets = {0, 1, 2, 3, 4, 7, 8, 11, 12, 16, 20, 24, 29, 33, 40, 64, 100, n_bytes // 2, n_bytes - 1, n_bytes - 2,
               n_bytes - 12}
    while len(offsets) < n:
        offsets.add(rng.randrange(1, n_bytes))
    cases = []
    for off in sorted(o for o in offsets if 0 <= o < n_bytes):
        # The first few bytes cannot hold any image header at all.
        expect = "refuse" if off < 12 else "either"
        cases.append(Case(f"truncate/{name}@{off}", data[:off], expect))
    return cases


def _bitflips(rng: random.Random, name: str, data: bytes, n: int) -> list[Case]:
    cases, seen = [], set()
    while len(cases) < n:
        buf = bytearray(data)
        in_header = len(cases) % 2 == 0
        span = min(len(buf), 128) if in_header else len(buf)
        flips = tuple(sorted((rng.randrange(span), rng.randrange(8)) for _ in range(rng.choice((1, 1, 2, 4, 8)))))
        if flips in seen:
            continue
        seen.add(flips)
        for pos, bit in flips:
            buf[pos] ^= 1 << bit
        if bytes(buf) == data:
            continue
        where = "head" if in_header else "any"
        cases.append(Case(f"bitflip/{name}/{where}/" + "-".join(f"{p}.{b}" for p, b in flips), bytes(buf), "either"))
    return cases


def _ranges(rng: random.Random, name: str, data: bytes, n: int) -> list[Case]:
    cases = []
    fills = ("zero", "ff", "random", "repeat")
    for i in range(n):
        buf = bytearray(data)
        start = rng.randrange(0, min(len(buf), 64)) if i % 3 == 0 else rng.randrange(len(buf))
        length = min(len(buf) - start, rng.choice((2, 4, 16, 64, 512, 4096)))
        fill = fills[i % len(fills)]
        if fill == "zero":
            chunk = bytes(length)
        elif fill == "ff":
            chunk = b"\xff" * length
        elif fill == "random":
            chunk = bytes(rng.randrange(256) for _ in range(length))
        else:
            src = rng.randrange(len(buf))
            chunk = (bytes(buf[src:src + 8]) or b"\x00") * (length // 8 + 1)
            chunk = chunk[:length]
        buf[start:start + length] = chunk
        cases.append(Case(f"corrupt/{name}/{fill}@{start}+{length}", bytes(buf), "either"))
    return cases


# ---------------------------------------------------------------- lying headers --

def _patch_jpeg_size(data: bytes, w: int, h: int) -> bytes:
    buf = bytearray(data)
    i = 2
    while i < len(buf) - 9:
        if buf[i] != 0xFF:
            i += 1
            continue
        marker = buf[i + 1]
        seg = struct.unpack(">H", buf[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC9, 0xCA):
            buf[i + 5:i + 9] = struct.pack(">HH", h, w)
            return bytes(buf)
        i += 2 + seg
    raise ValueError("no SOF")


def _patch_png_size(data: bytes, w: int, h: int, fix_crc: bool) -> bytes:
    buf = bytearray(data)
    buf[16:24] = struct.pack(">II", w, h)
    if fix_crc:
        buf[29:33] = struct.pack(">I", zlib.crc32(bytes(buf[12:29])) & 0xFFFFFFFF)
    return bytes(buf)


def _webp_vp8x(w: int, h: int, payload: bytes = b"") -> bytes:
    """A VP8X (extended) WebP whose canvas claims w x h over a tiny or missing bitstream."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _webp_vp8l_size(data: bytes, w: int, h: int) -> bytes:
    """Patch a lossless WebP's 14-bit dimensions (max 16384)."""
    buf = bytearray(data)
    i = buf.find(b"VP8L")
    bits = struct.unpack("<I", buf[i + 9:i + 13])[0]
    bits = (bits & ~0x0FFFFFFF) | ((w - 1) & 0x3FFF) | (((h - 1) & 0x3FFF) << 14)
    buf[i + 9:i + 13] = struct.pack("<I", bits)
    return bytes(buf)


def _webp_vp8_size(data: bytes, w: int, h: int) -> bytes:
    """Patch a lossy WebP's 14-bit dimensions."""
    buf = bytearray(data)
    i = buf.find(b"VP8 ")
    if i < 0:
        raise ValueError("not a simple lossy WebP")
    # chunk header (8) + frame tag (3) + start code (3) -> width, height (LE16, 14 bits + 2 scale bits)
    buf[i + 14:i + 18] = struct.pack("<HH", w & 0x3FFF, h & 0x3FFF)
    return bytes(buf)


def _gif_size(data: bytes, w: int, h: int, frame_too: bool) -> bytes:
    buf = bytearray(data)
    buf[6:10] = struct.pack("<HH", w, h)
    if frame_too:
        i = buf.find(b"\x2c", 13 + 3 * 256 if buf[10] & 0x80 else 13)
        if i > 0:
            buf[i + 5:i + 9] = struct.pack("<HH", w, h)
    return bytes(buf)


def _bmp_size(data: bytes, w: int, h: int) -> bytes:
    buf = bytearray(data)
    buf[18:26] = struct.pack("<ii", w, h)
    return bytes(buf)


def _tiff_size(w: int, h: int) -> bytes:
    """A one-strip TIFF claiming w x h with 16 bytes of pixel data."""
    img = Image.new("L", (4, 4), 128)
    data = bytearray(_save(img, "TIFF"))
    # Rewrite tags 256/257 (ImageWidth/ImageLength) in the first IFD.
    ifd = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[ifd:ifd + 2])[0]
    for k in range(count):
        e = ifd + 2 + 12 * k
        tag, typ = struct.unpack("<HH", data[e:e + 4])
        if tag in (256, 257):
            value = w if tag == 256 else h
            data[e + 2:e + 4] = struct.pack("<H", 4)  # LONG
            data[e + 8:e + 12] = struct.pack("<I", value)
    return bytes(data)


def _bombs() -> list[Case]:
    cases: list[Case] = []
    s = seeds()
    sizes = [(65535, 65535), (65535, 1000), (1000, 65535), (40000, 40000), (8000, 8000), (7000, 6000)]
    for w, h in sizes:
        tag = f"{w}x{h}"
        over = w * h > 40_000_000
        expect, code = ("refuse", "too_many_pixels") if over else ("either", None)
        cases.append(Case(f"bomb/png-crc-ok/{tag}", _patch_png_size(s["png"], w, h, True), expect, code))
        cases.append(Case(f"bomb/png-crc-bad/{tag}", _patch_png_size(s["png"], w, h, False), "refuse" if over else "either"))
        cases.append(Case(f"bomb/jpeg/{tag}", _patch_jpeg_size(s["jpeg"], w, h), expect, code))
        cases.append(Case(f"bomb/jpeg-progressive/{tag}", _patch_jpeg_size(s["jpeg_progressive"], w, h), expect, code))
        cases.append(Case(f"bomb/gif-screen/{tag}", _gif_size(s["gif"], w, h, False), "either"))
        cases.append(Case(f"bomb/gif-frame/{tag}", _gif_size(s["gif"], w, h, True), expect, code))
        cases.append(Case(f"bomb/bmp/{tag}", _bmp_size(s["bmp"], w, h), expect, code))
        cases.append(Case(f"bomb/tiff/{tag}", _tiff_size(w, h), expect, code))
        cases.append(Case(f"bomb/webp-vp8x/{tag}", _webp_vp8x(w, h), "refuse"))
        cases.append(Case(f"bomb/webp-vp8x-payload/{tag}", _webp_vp8x(w, h, s["webp"][12:]), "refuse" if over else "either"))
        if w <= 16384 and h <= 16384:
            cases.append(Case(f"bomb/webp-vp8l/{tag}", _webp_vp8l_size(s["webp_lossless"], w, h), expect, code))
            cases.append(Case(f"bomb/webp-vp8/{tag}", _webp_vp8_size(s["webp"], w, h), "refuse" if over else "either"))
    # A real (honest) compression bomb just under and over the cap: zeros deflate ~1000:1.
    for w, h, exp in ((6000, 6000, "either"), (7000, 7000, "refuse")):
        rows = (b"\x00" + bytes(w)) * h
        data = _raw_png(w, h, 8, 0, rows=rows)
        cases.append(Case(f"bomb/png-zeros/{w}x{h}", data, exp, "too_many_pixels" if exp == "refuse" else None, heavy=True))
    # Zero and negative sizes.
    cases.append(Case("bomb/png-zero-width", _patch_png_size(s["png"], 0, 100, True), "refuse"))
    cases.append(Case("bomb/png-zero-height", _patch_png_size(s["png"], 100, 0, True), "refuse"))
    cases.append(Case("bomb/png-2^31", _patch_png_size(s["png"], 2 ** 31 - 1, 2 ** 31 - 1, True), "refuse"))
    cases.append(Case("bomb/png-2^32-1", _patch_png_size(s["png"], 2 ** 32 - 1, 1, True), "refuse"))
    cases.append(Case("bomb/jpeg-zero", _patch_jpeg_size(s["jpeg"], 0, 0), "refuse"))
    cases.append(Case("bomb/bmp-negative", _bmp_size(s["bmp"], -5, -5), "either"))
    cases.append(Case("bomb/bmp-int-min", _bmp_size(s["bmp"], 2 ** 31 - 1, -(2 ** 31)), "refuse"))
    # PNG with a zlib bomb in a compressed text chunk and in iCCP.
    bomb_text = zlib.compress(b"A" * 50_000_000, 9)
    cases.append(Case("bomb/png-ztxt", _insert_png_chunks(s["png"], [_png_chunk(b"zTXt", b"k\x00\x00" + bomb_text)]), "either"))
    cases.append(Case("bomb/png-iccp", _insert_png_chunks(s["png"], [_png_chunk(b"iCCP", b"p\x00\x00" + bomb_text)]), "either"))
    cases.append(Case("bomb/png-huge-chunk-length",
                      _insert_png_chunks(s["png"], [struct.pack(">I", 0x7FFFFFF0) + b"tEXt" + b"abc"]), "either"))
    many_text = [_png_chunk(b"tEXt", b"k%d\x00" % i + b"v" * 100) for i in range(5000)]
    cases.append(Case("bomb/png-5000-text-chunks", _insert_png_chunks(s["png"], many_text), "ok"))
    return cases


def _insert_png_chunks(png: bytes, chunks: list[bytes]) -> bytes:
    return png[:33] + b"".join(chunks) + png[33:]


# ---------------------------------------------------------------- shapes and modes --

def _extreme_shapes() -> list[Case]:
    cases = []
    rng = np.random.default_rng(5)
    for w, h in ((1, 20000), (20000, 1), (1, 1), (2, 1), (1, 40000), (3, 9000), (16383, 1), (1, 16383)):
        px = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(px)
        for fmt in ("PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP"):
            if fmt == "WEBP" and max(w, h) > 16383:
                continue
            if fmt == "JPEG" and max(w, h) > 65500:
                continue
            save_img = img.convert("P") if fmt == "GIF" else img
            cases.append(Case(f"shape/{fmt.lower()}/{w}x{h}", _save(save_img, fmt), "ok"))
    cases.append(Case("shape/empty", b"", "refuse", "empty"))
    return cases


def _modes() -> list[Case]:
    cases: list[Case] = []
    syn = _synthetic()
    w, h = syn.size
    arr = np.asarray(syn)
    grey = np.asarray(syn.convert("L"))
    g16 = (grey.astype(np.uint16) * 257)
    # 16-bit greyscale PNG and TIFF via Pillow.
    cases.append(Case("mode/png-I;16", _save(Image.fromarray(g16), "PNG"), "ok"))
    cases.append(Case("mode/tiff-I;16", _save(Image.fromarray(g16), "TIFF"), "ok"))
    cases.append(Case("mode/tiff-I-32bit", _save(Image.fromarray(g16.astype(np.int32) * 1000), "TIFF"), "ok"))
    f = grey.astype(np.float32) / 255.0
    cases.append(Case("mode/tiff-F-0to1", _save(Image.fromarray(f), "TIFF"), "ok"))
    cases.append(Case("mode/tiff-F-0to1000", _save(Image.fromarray(f * 1000), "TIFF"), "ok"))
    fn = f.copy()
    fn[::3, ::5] = np.nan
    fn[1::7, ::4] = np.inf
    fn[2::5, ::3] = -np.inf
    cases.append(Case("mode/tiff-F-nan-inf", _save(Image.fromarray(fn), "TIFF"), "ok"))
    cases.append(Case("mode/tiff-F-all-nan", _save(Image.fromarray(np.full((h, w), np.nan, np.float32)), "TIFF"), "ok"))
    cases.append(Case("mode/tiff-F-negative", _save(Image.fromarray(-f), "TIFF"), "ok"))
    # 16-bit colour PNGs written by hand (Pillow only writes 8-bit colour).
    for colour, ch, label in ((2, 3, "rgb16"), (6, 4, "rgba16"), (4, 2, "la16"), (0, 1, "grey16")):
        px = np.random.default_rng(colour).integers(0, 65536, (h, w, ch), dtype=np.uint16).astype(">u2")
        rows = b"".join(b"\x00" + px[y].tobytes() for y in range(h))
        cases.append(Case(f"mode/png-{label}", _raw_png(w, h, 16, colour, rows=rows), "ok"))
    for depth in (1, 2, 4):
        cases.append(Case(f"mode/png-grey{depth}", _raw_png(w, h, depth, 0), "ok"))
        plte = _png_chunk(b"PLTE", bytes(range(3 * (1 << depth))))
        cases.append(Case(f"mode/png-palette{depth}", _raw_png(w, h, depth, 3, extra=[plte]), "ok"))
    # Palette with tRNS, palette with a short/long tRNS, missing PLTE.
    pal = syn.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    cases.append(Case("mode/png-P-tRNS-table", _save(pal, "PNG", transparency=bytes([0, 64, 128, 255] * 4)), "ok"))
    cases.append(Case("mode/png-P-tRNS-index", _save(pal, "PNG", transparency=3), "ok"))
    plte = _png_chunk(b"PLTE", bytes(range(48)))
    cases.append(Case("mode/png-P-tRNS-too-long", _raw_png(w, h, 4, 3, extra=[plte, _png_chunk(b"tRNS", bytes(300))]), "either"))
    cases.append(Case("mode/png-P-no-PLTE", _raw_png(w, h, 8, 3), "either"))
    cases.append(Case("mode/png-P-index-out-of-palette", _raw_png(w, h, 8, 3, extra=[_png_chunk(b"PLTE", bytes(6))]), "either"))
    cases.append(Case("mode/png-L-tRNS", _save(syn.convert("L"), "PNG", transparency=128), "ok"))
    cases.append(Case("mode/png-RGB-tRNS", _save(syn, "PNG", transparency=(230, 80, 40)), "ok"))
    cases.append(Case("mode/png-LA", _save(syn.convert("LA"), "PNG"), "ok"))
    la = np.dstack([grey, np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)])
    cases.append(Case("mode/png-LA-gradient", _save(Image.fromarray(la), "PNG"), "ok"))
    cases.append(Case("mode/png-1bit", _save(syn.convert("1"), "PNG"), "ok"))
    zero_alpha = np.dstack([arr, np.zeros((h, w), np.uint8)])
    cases.append(Case("mode/png-RGBA-all-transparent", _save(Image.fromarray(zero_alpha), "PNG"), "ok"))
    cases.append(Case("mode/webp-RGBA-all-transparent", _save(Image.fromarray(zero_alpha), "WEBP", lossless=True), "ok"))
    cases.append(Case("mode/tiff-RGBA", _save(syn.convert("RGBA"), "TIFF"), "ok"))
    cases.append(Case("mode/tiff-LA", _save(syn.convert("LA"), "TIFF"), "ok"))
    cases.append(Case("mode/gif-transparency", _save(pal, "GIF", transparency=2), "ok"))
    cases.append(Case("mode/bmp-1bit", _save(syn.convert("1"), "BMP"), "ok"))
    cases.append(Case("mode/bmp-P", _save(pal, "BMP"), "ok"))
    cases.append(Case("mode/bmp-RGBA", _save(syn.convert("RGBA"), "BMP"), "ok"))
    # CMYK JPEG and TIFF; YCCK made by relabelling the Adobe APP14 transform of a CMYK
    # JPEG (libjpeg then decodes the same samples as YCCK: colours change, the file stays valid).
    cmyk = syn.convert("CMYK")
    cmyk_jpeg = _save(cmyk, "JPEG", quality=90)
    cases.append(Case("mode/jpeg-CMYK", cmyk_jpeg, "ok"))
    cases.append(Case("mode/tiff-CMYK", _save(cmyk, "TIFF"), "ok"))
    i = cmyk_jpeg.find(b"\xff\xee")
    if i >= 0 and cmyk_jpeg[i + 4:i + 9] == b"Adobe":
        ycck = bytearray(cmyk_jpeg)
        ycck[i + 4 + 11] = 2  # transform: 0 = CMYK, 1 = YCbCr, 2 = YCCK
        cases.append(Case("mode/jpeg-YCCK-adobe-transform-2", bytes(ycck), "ok"))
        odd = bytearray(cmyk_jpeg)
        odd[i + 4 + 11] = 7
        cases.append(Case("mode/jpeg-CMYK-adobe-transform-7", bytes(odd), "either"))
    cases.append(Case("mode/jpeg-CMYK-no-adobe", cmyk_jpeg.replace(b"Adobe", b"Xdobe", 1), "either"))
    cases.append(Case("mode/jpeg-grey", _save(syn.convert("L"), "JPEG"), "ok"))
    for sub in (0, 1, 2):
        cases.append(Case(f"mode/jpeg-subsampling{sub}", _save(syn, "JPEG", subsampling=sub), "ok"))
    cases.append(Case("mode/jpeg-progressive", _save(syn, "JPEG", progressive=True), "ok"))
    cases.append(Case("mode/jpeg-progressive-optimized", _save(_cat(400), "JPEG", progressive=True, optimize=True), "ok"))
    cases.append(Case("mode/jpeg-restart-markers", _save(syn, "JPEG", restart_marker_blocks=1), "ok"))
    cases.append(Case("mode/jpeg-quality1", _save(syn, "JPEG", quality=1), "ok"))
    # Arithmetic coding: SOF0 relabelled as SOF9 (the entropy data is Huffman, so the
    # arithmetic decoder reads garbage: refuse or decode noise); a true arithmetic file
    # when libjpeg-turbo's cjpeg is installed.
    base = _save(syn, "JPEG")
    j = base.find(b"\xff\xc0")
    sof9 = base[:j] + b"\xff\xc9" + base[j + 2:]
    cases.append(Case("mode/jpeg-sof9-relabelled", sof9, "either"))
    sof10 = base[:j] + b"\xff\xca" + base[j + 2:]
    cases.append(Case("mode/jpeg-sof10-relabelled", sof10, "either"))
    for marker in (0xC3, 0xC5, 0xCB, 0xCF, 0xF7):  # lossless, hierarchical, JPEG-LS: unsupported processes
        cases.append(Case(f"mode/jpeg-sof-{marker:02x}", base[:j] + bytes([0xFF, marker]) + base[j + 2:], "either"))
    arith = _arithmetic_jpeg(syn)
    if arith is not None:
        cases.append(Case("mode/jpeg-arithmetic", arith, "ok"))
        cases.append(Case("mode/jpeg-arithmetic-truncated", arith[: len(arith) // 2], "either"))
    # WebP flavours.
    cases.append(Case("mode/webp-lossless-RGBA", _save(syn.convert("RGBA"), "WEBP", lossless=True), "ok"))
    cases.append(Case("mode/webp-lossy-alpha", _save(syn.convert("RGBA"), "WEBP", quality=50), "ok"))
    return cases


def _arithmetic_jpeg(img: Image.Image) -> bytes | None:
    """A real arithmetic-coded JPEG (SOF9) from libjpeg-turbo's cjpeg, or None if it is not installed."""
    exe = shutil.which("cjpeg")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.ppm"
        img.save(src)
        try:
            out = subprocess.run([exe, "-arithmetic", str(src)], capture_output=True, timeout=20, check=True).stdout
        except (subprocess.SubprocessError, OSError):
            return None
    return out if b"\xff\xc9" in out else None


# ---------------------------------------------------------------- metadata --

def _exif(orientation: int, tag_type: int = 3) -> bytes:
    """A little-endian TIFF-structured EXIF block with one Orientation entry."""
    value = struct.pack("<H", orientation & 0xFFFF) + b"\x00\x00" if tag_type == 3 else struct.pack("<I", orientation & 0xFFFFFFFF)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHI", 0x0112, tag_type, 1) + value + b"\x00\x00\x00\x00"


def _fixed_date(icc: bytes) -> bytes:
    """LittleCMS stamps new profiles with the time and an MD5 id: fix both, for a deterministic corpus."""
    return icc[:24] + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + icc[36:84] + bytes(16) + icc[100:]


def _metadata() -> list[Case]:
    cases: list[Case] = []
    syn = _synthetic(96, 64)
    rng = random.Random(SEED + 3)
    # Orientation: valid values rotate (the cutout follows the rotated size), others are ignored.
    for o in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100, 255, 65535):
        for fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
            cases.append(Case(f"exif/{fmt.lower()}-orientation-{o}", _save(syn, fmt, exif=_exif(o)), "ok"))
    cases.append(Case("exif/jpeg-orientation-long", _save(syn, "JPEG", exif=_exif(6, tag_type=4)), "ok"))
    cases.append(Case("exif/jpeg-orientation-2^32-1", _save(syn, "JPEG", exif=_exif(2 ** 32 - 1, tag_type=4)), "ok"))
    broken = {
        "random": bytes(rng.randrange(256) for _ in range(200)),
        "tiff-header-only": b"II*\x00\x08\x00\x00\x00",
        "ifd-out-of-range": b"II*\x00" + struct.pack("<I", 0x7FFFFFFF),
        "ifd-loop": b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 1) + struct.pack("<HHII", 0x8769, 4, 1, 8) + struct.pack("<I", 8),
        "count-huge": b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, 0x7FFFFFFF, 26) + b"\x00" * 8,
        "entries-65535": b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 65535) + b"\x01" * 120,
        "bad-type": b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 1) + struct.pack("<HHI", 0x0112, 99, 1) + b"\x06\x00\x00\x00",
        "big-endian-orientation-6": b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHI", 0x0112, 3, 1) + b"\x00\x06\x00\x00",
        "empty": b"",
        "truncated": _exif(6)[:13],
        "large-64k": _exif(6) + bytes(60_000),
    }
    for label, blob in broken.items():
        for fmt in ("JPEG", "PNG", "WEBP"):
            cases.append(Case(f"exif/{fmt.lower()}-{label}", _save(syn, fmt, exif=blob), "ok"))
    # ICC profiles: broken, truncated, huge, mismatched.
    srgb = _fixed_date(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    lab = _fixed_date(ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes())
    icc = {
        "srgb": srgb,
        "lab-on-rgb": lab,
        "random": bytes(rng.randrange(256) for _ in range(500)),
        "truncated": srgb[: len(srgb) // 2],
        "header-only": srgb[:128],
        "size-field-lies": srgb[:0] + struct.pack(">I", 0x7FFFFFFF) + srgb[4:],
        "tag-count-huge": srgb[:128] + struct.pack(">I", 0x0FFFFFFF) + srgb[132:],
        "huge-1MB": srgb + bytes(rng.randrange(256) for _ in range(1_000_000 // 64)) * 64,
        "zero": bytes(256),
    }
    for label, blob in icc.items():
        for fmt, img in (("JPEG", syn), ("PNG", syn), ("WEBP", syn), ("TIFF", syn), ("JPEG-CMYK", syn.convert("CMYK")),
                         ("PNG-L", syn.convert("L")), ("PNG-RGBA", syn.convert("RGBA"))):
            kind = fmt.split("-")[0]
            if label == "huge-1MB" and kind == "WEBP":
                continue
            try:
                data = _save(img, kind, icc_profile=blob)
            except (OSError, ValueError):
                continue
            cases.append(Case(f"icc/{fmt.lower()}-{label}", data, "ok"))
    return cases


# ---------------------------------------------------------------- animations --

def _animations() -> list[Case]:
    cases = []
    frames_small = [Image.new("P", (8, 8), i % 256) for i in range(3000)]
    gif = _save(frames_small[0], "GIF", save_all=True, append_images=frames_small[1:], duration=10, optimize=False, disposal=2)
    cases.append(Case("anim/gif-3000-frames", gif, "ok"))
    cases.append(Case("anim/gif-3000-frames-truncated", gif[: len(gif) * 2 // 3], "either"))
    rgb_frames = [Image.new("RGB", (16, 12), (i % 256, (7 * i) % 256, 99)) for i in range(2000)]
    webp = _save(rgb_frames[0], "WEBP", save_all=True, append_images=rgb_frames[1:], duration=10, lossless=True)
    cases.append(Case("anim/webp-2000-frames", webp, "ok"))
    cases.append(Case("anim/webp-2000-frames-truncated", webp[: len(webp) // 2], "either"))
    apng = _save(rgb_frames[0], "PNG", save_all=True, append_images=rgb_frames[1:1500], duration=10)
    cases.append(Case("anim/apng-1500-frames", apng, "ok"))
    cases.append(Case("anim/apng-1500-frames-truncated", apng[: len(apng) // 2], "either"))
    tiff_frames = [Image.new("L", (8, 8), i % 256) for i in range(1000)]
    cases.append(Case("anim/tiff-1000-pages", _save(tiff_frames[0], "TIFF", save_all=True, append_images=tiff_frames[1:]), "ok"))
    # acTL claiming 2^31 frames over a one-frame PNG.
    s = seeds()["png"]
    actl = _png_chunk(b"acTL", struct.pack(">II", 2 ** 31 - 1, 0))
    cases.append(Case("anim/apng-actl-lies", _insert_png_chunks(s, [actl]), "either"))
    return cases


# ---------------------------------------------------------------- not images --

def _not_images() -> list[Case]:
    s = seeds()
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr(zipfile.ZipInfo("a.txt", date_time=(2026, 1, 1, 0, 0, 0)), "hello" * 100)
    zip_bytes = zbuf.getvalue()
    pdf = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    html = b"<!DOCTYPE html><html><body><script>alert(1)</script><img src=x onerror=alert(1)></body></html>"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="65535" height="65535"><rect width="100%" height="100%"/></svg>'
    xml_svg = b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa">]>' + svg
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00" + bytes(200)
    mz = b"MZ\x90\x00\x03" + bytes(59) + b"PE\x00\x00" + bytes(200)
    heic = struct.pack(">I", 24) + b"ftypheic\x00\x00\x00\x00mif1heic" + bytes(100)
    avif = struct.pack(">I", 28) + b"ftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(100)
    mp4 = struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00isomiso2" + bytes(100)
    gzip = b"\x1f\x8b\x08\x00" + bytes(20)
    rnd = random.Random(SEED + 9)
    cases = [
        Case("notimage/zip", zip_bytes, "refuse", "unsupported_format"),
        Case("notimage/pdf", pdf, "refuse", "unsupported_format"),
        Case("notimage/html", html, "refuse", "unsupported_format"),
        Case("notimage/html-leading-space", b"\n\n   " + html, "refuse", "unsupported_format"),
        Case("notimage/svg", svg, "refuse", "unsupported_format"),
        Case("notimage/svg-xml-entities", xml_svg, "refuse", "unsupported_format"),
        Case("notimage/text", b"just some text, not a picture\n" * 20, "refuse", "unsupported_format"),
        Case("notimage/json", b'{"image": "cat.png"}', "refuse", "unsupported_format"),
        Case("notimage/shell", b"#!/bin/sh\nrm -rf /\n", "refuse", "unsupported_format"),
        Case("notimage/utf16-text", "\ufeffhello".encode("utf-16"), "refuse", "unsupported_format"),
        Case("notimage/elf", elf, "refuse", "unsupported_format"),
        Case("notimage/windows-exe", mz, "refuse", "unsupported_format"),
        Case("notimage/gzip", gzip, "refuse", "unsupported_format"),
        Case("notimage/heic-ftyp", heic, "refuse", "unreadable"),
        Case("notimage/avif-ftyp", avif, "refuse", "unreadable"),
        Case("notimage/mp4-ftyp", mp4, "refuse", "unsupported_format"),
        Case("notimage/random-1k", bytes(rnd.randrange(256) for _ in range(1024)), "refuse", "unsupported_format"),
        Case("notimage/zeros", bytes(4096), "refuse", "unsupported_format"),
        Case("notimage/one-byte", b"\xff", "refuse", "unsupported_format"),
        Case("notimage/jpeg-soi-only", b"\xff\xd8\xff", "refuse"),
        Case("notimage/png-signature-only", b"\x89PNG\r\n\x1a\n", "refuse"),
        Case("notimage/riff-wave", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(30), "refuse", "unsupported_format"),
        Case("notimage/riff-webp-empty", b"RIFF\x04\x00\x00\x00WEBP", "refuse"),
        Case("notimage/gif-header-only", b"GIF89a", "refuse"),
        Case("notimage/tiff-header-only", b"II*\x00", "refuse"),
        Case("notimage/bmp-header-only", b"BM", "refuse"),
        Case("notimage/psd", b"8BPS\x00\x01" + bytes(100), "refuse", "unsupported_format"),
        Case("notimage/ico", b"\x00\x00\x01\x00\x01\x00" + bytes(100), "refuse", "unsupported_format"),
        Case("notimage/jpeg2000", b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(100), "refuse", "unsupported_format"),
        Case("notimage/ppm", _save(_synthetic(), "PPM"), "refuse", "unsupported_format"),
        Case("notimage/tga", _save(_synthetic(), "TGA"), "refuse", "unsupported_format"),
        Case("notimage/pcx", _save(_synthetic(), "PCX"), "refuse", "unsupported_format"),
        # Polyglots: an image first and something else appended (the image is what is read) ...
        Case("polyglot/gif+zip (GIFAR)", s["gif"] + zip_bytes, "ok"),
        Case("polyglot/png+html", s["png"] + html, "ok"),
        Case("polyglot/png+zip", s["png"] + zip_bytes, "ok"),
        Case("polyglot/jpeg+pdf", s["jpeg"] + pdf, "ok"),
        Case("polyglot/jpeg+zip", s["jpeg"] + zip_bytes, "ok"),
        Case("polyglot/webp+html", s["webp"] + html, "either"),
        Case("polyglot/jpeg-comment-script", _jpeg_with_comment(s["jpeg"], b"<script>alert(1)</script>" * 100), "ok"),
        Case("polyglot/png-text-html", _insert_png_chunks(s["png"], [_png_chunk(b"tEXt", b"Comment\x00" + html)]), "ok"),
        # ... or something else first and an image after it (refused: the start decides).
        Case("polyglot/html+png", html + s["png"], "refuse", "unsupported_format"),
        Case("polyglot/pdf+jpeg", pdf + s["jpeg"], "refuse", "unsupported_format"),
        Case("polyglot/zip+png", zip_bytes + s["png"], "refuse", "unsupported_format"),
        Case("polyglot/heic-ftyp+jpeg", heic + s["jpeg"], "refuse", "unreadable"),
    ]
    return cases


def _jpeg_with_comment(jpeg: bytes, comment: bytes) -> bytes:
    chunks = []
    for k in range(0, len(comment), 60000):
        part = comment[k:k + 60000]
        chunks.append(b"\xff\xfe" + struct.pack(">H", len(part) + 2) + part)
    return jpeg[:2] + b"".join(chunks) + jpeg[2:]


# ---------------------------------------------------------------- structure attacks --

def _structural() -> list[Case]:
    """Hand-made structural damage a random mutation rarely hits."""
    s = seeds()
    cases: list[Case] = []
    png = s["png"]
    # PNG: IDAT missing, IEND missing, chunk CRCs wrong everywhere, bad filter bytes, too-short IDAT data.
    syn = _synthetic(32, 24)
    w, h = syn.size
    rows_ok = b"".join(b"\x00" + np.asarray(syn)[y].tobytes() for y in range(h))
    cases.append(Case("struct/png-no-idat", png[:33] + _png_chunk(b"IEND", b""), "refuse"))
    cases.append(Case("struct/png-no-iend", _raw_png(w, h, 8, 2, rows=rows_ok)[:-12], "either"))
    cases.append(Case("struct/png-bad-filter", _raw_png(w, h, 8, 2, rows=rows_ok.replace(b"\x00", b"\x09", 5)), "either"))
    # Pillow decodes a complete zlib stream with missing rows without complaint (the rows stay black).
    cases.append(Case("struct/png-short-rows", _raw_png(w, h, 8, 2, rows=rows_ok[: len(rows_ok) // 3]), "either"))
    cases.append(Case("struct/png-extra-rows", _raw_png(w, h, 8, 2, rows=rows_ok * 50), "ok"))
    cases.append(Case("struct/png-idat-not-zlib", _raw_png(w, h, 8, 2, idat=b"not zlib at all" * 10), "refuse"))
    cases.append(Case("struct/png-bad-depth", _raw_png(w, h, 8, 2, rows=rows_ok)[:24] + b"\x07" + _raw_png(w, h, 8, 2, rows=rows_ok)[25:], "refuse"))
    cases.append(Case("struct/png-bad-colour-type", _raw_png(w, h, 8, 2, rows=rows_ok)[:25] + b"\x05" + _raw_png(w, h, 8, 2, rows=rows_ok)[26:], "refuse"))
    interlaced = _save(syn, "PNG", optimize=False)
    il = bytearray(_raw_png(w, h, 8, 2, rows=rows_ok))
    il[28] = 1  # interlace = Adam7, but the rows are not interlaced
    cases.append(Case("struct/png-interlace-lie", bytes(il), "either"))
    cases.append(Case("struct/png-many-idat-1byte", _split_idat(interlaced, 1), "ok"))
    # JPEG: no EOI, no SOS, two SOFs, DHT missing, quant table index out of range, huge APP segment count.
    jpeg = s["jpeg"]
    cases.append(Case("struct/jpeg-no-eoi", jpeg[:-2], "either"))
    sos = jpeg.find(b"\xff\xda")
    cases.append(Case("struct/jpeg-no-sos", jpeg[:sos] + b"\xff\xd9", "refuse"))
    dht = jpeg.find(b"\xff\xc4")
    seg = struct.unpack(">H", jpeg[dht + 2:dht + 4])[0]
    cases.append(Case("struct/jpeg-no-dht", jpeg[:dht] + jpeg[dht + 2 + seg:], "either"))
    sof = jpeg.find(b"\xff\xc0")
    sof_len = struct.unpack(">H", jpeg[sof + 2:sof + 4])[0]
    cases.append(Case("struct/jpeg-two-sof", jpeg[:sof] + jpeg[sof:sof + 2 + sof_len] + jpeg[sof:], "either"))
    bad_comp = bytearray(jpeg)
    bad_comp[sof + 9] = 200  # component count
    cases.append(Case("struct/jpeg-200-components", bytes(bad_comp), "refuse"))
    bad_q = bytearray(jpeg)
    bad_q[sof + 12] = 9  # first component's quant table index
    cases.append(Case("struct/jpeg-quant-index-9", bytes(bad_q), "either"))
    bad_p = bytearray(jpeg)
    bad_p[sof + 4] = 12  # 12-bit precision
    cases.append(Case("struct/jpeg-12bit-precision", bytes(bad_p), "either"))
    app_flood = b"".join(b"\xff\xe5" + struct.pack(">H", 6) + b"abcd" for _ in range(20000))
    cases.append(Case("struct/jpeg-20000-app-segments", jpeg[:2] + app_flood + jpeg[2:], "ok"))
    cases.append(Case("struct/jpeg-segment-length-0", jpeg[:2] + b"\xff\xe1\x00\x00" + jpeg[2:], "either"))
    cases.append(Case("struct/jpeg-segment-length-ffff", jpeg[:2] + b"\xff\xe1\xff\xff" + jpeg[2:100], "either"))
    cases.append(Case("struct/jpeg-mpo-app2", jpeg[:2] + b"\xff\xe2\x00\x10MPF\x00II*\x00\x08\x00\x00\x00\x00" + jpeg[2:], "either"))
    # GIF: no image descriptor, LZW code size 12, trailing garbage, loops.
    gif = s["gif"]
    cases.append(Case("struct/gif-no-trailer", gif[:-1], "either"))
    cases.append(Case("struct/gif-header-and-palette-only", gif[: 13 + 3 * 256] + b";", "refuse"))
    desc = gif.find(b"\x2c", 13 + 3 * 256)
    lzw = bytearray(gif)
    lzw[desc + 10] = 12
    cases.append(Case("struct/gif-lzw-size-12", bytes(lzw), "either"))
    lzw[desc + 10] = 0
    cases.append(Case("struct/gif-lzw-size-0", bytes(lzw), "either"))
    # TIFF: out-of-range strip offsets, huge strip byte counts, compression 99, IFD loop, 5 samples.
    cases.extend(_tiff_attacks())
    # BMP: RLE with runs past the end, palette count lies, offset past the end, bitfields.
    bmp = s["bmp"]
    rle_img = _synthetic(40, 30).convert("P", palette=Image.Palette.ADAPTIVE)
    cases.append(Case("struct/bmp-pixel-offset-past-end", bmp[:10] + struct.pack("<I", 0x7FFFFFFF) + bmp[14:], "refuse"))
    cases.append(Case("struct/bmp-palette-count-huge", _bmp_with_field(_save(rle_img, "BMP"), 46, 0x7FFFFFFF), "either"))
    cases.append(Case("struct/bmp-bits-7", _bmp_with_field(bmp, 28, 7, "<H"), "refuse"))
    cases.append(Case("struct/bmp-compression-rle8-lie", _bmp_with_field(bmp, 30, 1), "either"))
    cases.append(Case("struct/bmp-compression-99", _bmp_with_field(bmp, 30, 99), "refuse"))
    cases.append(Case("struct/bmp-header-size-lie", _bmp_with_field(bmp, 14, 0xFFFF), "refuse"))
    rle = _rle8_bmp(64, 48)
    cases.append(Case("struct/bmp-rle8-valid", rle, "ok"))
    cases.append(Case("struct/bmp-rle8-run-past-end", rle[:-4] + b"\xff\x05\xff\x05" + rle[-4:], "either"))
    cases.append(Case("struct/bmp-rle8-delta-past-end", rle[:-4] + b"\x00\x02\xff\xff" + rle[-4:], "either"))
    # WebP: RIFF size lies, chunk size lies, VP8X flags without chunks.
    webp = s["webp"]
    cases.append(Case("struct/webp-riff-size-huge", webp[:4] + struct.pack("<I", 0xFFFFFFF0) + webp[8:], "either"))
    cases.append(Case("struct/webp-riff-size-0", webp[:4] + struct.pack("<I", 0) + webp[8:], "either"))
    cases.append(Case("struct/webp-chunk-size-huge", webp[:16] + struct.pack("<I", 0x7FFFFFF0) + webp[20:], "either"))
    cases.append(Case("struct/webp-vp8x-all-flags", _webp_vp8x(50, 50)[:20] + b"\xff" + _webp_vp8x(50, 50)[21:] + webp[12:], "either"))
    return cases


def _split_idat(png: bytes, size: int) -> bytes:
    """Re-chunk a PNG's image data into IDAT chunks of ``size`` bytes (many chunks)."""
    pos, idat, before, after = 8, b"", b"", b""
    while pos < len(png):
        n = struct.unpack(">I", png[pos:pos + 4])[0]
        kind = png[pos + 4:pos + 8]
        chunk = png[pos:pos + 12 + n]
        if kind == b"IDAT":
            idat += png[pos + 8:pos + 8 + n]
        elif idat:
            after += chunk
        else:
            before += chunk
        pos += 12 + n
    idat = idat[:2000]  # enough chunks to be hostile, few enough to stay fast
    return png[:8] + before + b"".join(_png_chunk(b"IDAT", idat[k:k + size]) for k in range(0, len(idat), size)) + after


def _bmp_with_field(bmp: bytes, offset: int, value: int, fmt: str = "<I") -> bytes:
    buf = bytearray(bmp)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


def _rle8_bmp(w: int, h: int) -> bytes:
    """An 8-bit RLE-compressed BMP (Pillow reads RLE8 but cannot write it)."""
    rows = b""
    for y in range(h):
        rows += bytes([w, y % 256]) + b"\x00\x00"  # one run per row, end of line
    rows += b"\x00\x01"  # end of bitmap
    palette = b"".join(bytes([i, i, 255 - i, 0]) for i in range(256))
    header_size = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", header_size + len(rows), 0, 0, header_size) + info + palette + rows


def _tiff_ifd(entries: list[tuple[int, int, int, int]], data: bytes = b"") -> bytes:
    """A little-endian TIFF with one IFD at offset 8 of (tag, type, count, value) and ``data`` after it."""
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in sorted(entries)) + b"\x00\x00\x00\x00"
    return b"II*\x00" + struct.pack("<I", 8) + ifd + data


def _tiff_attacks() -> list[Case]:
    cases = []
    w, h = 16, 16
    body_offset = 8 + 2 + 12 * 10 + 4

    def base(**over: int) -> list[tuple[int, int, int, int]]:
        fields = {256: (4, 1, w), 257: (4, 1, h), 258: (3, 1, 8), 259: (3, 1, 1), 262: (3, 1, 1), 273: (4, 1, body_offset),
                  277: (3, 1, 1), 278: (4, 1, h), 279: (4, 1, w * h), 284: (3, 1, 1)}
        for tag, value in over.items():
            t = int(tag[1:])
            typ, count, _ = fields.get(t, (4, 1, 0))
            fields[t] = (typ, count, value)
        return [(t, *v) for t, v in fields.items()]

    pixels = bytes(range(256))
    cases.append(Case("tiff/handmade-valid", _tiff_ifd(base(), pixels), "ok"))
    cases.append(Case("tiff/strip-offset-past-end", _tiff_ifd(base(t273=0x7FFFFFFF), pixels), "refuse"))
    cases.append(Case("tiff/strip-bytes-huge", _tiff_ifd(base(t279=0x7FFFFFFF), pixels), "either"))
    cases.append(Case("tiff/compression-99", _tiff_ifd(base(t259=99), pixels), "refuse"))
    for comp in (2, 3, 4, 5, 6, 7, 8, 32773, 32946, 34712):
        cases.append(Case(f"tiff/compression-{comp}-on-raw-data", _tiff_ifd(base(t259=comp), pixels), "either"))
    cases.append(Case("tiff/bits-12", _tiff_ifd(base(t258=12), pixels), "either"))
    cases.append(Case("tiff/bits-0", _tiff_ifd(base(t258=0), pixels), "either"))
    cases.append(Case("tiff/samples-5", _tiff_ifd(base(t277=5), pixels), "either"))
    cases.append(Case("tiff/samples-0", _tiff_ifd(base(t277=0), pixels), "either"))
    cases.append(Case("tiff/photometric-99", _tiff_ifd(base(t262=99), pixels), "either"))
    cases.append(Case("tiff/photometric-ycbcr", _tiff_ifd(base(t262=6), pixels), "either"))
    cases.append(Case("tiff/photometric-palette-no-colormap", _tiff_ifd(base(t262=3), pixels), "either"))
    cases.append(Case("tiff/rows-per-strip-0", _tiff_ifd(base(t278=0), pixels), "either"))
    cases.append(Case("tiff/planar-2", _tiff_ifd(base(t284=2), pixels), "either"))
    cases.append(Case("tiff/tiled-tile-0", _tiff_ifd(base(t322=0, t323=0, t324=body_offset, t325=256), pixels), "either"))
    cases.append(Case("tiff/tiled-tile-huge", _tiff_ifd(base(t322=0x7FFFFFF0, t323=0x7FFFFFF0, t324=body_offset, t325=256), pixels), "either"))
    loop = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHII", 256, 4, 1, 16) + struct.pack("<I", 8)
    cases.append(Case("tiff/ifd-loop", loop, "refuse"))
    cases.append(Case("tiff/ifd-offset-past-end", b"II*\x00" + struct.pack("<I", 0x7FFFFFFF), "refuse"))
    cases.append(Case("tiff/ifd-zero-entries", b"II*\x00" + struct.pack("<I", 8) + b"\x00\x00\x00\x00\x00\x00", "refuse"))
    cases.append(Case("tiff/bigtiff", b"II+\x00\x08\x00\x00\x00" + struct.pack("<Q", 16) + bytes(40), "refuse"))
    cases.append(Case("tiff/small-valid", _save(_synthetic(20, 20), "TIFF"), "ok"))
    jpeg_tiff = _save(_synthetic(64, 48), "TIFF", compression="jpeg")
    cases.append(Case("tiff/jpeg-compressed", jpeg_tiff, "ok"))
    cases.append(Case("tiff/jpeg-compressed-truncated", jpeg_tiff[: len(jpeg_tiff) * 2 // 3], "either"))
    for comp in ("tiff_deflate", "packbits", "tiff_adobe_deflate"):
        cases.append(Case(f"tiff/{comp}", _save(_synthetic(64, 48), "TIFF", compression=comp), "ok"))
    cases.append(Case("tiff/group4-1bit", _save(_synthetic(64, 48).convert("1"), "TIFF", compression="group4"), "ok"))
    return cases


# ---------------------------------------------------------------- the corpus --

#: Mutation counts per seed: (truncations, bit-flip files, corrupted ranges).
MUTATIONS = {"png": (40, 40, 20), "png_rgba": (20, 20, 10), "jpeg": (40, 40, 20), "jpeg_progressive": (30, 30, 15),
             "webp": (30, 30, 15), "webp_lossless": (20, 20, 10), "gif": (25, 25, 12), "tiff": (25, 25, 12),
             "bmp": (20, 20, 10), "heic": (20, 20, 10), "avif": (20, 20, 10)}


@functools.lru_cache(maxsize=1)
def _build() -> tuple[Case, ...]:
    from hostile_heif import bombs as heif_bombs, heif_seeds, structure as heif_structure

    rng = random.Random(SEED)
    cases: list[Case] = []
    for name, data in {**seeds(), **heif_seeds()}.items():
        cases.append(Case(f"seed/{name}", data, "ok"))
        n_trunc, n_flip, n_range = MUTATIONS[name]
        cases += _truncations(rng, name, data, n_trunc)
        cases += _bitflips(rng, name, data, n_flip)
        cases += _ranges(rng, name, data, n_range)
    cases += _bombs() + _extreme_shapes() + _modes() + _metadata() + _animations() + _not_images() + _structural()
    cases += heif_bombs() + heif_structure()
    cases += regression_cases()
    names = [c.name for c in cases]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise AssertionError(f"duplicate case names: {sorted(dupes)[:5]}")
    return tuple(cases)


def regression_cases() -> list[Case]:
    """Files found by fuzzing (benchmarks/fuzz_decode.py) or by the corpus runs that once broke decode()."""
    return [Case(f"regression/{name}", data, expect) for name, data, expect in _REGRESSIONS]


#: (name, bytes, expectation): appended by hand from crash files, smallest first.
_REGRESSIONS: list[tuple[str, bytes, str]] = []


def build_corpus() -> list[Case]:
    """Every case, in a stable order."""
    return list(_build())


def by_name() -> dict[str, Case]:
    return {c.name: c for c in _build()}


def summary(cases: list[Case] | None = None) -> dict[str, int]:
    """Cases per category."""
    out: dict[str, int] = {}
    for c in cases or build_corpus():
        out[c.category] = out.get(c.category, 0) + 1
    return dict(sorted(out.items()))


def fast_subset(cases: list[Case] | None = None, every: int = 4) -> list[Case]:
    """A deterministic subset for the normal test suite: every structured case, every
    ``every``-th random mutation, no heavy cases."""
    out = []
    for i, c in enumerate(cases or build_corpus()):
        if c.heavy:
            continue
        if c.category in ("truncate", "bitflip", "corrupt") and i % every:
            continue
        out.append(c)
    return out


if __name__ == "__main__":
    import time

    t = time.perf_counter()
    corpus = build_corpus()
    print(f"{len(corpus)} cases in {time.perf_counter() - t:.1f}s; {len(fast_subset(corpus))} in the fast subset")
    for cat, n in summary(corpus).items():
        print(f"  {cat:10s} {n}")
    print("expectations:", {e: sum(c.expect == e for c in corpus) for e in ("ok", "refuse", "either")})
