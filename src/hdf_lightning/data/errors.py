"""Errors about datasets on disk.

Every message names the offending path (and the split file and line where there is one), what was
found and what was expected. Each class keeps the plain one-argument exception constructor so that
errors raised inside DataLoader worker processes are re-raised with their own type.
"""

from __future__ import annotations

from hdf_lightning.errors import UserError


class DatasetError(UserError):
    """Base class of all errors about the data on disk (user errors: no traceback)."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset root, split file or CSV is missing; the message shows the expected layout."""


class SplitFileError(DatasetError, ValueError):
    """A split file row cannot be used: wrong column count, bad label or unknown class name."""


class MissingClipError(DatasetError, FileNotFoundError):
    """A split row points at a clip folder or video that does not exist."""


class EmptyClipError(DatasetError, ValueError):
    """A clip folder exists but holds no frames, or a video has no decodable frame."""


class CorruptClipError(DatasetError, ValueError):
    """A frame or a video of a clip cannot be decoded."""


class FileNameError(SplitFileError):
    """A clip's file or folder name does not follow the corpus's naming code (RAVDESS and CREMA-D
    encode the label in the name, so the name is the split record)."""


class MissingClassError(SplitFileError):
    """A class has no clip in a fold's training split."""
