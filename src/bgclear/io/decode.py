"""Stage 1 — decode: bytes / path / PIL image / array in, sRGB uint8 pixels out.

Everything a hostile or odd file can do is handled here, before any large
buffer is allocated: the format is sniffed from the bytes (never the name),
the pixel count is checked from the header, EXIF orientation is applied and
colour profiles are converted to sRGB.

Pillow's process-wide settings are left as the application set them: our pixel
cap is checked between reading the header and decoding (Pillow's own format
plugins are called directly, so its open-time bomb check never runs first with
a different limit), and Pillow's checks during decoding still apply.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps

from . import isomedia
from ..errors import InputError

DEFAULT_MAX_PIXELS = int(os.environ.get("BGCLEAR_MAX_PIXELS", 40_000_000))
DEFAULT_MAX_BYTES = int(os.environ.get("BGCLEAR_MAX_BYTES", 100 * 1024 * 1024))
SMALL_IMAGE_EDGE = 1000

#: Bytes :func:`sniff_format` needs to see the compatible brands of a HEIF/AVIF file.
SNIFF_BYTES = 64

#: format name -> magic-byte test. Only these are decoded.
_SIGNATURES = {
    "JPEG": lambda b: b[:3] == b"\xff\xd8\xff",
    "PNG": lambda b: b[:8] == b"\x89PNG\r\n\x1a\n",
    "WEBP": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "HEIF": lambda b: isomedia.image_kind(b) == "HEIF",
    "AVIF": lambda b: isomedia.image_kind(b) == "AVIF",
    "TIFF": lambda b: b[:4] in (b"II*\x00", b"MM\x00*"),
    "BMP": lambda b: b[:2] == b"BM",
    "GIF": lambda b: b[:6] in (b"GIF87a", b"GIF89a"),
}
#: Every container format decoded, the one list the CLI, the batch and the server accept.
SUPPORTED_FORMATS = tuple(_SIGNATURES)
#: How people name them, for messages: "JPEG, PNG, WebP, HEIC/HEIF, AVIF, TIFF, BMP or GIF".
FORMAT_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "HEIF": "HEIC/HEIF", "AVIF": "AVIF", "TIFF": "TIFF",
                "BMP": "BMP", "GIF": "GIF"}
#: File name suffixes of the accepted formats (folders are scanned by suffix; the bytes still decide).
FORMAT_SUFFIXES = {"JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"), "PNG": (".png",), "WEBP": (".webp",),
                   "HEIF": (".heic", ".heif", ".hif", ".heics", ".heifs"), "AVIF": (".avif", ".avifs"),
                   "TIFF": (".tif", ".tiff"), "BMP": (".bmp",), "GIF": (".gif",)}
#: MIME types, for a browser's file picker.
FORMAT_MIME_TYPES = {"JPEG": ("image/jpeg",), "PNG": ("image/png",), "WEBP": ("image/webp",),
                     "HEIF": ("image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence"),
                     "AVIF": ("image/avif",), "TIFF": ("image/tiff",), "BMP": ("image/bmp",), "GIF": ("image/gif",)}


def accepted_formats_text(formats: tuple[str, ...] = SUPPORTED_FORMATS) -> str:
    """'JPEG, PNG, ..., BMP or GIF'."""
    names = [FORMAT_NAMES[f] for f in formats]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray]


@dataclass
class DecodedImage:
    """A decoded photo.

    ``rgb``: uint8, shape (H, W, 3), sRGB, C-contiguous.
    ``source_alpha``: float32 (H, W) in 0..1 when the file had transparency, else ``None``.
    ``format``: the detected container format (``"JPEG"``, ``"PNG"``...; ``"array"`` for arrays).
    ``warnings``: things a user should know (small image, profile ignored, frames dropped...).
    """

    rgb: np.ndarray
    source_alpha: np.ndarray | None = None
    format: str = "array"
    warnings: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return self.rgb.shape[1], self.rgb.shape[0]


def sniff_format(head: bytes) -> str | None:
    """Container format from the first bytes of a file (:data:`SNIFF_BYTES` of them tell
    AVIF from HEIC when the major brand is a generic one), or ``None`` if not an accepted image."""
    for name, test in _SIGNATURES.items():
        if test(head):
            return name
    return None


def _describe_unknown(head: bytes) -> str:
    probes = [
        (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"), (b"\x7fELF", "an executable"),
        (b"MZ", "a Windows executable"), (b"<svg", "an SVG drawing"), (b"<?xml", "an XML/SVG document"),
        (b"<!DOCTYPE", "an HTML page"), (b"<html", "an HTML page"), (b"\x1f\x8b", "a gzip archive"),
    ]
    stripped = head.lstrip()
    for magic, what in probes:
        if stripped[: len(magic)].lower() == magic.lower():
            return what
    brands = isomedia.ftyp_brands(head)
    if brands:
        shown = brands[0].decode("ascii", "replace").strip() or "empty"
        return f"an ISO media file of brand '{shown}' (a video or another kind of file, not a HEIC or AVIF image)"
    return "not a recognised image"


def _read_bytes(source, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file: {path}") from None
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder, not an image")
        if size > max_bytes:
            raise InputError("too_large", f"the file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
        data = path.read_bytes()
    if len(data) > max_bytes:
        raise InputError("too_large", f"the file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    return data


def _pillow_limit() -> int | None:
    """The pixel count above which Pillow refuses an image in this process (the application's
    ``Image.MAX_IMAGE_PIXELS``, read, never changed), or ``None`` when it is switched off."""
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * int(limit)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InputError("unreadable", f"the image header claims an empty size ({width}x{height})")
    # Never looser than Pillow would be here: an application that lowered its limit keeps it.
    pillow = _pillow_limit()
    limit = max_pixels if pillow is None else min(max_pixels, pillow)
    if width * height > limit:
        whose = " (Pillow's Image.MAX_IMAGE_PIXELS in this process)" if limit < max_pixels else ""
        shown = f"{limit / 1e6:.0f} MP" if limit >= 1e6 else f"{limit} pixels"
        raise InputError(
            "too_many_pixels",
            f"the image is {width}x{height} ({width * height / 1e6:.1f} MP); the limit is "
            f"{shown}{whose}. Resize it before uploading.",
        )


def _to_srgb(img: Image.Image, notes: list[str]) -> Image.Image:
    """Convert an embedded ICC profile to sRGB; a broken profile is ignored with a note."""
    icc = img.info.get("icc_profile")
    if not icc:
        return img
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        desc = (ImageCms.getProfileDescription(src) or "").strip()
        if "srgb" in desc.lower() and img.mode in ("RGB", "RGBA"):
            return img
        if img.mode not in ("RGB", "RGBA", "CMYK", "L"):
            return img
        out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
        dst = ImageCms.createProfile("sRGB")
        converted = ImageCms.profileToProfile(img, src, dst, outputMode=out_mode)
        notes.append(f"converted colours from the embedded profile '{desc or 'unnamed'}' to sRGB")
        return converted
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        notes.append(f"ignored an unreadable colour profile ({exc.__class__.__name__}); colours assumed sRGB")
        return img


def _high_bit_depth_to_8(img: Image.Image) -> Image.Image:
    """16-bit and float greyscale modes to 'L' by scaling, not clipping."""
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        finite = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(finite.max()) if finite.size else 0.0
        scale = 255.0 if peak <= 1.0 else 255.0 / max(peak, 1e-6)
        out = np.clip(finite * scale, 0, 255)
    else:
        peak = 65535.0 if arr.max(initial=0) > 255 or img.mode.startswith("I;16") else 255.0
        out = np.clip(arr.astype(np.float32) * (255.0 / peak), 0, 255)
    return Image.fromarray(np.round(out).astype(np.uint8), "L")


def _pil_to_decoded(img: Image.Image, fmt: str, notes: list[str]) -> DecodedImage:
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception as exc:  # noqa: BLE001 - any broken EXIF block must not lose the image
        notes.append(f"ignored an unreadable EXIF block ({exc.__class__.__name__})")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        img = _high_bit_depth_to_8(img)
    img = _to_srgb(img, notes)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"))
        alpha = rgba[..., 3].astype(np.float32) / 255.0
        rgb = np.ascontiguousarray(rgba[..., :3])
        if float(alpha.min()) >= 1.0:
            alpha = None
    else:
        rgb = np.ascontiguousarray(np.asarray(img.convert("RGB")))
        alpha = None
    return DecodedImage(rgb=rgb, source_alpha=alpha, format=fmt, warnings=notes)


def _plugin(fmt: str) -> type[ImageFile.ImageFile]:
    """The image-file class that reads ``fmt``, without registering anything with Pillow."""
    if fmt == "HEIF":
        try:
            from pillow_heif import HeifImageFile
        except ImportError as exc:
            raise InputError("unsupported_format", f"the file is a HEIC/HEIF image, and reading it needs the "
                             f"pillow-heif package ({exc.__class__.__name__}): pip install pillow-heif") from None
        return HeifImageFile
    if fmt not in Image.OPEN:
        Image.init()
    if fmt not in Image.OPEN or (fmt == "AVIF" and not _avif_supported()):
        raise InputError("unsupported_format", f"the file is {FORMAT_NAMES[fmt]}, which this installation of Pillow "
                         "cannot read; install Pillow 11.3 or later from its wheels")
    return Image.OPEN[fmt][0]  # type: ignore[return-value]


def _avif_supported() -> bool:
    from PIL import AvifImagePlugin

    return AvifImagePlugin.SUPPORTED


def _open_header(data: bytes, fmt: str, max_pixels: int) -> ImageFile.ImageFile:
    """Read the header only and check the pixel cap from it.

    The plugin class is called directly rather than through ``Image.open``, whose
    own bomb check (``Image.MAX_IMAGE_PIXELS``, the application's setting) would
    otherwise run before ours and refuse with another error at another size.
    """
    if fmt in ("HEIF", "AVIF"):
        # Before the codec library parses it: libheif and libavif refuse huge sizes with
        # errors of their own, at limits of their own.
        declared = isomedia.declared_size(data)
        if declared is not None:
            _check_pixels(*declared, max_pixels)
    img = _plugin(fmt)(io.BytesIO(data))
    _check_pixels(img.width, img.height, max_pixels)
    return img


def _frame_note(img: Image.Image, fmt: str) -> str | None:
    frames = getattr(img, "n_frames", 1)
    if frames <= 1:
        return None
    if fmt in ("HEIF", "TIFF"):
        which = "the primary image" if fmt == "HEIF" else "the first page"
        return f"the file holds {frames} images; {which} was processed"
    return f"the file has {frames} frames; only the first was processed"


def _decode_bytes(data: bytes, max_pixels: int) -> DecodedImage:
    if len(data) == 0:
        raise InputError("empty", "the file is empty (0 bytes)")
    fmt = sniff_format(data[:SNIFF_BYTES])
    if fmt is None:
        raise InputError("unsupported_format", f"the file is {_describe_unknown(data[:SNIFF_BYTES])}; "
                         f"accepted formats: {accepted_formats_text()}")
    notes: list[str] = []
    # Pillow's warnings about odd files are left to the application's filters: silencing
    # them here (warnings.catch_warnings) would change process-wide state from many threads.
    try:
        img = _open_header(data, fmt, max_pixels)
        note = _frame_note(img, fmt)
        if note:
            notes.append(note)
        img.load()
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow's own check while decoding, at the application's Image.MAX_IMAGE_PIXELS.
        raise InputError("too_many_pixels", f"the image is larger than Pillow allows in this process ({_short(exc)}); "
                         "resize it before uploading") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError,
            struct.error, ZeroDivisionError, MemoryError, RuntimeError, Warning) as exc:  # Warning: under -W error
        if "security limit" in str(exc).lower():  # libheif's own caps (sizes, item counts)
            raise InputError("too_many_pixels", f"the {FORMAT_NAMES[fmt]} file exceeds the decoder's safety limits "
                             f"({_short(exc)})") from None
        raise InputError("unreadable", f"the {fmt} file is damaged or truncated and cannot be decoded ({_short(exc)})") from None
    try:
        return _pil_to_decoded(img, fmt, notes)
    except (OSError, ValueError, TypeError, MemoryError) as exc:
        raise InputError("unreadable", f"the {fmt} file cannot be converted to RGB ({_short(exc)})") from None


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text[:160]


def _decode_array(arr: np.ndarray, max_pixels: int) -> DecodedImage:
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError("unreadable", f"an array image must be (H, W), (H, W, 3) or (H, W, 4); got {arr.shape}")
    _check_pixels(arr.shape[1], arr.shape[0], max_pixels)
    if arr.dtype != np.uint8:
        if arr.dtype.kind == "f":
            arr = np.clip(np.nan_to_num(arr) * 255.0, 0, 255).round().astype(np.uint8)
        elif arr.dtype == np.uint16:
            arr = (arr.astype(np.uint32) * 255 // 65535).astype(np.uint8)
        else:
            raise InputError("unreadable", f"unsupported array dtype {arr.dtype}; use uint8, uint16 or float in 0..1")
    alpha = None
    if arr.shape[2] == 4:
        alpha = arr[..., 3].astype(np.float32) / 255.0
        if float(alpha.min()) >= 1.0:
            alpha = None
    return DecodedImage(rgb=np.ascontiguousarray(arr[..., :3]), source_alpha=alpha, format="array")


def decode(
    source: ImageSource,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> DecodedImage:
    """Decode any accepted image source to sRGB uint8 pixels.

    ``source``: a path, encoded bytes, a PIL image or an ndarray ((H, W), (H, W, 3)
    or (H, W, 4); uint8, uint16, or float in 0..1; RGB channel order).
    Raises :class:`~bgclear.errors.InputError` for anything that is not a usable
    image, before decoding pixels when the header already tells.
    """
    if isinstance(source, np.ndarray):
        decoded = _decode_array(source, max_pixels)
    elif isinstance(source, Image.Image):
        _check_pixels(source.width, source.height, max_pixels)
        decoded = _pil_to_decoded(source, source.format or "PIL", [])
    else:
        decoded = _decode_bytes(_read_bytes(source, max_bytes), max_pixels)
    if max(decoded.size) < SMALL_IMAGE_EDGE:
        w, h = decoded.size
        decoded.warnings.append(
            f"the image is small ({w}x{h}); edges from so few pixels come out soft. "
            "Use the original, higher-resolution file for a sharper cutout."
        )
    return decoded
