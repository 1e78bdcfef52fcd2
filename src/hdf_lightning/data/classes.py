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


MAFW_CLASS_NAMES: tuple[str, ...] = (
    "anger",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
    "contempt",
    "anxiety",
    "helplessness",
    "disappointment",
)
"""MAFW's 11 single-expression classes in MAFW's order (the names of its split files)."""

MAFW_DFER_CLIP_ORDER: tuple[str, ...] = (
    "happiness",
    "sadness",
    "neutral",
    "anger",
    "surprise",
    "disgust",
    "fear",
    "contempt",
    "anxiety",
    "helplessness",
    "disappointment",
)
"""The order of the 0-based MAFW labels in DFER-CLIP's annotation files (DFEW's seven first)."""

RAVDESS_CLASS_NAMES: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
)
"""RAVDESS's 8 emotions; emotion code ``01``..``08`` of a file name is class ``code - 1``."""

RAVDESS_SONG_CLASS_NAMES: tuple[str, ...] = RAVDESS_CLASS_NAMES[:6]
"""The 6 emotions RAVDESS's song recordings have (no disgust, no surprise)."""

CREMAD_CLASS_NAMES: tuple[str, ...] = ("anger", "disgust", "fear", "happy", "neutral", "sad")
"""CREMA-D's 6 emotions, in the order of its codes ``ANG, DIS, FEA, HAP, NEU, SAD``."""

SHARED_CLASSES: Mapping[str, tuple[str, ...]] = {
    "dfew7": CLASS_NAMES,
    "shared6": tuple(name for name in CLASS_NAMES if name != "surprise"),
}
"""Target class lists of the cross-corpus class maps (``class_map: dfew7``), in DFEW order:
``dfew7`` is DFEW's (and FERV39k's) seven, ``shared6`` the six that all five corpora have
(CREMA-D has no surprise)."""

TO_DFEW: Mapping[str, Mapping[str, str | None]] = {
    "MAFW": {
        "anger": "angry",
        "disgust": "disgust",
        "fear": "fear",
        "happiness": "happy",
        "neutral": "neutral",
        "sadness": "sad",
        "surprise": "surprise",
        "contempt": None,
        "anxiety": None,
        "helplessness": None,
        "disappointment": None,
    },
    "RAVDESS": {
        "neutral": "neutral",
        "calm": None,
        "happy": "happy",
        "sad": "sad",
        "angry": "angry",
        "fearful": "fear",
        "disgust": "disgust",
        "surprised": "surprise",
    },
    "CREMA-D": {
        "anger": "angry",
        "disgust": "disgust",
        "fear": "fear",
        "happy": "happy",
        "neutral": "neutral",
        "sad": "sad",
    },
}
"""Each corpus's classes onto DFEW's :data:`CLASS_NAMES` (None: no DFEW counterpart, left out by
the cross-corpus class maps)."""
