"""The hostile corpus (tests/hostile_corpus.py) through the library: a fast subset.

Every case in the subset is decoded in a worker subprocess under a time bound (a hang
or a crash of the worker fails the test, as does any exception other than InputError,
an InputError without a precise message, or an image where a refusal was expected);
a sample of the decodable cases goes through the whole ``Session.remove`` (u2netp) and
must give an RGBA cutout of the decoded source's size. The whole corpus:
``benchmarks/hostile_library.py``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hostile_check import run_pool  # noqa: E402
from hostile_corpus import _build, build_corpus, by_name, fast_subset, summary  # noqa: E402

#: Seconds per case: only a hang gets near it (the slowest case decodes in ~1 s).
CASE_TIMEOUT = 60

FULL_SAMPLE = [
    "seed/png", "seed/jpeg", "seed/webp", "seed/gif", "seed/tiff", "seed/bmp", "seed/png_rgba",
    "shape/png/1x20000", "shape/jpeg/20000x1", "shape/png/1x1", "shape/webp/1x16383", "shape/png/1x40000",
    "mode/png-rgba16", "mode/tiff-F-nan-inf", "mode/tiff-F-all-nan", "mode/png-P-tRNS-table", "mode/png-LA",
    "mode/jpeg-CMYK", "mode/jpeg-YCCK-adobe-transform-2", "mode/png-RGBA-all-transparent", "mode/png-1bit",
    "exif/jpeg-orientation-6", "exif/png-orientation-9", "exif/jpeg-ifd-loop", "icc/jpeg-lab-on-rgb",
    "icc/jpeg-cmyk-random", "anim/gif-3000-frames", "anim/webp-2000-frames", "anim/apng-1500-frames",
    "polyglot/gif+zip (GIFAR)", "bomb/png-5000-text-chunks", "struct/bmp-rle8-valid", "tiff/group4-1bit",
    "seed/heic", "seed/avif", "heif/heic-orientation-6", "heif/heic-4-images-primary-2", "heif/avif-rgba",
    "heif/heic-16bit-grey", "heif/avif-animated-3",
]


def test_the_corpus_is_large_varied_and_deterministic() -> None:
    cases = build_corpus()
    assert len(cases) >= 1000
    assert len({c.name for c in cases}) == len(cases)
    assert len({hashlib.sha1(c.data).digest() for c in cases}) >= 1000  # distinct files, not only names
    counts = summary(cases)
    for category in ("truncate", "bitflip", "corrupt", "bomb", "shape", "mode", "exif", "icc", "anim", "notimage",
                     "polyglot", "struct", "tiff"):
        assert counts.get(category, 0) >= 5, category
    again = _build.__wrapped__()  # built afresh: same seeds, same bytes
    assert [hashlib.sha1(c.data).hexdigest() for c in again] == [hashlib.sha1(c.data).hexdigest() for c in cases]
    assert all(c.expect in ("ok", "refuse", "either") for c in cases)


def test_every_sampled_full_case_exists() -> None:
    names = by_name()
    assert [n for n in FULL_SAMPLE if n not in names] == []


@pytest.fixture(scope="module")
def results():
    cases = fast_subset()
    index = by_name()
    cases += [index[n] for n in FULL_SAMPLE if index[n] not in cases]
    return run_pool(cases, workers=2, timeout=CASE_TIMEOUT, full=set(FULL_SAMPLE))


def test_every_case_gives_a_cutout_or_an_input_error(results) -> None:
    assert len(results) >= 300
    failures = [f"{r.name}: {r.outcome}: {r.detail}" for r in results if r.verdict != "pass"]
    assert failures == []


def test_the_full_pipeline_ran_on_the_sample(results) -> None:
    by = {r.name: r for r in results}
    assert all(by[n].outcome == "ok" for n in FULL_SAMPLE), [(n, by[n].outcome, by[n].detail) for n in FULL_SAMPLE
                                                              if by[n].outcome != "ok"]


def test_decompression_bombs_are_refused_from_the_header(results) -> None:
    bombs = [r for r in results if r.name.startswith("bomb/") and "65535x65535" in r.name]
    assert len(bombs) >= 8
    assert all(r.outcome.startswith("refused:") for r in bombs), [(r.name, r.outcome) for r in bombs]
    # A 65535 x 65535 RGB buffer is 12.9 GB: no worker came anywhere near allocating one.
    assert max(r.peak_rss_mb for r in results if not r.name.startswith(("anim/", "shape/"))) < 2000
