"""Image I/O: bytes in, pixels out, pixels in, bytes out.

- :mod:`.decode`: any accepted file (format sniffed from the bytes, pixel cap from the header,
  EXIF orientation, ICC to sRGB) -> uint8 RGB and its own alpha; :mod:`.isomedia` reads the
  HEIF/AVIF boxes it needs before any codec runs.
- :mod:`.encode`: pixels -> PNG / JPEG / WebP bytes; :mod:`.png` is the PNG writer that deflates on
  every core.
- :mod:`.files`: atomic writes (a reader never sees a partial file).
"""
