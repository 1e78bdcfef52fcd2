"""Class names in DFEW order and the mapping of other datasets' names onto it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

CLASS_NAMES: tuple[str, ...] = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
"""The seven basic expressions in DFEW order; label ``i`` is ``CLASS_NAMES[i]``."""

FERV39K_CLASS_MAP: Mapping[str, int] = {name: label for label, name in enumerate(CLASS_NAMES)}
"""FERV39k emotion names (``Happy``, ``Sad``, ... compared case-insensitively) to DFEW labels."""


def class_index(name: str, classes: Sequence[str]) -> int | None:
    """Return the index of ``name`` in ``classes`` (case-insensitive), or ``None`` if absent."""
    lowered = [c.lower() for c in classes]
    key = name.strip().lower()
    return lowered.index(key) if key in lowered else None
