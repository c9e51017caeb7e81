"""OpenAPI text for the remove.bg drop-in: its parameters, responses and error shape.

The handler parses its body itself (multipart, urlencoded or JSON, in memory), so
the request body is described here; the parameter descriptions are this server's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .removebg_params import KNOWN


class RemoveBgOptions(BaseModel):
    """The parameters of ``POST /v1.0/removebg`` (all optional but one image source)."""

    image_file: str | None = Field(None, description="The image (multipart file part). Give exactly one of image_file, image_file_b64, image_url.")
    image_file_b64: str | None = Field(None, description="The image, base64-encoded (a data: URL prefix and line breaks are accepted).")
    image_url: str | None = Field(None, description="The image's URL. Only with `bgclear serve --allow-url-fetch HOST`; refused otherwise.")
    size: str = Field("preview", description="preview / small / regular: at most 0.25 megapixels (the default, as remove.bg); "
                      "medium: 1.5 MP; hd: 4 MP; full / 4k / 50MP / auto: the source's full resolution. Never enlarged.")
    type: str = Field("auto", description="auto, person, product, car, animal, graphic, transportation: accepted and checked; "
                      "reported back in X-Type.")
    type_level: str = Field("1", description="none (no X-Type header), 1, 2, latest.")
    format: str = Field("auto", description="auto (png when anything is transparent, else jpg), png, jpg, webp, zip "
                        "(color.jpg + alpha.png).")
    roi: str = Field("0% 0% 100% 100%", description="Region of interest 'x1 y1 x2 y2' in px or %: nothing outside it is kept.")
    crop: bool = Field(False, description="Crop to the subject (and its shadow) plus crop_margin.")
    crop_margin: str = Field("0", description="1, 2 or 4 values (top right bottom left) in px (at most 500) or % of the "
                             "subject's size (at most 50); adds transparent room where the photo ends.")
    scale: str = Field("original", description="original, or 10% to 100%: the subject's size relative to the canvas. "
                       "Implies position=center.")
    position: str = Field("original", description="original, center, or 'X% [Y%]' (0% left/top, 100% right/bottom); "
                          "px values place the subject's top-left corner.")
    channels: str = Field("rgba", description="rgba: the cutout; alpha: the matte alone (greyscale).")
    bg_color: str | None = Field(None, description="Background colour: hex (81d4fa, fff, 81d4fa77 with alpha) or a CSS name.")
    bg_image_file: str | None = Field(None, description="Background photo (multipart file part), scaled to cover the "
                                      "output and centred, at full resolution.")
    bg_image_url: str | None = Field(None, description="Background photo by URL (with --allow-url-fetch only).")
    add_shadow: bool = Field(False, description="A soft drop shadow under any subject (remove.bg: cars only).")
    semitransparency: bool = Field(True, description="false: see-through regions the subject encloses (windows) "
                                   "become solid, faint ones outside vanish; the anti-aliased outline stays soft.")
    shadow_type: str | None = Field(None, description="Accepted and ignored.")
    shadow_opacity: str | None = Field(None, description="Accepted and ignored.")
    shadow_method: str | None = Field(None, description="Accepted and ignored.")


class RemoveBgData(BaseModel):
    result_b64: str = Field(description="The result file, base64-encoded.")
    foreground_top: int = Field(description="Top of the subject in the result, in pixels.")
    foreground_left: int
    foreground_width: int
    foreground_height: int


class RemoveBgJsonResponse(BaseModel):
    """The answer when the request says ``Accept: application/json``."""

    data: RemoveBgData


class RemoveBgErrorItem(BaseModel):
    title: str = Field(description="What went wrong, short (remove.bg's titles).")
    code: str = Field(description="remove.bg's code (invalid_size, missing_source, file_too_large...) or this server's.")
    detail: str = Field(description="What to do about it, for a person.")


class RemoveBgErrors(BaseModel):
    """Every refusal on /v1.0/: remove.bg's error shape."""

    errors: list[RemoveBgErrorItem]


class Credits(BaseModel):
    total: float = 0
    subscription: float = 0
    payg: float = 0
    enterprise: float = 0


class AccountApi(BaseModel):
    free_calls: int = 0
    sizes: str = "all"


class AccountAttributes(BaseModel):
    credits: Credits = Credits()
    api: AccountApi = AccountApi()
    note: str = Field("bgclear counts no credits: every figure here is 0 and every call is free "
                      "(X-Credits-Charged: 0).")


class AccountData(BaseModel):
    attributes: AccountAttributes = AccountAttributes()


class Account(BaseModel):
    """``GET /v1.0/account``: remove.bg's account document."""

    data: AccountData = AccountData()


def _form_schema() -> dict[str, Any]:
    props = RemoveBgOptions.model_json_schema()["properties"]
    for name in ("image_file", "bg_image_file"):
        props[name] = {"type": "string", "format": "binary", "description": props[name]["description"]}
    return {"type": "object", "properties": props}


def _text_schema() -> dict[str, Any]:
    props = {k: v for k, v in RemoveBgOptions.model_json_schema()["properties"].items() if k not in ("image_file", "bg_image_file")}
    return {"type": "object", "properties": props}


_BINARY = {"schema": {"type": "string", "format": "binary"}}
assert set(RemoveBgOptions.model_fields) == set(KNOWN), "the schema documents every parameter the parser reads"

REMOVEBG_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "As remove.bg: multipart/form-data (files and fields), application/x-www-form-urlencoded "
        "or application/json (image as image_file_b64 or image_url).",
        "content": {
            "multipart/form-data": {"schema": _form_schema()},
            "application/x-www-form-urlencoded": {"schema": _text_schema()},
            "application/json": {"schema": _text_schema()},
        },
    },
}

_ERROR_EXAMPLES = {
    "invalid_size": ("Invalid size parameter given", "size must be one of preview, small, regular, medium, hd, full, 4k, auto, 50mp; got 'huge'"),
    "missing_source": ("No image given", "send the image as image_file (a file part), image_file_b64 (base64) or image_url"),
    "file_too_large": ("File too large", "the upload is 23.4 MB; the limit is 10 MB per image."),
    "invalid_image_url": ("Invalid image_url", "this server fetches no URLs (start it with --allow-url-fetch HOST to allow some)"),
}


def _errors(description: str, examples: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {"description": description, "model": RemoveBgErrors, "content": {"application/json": {"examples": {
        code: {"value": {"errors": [{"title": title, "code": code, "detail": detail}]}} for code, (title, detail) in examples.items()
    }}}}


REMOVEBG_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The result file (Content-Type image/png, image/jpeg, image/webp or application/zip), or, with "
        "Accept: application/json, the JSON below. Headers: X-Type (unless type_level=none), X-Width, X-Height, "
        "X-Credits-Charged (always 0), X-Foreground-Top/Left/Width/Height (the subject's box in the result).",
        "model": RemoveBgJsonResponse,
        "content": {"image/png": _BINARY, "image/jpeg": _BINARY, "image/webp": _BINARY, "application/zip": _BINARY},
    },
    400: _errors("Invalid parameters or an unusable image (remove.bg's codes)", _ERROR_EXAMPLES),
    403: _errors("Authentication failed (when the server has --api-keys)", {"invalid_api_key": ("Authentication failed", "the API key is not valid")}),
    429: _errors("Rate limit exceeded; see Retry-After", {"rate_limited": ("Rate limit exceeded", "too many requests; try again in 3 s")}),
    503: _errors("Busy or still loading; see Retry-After", {"busy": ("Service unavailable", "the server is busy; try again in 12 s")}),
}

ACCOUNT_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: _errors("Authentication failed (when the server has --api-keys)", {"invalid_api_key": ("Authentication failed", "the API key is not valid")}),
}
