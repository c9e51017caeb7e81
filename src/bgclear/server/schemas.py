"""Typed request options and response bodies; their field docs make the OpenAPI schema."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..compose import parse_color, parse_margin
from ..errors import InputError

#: remove.bg's name for our ``shadow`` option.
OPTION_ALIASES = {"add_shadow": "shadow"}


class RemoveOptions(BaseModel):
    """Options of ``POST /v1/remove``, as query parameters or form fields (form wins)."""

    model_config = ConfigDict(extra="ignore")

    format: Literal["auto", "png", "jpg", "jpeg", "webp", "json"] = Field(
        "png",
        description="png (transparent, default), jpg (flattened onto bg_color, white if none), webp, "
        "json (the PNG base64-encoded, with width, height, bounding box, timings and warnings), "
        "auto (png, or jpg when bg_color is set).",
        examples=["png"],
    )
    bg_color: str | None = Field(
        None, description="Background colour: hex (#rrggbb, rrggbb, #rgb) or a name (white, black, ...). Empty: transparent.",
        examples=["#ffffff", "81d4fa", "white"],
    )
    channels: Literal["rgba", "alpha"] = Field("rgba", description="rgba: the cutout; alpha: the matte alone (greyscale).")
    crop: bool = Field(False, description="Crop to the subject plus crop_margin.")
    crop_margin: str = Field("2%", description="Margin around the subject when cropping: pixels (20, 20px) or percent of the subject (5%).",
                             examples=["2%", "20px"])
    shadow: bool = Field(False, description="Add a soft drop shadow (also accepted as add_shadow).")
    size: Literal["auto", "full", "preview"] = Field(
        "full", description="full and auto: the source's full resolution. preview: the output scaled to at most 1000 px on its long edge."
    )
    quality: int = Field(92, ge=1, le=100, description="JPG/WebP quality.")

    @field_validator("bg_color")
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        text = (value or "").strip()
        try:
            return text if parse_color(text) is not None else None
        except InputError as exc:
            raise ValueError(exc.message) from None

    @field_validator("crop_margin")
    @classmethod
    def _margin(cls, value: str) -> str:
        try:
            parse_margin(value, (0, 0, 100, 100))
        except InputError as exc:
            raise ValueError(exc.message) from None
        return value

    @field_validator("format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def image_format(self) -> str:
        """The encoded image's format: png, jpg or webp."""
        if self.format == "jpeg":
            return "jpg"
        if self.format == "auto":
            return "jpg" if self.bg_color else "png"
        return "png" if self.format == "json" else self.format


def parse_options(query: dict[str, str], form: dict[str, str]) -> tuple[RemoveOptions, list[str]]:
    """Validate query and form options together; returns the options and notes on ignored names.

    Raises :class:`InputError` (``invalid_option``) with one readable sentence per problem.
    """
    merged: dict[str, str] = {}
    notes: list[str] = []
    known = set(RemoveOptions.model_fields)
    for name, value in [*query.items(), *form.items()]:
        name = OPTION_ALIASES.get(name, name)
        if name in known:
            merged[name] = value
        elif name not in ("image_file", "file"):
            notes.append(f"ignored the unknown option {name!r}")
    try:
        opts = RemoveOptions.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            shown = err["type"] != "value_error" and "input" in err and where
            problems.append(f"{where}: {msg}" + (f" (got {err['input']!r})" if shown else ""))
        raise InputError("invalid_option", "; ".join(problems)) from None
    if opts.channels == "alpha":
        unused = [name for name, on in (("bg_color", opts.bg_color), ("shadow", opts.shadow)) if on]
        if unused:
            notes.append(f"{' and '.join(unused)} ignored: channels=alpha returns the matte alone")
    return opts, notes


class RemoveResult(BaseModel):
    """The ``format=json`` response."""

    image: str = Field(description="The image file, base64-encoded.")
    format: Literal["png", "jpg", "webp"] = Field(description="Format of the encoded image.")
    width: int = Field(description="Width of the returned image in pixels.")
    height: int = Field(description="Height of the returned image in pixels.")
    source_width: int
    source_height: int
    foreground_bbox: list[int] | None = Field(description="[left, top, right, bottom] of the subject in source pixels; null if none found.")
    crop_box: list[int] | None = Field(None, description="[left, top, right, bottom] of the crop in source pixels, when cropped.")
    timings: dict[str, float] = Field(description="Seconds per engine stage, plus upload (receiving the body), "
                                     "queue (waiting for a worker) and total.")
    warnings: list[str] = Field(description="Things to know, e.g. that a small image gives soft edges.")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "image": "iVBORw0KGgoAAAANSUhEUgAA...", "format": "png", "width": 1600, "height": 1200,
        "source_width": 1600, "source_height": 1200, "foreground_bbox": [412, 180, 1190, 1200], "crop_box": None,
        "timings": {"upload": 0.02, "queue": 0.0, "decode": 0.03, "segment": 1.4, "trimap": 0.02, "matte": 0.5,
                    "foreground": 0.2, "compose": 0.02, "encode": 0.08, "total": 2.3},
        "warnings": [],
    }]})


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable: empty, too_large, too_many_pixels, unsupported_format, "
                      "unreadable, invalid_option, missing_file, bad_request, missing_api_key, invalid_api_key, upload_timeout, "
                      "rate_limited, busy, loading, model_unavailable, internal.")
    message: str = Field(description="What went wrong and what to do, for a person.")


class ErrorResponse(BaseModel):
    """Every refusal has this body."""

    error: ErrorDetail


class Health(BaseModel):
    """``GET /healthz``: ``ready`` only once the model has loaded."""

    status: Literal["loading", "ready", "failed"]
    segmenter: str
    refiner: str
    engine: str | None = Field(None, description="Inference runtime of the segmenter once loaded, e.g. 'openvino'.")
    precision: str | None = Field(None, description="Its numeric precision, e.g. 'bf16' or 'f32'.")
    device: str | None = Field(None, description="Where it runs, e.g. 'cpu'.")
    threads: int = Field(0, description="Threads per cutout.")
    detail: str | None = None
    max_bytes: int = Field(description="Largest accepted upload in bytes.")
    max_pixels: int = Field(description="Largest accepted width x height.")
    accepted_formats: list[str]
    max_concurrency: int
    queue_size: int
    running: int
    waiting: int
    auth_required: bool = Field(False, description="The APIs need a key (X-Api-Key or Authorization: Bearer); the web page asks for one.")
    rate_limit: str | None = Field(None, description="Requests allowed per API key (or client address), e.g. '60/min'; null when unlimited.")
    rate_burst: int | None = Field(None, description="Requests a client may make at once before the rate applies.")
