"""HEIC and AVIF cases for the hostile corpus (tests/hostile_corpus.py): real files from
pillow-heif and Pillow, then lies in their boxes: declared sizes (decompression bombs),
wrong brands, garbage after a valid ``ftyp``, box sizes that overrun, huge box counts.

Truncations, bit flips and corrupted ranges of both seeds come from the corpus's own
mutation step (``MUTATIONS``); deterministic like the rest (x265 and libaom are).
"""

from __future__ import annotations

import functools
import struct

import numpy as np
from PIL import Image

import format_samples as fs
from hostile_corpus import Case, _cat, _synthetic

#: (width, height) a bomb claims; every one is over the default 40 MP cap.
BOMB_SIZES = [(65535, 65535), (65535, 1000), (1000, 65535), (40000, 40000), (8000, 8000), (7000, 6000),
              (2 ** 32 - 1, 2 ** 32 - 1), (2 ** 31, 1)]


@functools.lru_cache(maxsize=None)
def heif_seeds() -> dict[str, bytes]:
    cat = _cat()
    return {"heic": fs.heic(cat, quality=80), "avif": fs.avif(cat, quality=80)}


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _ftyp_end(data: bytes) -> int:
    return struct.unpack(">I", data[:4])[0]


def bombs() -> list[Case]:
    cases = []
    for name, data in heif_seeds().items():
        for w, h in BOMB_SIZES:
            cases.append(Case(f"bomb/{name}-ispe/{w}x{h}", fs.patch_ispe(data, w, h), "refuse", "too_many_pixels"))
        cases.append(Case(f"bomb/{name}-ispe/0x0", fs.patch_ispe(data, 0, 0), "refuse"))
    return cases


def structure() -> list[Case]:
    seeds = heif_seeds()
    heic, avif = seeds["heic"], seeds["avif"]
    syn = _synthetic()
    rgba = syn.convert("RGBA")
    a = np.asarray(rgba).copy()
    a[..., 3] = np.linspace(0, 255, a.shape[1], dtype=np.uint8)[None, :]
    rgba = Image.fromarray(a)
    grey16 = Image.fromarray(np.ascontiguousarray(np.asarray(syn.convert("L")).astype(np.uint16) * 257))
    pages = [Image.new("RGB", (40, 30), (i * 60, 90, 200 - i * 50)) for i in range(4)]
    cases = [
        Case("heif/heic-rgba", fs.heic(rgba), "ok"),
        Case("heif/heic-16bit-grey", fs.heic(grey16), "ok"),
        Case("heif/heic-orientation-6", fs.heic(syn, exif=fs.exif_orientation(6)), "ok"),
        Case("heif/heic-orientation-65535", fs.heic(syn, exif=fs.exif_orientation(65535)), "ok"),
        Case("heif/heic-icc-swapped", fs.heic(syn, icc_profile=fs.swapped_profile()), "ok"),
        Case("heif/heic-icc-garbage", fs.heic(syn, icc_profile=bytes(range(256)) * 4), "either"),
        Case("heif/heic-4-images-primary-2", fs.heic(pages[0], more=pages[1:], primary=2), "ok"),
        Case("heif/avif-rgba", fs.avif(rgba), "ok"),
        Case("heif/avif-orientation-8", fs.avif(syn, exif=fs.exif_orientation(8)), "ok"),
        Case("heif/avif-icc-swapped", fs.avif(syn, icc_profile=fs.swapped_profile()), "ok"),
        Case("heif/avif-animated-3", fs.avif(pages[0], save_all=True, append_images=pages[1:3]), "ok"),
        # Wrong brand boxes: the other codec's brand, a video's, none the reader knows.
        Case("heif/heic-data-avif-brand", heic[:8] + b"avif" + heic[12:], "refuse"),
        Case("heif/avif-data-heic-brand", avif[:8] + b"heic" + avif[12:], "refuse"),
        Case("heif/heic-data-mif1-avif-compatible", heic[:8] + b"mif1" + heic[12:16] + b"avif" + heic[20:], "either"),
        Case("heif/avif-brand-mp42", avif[:8] + b"mp42" + avif[12:], "refuse", "unsupported_format"),
        Case("heif/heic-brand-blank", heic[:8] + b"    " + heic[12:], "refuse", "unsupported_format"),
        # The ftyp box's own size lying.
        Case("heif/heic-ftyp-size-0", b"\x00\x00\x00\x00" + heic[4:], "either"),
        Case("heif/heic-ftyp-size-7", b"\x00\x00\x00\x07" + heic[4:], "either"),
        Case("heif/heic-ftyp-size-huge", b"\xff\xff\xff\xf0" + heic[4:], "either"),
        Case("heif/avif-ftyp-size-1-largesize-huge", b"\x00\x00\x00\x01" + avif[4:12] + b"\xff" * 8 + avif[20:], "either"),
        # A second image (the other codec's) after the first one's boxes; and boxes no reader knows.
        Case("heif/heic-then-avif", heic + avif, "either"),
        Case("heif/avif-meta-100000-free-boxes",
             avif[:_ftyp_end(avif)] + _box(b"meta", bytes(4) + _box(b"free", b"") * 100_000) + avif[_ftyp_end(avif):], "either"),
        Case("heif/heic-meta-nested-2000-deep",
             heic[:_ftyp_end(heic)] + functools.reduce(lambda inner, _: _box(b"meta", bytes(4) + inner), range(2000), b"")
             + heic[_ftyp_end(heic):], "either"),
    ]
    for name, data in seeds.items():
        end = _ftyp_end(data)
        cases += [
            Case(f"heif/{name}-ftyp-only", data[:end], "refuse"),
            Case(f"heif/{name}-ftyp-then-zeros", data[:end] + bytes(4096), "refuse"),
            Case(f"heif/{name}-ftyp-then-garbage", data[:end] + bytes((i * 37 + 11) % 256 for i in range(4096)), "refuse"),
            Case(f"heif/{name}-ftyp-then-jpeg", data[:end] + fs.encode(syn, "JPEG"), "refuse"),
            Case(f"heif/{name}-meta-size-huge", data[:end] + b"\x7f\xff\xff\xff" + data[end + 4:], "either"),
            Case(f"heif/{name}-meta-size-small", data[:end] + b"\x00\x00\x00\x10" + data[end + 4:], "refuse"),
            Case(f"heif/{name}-ispe-missing", data.replace(b"ispe", b"xxxx"), "either"),
            Case(f"heif/{name}-iloc-zeroed", data.replace(b"iloc", b"\x00\x00\x00\x00"), "refuse"),
            Case(f"heif/{name}-mdat-zeroed", data[:data.find(b"mdat") + 4] + bytes(len(data) - data.find(b"mdat") - 4), "either"),
        ]
    return cases
