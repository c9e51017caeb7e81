"""HEIF and AVIF headers (ISO base media file format), read without decoding.

Two things the decoder needs before it hands a HEIC or AVIF file to a codec: which
of the two it is (the ``ftyp`` box's brands), and the largest image size it
declares (the ``ispe`` properties in ``meta/iprp/ipco``), so that a file claiming
65535 x 65535 pixels is refused from its header with the same error as any other
decompression bomb, rather than by whichever limit the codec library has.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

#: ``ftyp`` brands. mif1/msf1 are the generic image brands: the compatible brands
#: then tell AVIF (AV1) from HEIC (HEVC).
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")
AVIF_BRANDS = (b"avif", b"avis")
#: Boxes walked per level at most: a real file has a handful; a hostile one gets no loop.
_MAX_BOXES = 4096
#: Full boxes carry 4 bytes of version and flags before their children or fields.
_FULL_BOXES = {b"meta", b"ispe"}


def ftyp_brands(head: bytes) -> list[bytes]:
    """Major then compatible brands of the ``ftyp`` box at the start; [] when there is none."""
    if head[4:8] != b"ftyp" or len(head) < 12:
        return []
    end = min(len(head), max(16, int.from_bytes(head[:4], "big")))
    return [head[8:12]] + [head[i:i + 4] for i in range(16, end - 3, 4)]


def image_kind(head: bytes) -> str | None:
    """``"HEIF"``, ``"AVIF"`` or ``None`` from the first bytes (64 are enough to see compatible brands)."""
    brands = ftyp_brands(head)
    if not brands:
        return None
    major = brands[0]
    if major in AVIF_BRANDS or (major in (b"mif1", b"msf1") and any(b in AVIF_BRANDS for b in brands[1:])):
        return "AVIF"
    return "HEIF" if major in HEIF_BRANDS else None


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of each box in ``data[start:end]``; a box cut short by the
    end of the data is given up to there (the codec reports the truncation itself)."""
    pos = start
    for _ in range(_MAX_BOXES):
        if pos + 8 > end:
            return
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        body = pos + header + (4 if kind in _FULL_BOXES else 0)
        yield kind, body, min(pos + size, end)
        pos += size


def _find(data: bytes, path: tuple[bytes, ...], start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
    end = len(data) if end is None else end
    for kind, body, box_end in _boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                yield body, box_end
            else:
                yield from _find(data, path[1:], body, box_end)


def declared_size(data: bytes) -> tuple[int, int] | None:
    """The largest (width, height) any image of the file declares, or ``None`` if none is found."""
    sizes = [struct.unpack(">II", data[body:body + 8]) for body, end in _find(data, (b"meta", b"iprp", b"ipco", b"ispe"))
             if end - body >= 8]
    return max(sizes, key=lambda wh: wh[0] * wh[1]) if sizes else None
