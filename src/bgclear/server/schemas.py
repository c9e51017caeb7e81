"""Typed request options and response bodies; their field docs make the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, WithJsonSchema, field_validator

from ..stages.compose import parse_color, parse_margin
from ..errors import InputError
from ..points import parse_box, parse_points
from ..stages.touchup import check_prompts

#: remove.bg's name for our ``shadow`` option.
OPTION_ALIASES = {"add_shadow": "shadow"}
#: Options that may be given several times; every value counts, from the query and the form together.
REPEATABLE = ("keep", "drop", "box")
#: Fields that are not options: the image itself.
FILE_FIELD_NAMES = ("image_file", "file")

# On the wire a point is the text "x,y" (the field repeated for more) or a JSON list; parsed, a pair of floats.
PointList = Annotated[list[tuple[float, float]], WithJsonSchema({"type": "array", "items": {"type": "string"}})]
BoxValue = Annotated[tuple[float, float, float, float] | None, WithJsonSchema({"type": "string"})]
_WHERE = "in source pixels after EXIF orientation (x right, y down)"


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
    keep: PointList = Field(
        default_factory=list,
        description=f"Touch-up: points on what must stay, {_WHERE}, each x,y. Repeat the field for more "
        "(keep=812,400&keep=300,620) or send a JSON list ([[812,400],[300,620]]). At most 64 keep + drop points.",
        examples=[["812,400", "300,620"]],
    )
    drop: PointList = Field(
        default_factory=list,
        description=f"Touch-up: points on what must go, {_WHERE}; written like keep.", examples=[["90,1200"]],
    )
    box: BoxValue = Field(
        None, description=f"Touch-up: a box around the subject, left,top,right,bottom {_WHERE} (or a JSON list of "
        "four numbers); everything outside it is cleared.", examples=["10,10,900,1300"],
    )
    edit: bool = Field(
        False, description="Keep the decoded image and its segmentation in the server's memory for further clicks, and "
        "return a handle in the X-Edit-Id header (edit_id in JSON): POST /v1/remove/{edit_id} then takes points and "
        "options without the image. Handles expire (X-Edit-Expires-In seconds after their last use) and are held "
        "by one server only: on 404 edit_expired send the image again with all the points.",
    )

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

    @field_validator("keep", "drop", "box", mode="before")
    @classmethod
    def _prompt_text(cls, value: object, info: ValidationInfo) -> object:
        values = [value] if isinstance(value, str) else value
        if not (isinstance(values, list) and all(isinstance(v, str) for v in values)):
            return value
        try:
            return parse_box(values) if info.field_name == "box" else parse_points(values)
        except InputError as exc:
            raise ValueError(exc.message) from None

    @property
    def prompts(self) -> dict[str, object]:
        """The touch-up as :meth:`bgclear.Session.finish` takes it."""
        return {"keep": self.keep, "drop": self.drop, "box": self.box}

    @property
    def has_prompts(self) -> bool:
        return bool(self.keep or self.drop or self.box is not None)

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


Fields = Mapping[str, str] | Iterable[tuple[str, str]]


def _pairs(fields: Fields) -> Iterable[tuple[str, str]]:
    return fields.items() if isinstance(fields, Mapping) else fields


def parse_options(query: Fields, form: Fields) -> tuple[RemoveOptions, list[str]]:
    """Validate query and form options together (each a mapping or (name, value) pairs, so that
    repeated names count); returns the options and notes on ignored names. The form wins over
    the query, except for :data:`REPEATABLE` fields, whose values are all taken.

    Raises :class:`InputError` (``invalid_option``) with one readable sentence per problem.
    """
    merged: dict[str, object] = {}
    notes: list[str] = []
    known = set(RemoveOptions.model_fields)
    for name, value in [*_pairs(query), *_pairs(form)]:
        name = OPTION_ALIASES.get(name, name)
        if name in REPEATABLE:
            merged.setdefault(name, []).append(value)  # type: ignore[union-attr]
        elif name in known:
            merged[name] = value
        elif name not in FILE_FIELD_NAMES:
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
    if opts.has_prompts:
        check_prompts(opts.keep, opts.drop, opts.box)  # counts over keep and drop together
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
    edit_id: str | None = Field(None, description="With edit=true (and on POST /v1/remove/{edit_id}): the handle of "
                                "this image in the server's memory, for further clicks; null when none is held.")

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
                      "rate_limited, busy, loading, model_unavailable, edit_expired, internal.")
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
    edits: int = Field(0, description="Images held in memory for touch-up (edit handles).")
    edit_bytes: int = Field(0, description="Their memory in bytes; never more than edit_max_bytes.")
    edit_max_bytes: int = Field(0, description="Memory for held images; the least recently used go first beyond it.")
    edit_ttl: float = Field(0, description="Seconds a held image lives after its last use; 0: no edit handles.")
