"""Stage 1 — decode: bytes / path / PIL image / array in, sRGB uint8 pixels out.

Everything a hostile or odd file can do is handled here, before any large
buffer is allocated: the format is sniffed from the bytes (never the name),
the pixel count is checked from the header, EXIF orientation is applied and
colour profiles are converted to sRGB.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps

from .errors import InputError

# We enforce our own pixel cap from the header; Pillow's own bomb check would
# raise a different exception type at a different threshold.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

DEFAULT_MAX_PIXELS = int(os.environ.get("BGCLEAR_MAX_PIXELS", 40_000_000))
DEFAULT_MAX_BYTES = int(os.environ.get("BGCLEAR_MAX_BYTES", 100 * 1024 * 1024))
SMALL_IMAGE_EDGE = 1000

#: format name -> magic-byte test. Only these are decoded.
_SIGNATURES = {
    "JPEG": lambda b: b[:3] == b"\xff\xd8\xff",
    "PNG": lambda b: b[:8] == b"\x89PNG\r\n\x1a\n",
    "WEBP": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "TIFF": lambda b: b[:4] in (b"II*\x00", b"MM\x00*"),
    "BMP": lambda b: b[:2] == b"BM",
    "GIF": lambda b: b[:6] in (b"GIF87a", b"GIF89a"),
}
SUPPORTED_FORMATS = tuple(_SIGNATURES)

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
    """Container format from the first bytes of a file, or ``None`` if not an accepted image."""
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
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif", b"ftyphevc", b"ftypmsf1"):
        return "a HEIC/AVIF image (not supported; export it as JPEG or PNG)"
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


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InputError("unreadable", f"the image header claims an empty size ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(
            "too_many_pixels",
            f"the image is {width}x{height} ({width * height / 1e6:.1f} MP); the limit is "
            f"{max_pixels / 1e6:.0f} MP. Resize it before uploading.",
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


def _decode_bytes(data: bytes, max_pixels: int) -> DecodedImage:
    if len(data) == 0:
        raise InputError("empty", "the file is empty (0 bytes)")
    fmt = sniff_format(data[:16])
    if fmt is None:
        accepted = ", ".join(SUPPORTED_FORMATS)
        raise InputError("unsupported_format", f"the file is {_describe_unknown(data[:64])}; accepted formats: {accepted}")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data), formats=[fmt])
            _check_pixels(img.width, img.height, max_pixels)
            frames = getattr(img, "n_frames", 1) if fmt in ("GIF", "WEBP", "PNG", "TIFF") else 1
            if frames > 1:
                notes.append(f"the file has {frames} frames; only the first was processed")
            img.load()
    except InputError:
        raise
    except Image.DecompressionBombError as exc:  # pragma: no cover - cap disabled above
        raise InputError("too_many_pixels", str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError,
            struct.error, ZeroDivisionError, MemoryError, RuntimeError) as exc:
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
