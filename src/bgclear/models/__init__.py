"""Model registry and offline model store."""

from .registry import BUILTIN_MODELS, DEFAULT_SEGMENTER, ModelSpec, PackageSource, all_models, cache_dir, get_model
from .store import model_path, pull, sha256_file

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_SEGMENTER",
    "ModelSpec",
    "PackageSource",
    "all_models",
    "cache_dir",
    "get_model",
    "model_path",
    "pull",
    "sha256_file",
]
