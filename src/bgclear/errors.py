"""Exceptions raised by bgclear.

Every refusal of an input raises :class:`InputError`; its ``code`` is stable and
machine-readable (the HTTP server maps it to a status code), its message is
meant for a person.
"""

from __future__ import annotations


class BgclearError(Exception):
    """Base class of every error bgclear raises on purpose."""


class InputError(BgclearError):
    """The input image cannot be processed.

    ``code`` is one of :data:`INPUT_ERROR_CODES`.
    """

    def __init__(self, code: str, message: str) -> None:
        if code not in INPUT_ERROR_CODES:
            raise ValueError(f"unknown input error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message


#: code -> HTTP status used by the server.
INPUT_ERROR_CODES: dict[str, int] = {
    "empty": 422,  # zero bytes
    "too_large": 413,  # more bytes than allowed
    "too_many_pixels": 413,  # width x height over the pixel cap (decompression bombs too)
    "unsupported_format": 415,  # not an image format we accept
    "unreadable": 422,  # claims a supported format but cannot be decoded (corrupt, truncated)
    "invalid_option": 422,  # a processing option that makes no sense
}


class ModelError(BgclearError):
    """A model is unknown, missing from the cache or fails verification."""


class ModelNotFoundError(ModelError):
    """The model's weights are not in the cache; the message names the command that fetches them."""


class ChecksumError(ModelError):
    """A model file's sha256 differs from the registry's."""
