"""HEIC/HEIF, AVIF and TIFF: sniffed from the bytes, capped from the header, EXIF orientation
and ICC profiles honoured, the primary image of a multi-image file, on every face (library,
CLI, /v1/remove, the page's accept list); and Pillow's process-wide settings left alone.

Every file here is real: HEIC written by pillow-heif (libheif + x265), AVIF by Pillow
(libavif), compared pixel by pixel with what they were made from.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from bgclear.io.decode import FORMAT_SUFFIXES, SUPPORTED_FORMATS, decode, sniff_format
from bgclear.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
import format_samples as fs  # noqa: E402
from server_fixtures import REPO, disc_image, photo_like  # noqa: E402

NEW = ("HEIC", "AVIF", "TIFF")


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + bytes(4) + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + bytes(64)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return photo_like(320, 240)


# ---- sniffing ----------------------------------------------------------------------

@pytest.mark.parametrize("head,fmt", [
    *[(ftyp(b), "HEIF") for b in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")],
    (ftyp(b"avif"), "AVIF"), (ftyp(b"avis"), "AVIF"), (ftyp(b"mif1", b"mif1", b"avif", b"miaf"), "AVIF"),
    (ftyp(b"msf1", b"avis"), "AVIF"), (ftyp(b"mif1", b"heic"), "HEIF"),
    (ftyp(b"isom", b"avif"), None), (ftyp(b"qt  "), None), (ftyp(b"mp42", b"isom"), None),
    (b"II*\x00\x08\x00\x00\x00", "TIFF"), (b"MM\x00*\x00\x00\x00\x08", "TIFF"), (b"II+\x00", None),
])
def test_format_is_sniffed_from_the_brands(head: bytes, fmt: str | None) -> None:
    assert sniff_format(head[:64]) == fmt


def test_the_written_files_sniff_as_what_they_are(photo: Image.Image) -> None:
    assert sniff_format(fs.heic(photo)[:64]) == "HEIF"
    assert sniff_format(fs.avif(photo)[:64]) == "AVIF"
    assert sniff_format(fs.encode(photo, "TIFF")[:64]) == "TIFF"
    assert {"HEIF", "AVIF", "TIFF"} <= set(SUPPORTED_FORMATS)


def test_videos_in_the_same_container_are_named_not_guessed() -> None:
    with pytest.raises(InputError) as err:
        decode(ftyp(b"mp42", b"isom"))
    assert err.value.code == "unsupported_format"
    assert "'mp42'" in err.value.message and "HEIC" in err.value.message


# ---- pixels, orientation, profiles -----------------------------------------------------

@pytest.mark.parametrize("fmt,tolerance", [("HEIC", 6.0), ("AVIF", 6.0), ("TIFF", 0.0)])
def test_decoded_pixels_match_the_source(photo: Image.Image, fmt: str, tolerance: float) -> None:
    out = decode(fs.encode(photo, fmt))
    assert out.format == ("HEIF" if fmt == "HEIC" else fmt) and out.size == photo.size
    assert out.rgb.dtype == np.uint8 and out.rgb.flags.c_contiguous and out.source_alpha is None
    assert np.abs(out.rgb.astype(float) - np.asarray(photo)).mean() <= tolerance


@pytest.mark.parametrize("fmt", NEW)
@pytest.mark.parametrize("orientation,turn", [(3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied_once(photo: Image.Image, fmt: str, orientation: int, turn: int) -> None:
    """HEIC stores the turn as an irot box (libheif applies it; the EXIF tag must then not
    turn it again), AVIF as irot/imir (Pillow reports it as the EXIF tag), TIFF as the tag."""
    out = decode(fs.encode(photo, fmt, exif=fs.exif_orientation(orientation)))
    want = np.rot90(np.asarray(photo), turn)
    assert out.rgb.shape == want.shape
    assert np.abs(out.rgb.astype(float) - want).mean() < 6.0


@pytest.mark.parametrize("fmt", [*NEW, "PNG"])
def test_an_icc_profile_that_is_not_srgb_is_converted(fmt: str) -> None:
    arr = np.zeros((48, 64, 3), np.uint8)
    arr[:, :16], arr[:, 16:32], arr[:, 32:48] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    arr[:, 48:] = np.linspace(0, 255, 48, dtype=np.uint8)[:, None, None]
    img = Image.fromarray(arr)
    profile = fs.swapped_profile()
    want = np.asarray(ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                                                ImageCms.createProfile("sRGB"), outputMode="RGB")).astype(int)
    out = decode(fs.encode(img, fmt, icc_profile=profile))
    assert np.abs(out.rgb.astype(int) - want).max() <= 4
    assert out.rgb[0, 0].tolist() == pytest.approx([0, 0, 255], abs=3)  # red in that profile is sRGB blue
    assert any("converted colours" in w for w in out.warnings)


@pytest.mark.parametrize("fmt", ["HEIC", "AVIF", "TIFF"])
def test_transparency_is_kept(fmt: str) -> None:
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., :3] = (30, 160, 90)
    rgba[..., 3] = np.linspace(0, 255, 60, dtype=np.uint8)[None, :]
    out = decode(fs.encode(Image.fromarray(rgba), fmt))
    assert out.source_alpha is not None
    assert np.abs(out.source_alpha * 255 - rgba[..., 3]).max() <= 6


def test_a_heic_with_several_images_gives_the_primary_one() -> None:
    colours = ((200, 30, 30), (30, 200, 30), (30, 30, 200))
    images = [Image.new("RGB", (40, 30), c) for c in colours]
    for primary in (0, 2):
        out = decode(fs.heic(images[0], more=images[1:], primary=primary))
        assert out.rgb[15, 20].tolist() == pytest.approx(list(colours[primary]), abs=4)
        assert any("3 images; the primary image" in w for w in out.warnings)


def test_a_tiff_with_several_pages_gives_the_first() -> None:
    pages = [Image.new("RGB", (40, 30), c) for c in ((10, 20, 30), (200, 0, 0))]
    out = decode(fs.encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    assert out.rgb[0, 0].tolist() == [10, 20, 30]
    assert any("2 images; the first page" in w for w in out.warnings)


# ---- hostile files ---------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["HEIC", "AVIF"])
@pytest.mark.parametrize("w,h", [(65535, 65535), (100_000, 100_000), (2 ** 32 - 1, 1), (8000, 6000)])
def test_a_huge_declared_size_is_refused_from_the_header(photo: Image.Image, fmt: str, w: int, h: int) -> None:
    bomb = fs.patch_ispe(fs.encode(photo, fmt), w, h)
    with pytest.raises(InputError) as err:
        decode(bomb)
    assert err.value.code == "too_many_pixels"
    assert f"{w}x{h}" in err.value.message


@pytest.mark.parametrize("fmt", ["HEIC", "AVIF"])
def test_broken_heif_and_avif_files_are_refused_clearly(photo: Image.Image, fmt: str) -> None:
    good = fs.encode(photo, fmt)
    other = fs.encode(photo, "AVIF" if fmt == "HEIC" else "HEIC")
    brand = b"heic" if fmt == "AVIF" else b"avif"
    cases = {
        "truncated": good[: len(good) // 2],
        "header only": good[:40],
        "zero size": fs.patch_ispe(good, 0, 0),
        "garbage after ftyp": good[:32] + bytes(range(256)) * 8,
        "wrong brand": good[:8] + brand + good[12:],
        "other codec's data": good[:32] + other[32:],
    }
    for name, data in cases.items():
        with pytest.raises(InputError) as err:
            decode(data)
        assert err.value.code in ("unreadable", "too_many_pixels"), name
        assert len(err.value.message) > 20, name


# ---- Pillow's process-wide settings ------------------------------------------------------

def test_importing_and_using_bgclear_leaves_pillow_as_it_was() -> None:
    """Issue 13: ``import bgclear`` once switched off Pillow's decompression-bomb guard for
    the whole process. Run in a fresh interpreter, before and after bgclear decodes
    every format, a bomb and a file with an unusual profile."""
    code = textwrap.dedent(f"""
        import io, json, sys, warnings
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from PIL import Image, ImageFile
        import numpy, scipy.ndimage, cv2  # noqa: their own warning filters are not ours to judge
        Image.init()
        def settings():
            return {{"max": Image.MAX_IMAGE_PIXELS, "truncated": ImageFile.LOAD_TRUNCATED_IMAGES,
                     "open": sorted(Image.OPEN), "save": sorted(Image.SAVE), "ext": sorted(Image.EXTENSION.items()),
                     "mime": sorted(Image.MIME.items()), "filters": repr(warnings.filters)}}
        before = settings()
        import bgclear, format_samples as fs
        from bgclear.io.decode import decode
        photo = Image.new("RGB", (64, 48), (200, 100, 50))
        for fmt in ("HEIC", "AVIF", "TIFF", "PNG", "JPEG", "WEBP", "GIF", "BMP"):
            decode(fs.encode(photo, fmt))
        decode(fs.encode(photo, "PNG", icc_profile=fs.swapped_profile()))
        bomb = io.BytesIO()
        Image.new("1", (20000, 20000)).save(bomb, "PNG")
        try:
            decode(bomb.getvalue())
        except bgclear.InputError as exc:
            refused = exc.code
        after = settings()
        try:  # the application's own Image.open still has Pillow's guard
            Image.open(io.BytesIO(bomb.getvalue()))
            guarded = False
        except Image.DecompressionBombError:
            guarded = True
        print(json.dumps({{"same": before == after, "diff": [k for k in before if before[k] != after[k]],
                           "refused": refused, "guarded": guarded, "max": after["max"]}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    assert result["diff"] == [] and result["same"]
    assert result["refused"] == "too_many_pixels" and result["guarded"] is True
    assert result["max"] == 1024 * 1024 * 1024 // 4 // 3  # Pillow's default, untouched


def test_decoding_from_many_threads_leaves_the_warning_filters_alone() -> None:
    """warnings.catch_warnings() around Pillow, as decode once did, is process-wide: two
    threads interleaving its save and restore could leave "ignore everything" installed."""
    import threading
    import warnings

    before = list(warnings.filters)
    files = [fs.encode(Image.new("RGB", (48, 32), (i * 40, 60, 90)), fmt) for i, fmt in enumerate(("PNG", "TIFF", "HEIC", "AVIF"))]
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(15):
            for data in files:
                decode(data)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert warnings.filters == before


def test_our_cap_never_looser_than_the_application_set_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    data = disc_image(200, 100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # Pillow refuses above twice this
    with pytest.raises(InputError) as err:
        decode(data)
    assert err.value.code == "too_many_pixels" and "MAX_IMAGE_PIXELS" in err.value.message
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # switched off by the application: ours still holds
    with pytest.raises(InputError):
        decode(data, max_pixels=19_999)
    assert decode(data, max_pixels=20_000).size == (200, 100)


# ---- every face ------------------------------------------------------------------------

def test_cli_reads_them_one_by_one_and_in_folders(tmp_path: Path) -> None:
    photo = photo_like(200, 150)
    src = tmp_path / "shoot"
    src.mkdir()
    (src / "phone.heic").write_bytes(fs.heic(photo, exif=fs.exif_orientation(6)))
    (src / "web.avif").write_bytes(fs.avif(photo))
    (src / "scan.tif").write_bytes(fs.encode(photo, "TIFF"))
    (src / "notes.txt").write_text("not an image")
    bgclear = [sys.executable, "-m", "bgclear.cli"]
    one = subprocess.run([*bgclear, "remove", str(src / "phone.heic"), "-o", str(tmp_path / "one.png"),
                          "--segmenter", "u2netp"], capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    assert Image.open(tmp_path / "one.png").size == (150, 200)  # turned by its orientation
    out = tmp_path / "out"
    many = subprocess.run([*bgclear, "remove", str(src), "-o", str(out), "--segmenter", "u2netp"],
                          capture_output=True, text=True, timeout=300)
    assert many.returncode == 0, many.stderr
    assert sorted(p.name for p in out.iterdir()) == ["phone.png", "scan.png", "web.png"]
    assert all(Image.open(p).mode == "RGBA" for p in out.iterdir())


def test_batch_scans_for_every_decoded_suffix() -> None:
    from bgclear.batch import IMAGE_SUFFIXES

    assert {s for suffixes in FORMAT_SUFFIXES.values() for s in suffixes} == IMAGE_SUFFIXES
    assert {".heic", ".heif", ".avif", ".tif", ".tiff"} <= IMAGE_SUFFIXES


@pytest.mark.parametrize("fmt", NEW)
def test_the_api_cuts_them_out(small_session, photo: Image.Image, fmt: str) -> None:
    from fastapi.testclient import TestClient

    from bgclear.server import ServerSettings, create_app

    app = create_app(ServerSettings(segmenter="u2netp"), session=small_session)
    with TestClient(app) as client:
        assert {"HEIF", "AVIF", "TIFF"} <= set(client.get("/healthz").json()["accepted_formats"])
        data = fs.encode(photo, fmt, exif=fs.exif_orientation(8))
        for path, form in (("/v1/remove", {}), ("/v1.0/removebg", {"size": "full"})):  # both APIs
            r = client.post(path, files={"image_file": ("photo." + fmt.lower(), data)}, data=form)
            assert r.status_code == 200, r.text
            assert Image.open(io.BytesIO(r.content)).size == (240, 320)
        bomb = client.post("/v1/remove", content=fs.patch_ispe(data, 65535, 65535) if fmt != "TIFF" else data[:200])
        assert bomb.status_code in (413, 422) and bomb.json()["error"]["code"] in ("too_many_pixels", "unreadable")


def test_the_page_offers_exactly_the_decoders_formats_in_its_file_picker() -> None:
    """By MIME type and by suffix: browsers that know no type for .heic files match the suffix."""
    from bgclear.io.decode import FORMAT_MIME_TYPES

    html = (REPO / "src/bgclear/server/static/index.html").read_text()
    accept = set(html.split('id="file-input" accept="', 1)[1].split('"', 1)[0].split(","))
    wanted = {x for f in SUPPORTED_FORMATS for x in (*FORMAT_MIME_TYPES[f], *FORMAT_SUFFIXES[f])}
    assert accept == wanted
