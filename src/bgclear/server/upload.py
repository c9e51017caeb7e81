"""Reading an upload into memory, within the size limit, without ever touching the disk.

Starlette's ``request.form()`` spools file parts over 1 MB to temporary files,
so the multipart body is parsed here instead, chunk by chunk as it arrives,
with python-multipart's callback parser; every part lives in a ``bytearray``.
The size limit is checked against ``Content-Length`` before reading and
against the bytes counted while streaming (a client may send no length, or lie).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

try:
    from python_multipart.multipart import MultipartParser, parse_options_header
except ImportError:  # python-multipart < 0.0.13 names its package 'multipart'
    from multipart.multipart import MultipartParser, parse_options_header  # type: ignore[no-redef]
from starlette.requests import ClientDisconnect, Request

from .errors import APIError

#: Form field names that carry the image (remove.bg's name first).
FILE_FIELDS = ("image_file", "file")
#: After a refusal, the rest of the body is read and dropped (never kept) up to this
#: many bytes, so the client gets the JSON error instead of a connection reset
#: while it is still sending; past it the connection is closed.
DRAIN_LIMIT = 256 * 1024 * 1024
_MAX_FIELD_BYTES = 4096


@dataclass
class Upload:
    """One request's image bytes and its text form fields (``fields``: the last value of each
    name; ``items``: every (name, value) in order, for repeatable fields such as ``keep``)."""

    data: bytes
    fields: dict[str, str] = field(default_factory=dict)
    multipart: bool = False
    items: list[tuple[str, str]] = field(default_factory=list)


class _TooLarge(Exception):
    pass


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}".rstrip("0").rstrip(".") + " MB"


def too_large(max_bytes: int, size: int | None = None) -> APIError:
    """The refusal for an upload over the limit, with what to do about it."""
    what = f"the upload is {_mb(size)}" if size is not None else "the upload is larger than the limit"
    return APIError(
        "too_large",
        f"{what}; the limit is {_mb(max_bytes)} per image. "
        "Send a smaller file, for example the photo saved as JPEG.",
    )


class _FormCollector:
    """Callbacks for python-multipart's parser; keeps parts in memory."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.file: bytearray | None = None
        self.fields: dict[str, str] = {}
        self.items: list[tuple[str, str]] = []
        self._headers: dict[bytes, bytes] = {}
        self._hname = bytearray()
        self._hvalue = bytearray()
        self._name = ""
        self._is_file = False
        self._buf = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._hname.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._hvalue.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers, self._buf = {}, bytearray()

    def _header_end(self) -> None:
        self._headers[bytes(self._hname).lower()] = bytes(self._hvalue)
        self._hname, self._hvalue = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        has_filename = b"filename" in params
        self._is_file = self._name in FILE_FIELDS
        if self._is_file and self.file is not None:
            raise APIError("bad_request", "send one image per request (found a second file field)")
        if has_filename and not self._is_file:
            raise APIError("missing_file", f"unexpected file field {self._name!r}; send the image as 'image_file'")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._buf.extend(data[start:end])
        limit = self.max_bytes if self._is_file else _MAX_FIELD_BYTES
        if len(self._buf) > limit:
            if self._is_file:
                raise _TooLarge
            raise APIError("bad_request", f"the form field {self._name!r} is longer than {_MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._is_file:
            self.file = self._buf
        elif self._name:
            self.fields[self._name] = self._buf.decode("utf-8", "replace")
            self.items.append((self._name, self.fields[self._name]))
        self._buf = bytearray()


async def _drain(request: Request, already: int) -> bool:
    """Read and drop the rest of the body; False when it was too long to wait for."""
    seen = already
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > DRAIN_LIMIT:
                return False
    except ClientDisconnect:
        return False
    return True


def _expects_continue(request: Request) -> bool:
    """The client waits for '100 Continue' before sending: refusing costs no body at all."""
    return request.headers.get("expect", "").lower() == "100-continue"


async def _refuse(request: Request, error: APIError, seen: int) -> APIError:
    if seen == 0 and _expects_continue(request):
        error.headers["Connection"] = "close"
    elif not await _drain(request, seen):
        error.headers["Connection"] = "close"
    return error


async def stream_body(request: Request, max_bytes: int, max_body: int,
                      collector: _FormCollector | None = None, raw_limit: int | None = None) -> bytes:
    """Read the whole body in memory: multipart parts into ``collector``, anything else
    returned as bytes (at most ``raw_limit``, default ``max_bytes``).

    ``Content-Length`` is checked against ``max_body`` before reading and the bytes
    are counted while streaming. Raises :class:`APIError` (``too_large``, ``bad_request``).
    """
    length_header = request.headers.get("content-length")
    if length_header is not None:
        try:
            length = int(length_header)
        except ValueError:
            raise APIError("bad_request", "the Content-Length header is not a number") from None
        if length > max_body:
            error = too_large(max_bytes, length)
            if length > DRAIN_LIMIT:
                # Not worth reading: answer now and close.
                error.headers["Connection"] = "close"
                raise error
            raise await _refuse(request, error, 0)

    parser = None
    if collector is not None:
        _, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if not boundary:
            raise await _refuse(request, APIError("bad_request", "multipart/form-data without a boundary"), 0)
        parser = MultipartParser(boundary, collector.callbacks())
    raw_limit = max_bytes if raw_limit is None else raw_limit
    raw = bytearray()
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > max_body:
                raise _TooLarge
            if parser is not None:
                parser.write(chunk)
            else:
                raw.extend(chunk)
                if len(raw) > raw_limit:
                    raise _TooLarge
        if parser is not None:
            parser.finalize()
    except _TooLarge:
        raise await _refuse(request, too_large(max_bytes), seen) from None
    except APIError as error:
        raise await _refuse(request, error, seen) from None
    except ClientDisconnect:
        raise APIError("bad_request", "the client closed the connection before the upload was complete") from None
    except Exception as exc:  # python-multipart raises its own error types on malformed bodies
        raise await _refuse(request, APIError("bad_request", f"the multipart body is malformed ({exc.__class__.__name__})"), seen) from None
    return bytes(raw)


def is_multipart(request: Request) -> bool:
    content_type, _ = parse_options_header(request.headers.get("content-type", ""))
    return content_type == b"multipart/form-data"


async def read_upload(request: Request, max_bytes: int, max_body: int) -> Upload:
    """The image and form fields of a ``multipart/form-data`` or raw-body request.

    Raises :class:`APIError` (``too_large``, ``missing_file``, ``bad_request``).
    """
    collector = _FormCollector(max_bytes) if is_multipart(request) else None
    raw = await stream_body(request, max_bytes, max_body, collector)
    if collector is None:
        return Upload(raw)
    if collector.file is None:
        if "image_url" in collector.fields:
            raise APIError("missing_file", "image_url is not supported: this server fetches nothing; upload the file as 'image_file'")
        raise APIError("missing_file", "the form has no image: send it in the field 'image_file' (or 'file')")
    return Upload(bytes(collector.file), collector.fields, multipart=True, items=collector.items)


async def read_fields(request: Request, max_body: int) -> list[tuple[str, str]]:
    """The (name, value) form fields of a request that carries no image: a multipart or
    urlencoded body, or none. Raises :class:`APIError` (``bad_request``, ``too_large``)."""
    collector = _FormCollector(max_body) if is_multipart(request) else None
    raw = await stream_body(request, max_body, max_body, collector)
    if collector is not None:
        if collector.file is not None:
            raise APIError("bad_request", "this request takes no image: it edits one the server already holds")
        return collector.items
    content_type, _ = parse_options_header(request.headers.get("content-type", ""))
    if content_type == b"application/x-www-form-urlencoded":
        return parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    if raw.strip():
        raise APIError("bad_request", "send the options as form fields or in the query string, not as a raw body; "
                       "this request takes no image")
    return []


async def discard_body(request: Request) -> dict[str, str]:
    """Drop an unread body before a refusal; the headers to add to that refusal."""
    if _expects_continue(request) or not await _drain(request, 0):
        return {"Connection": "close"}
    return {}
