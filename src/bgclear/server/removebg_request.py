"""Reading a ``POST /v1.0/removebg`` body: multipart, urlencoded or JSON, all in memory.

remove.bg takes its parameters in any of the three; files (``image_file``,
``bg_image_file``) only in multipart; the image as base64 (``image_file_b64``) in
any. Query-string parameters are read too (the body wins).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.requests import Request

from .errors import APIError
from .removebg_params import RemoveBgError, invalid
from .upload import _MAX_FIELD_BYTES, _FormCollector, _TooLarge, is_multipart, parse_options_header, stream_body, too_large

FILE_PARTS = ("image_file", "bg_image_file")
B64_FIELD = "image_file_b64"
#: Room for the form around the files and for headers of the parts.
OVERHEAD_BYTES = 64 * 1024
_DATA_URL = re.compile(r"^data:[^,;]*(;[^,;]*)*;base64,", re.IGNORECASE)


def b64_limit(max_bytes: int) -> int:
    """Longest accepted base64 text for an image of ``max_bytes`` (line breaks allowed)."""
    return math.ceil(max_bytes / 3) * 4 * 103 // 100 + 1024


@dataclass
class RemoveBgBody:
    """The request's text parameters and its file parts."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


class _Form(_FormCollector):
    """Multipart parts in memory: two file parts, a long base64 field, short text fields."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self.files: dict[str, bytes] = {}
        self._limit = _MAX_FIELD_BYTES

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        self._is_file = self._name in FILE_PARTS
        if self._name in self.files or self._name in self.fields:
            raise APIError("bad_request", f"the form has the field {self._name!r} twice; send it once")
        if b"filename" in params and not self._is_file:
            raise APIError("bad_request", f"unexpected file part {self._name!r}; files go in image_file or bg_image_file")
        self._limit = (self.max_bytes if self._is_file
                       else b64_limit(self.max_bytes) if self._name == B64_FIELD else _MAX_FIELD_BYTES)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._buf.extend(data[start:end])
        if len(self._buf) > self._limit:
            if self._is_file or self._name == B64_FIELD:
                raise _TooLarge
            raise APIError("bad_request", f"the form field {self._name!r} is longer than {_MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._is_file:
            self.files[self._name] = bytes(self._buf)
        elif self._name:
            self.fields[self._name] = self._buf.decode("utf-8", "replace")
        self._buf = bytearray()


def _json_fields(raw: bytes) -> dict[str, str]:
    """A JSON object's scalar values as the strings a form would carry."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError("bad_request", f"the JSON body cannot be parsed ({exc.__class__.__name__}: {str(exc)[:80]})") from None
    if not isinstance(body, dict):
        raise APIError("bad_request", "the JSON body must be an object of parameters, e.g. {\"image_url\": ..., \"size\": \"auto\"}")
    fields: dict[str, str] = {}
    for name, value in body.items():
        if value is None:
            continue
        if isinstance(value, bool):
            fields[name] = "true" if value else "false"
        elif isinstance(value, (int, float, str)):
            fields[name] = str(value)
        else:
            raise invalid(name, f"{name} must be a string, number or boolean, not a JSON {type(value).__name__}")
    return fields


async def read_removebg_body(request: Request, max_bytes: int) -> RemoveBgBody:
    """Read and parse the body. Raises :class:`APIError` (too_large, bad_request) or
    :class:`RemoveBgError` (a content type remove.bg does not take)."""
    max_body = max_bytes + b64_limit(max_bytes) + OVERHEAD_BYTES
    query = dict(request.query_params)
    content_type = parse_options_header(request.headers.get("content-type", ""))[0].decode("latin-1").lower()
    if is_multipart(request):
        form = _Form(max_bytes)
        await stream_body(request, max_bytes, max_body, form)
        return RemoveBgBody({**query, **form.fields}, form.files)
    raw = await stream_body(request, max_bytes, max_body, raw_limit=max_body)
    if content_type == "application/json" or content_type.endswith("+json"):
        return RemoveBgBody({**query, **_json_fields(raw)})
    if content_type == "application/x-www-form-urlencoded" or (not raw and not content_type):
        pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return RemoveBgBody({**query, **dict(pairs)})
    raise RemoveBgError("invalid_content_type", "Unsupported content type",
                        f"the body is {content_type or 'untyped'}; send multipart/form-data, "
                        "application/x-www-form-urlencoded or application/json, as remove.bg takes")


def decode_b64_image(text: str, max_bytes: int) -> bytes:
    """``image_file_b64`` to bytes: plain or URL-safe base64, line breaks and a data: URL prefix allowed."""
    compact = "".join(_DATA_URL.sub("", text.strip()).split())
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise RemoveBgError("failed_to_read_image", "There was an error reading the image.",
                            "image_file_b64 is not valid base64") from None
    if len(data) > max_bytes:
        raise too_large(max_bytes, len(data))
    return data
