"""MAFW, RAVDESS and CREMA-D: their split readers, subject-independent folds, cross-corpus class
maps and thin DataModules.

Each corpus is a reader (:class:`MAFWSplits`, :class:`RAVDESSSplits`, :class:`CREMADSplits`) that
turns the files on disk into :class:`~hdf_lightning.data.datasets.ClipRecord` lists, plus a
:class:`~hdf_lightning.data.datamodules.ClipDataModule` subclass that builds it, as for DFEW.

Layouts read (``<root>`` is the folder given to the reader)::

    MAFW     <root>/data/faces/<clip>/*.jpg|png                   variant "faces" (default)
             <root>/data/frames/<clip>/*.jpg|png                  variant "frames"
             <root>/data/clips/<clip>.mp4                         variant "video"
             split files of fold k (1..5), one line per clip, space separated, no header:
               annotation "mafw" (as MAFW ships them)
                 <root>/Train & Test Set/single/no_caption/set_<k>/{train,test}.txt
                 "<clip>.mp4 <class name>", e.g. "00025.mp4 anger"
               annotation "dfer-clip" (DFER-CLIP's annotation files)
                 <annotation_dir>/MAFW_set_<k>_{train,test}.txt
                 "<any path>/<clip> <frames> <label>", label 0..10 in DFER-CLIP's order
                 (:data:`~hdf_lightning.data.classes.MAFW_DFER_CLIP_ORDER`)
               annotation "mae-dfer" (MAE-DFER's split files)
                 <annotation_dir>/split0<k>/{train,test}.csv
                 "<any path>/<clip> <label>", label 0..10 in MAFW's order
    RAVDESS  <root>/Actor_01 ... Actor_24/MM-VV-EE-II-SS-RR-AA.mp4    variant "video"
             <root>/Actor_01 ... Actor_24/MM-VV-EE-II-SS-RR-AA/*.jpg  variant "frames"
    CREMA-D  <root>/VideoFlash/<actor>_<sentence>_<EMO>_<LEVEL>.flv     variant "video"
             <root>/VideoFlash/<actor>_<sentence>_<EMO>_<LEVEL>/*.jpg   variant "frames"

The "frames" variants are the face crops ``hdf data extract --faces`` writes from the raw videos,
keeping the corpus's folders: one folder per video, at the video's relative path without its
suffix. The paths in DFER-CLIP's and MAE-DFER's files are their authors' machines': only the last
component (the clip) is used, under ``<root>/data/<variant>/``.

**Folds.** MAFW has its own 5 folds. RAVDESS and CREMA-D have none: their clips are split by actor
(:func:`actor_folds`: the sorted actors in ``num_folds`` contiguous blocks, fold k tests block k),
so that no actor is in two splits; a ``split_file`` (``clip,split`` rows) replaces the folds.
``fold=0`` puts the whole corpus in both splits: for training on all of it, or for testing on all
of it a model trained on another corpus.

**Class maps.** ``class_map`` relabels a corpus onto shared classes for cross-corpus testing
(:class:`ClassMap`): ``dfew7`` (DFEW's seven, in DFEW order), ``shared6`` (the six all five corpora
have) or a mapping ``{corpus class: target class or null}``; clips of classes the target lacks are
left out, counted and logged.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from hdf_lightning.data.classes import (
    CREMAD_CLASS_NAMES,
    MAFW_CLASS_NAMES,
    MAFW_DFER_CLIP_ORDER,
    RAVDESS_CLASS_NAMES,
    RAVDESS_SONG_CLASS_NAMES,
    SHARED_CLASSES,
    TO_DFEW,
    class_index,
)
from hdf_lightning.data.datamodules import ClipDataModule
from hdf_lightning.data.datasets import ClipKind, ClipRecord
from hdf_lightning.data.errors import (
    DatasetError,
    DatasetNotFoundError,
    FileNameError,
    MissingClassError,
    MissingClipError,
    SplitFileError,
)
from hdf_lightning.data.splits import Split, _record_or_raise
from hdf_lightning.data.video import VIDEO_EXTENSIONS, is_video

__all__ = [
    "CREMADDataModule",
    "CREMADRecord",
    "CREMADSplits",
    "ClassMap",
    "MAFWDataModule",
    "MAFWSplits",
    "RAVDESSDataModule",
    "RAVDESSRecord",
    "RAVDESSSplits",
    "actor_folds",
    "parse_cremad_name",
    "parse_ravdess_name",
    "read_split_file",
]

log = logging.getLogger(__name__)

Variant = Literal["video", "frames"]
MAFWVariant = Literal["faces", "frames", "video"]
MAFWAnnotation = Literal["mafw", "dfer-clip", "mae-dfer"]
RAVDESSModality = Literal["video_only", "audio_video", "both"]
RAVDESSChannel = Literal["speech", "song", "both"]

# ------------------------------------------------------------------------------------ class maps


@dataclass(frozen=True)
class ClassMap:
    """A corpus's classes relabelled onto a target class list.

    Attributes:
        name: ``dfew7``, ``shared6`` or ``custom`` (for messages).
        source: the corpus's class names, index = label.
        target: the target class names, index = new label.
        index: for each source label, its target label, or None when the target lacks the class
            (the clip is left out).
    """

    name: str
    source: tuple[str, ...]
    target: tuple[str, ...]
    index: tuple[int | None, ...]

    @classmethod
    def resolve(
        cls,
        spec: str | Mapping[str, str | None] | None,
        source: Sequence[str],
        to_dfew: Mapping[str, str | None],
    ) -> ClassMap | None:
        """The map that ``spec`` names for a corpus (None for ``spec`` None: own classes).

        Args:
            spec: a key of :data:`~hdf_lightning.data.classes.SHARED_CLASSES` (``dfew7``,
                ``shared6``), or a mapping from source class names to target class names (None, or
                a class left out of the mapping, drops the class; the target order is the order
                in which the mapping's values first appear).
            source: the corpus's class names.
            to_dfew: the corpus's classes onto DFEW's (:data:`~hdf_lightning.data.classes.TO_DFEW`).

        Raises:
            ValueError: an unknown name, a mapping key that is not a class of the corpus, or a map
                that keeps no class.
        """
        if spec is None:
            return None
        source = tuple(source)
        if isinstance(spec, str):
            if spec not in SHARED_CLASSES:
                raise ValueError(
                    f"class_map must be one of {sorted(SHARED_CLASSES)} or a mapping "
                    f"{{class: target class}}, got {spec!r}"
                )
            name, target = spec, SHARED_CLASSES[spec]
            mapping = {s: to_dfew.get(s) for s in source}
            mapping = {s: t if t in target else None for s, t in mapping.items()}
        else:
            unknown = [k for k in spec if k not in source]
            if unknown:
                raise ValueError(
                    f"class_map names {unknown}, which are not classes of this corpus "
                    f"{list(source)}"
                )
            name = "custom"
            target = tuple(dict.fromkeys(str(v) for v in spec.values() if v is not None))
            mapping = {s: spec.get(s) for s in source}
        index = tuple(None if mapping[s] is None else target.index(str(mapping[s])) for s in source)
        if all(i is None for i in index):
            raise ValueError(f"class_map {spec!r} keeps none of the classes {list(source)}")
        return cls(name, source, tuple(target), index)

    @property
    def kept(self) -> tuple[str, ...]:
        """The source classes that have a target class."""
        return tuple(s for s, i in zip(self.source, self.index, strict=True) if i is not None)

    def apply(self, records: Iterable[ClipRecord], what: str) -> list[ClipRecord]:
        """Relabel ``records``, leaving out (counted, logged) those of dropped classes."""
        kept: list[ClipRecord] = []
        dropped: Counter[str] = Counter()
        for record in records:
            new = self.index[record.label]
            if new is None:
                dropped[self.source[record.label]] += 1
            else:
                kept.append(replace(record, label=new))
        if dropped:
            counts = ", ".join(f"{name} {n}" for name, n in sorted(dropped.items()))
            log.info(
                "%s: %d clip(s) of classes outside %s left out (%s)",
                what,
                sum(dropped.values()),
                self.name,
                counts,
            )
        return kept


def _check_classes(
    records: Sequence[ClipRecord],
    required: Sequence[str],
    class_names: Sequence[str],
    split: Split,
    what: str,
) -> None:
    """A fold's training split must hold every required class (raises); a test split without a
    class is logged."""
    present = {class_names[r.label] for r in records}
    absent = [name for name in required if name not in present]
    if not absent:
        return
    if split == "train":
        raise MissingClassError(
            f"{what}: the train split has no clip of class {absent[0]!r}"
            f"{f' (nor of {absent[1:]})' if absent[1:] else ''}; every class needs training "
            "clips: choose other folds, actors or split file, or a class_map without it"
        )
    log.warning("%s: the %s split has no clip of %s", what, split, ", ".join(map(repr, absent)))


# ------------------------------------------------------------------------------------ actor folds


def actor_folds(actors: Iterable[int], num_folds: int) -> dict[int, int]:
    """Subject-independent folds: actor -> fold (1..``num_folds``).

    The sorted actors are cut into ``num_folds`` contiguous blocks as even as possible (the first
    ``len % num_folds`` blocks one actor larger); fold k tests block k and trains on the others.
    Deterministic, and a function of the actor list only (not of the files on disk): RAVDESS's
    24 actors in 5 folds are 1-5, 6-10, 11-15, 16-20, 21-24 (odd ids male, even female, so each
    block mixes both).

    Raises:
        ValueError: fewer than 2 folds, or more folds than actors.
    """
    ordered = sorted(set(actors))
    if num_folds < 2:
        raise ValueError(f"num_folds must be >= 2, got {num_folds}")
    if num_folds > len(ordered):
        raise ValueError(f"num_folds ({num_folds}) must not exceed the number of actors {ordered}")
    blocks = np.array_split(np.array(ordered), num_folds)
    return {int(a): k for k, block in enumerate(blocks, start=1) for a in block}


def _span(actors: Sequence[int]) -> str:
    """``1-5`` for a run of consecutive ids, else the comma-separated list."""
    if len(actors) > 2 and list(actors) == list(range(actors[0], actors[-1] + 1)):
        return f"{actors[0]}-{actors[-1]}"
    return ", ".join(str(a) for a in actors)


def read_split_file(
    path: Path, errors: list[DatasetError] | None = None
) -> dict[str, tuple[Split, str]]:
    """A user's split file: ``clip,split`` rows (optional header ``clip,split``).

    ``clip`` is a clip's file name with or without its suffix, or its path (only the last
    component counts: ``Actor_01/02-01-03-01-01-01-01.mp4``); ``split`` is ``train`` or ``test``.

    Returns:
        clip name (without suffix) -> (split, ``"<file>:<line>"``).

    Raises:
        DatasetNotFoundError: the file does not exist.
        SplitFileError: a malformed row or a clip named twice (collected in ``errors`` instead
            when given).
    """
    if not path.is_file():
        raise DatasetNotFoundError(
            f"split file not found: {path}. Expected a CSV of 'clip,split' rows (split: train or "
            "test), e.g. '02-01-03-01-01-01-01,test'"
        )
    rows: dict[str, tuple[Split, str]] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for number, fields in enumerate(csv.reader(handle), start=1):
            fields = [f.strip() for f in fields]
            if not any(fields) or (
                number == 1 and [f.lower() for f in fields] == ["clip", "split"]
            ):
                continue
            where = f"{path}:{number}"
            problem = None
            if len(fields) != 2:
                problem = f"expected 2 columns 'clip,split', got {fields}"
            elif fields[1] not in ("train", "test"):
                problem = f"split {fields[1]!r} of clip {fields[0]!r} is not 'train' or 'test'"
            else:
                clip = _clip_stem(fields[0])
                if clip in rows:
                    problem = f"clip {clip!r} is already in the split file at {rows[clip][1]}"
            if problem is not None:
                _record_or_raise(SplitFileError(f"{where}: {problem}"), errors)
                continue
            rows[clip] = ("train" if fields[1] == "train" else "test", where)
    return rows


def _clip_stem(name: str) -> str:
    """The clip of a path or file name: its last component without a video suffix."""
    last = Path(name.replace("\\", "/")).name
    return Path(last).stem if Path(last).suffix.lower() in VIDEO_EXTENSIONS else last


@dataclass(frozen=True)
class _Listing:
    """Every clip of a corpus on disk, with the names that could not be parsed.

    ``problems`` holds (actor or None when unknown, error); ``ignored`` counts files left out on
    purpose (RAVDESS's audio-only files, incomplete extraction folders).
    """

    records: list[ClipRecord]
    problems: list[tuple[int | None, DatasetError]]
    ignored: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _ActorSplits:
    """The machinery shared by the actor-coded corpora (RAVDESS, CREMA-D): folds by actor or a
    split file, the class map, the class check. Subclasses list the clips (:meth:`_list`)."""

    root: Path
    variant: Variant = "video"
    fold: int = 1
    num_folds: int = 5
    actors: tuple[int, ...] | None = None
    split_file: Path | None = None
    class_map: ClassMap | None = None
    has_val_split: bool = False

    corpus: ClassVar[str] = ""
    published_actors: ClassVar[tuple[int, ...]] = ()

    def __post_init__(self) -> None:
        if self.variant not in ("video", "frames"):
            raise ValueError(f"variant must be 'video' or 'frames', got {self.variant!r}")
        if self.actors is not None:
            outside = sorted(set(self.actors) - set(self.published_actors))
            if outside or not self.actors:
                raise ValueError(
                    f"actors must be {self.corpus} actors "
                    f"({self.published_actors[0]}..{self.published_actors[-1]}), got "
                    f"{list(self.actors)}"
                )
        if self.split_file is None:
            actor_folds(self.fold_actors, self.num_folds)  # raises for num_folds out of range
            if not 0 <= self.fold <= self.num_folds:
                raise ValueError(
                    f"fold must be in 1..{self.num_folds} (or 0: every clip in both splits), "
                    f"got {self.fold}"
                )

    # -- what subclasses provide ---------------------------------------------------------------

    @property
    def source_classes(self) -> tuple[str, ...]:
        """The corpus's classes (before the class map), index = label of :meth:`_list`'s records
        after :meth:`_select`."""
        raise NotImplementedError

    def _list(self) -> _Listing:
        """Every clip on disk, labels in the corpus's full class order."""
        raise NotImplementedError

    def _select(self, records: Sequence[ClipRecord]) -> list[ClipRecord]:
        """The clips the options select, labelled in :attr:`source_classes` order."""
        return list(records)

    def _actor_of(self, clip: str) -> int:
        """The actor of a clip name (raises ValueError for a name that breaks the code)."""
        raise NotImplementedError

    def _check_actors(self, listing: _Listing, expected: Sequence[int]) -> None:
        """Raise DatasetNotFoundError naming the first expected actor without clips."""
        raise NotImplementedError

    # -- the shared part -----------------------------------------------------------------------

    @property
    def fold_actors(self) -> tuple[int, ...]:
        """The actors the folds are made of (``actors``, default all the corpus's actors)."""
        return tuple(self.actors) if self.actors is not None else self.published_actors

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names, index = label (the class map's target when there is one)."""
        return self.class_map.target if self.class_map is not None else self.source_classes

    def describe(self) -> str:
        """``RAVDESS fold 1 of 5 (test actors 1-5)``, ``RAVDESS split file <path>`` or
        ``RAVDESS, all 24 actors (fold 0)``."""
        if self.split_file is not None:
            return f"{self.corpus} split file {self.split_file}"
        if self.fold == 0:
            return f"{self.corpus}, all {len(self.fold_actors)} actors (fold 0)"
        folds = actor_folds(self.fold_actors, self.num_folds)
        tested = sorted(a for a, k in folds.items() if k == self.fold)
        return f"{self.corpus} fold {self.fold} of {self.num_folds} (test actors {_span(tested)})"

    def read(self, split: Split, errors: list[DatasetError] | None) -> list[ClipRecord]:
        if split == "val":
            raise ValueError(f"{type(self).__name__} has no validation split of its own")
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        what = f"{self.describe()}, {split} split"
        listing = self._list()
        rows = None if self.split_file is None else read_split_file(self.split_file, errors)
        if self.actors is not None or rows is None:
            expected: Sequence[int] = self.fold_actors
        else:
            expected = sorted({a for a in (self._actor_or_none(c) for c in rows) if a is not None})
        self._check_actors(listing, expected)
        if listing.ignored:
            counts = ", ".join(f"{n} {kind}" for kind, n in sorted(listing.ignored.items()))
            log.info("%s: ignored %s", self.root, counts)
        wanted = set(expected)
        records = [r for r in self._select(listing.records) if _actor(r) in wanted]
        if rows is None and self.fold == 0:
            problems = [e for _, e in listing.problems]
        elif rows is None:
            folds = actor_folds(self.fold_actors, self.num_folds)
            tested = split == "test"
            records = [r for r in records if (folds[_actor(r)] == self.fold) == tested]
            ours = {a for a, k in folds.items() if (k == self.fold) == tested}
            problems = [e for a, e in listing.problems if a is None or a in ours]
        else:
            records = self._by_split_file(records, rows, split, errors)
            problems = [e for _, e in listing.problems]
        for err in problems:
            _record_or_raise(err, errors)
        if self.class_map is not None:
            records = self.class_map.apply(records, what)
        kept = self.class_map.kept if self.class_map is not None else self.source_classes
        required = [self.class_names[self._target(name)] for name in kept]
        _check_classes(records, required, self.class_names, split, what)
        return records

    def _target(self, source_name: str) -> int:
        """The label of a source class under the class map."""
        label = self.source_classes.index(source_name)
        if self.class_map is None:
            return label
        new = self.class_map.index[label]
        assert new is not None, "only kept classes are required"
        return new

    def _actor_or_none(self, clip: str) -> int | None:
        try:
            return self._actor_of(clip)
        except ValueError:
            return None

    def _by_split_file(
        self,
        records: list[ClipRecord],
        rows: Mapping[str, tuple[Split, str]],
        split: Split,
        errors: list[DatasetError] | None,
    ) -> list[ClipRecord]:
        """The records the split file puts in ``split``; rows naming no clip are errors."""
        by_clip = {r.clip_id: r for r in records}
        chosen: list[ClipRecord] = []
        for clip, (row_split, where) in rows.items():
            if row_split != split:
                continue
            record = by_clip.get(clip)
            if record is None:
                _record_or_raise(
                    MissingClipError(
                        f"{where}: clip {clip} not found among the selected {self.corpus} clips "
                        f"under {self.root} ({self.variant}); expected {self._expected_path(clip)}"
                    ),
                    errors,
                )
                continue
            chosen.append(replace(record, source=where))
        unused = len(records) - sum(1 for c in rows if c in by_clip)
        if unused > 0 and split == "train":
            log.info("%s: %d clip(s) on disk are not in the split file", self.split_file, unused)
        train = {_actor(by_clip[c]) for c, (s, _) in rows.items() if s == "train" and c in by_clip}
        test = {_actor(by_clip[c]) for c, (s, _) in rows.items() if s == "test" and c in by_clip}
        if train & test and split == "train":
            log.warning(
                "%s: actors %s are in both the train and the test split (not subject-independent)",
                self.split_file,
                _span(sorted(train & test)),
            )
        return chosen

    def _expected_path(self, clip: str) -> str:
        raise NotImplementedError


def _actor(record: ClipRecord) -> int:
    actor = getattr(record, "actor", None)
    assert isinstance(actor, int), f"{type(record).__name__} has no actor"
    return actor


def _entries(folder: Path, variant: Variant) -> tuple[list[Path], Counter[str]]:
    """The clip entries of a folder: files (``video``) or folders (``frames``), hidden entries and
    incomplete extraction folders (``*.partial``) left out, the latter counted."""
    ignored: Counter[str] = Counter()
    found: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if variant == "frames":
            if not entry.is_dir():
                continue
            if entry.name.endswith(".partial"):
                ignored["incomplete extraction folder(s) (*.partial)"] += 1
                continue
        elif not entry.is_file():
            continue
        found.append(entry)
    return found, ignored


def _stem(entry: Path, variant: Variant) -> str:
    return entry.stem if variant == "video" else entry.name


# ------------------------------------------------------------------------------------ RAVDESS

RAVDESS_ACTORS: tuple[int, ...] = tuple(range(1, 25))
"""RAVDESS's 24 actors (odd ids male, even female)."""
RAVDESS_MODALITIES: Mapping[str, str] = {
    "01": "audio_video",
    "02": "video_only",
    "03": "audio_only",
}
RAVDESS_CHANNELS: Mapping[str, str] = {"01": "speech", "02": "song"}
RAVDESS_INTENSITIES: Mapping[str, str] = {"01": "normal", "02": "strong"}
RAVDESS_ORIGIN = (
    "RAVDESS is free to download (CC BY-NC-SA 4.0) from Zenodo: Video_Speech_Actor_01.zip ... "
    "Video_Song_Actor_24.zip each unpack into Actor_<nn>/"
)
RAVDESS_LAYOUT = (
    "<root>/Actor_01 ... Actor_24/MM-VV-EE-II-SS-RR-AA.mp4 (modality 01 full AV, 02 video-only; "
    "vocal channel 01 speech, 02 song; emotion 01..08; intensity 01, 02; statement 01, 02; "
    "repetition 01, 02; actor 01..24), or frame folders of the same names for variant 'frames'"
)


@dataclass(frozen=True)
class RAVDESSRecord(ClipRecord):
    """A RAVDESS clip and the fields of its name ``MM-VV-EE-II-SS-RR-AA``.

    Attributes:
        actor: 1..24 (odd male, even female).
        modality: ``audio_video`` (01) or ``video_only`` (02).
        vocal_channel: ``speech`` (01) or ``song`` (02).
        intensity: ``normal`` (01) or ``strong`` (02; neutral has no strong intensity).
        statement: 1 ("Kids are talking by the door") or 2 ("Dogs are sitting by the door").
        repetition: 1 or 2.
    """

    actor: int = 0
    modality: str = ""
    vocal_channel: str = ""
    intensity: str = ""
    statement: int = 0
    repetition: int = 0


def parse_ravdess_name(stem: str) -> dict[str, Any]:
    """The fields of a RAVDESS file name without its suffix, e.g. ``02-01-06-01-02-01-12``.

    Returns:
        ``modality``, ``vocal_channel``, ``emotion`` (class name), ``intensity``, ``statement``,
        ``repetition``, ``actor``, as in :class:`RAVDESSRecord`.

    Raises:
        ValueError: the name breaks the code (says which part and what it may be).
    """
    parts = stem.split("-")
    if len(parts) != 7 or not all(len(p) == 2 and p.isdigit() for p in parts):
        raise ValueError(
            "expected 7 two-digit parts MM-VV-EE-II-SS-RR-AA (modality, vocal channel, emotion, "
            "intensity, statement, repetition, actor), e.g. 02-01-06-01-02-01-12"
        )
    modality, channel, emotion, intensity, statement, repetition, actor = parts
    problems = [
        (modality not in RAVDESS_MODALITIES, f"modality {modality} is not 01, 02 or 03"),
        (channel not in RAVDESS_CHANNELS, f"vocal channel {channel} is not 01 (speech) or 02"),
        (not 1 <= int(emotion) <= 8, f"emotion {emotion} is not in 01..08"),
        (intensity not in RAVDESS_INTENSITIES, f"intensity {intensity} is not 01 or 02"),
        (statement not in ("01", "02"), f"statement {statement} is not 01 or 02"),
        (repetition not in ("01", "02"), f"repetition {repetition} is not 01 or 02"),
        (not 1 <= int(actor) <= 24, f"actor {actor} is not in 01..24"),
        (emotion == "01" and intensity == "02", "neutral (emotion 01) has no strong intensity 02"),
        (channel == "02" and emotion in ("07", "08"), "song has no disgust (07) or surprise (08)"),
    ]
    for wrong, message in problems:
        if wrong:
            raise ValueError(message)
    return {
        "modality": RAVDESS_MODALITIES[modality],
        "vocal_channel": RAVDESS_CHANNELS[channel],
        "emotion": RAVDESS_CLASS_NAMES[int(emotion) - 1],
        "intensity": RAVDESS_INTENSITIES[intensity],
        "statement": int(statement),
        "repetition": int(repetition),
        "actor": int(actor),
    }


@dataclass(frozen=True)
class RAVDESSSplits(_ActorSplits):
    """RAVDESS: the ``Actor_nn`` folders of its video files (or their face crops), split by actor.

    Args:
        root: RAVDESS root, holding ``Actor_01`` ... ``Actor_24``.
        variant: ``video`` (the MP4 files) or ``frames`` (frame folders of the same names, e.g.
            written by ``hdf data extract --faces``).
        modality: ``video_only`` (``02-`` files), ``audio_video`` (``01-``) or ``both`` (the same
            recordings twice: only for checking that both decode alike).
        vocal_channel: ``speech`` (8 classes), ``song`` (6: no disgust, no surprise) or ``both``
            (8).
        fold, num_folds, actors: see :func:`actor_folds`; ``actors`` defaults to all 24, and every
            actor folder listed must exist.
        split_file: ``clip,split`` rows replacing the folds (:func:`read_split_file`).
        class_map: see :class:`ClassMap`.

    ``03-`` (audio-only) files found in the tree are not videos: they are ignored and counted.
    """

    modality: RAVDESSModality = "video_only"
    vocal_channel: RAVDESSChannel = "speech"

    corpus = "RAVDESS"
    published_actors = RAVDESS_ACTORS

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.modality not in ("video_only", "audio_video", "both"):
            raise ValueError(
                f"modality must be 'video_only', 'audio_video' or 'both', got {self.modality!r}"
            )
        if self.vocal_channel not in ("speech", "song", "both"):
            raise ValueError(
                f"vocal_channel must be 'speech', 'song' or 'both', got {self.vocal_channel!r}"
            )

    @property
    def source_classes(self) -> tuple[str, ...]:
        return RAVDESS_SONG_CLASS_NAMES if self.vocal_channel == "song" else RAVDESS_CLASS_NAMES

    def _actor_of(self, clip: str) -> int:
        return int(parse_ravdess_name(clip)["actor"])

    def _expected_path(self, clip: str) -> str:
        actor = self._actor_or_none(clip)
        folder = self.root / (f"Actor_{actor:02d}" if actor is not None else "Actor_<nn>")
        return str(folder / (f"{clip}.mp4" if self.variant == "video" else f"{clip}/"))

    def _check_actors(self, listing: _Listing, expected: Sequence[int]) -> None:
        if not self.root.is_dir():
            raise DatasetNotFoundError(
                f"RAVDESS root not found: {self.root}. Expected layout: {RAVDESS_LAYOUT}. "
                f"{RAVDESS_ORIGIN}"
            )
        for actor in expected:
            folder = self.root / f"Actor_{actor:02d}"
            if not folder.is_dir():
                raise DatasetNotFoundError(
                    f"RAVDESS actor folder not found: {folder} (expected Actor_"
                    f"{expected[0]:02d} ... Actor_{expected[-1]:02d}; pass actors: [...] to use "
                    f"fewer). Expected layout: {RAVDESS_LAYOUT}. {RAVDESS_ORIGIN}"
                )

    def _list(self) -> _Listing:
        records: list[ClipRecord] = []
        problems: list[tuple[int | None, DatasetError]] = []
        ignored: Counter[str] = Counter()
        if not self.root.is_dir():
            return _Listing(records, problems, ignored)
        kind: ClipKind = "video" if self.variant == "video" else "frames"
        for folder in sorted(self.root.glob("Actor_*")):
            if not folder.is_dir():
                continue
            suffix = folder.name.removeprefix("Actor_")
            folder_actor = int(suffix) if suffix.isdigit() else None
            entries, skipped = _entries(folder, self.variant)
            ignored.update(skipped)
            for entry in entries:
                try:
                    fields = parse_ravdess_name(_stem(entry, self.variant))
                    if fields["actor"] != folder_actor:
                        raise ValueError(
                            f"actor {fields['actor']:02d} of the name is not the folder's"
                        )
                    if self.variant == "video" and not is_video(entry):
                        if fields["modality"] == "audio_only":
                            ignored["audio-only (03-) file(s)"] += 1
                            continue
                        raise ValueError(f"suffix {entry.suffix!r} is not a video's (.mp4)")
                except ValueError as err:
                    problems.append(
                        (
                            folder_actor,
                            FileNameError(
                                f"{entry}: not a RAVDESS clip name: {err}. Expected "
                                f"{RAVDESS_LAYOUT}"
                            ),
                        )
                    )
                    continue
                if fields["modality"] == "audio_only":
                    ignored["audio-only (03-) file(s)"] += 1
                    continue
                emotion = fields.pop("emotion")
                records.append(
                    RAVDESSRecord(
                        entry,
                        RAVDESS_CLASS_NAMES.index(emotion),
                        _stem(entry, self.variant),
                        kind,
                        **fields,
                    )
                )
        return _Listing(records, problems, ignored)

    def _select(self, records: Sequence[ClipRecord]) -> list[ClipRecord]:
        modalities = {"both": ("video_only", "audio_video")}.get(self.modality, (self.modality,))
        channels = {"both": ("speech", "song")}.get(self.vocal_channel, (self.vocal_channel,))
        chosen: list[ClipRecord] = []
        for record in records:
            assert isinstance(record, RAVDESSRecord)
            if record.modality in modalities and record.vocal_channel in channels:
                name = RAVDESS_CLASS_NAMES[record.label]
                chosen.append(replace(record, label=self.source_classes.index(name)))
        return chosen


# ------------------------------------------------------------------------------------ CREMA-D

CREMAD_ACTORS: tuple[int, ...] = tuple(range(1001, 1092))
"""CREMA-D's 91 actors."""
CREMAD_SENTENCES: tuple[str, ...] = (
    "IEO",
    "TIE",
    "IOM",
    "IWW",
    "TAI",
    "MTI",
    "IWL",
    "ITH",
    "DFA",
    "ITS",
    "TSI",
    "WSI",
)
"""CREMA-D's 12 sentence codes."""
CREMAD_EMOTIONS: tuple[str, ...] = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
"""CREMA-D's emotion codes, in :data:`~hdf_lightning.data.classes.CREMAD_CLASS_NAMES` order."""
CREMAD_LEVELS: Mapping[str, str] = {
    "LO": "low",
    "MD": "medium",
    "HI": "high",
    "XX": "unspecified",
}
"""CREMA-D's intensity level codes."""
CREMAD_FOLDER = "VideoFlash"
CREMAD_ORIGIN = (
    "CREMA-D is free to download (Open Database License) from the CheyneyComputerScience/CREMA-D "
    "repository on GitHub (VideoFlash/ through Git LFS)"
)
CREMAD_LAYOUT = (
    "<root>/VideoFlash/<actor>_<sentence>_<EMO>_<LEVEL>.flv, e.g. 1001_DFA_ANG_XX.flv (actor "
    f"1001..1091, sentence one of {', '.join(CREMAD_SENTENCES)}, emotion one of "
    f"{', '.join(CREMAD_EMOTIONS)}, level LO, MD, HI or XX), or frame folders of the same names "
    "for variant 'frames'"
)


@dataclass(frozen=True)
class CREMADRecord(ClipRecord):
    """A CREMA-D clip and the fields of its name ``<actor>_<sentence>_<EMO>_<LEVEL>``.

    Attributes:
        actor: 1001..1091.
        sentence: one of :data:`CREMAD_SENTENCES`.
        level: the intensity level code: ``LO``, ``MD``, ``HI`` or ``XX`` (unspecified).
    """

    actor: int = 0
    sentence: str = ""
    level: str = ""


def parse_cremad_name(stem: str) -> dict[str, Any]:
    """The fields of a CREMA-D file name without its suffix, e.g. ``1001_DFA_ANG_XX``.

    Returns:
        ``actor``, ``sentence``, ``emotion`` (class name), ``level``.

    Raises:
        ValueError: the name breaks the code (says which part and what it may be).
    """
    parts = stem.split("_")
    if len(parts) != 4:
        raise ValueError("expected 4 parts <actor>_<sentence>_<EMO>_<LEVEL>, e.g. 1001_DFA_ANG_XX")
    actor, sentence, emotion, level = parts
    if not (actor.isdigit() and int(actor) in CREMAD_ACTORS):
        raise ValueError(f"actor {actor} is not in 1001..1091")
    if sentence not in CREMAD_SENTENCES:
        raise ValueError(f"sentence {sentence} is not one of {', '.join(CREMAD_SENTENCES)}")
    if emotion not in CREMAD_EMOTIONS:
        raise ValueError(f"emotion {emotion} is not one of {', '.join(CREMAD_EMOTIONS)}")
    if level not in CREMAD_LEVELS:
        raise ValueError(f"level {level} is not one of {', '.join(CREMAD_LEVELS)}")
    return {
        "actor": int(actor),
        "sentence": sentence,
        "emotion": CREMAD_CLASS_NAMES[CREMAD_EMOTIONS.index(emotion)],
        "level": level,
    }


@dataclass(frozen=True)
class CREMADSplits(_ActorSplits):
    """CREMA-D: ``VideoFlash/`` (or its face crops), split by actor.

    Args:
        root: CREMA-D root, holding ``VideoFlash/``.
        variant: ``video`` (the FLV files) or ``frames`` (frame folders of the same names, e.g.
            written by ``hdf data extract --faces``).
        fold, num_folds, actors: see :func:`actor_folds`; ``actors`` defaults to all 91, and every
            actor listed must have clips.
        split_file: ``clip,split`` rows replacing the folds (:func:`read_split_file`).
        class_map: see :class:`ClassMap`.
    """

    corpus = "CREMA-D"
    published_actors = CREMAD_ACTORS

    @property
    def source_classes(self) -> tuple[str, ...]:
        return CREMAD_CLASS_NAMES

    def _actor_of(self, clip: str) -> int:
        return int(parse_cremad_name(clip)["actor"])

    def _expected_path(self, clip: str) -> str:
        folder = self.root / CREMAD_FOLDER
        return str(folder / (f"{clip}.flv" if self.variant == "video" else f"{clip}/"))

    def _check_actors(self, listing: _Listing, expected: Sequence[int]) -> None:
        folder = self.root / CREMAD_FOLDER
        for what, path in (("CREMA-D root", self.root), ("CREMA-D VideoFlash folder", folder)):
            if not path.is_dir():
                raise DatasetNotFoundError(
                    f"{what} not found: {path}. Expected layout: {CREMAD_LAYOUT}. {CREMAD_ORIGIN}"
                )
        present = {_actor(r) for r in listing.records}
        for actor in expected:
            if actor not in present:
                pattern = f"{actor}_<sentence>_<EMO>_<LEVEL>" + (
                    ".flv" if self.variant == "video" else "/"
                )
                raise DatasetNotFoundError(
                    f"CREMA-D actor {actor} has no clip in {folder} (expected {folder / pattern};"
                    " pass actors: [...] to use fewer). "
                    f"{CREMAD_ORIGIN}"
                )

    def _list(self) -> _Listing:
        records: list[ClipRecord] = []
        problems: list[tuple[int | None, DatasetError]] = []
        folder = self.root / CREMAD_FOLDER
        if not folder.is_dir():
            return _Listing(records, problems)
        kind: ClipKind = "video" if self.variant == "video" else "frames"
        entries, ignored = _entries(folder, self.variant)
        for entry in entries:
            stem = _stem(entry, self.variant)
            try:
                fields = parse_cremad_name(stem)
                if self.variant == "video" and not is_video(entry):
                    raise ValueError(f"suffix {entry.suffix!r} is not a video's (.flv)")
            except ValueError as err:
                head = stem.split("_", 1)[0]
                actor = int(head) if head.isdigit() else None
                problems.append(
                    (
                        actor,
                        FileNameError(
                            f"{entry}: not a CREMA-D clip name: {err}. Expected {CREMAD_LAYOUT}"
                        ),
                    )
                )
                continue
            emotion = fields.pop("emotion")
            records.append(
                CREMADRecord(entry, CREMAD_CLASS_NAMES.index(emotion), stem, kind, **fields)
            )
        return _Listing(records, problems, ignored)


# ------------------------------------------------------------------------------------ MAFW

MAFW_FOLDS: tuple[int, ...] = (1, 2, 3, 4, 5)
"""MAFW's 5 folds (0: every clip in both splits)."""
MAFW_VARIANTS: Mapping[str, tuple[str, ClipKind]] = {
    "faces": ("data/faces", "frames"),
    "frames": ("data/frames", "frames"),
    "video": ("data/clips", "video"),
}
"""MAFW variant -> (clip folder relative to the root, kind of clip stored there)."""
MAFW_SPLIT_DIR = "Train & Test Set/single/no_caption"
"""Where MAFW ships the single-expression split files (``set_<k>/{train,test}.txt``)."""
MAFW_ORIGIN = (
    "MAFW is distributed by its authors on application, for non-commercial research (see the "
    "MAFW-database/MAFW repository on GitHub)"
)
MAFW_LAYOUT = (
    "<root>/data/faces/<clip>/*.jpg (or data/frames/<clip>/, or data/clips/<clip>.mp4 for "
    "variant 'video'); split files <root>/Train & Test Set/single/no_caption/set_{1..5}/"
    "{train,test}.txt with lines '<clip>.mp4 <class name>' (annotation 'mafw'), or DFER-CLIP's "
    "<annotation_dir>/MAFW_set_{1..5}_{train,test}.txt '<path> <frames> <label 0..10>' "
    "(annotation 'dfer-clip'), or MAE-DFER's <annotation_dir>/split0{1..5}/{train,test}.csv "
    "'<path> <label 0..10>' (annotation 'mae-dfer')"
)


@dataclass(frozen=True)
class MAFWSplits:
    """MAFW's single-expression fold ``fold`` (1..5), read from MAFW's own split files or from
    the annotation files of DFER-CLIP or MAE-DFER (see the module's layouts).

    Args:
        root: MAFW root, holding ``data/`` (and ``Train & Test Set/`` for annotation ``mafw``).
        fold: 1..5, or 0: every clip (fold 1's train and test files) in both splits.
        variant: ``faces`` (``data/faces``), ``frames`` (``data/frames``) or ``video``
            (``data/clips/<clip>.mp4``).
        annotation: ``mafw``, ``dfer-clip`` or ``mae-dfer``.
        annotation_dir: the folder of the split files (default ``<root>/Train & Test
            Set/single/no_caption`` for ``mafw``, ``<root>/annotation`` otherwise).
        class_map: see :class:`ClassMap`.
    """

    root: Path
    fold: int = 1
    variant: MAFWVariant = "faces"
    annotation: MAFWAnnotation = "mafw"
    annotation_dir: Path | None = None
    class_map: ClassMap | None = None
    has_val_split: bool = False

    def __post_init__(self) -> None:
        if self.fold not in (0, *MAFW_FOLDS):
            raise ValueError(f"MAFW fold must be one of 1..5 (or 0: every clip), got {self.fold}")
        if self.variant not in MAFW_VARIANTS:
            raise ValueError(
                f"variant must be one of {sorted(MAFW_VARIANTS)}, got {self.variant!r}"
            )
        if self.annotation not in ("mafw", "dfer-clip", "mae-dfer"):
            raise ValueError(
                f"annotation must be 'mafw', 'dfer-clip' or 'mae-dfer', got {self.annotation!r}"
            )

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.class_map.target if self.class_map is not None else MAFW_CLASS_NAMES

    def split_file(self, split: Split, fold: int | None = None) -> Path:
        """The split file of ``split`` for ``fold`` (default this reader's) in its format."""
        fold = self.fold if fold is None else fold
        if self.annotation == "mafw":
            folder = self.annotation_dir or self.root / MAFW_SPLIT_DIR
            return folder / f"set_{fold}" / f"{split}.txt"
        folder = self.annotation_dir or self.root / "annotation"
        if self.annotation == "dfer-clip":
            return folder / f"MAFW_set_{fold}_{split}.txt"
        return folder / f"split0{fold}" / f"{split}.csv"

    def read(self, split: Split, errors: list[DatasetError] | None) -> list[ClipRecord]:
        if split not in ("train", "test"):
            raise ValueError(f"{type(self).__name__} has no {split} split of its own")
        clip_folder, kind = MAFW_VARIANTS[self.variant]
        clip_dir = self.root / clip_folder
        paths = (
            [self.split_file("train", 1), self.split_file("test", 1)]
            if self.fold == 0
            else [self.split_file(split)]
        )
        for what, folder in (("MAFW root", self.root), ("MAFW clip folder", clip_dir)):
            if not folder.is_dir():
                raise DatasetNotFoundError(
                    f"{what} not found: {folder}. Expected layout: {MAFW_LAYOUT}. {MAFW_ORIGIN}"
                )
        records: list[ClipRecord] = []
        for path in paths:
            records += self._read_file(path, clip_dir, kind, errors)
        where = "all clips" if self.fold == 0 else f"fold {self.fold}"
        what = f"MAFW {where}, {split} split ({', '.join(map(str, paths))})"
        required: Sequence[str] = MAFW_CLASS_NAMES
        if self.class_map is not None:
            records = self.class_map.apply(records, what)
            required = [self.class_map.target[i] for i in self.class_map.index if i is not None]
        _check_classes(records, list(dict.fromkeys(required)), self.class_names, split, what)
        return records

    def _read_file(
        self, path: Path, clip_dir: Path, kind: ClipKind, errors: list[DatasetError] | None
    ) -> list[ClipRecord]:
        """The records of one split file."""
        if not path.is_file():
            raise DatasetNotFoundError(
                f"MAFW split file not found: {path}. Expected layout: {MAFW_LAYOUT}. {MAFW_ORIGIN}"
            )
        records: list[ClipRecord] = []
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                fields = line.split()
                if not fields:
                    continue
                where = f"{path}:{number}"
                try:
                    clip, label = self._parse(fields)
                except ValueError as err:
                    _record_or_raise(SplitFileError(f"{where}: {err}"), errors)
                    continue
                found = clip_dir / (f"{clip}.mp4" if kind == "video" else clip)
                if not found.exists():
                    _record_or_raise(
                        MissingClipError(f"{where}: clip {clip} not found, expected {found}"),
                        errors,
                    )
                    continue
                records.append(ClipRecord(found, label, clip, kind, where))
        return records

    def _parse(self, fields: Sequence[str]) -> tuple[str, int]:
        """(clip, label in MAFW order) of one line's fields (raises ValueError)."""
        if self.annotation == "mafw":
            if len(fields) != 2:
                raise ValueError(f"expected 2 columns '<clip>.mp4 <class name>', got {fields}")
            label = class_index(fields[1], MAFW_CLASS_NAMES)
            if label is None:
                raise ValueError(
                    f"class {fields[1]!r} of clip {fields[0]!r} is not one of "
                    f"{list(MAFW_CLASS_NAMES)}"
                )
            return _clip_stem(fields[0]), label
        count = 3 if self.annotation == "dfer-clip" else 2
        shape = "'<path> <frames> <label>'" if count == 3 else "'<path> <label>'"
        if len(fields) != count or not all(f.isdigit() for f in fields[1:]):
            raise ValueError(f"expected {count} columns {shape} with integers, got {fields}")
        raw = int(fields[-1])
        if not 0 <= raw < len(MAFW_CLASS_NAMES):
            raise ValueError(f"label {raw} of {fields[0]!r} is not in 0..10")
        if self.annotation == "dfer-clip":
            raw = MAFW_CLASS_NAMES.index(MAFW_DFER_CLIP_ORDER[raw])
        return _clip_stem(fields[0]), raw


# ------------------------------------------------------------------------------------ DataModules


class MAFWDataModule(ClipDataModule):
    """MAFW's 11 single-expression classes, one of its 5 folds (see :class:`MAFWSplits`).

    Args:
        root: MAFW root, holding ``data/`` and the split files.
        fold: 1..5; 0 puts every clip in both splits (see :class:`MAFWSplits`).
        variant: ``faces`` (``data/faces``), ``frames`` (``data/frames``) or ``video``.
        annotation: split file format: ``mafw`` (as MAFW ships them), ``dfer-clip`` or
            ``mae-dfer`` (those code bases' annotation files).
        annotation_dir: folder of the split files (default: see :class:`MAFWSplits`).
        class_map: relabel onto shared classes (``dfew7``, ``shared6`` or a mapping), see
            :class:`ClassMap`.
        **options: the loading options of :class:`ClipDataModule`.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        fold: int = 1,
        variant: MAFWVariant = "faces",
        annotation: MAFWAnnotation = "mafw",
        annotation_dir: str | Path | None = None,
        class_map: str | dict[str, str | None] | None = None,
        **options: Any,
    ) -> None:
        mapping = ClassMap.resolve(class_map, MAFW_CLASS_NAMES, TO_DFEW["MAFW"])
        splits = MAFWSplits(
            Path(root),
            fold=fold,
            variant=variant,
            annotation=annotation,
            annotation_dir=None if annotation_dir is None else Path(annotation_dir),
            class_map=mapping,
        )
        super().__init__(splits, **options)
        self.root = Path(root)
        self.fold = fold


class RAVDESSDataModule(ClipDataModule):
    """RAVDESS's video files (or their face crops), subject-independent folds by actor (see
    :class:`RAVDESSSplits`).

    Args:
        root: RAVDESS root, holding ``Actor_01`` ... ``Actor_24`` (or their face crops).
        variant: ``video`` (MP4 files) or ``frames`` (frame folders of the same layout).
        modality: ``video_only`` (``02-``), ``audio_video`` (``01-``) or ``both``.
        vocal_channel: ``speech`` (8 classes), ``song`` (6) or ``both`` (8).
        fold: the fold tested, 1..``num_folds``; 0 puts every clip in both splits (training on
            the whole corpus, or testing a model trained on another corpus on all of it).
        num_folds: folds of actors (:func:`actor_folds`).
        actors: the actors used (default all 24; each needs its ``Actor_nn`` folder).
        split_file: ``clip,split`` CSV replacing the folds.
        class_map: relabel onto shared classes (``dfew7``, ``shared6`` or a mapping), see
            :class:`ClassMap`.
        **options: the loading options of :class:`ClipDataModule`.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        variant: Variant = "video",
        modality: RAVDESSModality = "video_only",
        vocal_channel: RAVDESSChannel = "speech",
        fold: int = 1,
        num_folds: int = 5,
        actors: list[int] | None = None,
        split_file: str | Path | None = None,
        class_map: str | dict[str, str | None] | None = None,
        **options: Any,
    ) -> None:
        source = RAVDESS_SONG_CLASS_NAMES if vocal_channel == "song" else RAVDESS_CLASS_NAMES
        splits = RAVDESSSplits(
            Path(root),
            variant=variant,
            modality=modality,
            vocal_channel=vocal_channel,
            fold=fold,
            num_folds=num_folds,
            actors=None if actors is None else tuple(actors),
            split_file=None if split_file is None else Path(split_file),
            class_map=ClassMap.resolve(class_map, source, TO_DFEW["RAVDESS"]),
        )
        super().__init__(splits, **options)
        self.root = Path(root)
        self.fold = fold


class CREMADDataModule(ClipDataModule):
    """CREMA-D's ``VideoFlash`` FLV files (or their face crops), subject-independent folds by
    actor (see :class:`CREMADSplits`).

    Args:
        root: CREMA-D root, holding ``VideoFlash/`` (or its face crops).
        variant: ``video`` (FLV files) or ``frames`` (frame folders of the same layout).
        fold: the fold tested, 1..``num_folds``; 0 puts every clip in both splits (training on
            the whole corpus, or testing a model trained on another corpus on all of it).
        num_folds: folds of actors (:func:`actor_folds`).
        actors: the actors used (default all 91; each needs clips).
        split_file: ``clip,split`` CSV replacing the folds.
        class_map: relabel onto shared classes (``dfew7``, ``shared6`` or a mapping), see
            :class:`ClassMap`.
        **options: the loading options of :class:`ClipDataModule`.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        variant: Variant = "video",
        fold: int = 1,
        num_folds: int = 5,
        actors: list[int] | None = None,
        split_file: str | Path | None = None,
        class_map: str | dict[str, str | None] | None = None,
        **options: Any,
    ) -> None:
        splits = CREMADSplits(
            Path(root),
            variant=variant,
            fold=fold,
            num_folds=num_folds,
            actors=None if actors is None else tuple(actors),
            split_file=None if split_file is None else Path(split_file),
            class_map=ClassMap.resolve(class_map, CREMAD_CLASS_NAMES, TO_DFEW["CREMA-D"]),
        )
        super().__init__(splits, **options)
        self.root = Path(root)
        self.fold = fold
