"""Coverage-guided fuzzing of bgclear.io.decode.decode with atheris (not run in CI).

    .venv/bin/pip install atheris
    .venv/bin/python benchmarks/fuzz_decode.py -max_total_time=300 -rss_limit_mb=4096 -timeout=20 \
        /tmp/bgclear-fuzz-corpus

Seeds the corpus folder with valid files of every accepted format (tests/hostile_corpus.py
seeds), instruments bgclear.io.decode and Pillow's Python plugins, and calls decode() on every
input with a 4 MP cap (so a legitimate large header is refused quickly, not decoded).
Anything but a DecodedImage or an InputError is a crash: libFuzzer writes the input to
crash-<sha1> in the working folder; add it to tests/hostile_corpus.py's _REGRESSIONS.
Hangs are caught by -timeout, memory blow-ups by -rss_limit_mb.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

with atheris.instrument_imports(include=["bgclear", "PIL"]):
    from bgclear.io.decode import decode
    from bgclear.errors import InputError

MAX_PIXELS = 4_000_000


def test_one_input(data: bytes) -> None:
    try:
        decoded = decode(data, max_pixels=MAX_PIXELS)
    except InputError:
        return
    h, w = decoded.rgb.shape[:2]
    assert decoded.rgb.dtype.name == "uint8" and decoded.rgb.shape == (h, w, 3) and w * h <= MAX_PIXELS
    if decoded.source_alpha is not None:
        assert decoded.source_alpha.shape == (h, w)


def seed_corpus(folder: Path) -> None:
    from hostile_corpus import seeds

    folder.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (folder / f"seed-{name}").write_bytes(data)


def main() -> None:
    dirs = [a for a in sys.argv[1:] if not a.startswith("-")]
    for d in dirs[:1]:
        seed_corpus(Path(d))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
