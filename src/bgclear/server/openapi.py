"""OpenAPI text for ``POST /v1/remove`` that FastAPI cannot infer.

The handler parses its body itself (to keep uploads in memory, see
:mod:`.upload`), so the request body and the option parameters are described
here, generated from :class:`~.schemas.RemoveOptions` so they cannot drift.
"""

from __future__ import annotations

from typing import Any

from ..io.decode import FORMAT_MIME_TYPES, accepted_formats_text
from .config import ACCEPTED_INPUT_FORMATS
from .schemas import ErrorResponse, RemoveOptions, RemoveResult

_ACCEPTED = accepted_formats_text(ACCEPTED_INPUT_FORMATS)


def _option_schemas() -> dict[str, dict[str, Any]]:
    schema = RemoveOptions.model_json_schema()
    return schema["properties"]


def _query_parameters(leave_out: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    params = []
    for name, prop in _option_schemas().items():
        if name in leave_out:
            continue
        prop = dict(prop)
        description = prop.pop("description", "")
        examples = prop.pop("examples", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": prop, "description": description}
        if examples:
            param["example"] = examples[0]
        params.append(param)
    return params


def _error_example(code: str, message: str) -> dict[str, Any]:
    return {"summary": code, "value": {"error": {"code": code, "message": message}}}


_BINARY = {"schema": {"type": "string", "format": "binary"}}

REMOVE_OPENAPI: dict[str, Any] = {
    "parameters": _query_parameters(),
    "requestBody": {
        "required": True,
        "description": f"The image ({_ACCEPTED}, recognised from its bytes; at most the server's max_bytes) "
                       "as a form field or as the raw body.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image_file"],
                    "properties": {
                        "image_file": {"type": "string", "format": "binary", "description": "The image. 'file' is accepted too."},
                        **_option_schemas(),
                    },
                },
            },
            **{mime: _BINARY for fmt in ACCEPTED_INPUT_FORMATS for mime in FORMAT_MIME_TYPES[fmt]},
            "application/octet-stream": _BINARY,
        },
    },
}

def _errors(description: str, *examples: tuple[str, ...]) -> dict[str, Any]:
    """Each example is (code, message), or (name, code, message) for a second example of a code."""
    named = [e if len(e) == 3 else (e[0], *e) for e in examples]
    return {
        "description": description,
        "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ErrorResponse"},
            "examples": {name: _error_example(code, msg) for name, code, msg in named},
        }},
    }


REMOVE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The cutout. Headers: X-Width, X-Height (returned image), X-Source-Width, X-Source-Height, "
        "X-Foreground-Left/Top/Width/Height (subject box in source pixels), X-Warnings (JSON list), Server-Timing.",
        "content": {
            "image/png": _BINARY, "image/jpeg": _BINARY, "image/webp": _BINARY,
            "application/json": {"schema": {"$ref": "#/components/schemas/RemoveResult"},
                                 "example": RemoveResult.model_config["json_schema_extra"]["examples"][0]},  # type: ignore[index]
        },
    },
    400: _errors("Malformed request", ("missing_file", "the form has no image: send it in the field 'image_file' (or 'file')")),
    403: _errors("No API key, or a wrong one (when the server has keys)",
                 ("missing_api_key", "this server requires an API key: send it in the X-Api-Key header (or as Authorization: Bearer <key>)"),
                 ("invalid_api_key", "the API key is not valid for this server; check it and try again")),
    413: _errors("Too large", ("too_large", "the upload is 23.4 MB; the limit is 10 MB per image. Send a smaller file, for example the photo saved as JPEG."),
                 ("too_many_pixels", "the image is 12000x9000 (108.0 MP); the limit is 40 MP. Resize it before uploading.")),
    415: _errors("Not an accepted image format", ("unsupported_format", f"the file is not an image this server reads; it accepts {_ACCEPTED}")),
    422: _errors("Unusable image or option", ("empty", "the upload is empty (0 bytes); choose an image file"),
                 ("unreadable", "the PNG file is damaged or truncated and cannot be decoded (image file is truncated)"),
                 ("invalid_option", "bg_color: unknown colour 'blurple': use #rrggbb, 'transparent' or one of black, blue, ..."),
                 ("point_outside", "invalid_option", "keep point 1 (5000, 10) is outside the 902x300 image (0 <= x < 902, 0 <= y < 300)")),
    429: _errors("Over the rate limit (when the server has one); see Retry-After and X-RateLimit-*",
                 ("rate_limited", "too many requests: this server allows 60/min per API key, in bursts of up to 10; try again in 4 s")),
    503: _errors("Busy or still loading; see Retry-After", ("busy", "the server is busy (1 images in progress, 8 waiting); try again in 12 s"),
                 ("loading", "the model is still loading; try again in a few seconds")),
}

#: The edit path: the options of ``POST /v1/remove`` (less ``edit``) in the query or as form fields, no image.
_EDIT_FORM = {"schema": {"type": "object", "properties": {k: v for k, v in _option_schemas().items() if k != "edit"}}}
EDIT_OPENAPI: dict[str, Any] = {
    "parameters": _query_parameters(leave_out=("edit",)),
    "requestBody": {
        "required": False,
        "description": "The points and options as form fields (or in the query string instead). No image: the server "
                       "holds it under the edit handle.",
        "content": {"multipart/form-data": _EDIT_FORM, "application/x-www-form-urlencoded": _EDIT_FORM},
    },
}
EDIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{k: v for k, v in REMOVE_RESPONSES.items() if k not in (413, 415)},
    404: _errors("This server holds no image under the handle (expired, evicted, restarted, or another replica): "
                 "send the image again with all the points to POST /v1/remove with edit=true",
                 ("edit_expired", "this server holds no image under that edit handle (it expired, was evicted, or "
                  "another server holds it): send the image again with all the points to POST /v1/remove with "
                  "edit=true, which answers a new handle")),
}


def add_components(schema: dict[str, Any]) -> dict[str, Any]:
    """Put the models that ``$ref`` above points at into the schema's components."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorResponse, RemoveResult):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
    return schema
