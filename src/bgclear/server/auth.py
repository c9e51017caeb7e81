"""API keys: loaded from a file, checked in constant time, never logged.

The key file (``bgclear serve --api-keys FILE``) holds one key per line, or its
hash as ``sha256:<64 hex digits>`` so that the file itself need not hold secrets;
blank lines and ``#`` comments are ignored. Only the sha256 digests are kept in
memory. A request's key is hashed and compared with **every** stored digest by
:func:`hmac.compare_digest`, without stopping at a match, so the time taken does
not depend on which key matched, nor on how much of a wrong key was right.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the web framework is imported when the app is built, not when the CLI starts
    from starlette.requests import Request

#: Paths behind the keys (and the rate limit): the APIs. The page, its static files,
#: /healthz and the schema stay open, so a person can see the page and be asked for a key.
API_PREFIXES = ("/v1/", "/v1.0/")
_HASH_LINE = re.compile(r"sha256:([0-9a-fA-F]{64})")


class KeyFileError(ValueError):
    """The key file cannot be used; the message says why (never quoting a key)."""


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class KeyStore:
    """The accepted keys, as sha256 digests."""

    digests: tuple[bytes, ...]

    @classmethod
    def from_lines(cls, lines: list[str], source: str = "the key file") -> KeyStore:
        """Parse key-file lines; raises :class:`KeyFileError` when no key remains."""
        digests: list[bytes] = []
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.lower().startswith("sha256:"):
                match = _HASH_LINE.fullmatch(line)
                if match is None:
                    raise KeyFileError(f"{source}, line {number}: 'sha256:' must be followed by 64 hex digits")
                digests.append(bytes.fromhex(match.group(1)))
            else:
                digests.append(_digest(line))
        if not digests:
            raise KeyFileError(f"{source} holds no key (only blank lines or # comments); "
                               "put one key per line, or sha256:<hex> of a key")
        return cls(tuple(dict.fromkeys(digests)))

    @classmethod
    def load(cls, path: str | Path) -> KeyStore:
        """Read a key file; raises :class:`KeyFileError` when it is unreadable or empty."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"cannot read the API key file {str(path)!r}: {exc.__class__.__name__}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from None
        return cls.from_lines(text.splitlines(), f"the API key file {str(path)!r}")

    def match(self, key: str) -> bytes | None:
        """The stored digest ``key`` matches, or ``None``; every digest is compared."""
        candidate = _digest(key)
        found: bytes | None = None
        for digest in self.digests:
            if hmac.compare_digest(candidate, digest):
                found = digest
        return found


def presented_key(request: Request) -> str | None:
    """The key a request carries: ``X-Api-Key`` (remove.bg's header) or ``Authorization: Bearer``."""
    key = request.headers.get("x-api-key")
    if key is None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        key = value if scheme.lower() == "bearer" else None
    key = (key or "").strip()
    return key or None


def authenticate(store: KeyStore, request: Request) -> bytes:
    """The digest of the request's valid key (an identity for the rate limit), or a 403 :class:`APIError`."""
    from .errors import APIError

    key = presented_key(request)
    if key is None:
        raise APIError("missing_api_key", "this server requires an API key: send it in the X-Api-Key header "
                       "(or as Authorization: Bearer <key>)")
    digest = store.match(key)
    if digest is None:
        raise APIError("invalid_api_key", "the API key is not valid for this server; check it and try again")
    return digest
