"""Promptable segmentation with MobileSAM: "keep this", "remove that", "inside this box".

Two stateless steps, so one :class:`PromptableSegmenter` serves any number of threads and the
caller decides what to cache:

- :meth:`PromptableSegmenter.embed`: uint8 RGB (H, W, 3) -> :class:`Embedding` (once per image;
  the image encoder, 0.8 s at 2 threads on this project's CPU);
- :meth:`PromptableSegmenter.predict`: embedding + :class:`Prompts` -> float32 probability
  (h, w) at the resized, unpadded resolution (long side 1024) (per click; prompt encoder + mask
  decoder, ~70 ms).

Prompts are in source pixels (x right, y down), as the user clicked them. One point alone is
ambiguous, so then the decoder's three alternative masks are computed and the one with the
highest predicted IoU is returned; with more points or a box, its single mask (as SAM's
predictor does).

Runtime, by measurement (docs/BENCHMARKS.md, "MobileSAM runtime"; 2 threads, AMD EPYC with
avx512_bf16, medians of 7 interleaved rounds on a loaded machine): the encoder took 4.2 s in
PyTorch, 2.1 s in onnxruntime, 1.5 s in OpenVINO f32 and 0.82 s in OpenVINO bf16; a click 268 /
152 / 110 / 66 ms. f32 engines match PyTorch to 3e-6; bf16 moves the features by up to 0.024
and the masks by ~1 % (IoU .990-.999 with PyTorch's on the sample photo), and on the 37
grabcut_dev photos its masks were as good (mean IoU with the ground truth .881 against .879 for
box + prior, .779 against .781 for one point); where bf16 and f32 disagreed, f32's own answer was
wrong (IoU under .7). So the network runs as the ONNX export made at pull time
(:mod:`bgclear.networks.mobile_sam.export`) on :mod:`bgclear.engines` with its defaults: OpenVINO,
bf16 where the CPU has it natively, f32 elsewhere; PyTorch is not needed at run time.
``runtime="torch"`` runs our PyTorch module instead (the reference for the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from .engines import EngineOptions, load_onnx
from .errors import InputError
from .models.registry import ModelSpec, get_model
from .networks.mobile_sam import INPUT_SIZE, MASK_SIZE, PIXEL_MEAN, PIXEL_STD

#: Most keep + drop points one request may carry.
MAX_POINTS = 64
#: Mask prior -> decoder logits: logit(p) with p clipped to PRIOR_EPS..1-PRIOR_EPS (see :func:`prior_logits`).
PRIOR_EPS = 1e-6

Point = tuple[float, float]


def _invalid(message: str) -> InputError:
    return InputError("invalid_option", message)


def _points(name: str, value) -> tuple[Point, ...]:
    try:
        value = list(value)
        if len(value) > MAX_POINTS:  # refused before converting thousands of them
            raise _invalid(f"{len(value)} {name} points given; at most {MAX_POINTS} keep + drop points")
        if any(len(p) != 2 for p in value):
            raise ValueError
        pts = tuple((float(p[0]), float(p[1])) for p in value)
    except (TypeError, ValueError, IndexError):
        raise _invalid(f"{name} must be a list of (x, y) pairs of numbers") from None
    for i, (x, y) in enumerate(pts):
        if not (math.isfinite(x) and math.isfinite(y)):
            raise _invalid(f"{name} point {i + 1} ({x}, {y}) is not a finite number")
    return pts


@dataclass(frozen=True, eq=False)
class Prompts:
    """What the user said, in source pixels (x right, y down).

    ``keep`` / ``drop``: points on the object / on what must go. ``box``: (left, top, right,
    bottom) around the object; it is clipped to the image. ``mask``: an optional prior, float
    0..1 at any resolution covering the whole image (e.g. the automatic cutout's alpha); it needs a
    point or a box with it.
    Structure (types, finite numbers, counts, box area) is checked here; positions against the
    image in :meth:`PromptableSegmenter.predict`. Raises :class:`InputError` ``invalid_option``.
    """

    keep: tuple[Point, ...] = ()
    drop: tuple[Point, ...] = ()
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        keep, drop = _points("keep", self.keep), _points("drop", self.drop)
        if len(keep) + len(drop) > MAX_POINTS:
            raise _invalid(f"{len(keep) + len(drop)} points given; at most {MAX_POINTS} keep + drop points")
        object.__setattr__(self, "keep", keep)
        object.__setattr__(self, "drop", drop)
        if self.box is not None:
            try:
                box = tuple(float(v) for v in self.box)
            except (TypeError, ValueError):
                raise _invalid("box must be four numbers (left, top, right, bottom)") from None
            if len(box) != 4 or not all(math.isfinite(v) for v in box):
                raise _invalid(f"box must be four finite numbers (left, top, right, bottom), got {self.box!r}")
            if not (box[0] < box[2] and box[1] < box[3]):
                raise _invalid(f"box {box} has no area: it needs left < right and top < bottom")
            object.__setattr__(self, "box", box)
        if self.mask is not None:
            mask = np.asarray(self.mask, dtype=np.float32)
            if mask.ndim != 2 or mask.size == 0:
                raise _invalid(f"mask must be a 2-D array of 0..1 values, got shape {mask.shape}")
            if not np.isfinite(mask).all():
                raise _invalid("mask holds NaN or infinite values")
            object.__setattr__(self, "mask", np.clip(mask, 0.0, 1.0))
        if not (keep or drop or self.box is not None):
            if self.mask is not None:  # MobileSAM answers a mask alone with near-empty masks (measured)
                raise _invalid("a mask is only a prior: give a point or a box with it")
            raise _invalid("no prompt: give at least one keep or drop point, or a box")


@dataclass(frozen=True, eq=False)
class Embedding:
    """An image as the decoder sees it. Holds no pixels.

    ``features``: float32 (1, 256, 64, 64). ``original_size``: the source's (W, H).
    ``scale``: 1024 / max(W, H). ``resized_size``: (w, h) the source was resized to (long side
    1024; the encoder saw it zero-padded to 1024x1024 at the bottom and right).
    """

    features: np.ndarray
    original_size: tuple[int, int]
    scale: float
    resized_size: tuple[int, int]

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) source (x, y) -> the encoder's input frame, per axis as SAM maps them."""
        (w0, h0), (w1, h1) = self.original_size, self.resized_size
        return np.asarray(points, np.float32) * np.array([w1 / w0, h1 / h0], np.float32)


@dataclass(frozen=True, eq=False)
class Prediction:
    """``prob``: float32 (h, w) 0..1 at ``Embedding.resized_size``; ``score``: the decoder's
    predicted IoU of this mask; ``logits``: float32 (256, 256) its low-resolution logits over the
    padded 1024x1024 frame."""

    prob: np.ndarray
    score: float
    logits: np.ndarray


def resized_size(width: int, height: int) -> tuple[int, int]:
    """(w, h) with the long side 1024, rounded as SAM's ResizeLongestSide does."""
    scale = INPUT_SIZE / max(width, height)
    return int(width * scale + 0.5), int(height * scale + 0.5)


def prior_logits(mask: np.ndarray, embedding: Embedding) -> np.ndarray:
    """A probability map over the source -> float32 (1, 1, 256, 256) decoder mask input.

    The map is resized to the encoder's frame, padded as background, reduced to 256x256 by area
    and turned into logits, within +-13.8 (p clipped to :data:`PRIOR_EPS`), the range of SAM's own
    confident low-resolution logits. The scale matters: with our ISNet alpha as prior and a box
    around it, on the 37 grabcut_dev photos, mean IoU was .777 for the box alone, .769 / .827 /
    .876 / .879 with logits clipped to +-2 / +-8 / +-12 / +-13.8 (+-16 and +-30 equal +-13.8's),
    and ISNet alone .850: a timid prior (small logits) makes MobileSAM answer with empty masks on
    some photos.
    """
    w, h = embedding.resized_size
    interp = cv2.INTER_AREA if mask.shape[1] > w else cv2.INTER_LINEAR
    frame = np.zeros((INPUT_SIZE, INPUT_SIZE), np.float32)
    frame[:h, :w] = cv2.resize(mask, (w, h), interpolation=interp)
    p = cv2.resize(frame, (MASK_SIZE, MASK_SIZE), interpolation=cv2.INTER_AREA).astype(np.float64)
    p = np.clip(p, PRIOR_EPS, 1.0 - PRIOR_EPS)
    return np.log(p / (1.0 - p)).astype(np.float32)[None, None]


def _prediction(logits: np.ndarray, score: float, embedding: Embedding) -> Prediction:
    """Low-resolution logits (256, 256) -> probability at ``embedding.resized_size``, as SAM upsamples them."""
    w, h = embedding.resized_size
    up = cv2.resize(logits, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)[:h, :w]
    prob = 1.0 / (1.0 + np.exp(-np.clip(up, -30.0, 30.0)))
    return Prediction(prob.astype(np.float32), score, logits)


class PromptableSegmenter:
    """MobileSAM behind :meth:`embed` and :meth:`predict`; load once, share across threads.

    ``options`` choose the engine for the ONNX export (:mod:`bgclear.engines`; default: OpenVINO
    where installed, bf16 where the CPU has it natively). ``runtime="torch"`` runs the PyTorch module instead (needs PyTorch;
    its thread count is PyTorch's process-wide setting), on ``options.device`` (default the CPU):
    the GPU path where onnxruntime has no CUDA provider. Raises :class:`ModelNotFoundError`
    naming ``bgclear models pull mobilesam`` when the weights or their export are missing.
    """

    def __init__(self, spec: ModelSpec | str = "mobilesam", options: EngineOptions | None = None,
                 runtime: str = "onnx") -> None:
        self.spec = get_model(spec) if isinstance(spec, str) else spec
        self.name = self.spec.name
        if runtime == "torch":
            self._runtime = _TorchRuntime(self.spec, (options or EngineOptions()).device)
        elif runtime == "onnx":
            options = options or EngineOptions()
            self._runtime = _EngineRuntime(self.spec, options)
        else:
            raise ValueError(f"unknown runtime {runtime!r}; use 'onnx' or 'torch'")
        self.runtime = self._runtime.describe

    def embed(self, rgb: np.ndarray) -> Embedding:
        """uint8 (H, W, 3) RGB -> :class:`Embedding`."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
            raise ValueError(f"embed wants uint8 (H, W, 3) RGB, got {rgb.dtype} {rgb.shape}")
        height, width = rgb.shape[:2]
        size = resized_size(width, height)
        # PIL's bilinear (antialiased when shrinking) is the resize SAM's own predictor applies
        small = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR), np.float32)
        x = np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
        x[0, :, : size[1], : size[0]] = ((small - PIXEL_MEAN) / PIXEL_STD).transpose(2, 0, 1)
        return Embedding(self._runtime.encode(x), (width, height), INPUT_SIZE / max(width, height), size)

    def predict(self, embedding: Embedding, prompts: Prompts) -> np.ndarray:
        """Foreground probability, float32 (h, w) in 0..1 at ``embedding.resized_size``."""
        return self.decode(embedding, prompts).prob

    def decode(self, embedding: Embedding, prompts: Prompts) -> Prediction:
        """Like :meth:`predict`, with the chosen mask's predicted IoU and low-resolution logits."""
        coords, labels = self._encode_points(embedding, prompts)
        if prompts.mask is not None:
            (width, height), (mh, mw) = embedding.original_size, prompts.mask.shape
            if abs(mw * height - mh * width) > 0.02 * mh * width:  # another picture's mask, or a transposed one
                raise _invalid(f"mask is {mw}x{mh}, not the shape of the {width}x{height} image")
            mask, has_mask = prior_logits(prompts.mask, embedding), np.ones(1, np.float32)
        else:
            mask, has_mask = np.zeros((1, 1, MASK_SIZE, MASK_SIZE), np.float32), np.zeros(1, np.float32)
        masks, iou = self._runtime.decode(embedding.features, coords, labels, mask, has_mask)
        single_point = len(prompts.keep) + len(prompts.drop) == 1 and prompts.box is None
        best = 1 + int(np.argmax(iou[0, 1:])) if single_point else 0
        return _prediction(masks[0, best], float(iou[0, best]), embedding)

    def alternatives(self, embedding: Embedding, point: tuple[float, float]) -> list[Prediction]:
        """The decoder's three answers to one keep point (a part, a larger part, the whole object)."""
        prompts = Prompts(keep=(tuple(point),))
        coords, labels = self._encode_points(embedding, prompts)
        none = np.zeros((1, 1, MASK_SIZE, MASK_SIZE), np.float32)
        masks, iou = self._runtime.decode(embedding.features, coords, labels, none, np.zeros(1, np.float32))
        return [_prediction(masks[0, i], float(iou[0, i]), embedding) for i in range(1, masks.shape[1])]

    @staticmethod
    def _encode_points(embedding: Embedding, prompts: Prompts) -> tuple[np.ndarray, np.ndarray]:
        """Points and box corners in the input frame, (1, N, 2), and labels (1, N) (see the decoder)."""
        width, height = embedding.original_size
        for name, pts in (("keep", prompts.keep), ("drop", prompts.drop)):
            for i, (x, y) in enumerate(pts):
                if not (0 <= x < width and 0 <= y < height):
                    raise _invalid(f"{name} point {i + 1} ({x:g}, {y:g}) is outside the {width}x{height} image "
                                   f"(0 <= x < {width}, 0 <= y < {height})")
        pts = list(prompts.keep) + list(prompts.drop)
        labels = [1.0] * len(prompts.keep) + [0.0] * len(prompts.drop)
        if prompts.box is not None:
            left, top, right, bottom = prompts.box
            left, right = max(left, 0.0), min(right, float(width))
            top, bottom = max(top, 0.0), min(bottom, float(height))
            if not (left < right and top < bottom):
                raise _invalid(f"box {prompts.box} has no area inside the {width}x{height} image")
            pts += [(left, top), (right, bottom)]
            labels += [2.0, 3.0]
        else:
            pts.append((0.0, 0.0))  # SAM's padding point, "not a point", when no box is given
            labels.append(-1.0)
        coords = embedding.to_input(np.array(pts, np.float32).reshape(-1, 2))
        return coords[None], np.array(labels, np.float32)[None]


class _EngineRuntime:
    """The exported graphs on an engine; ``run`` is thread-safe in every engine."""

    def __init__(self, spec: ModelSpec, options: EngineOptions) -> None:
        from .networks.mobile_sam.export import exported_graphs

        enc, dec = exported_graphs(spec)
        self._encoder = load_onnx(enc, options, what=f"{spec.name} encoder")
        self._decoder = load_onnx(dec, options, what=f"{spec.name} decoder")
        self.describe = f"{self._encoder.name} {self._encoder.precision}"

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self._encoder.run({"image": x})[0]

    def decode(self, features, coords, labels, mask, has_mask):
        out = self._decoder.run({"features": features, "coords": coords, "labels": labels, "mask": mask,
                                 "has_mask": has_mask})
        return out[0], out[1]


class _TorchRuntime:
    """Our PyTorch module on a torch device, f32; forward passes under ``inference_mode`` hold no
    state, so threads may share it. Arrays go in and come back as numpy on the CPU: the features
    (1, 256, 64, 64) are 4 MB, a copy that costs far less than a decoder pass."""

    def __init__(self, spec: ModelSpec, device: str = "cpu") -> None:
        from .models.store import model_path
        from .networks.mobile_sam.model import load_mobile_sam
        from .engines.torch import import_torch, resolve_device

        self._torch = import_torch()
        self._device = resolve_device(device)
        self._model = load_mobile_sam(model_path(spec)).to(self._device)
        self.describe = "torch f32" + ("" if self._device.type == "cpu" else f" on {self._device}")

    def _in(self, array: np.ndarray):
        return self._torch.from_numpy(np.ascontiguousarray(array)).to(self._device)

    def encode(self, x: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self._model.encode(self._in(x)).cpu().numpy()

    def decode(self, features, coords, labels, mask, has_mask):
        t = self._in
        with self._torch.inference_mode():
            masks, iou = self._model.decode(t(features), t(coords), t(labels), t(mask), t(has_mask))
        return masks.cpu().numpy(), iou.cpu().numpy()
