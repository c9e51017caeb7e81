"""bgclear: background removal with full-resolution alpha mattes.

>>> from bgclear import remove
>>> cutout = remove("photo.jpg")
>>> cutout.save("photo.png")
"""

from .stages.compose import Shadow
from .errors import BgclearError, ChecksumError, InputError, ModelError, ModelNotFoundError
from .pipeline import Cutout, Session, get_session, remove

__version__ = "0.1.0"

__all__ = [
    "BgclearError",
    "ChecksumError",
    "Cutout",
    "InputError",
    "ModelError",
    "ModelNotFoundError",
    "Session",
    "Shadow",
    "get_session",
    "remove",
    "__version__",
]
