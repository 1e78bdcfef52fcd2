"""How face crops were made: one record, written where crops are made and read where they are used.

A network trained on face crops expects crops made the same way at inference. What makes a crop
is the detector, how often and at which width it runs, how its boxes are tracked (gaps joined,
smoothing), the margin around the face, the side of the saved crop and which frames are cropped.
:class:`FaceCropRecord` holds exactly that, and travels:

* ``hdf data extract --faces`` writes it into ``manifest.json`` (:data:`MANIFEST_NAME`) at the
  root of the crop folders;
* a DataModule finds that manifest beside its clip folders (:func:`clips_crop_record`) and the
  checkpoint's inference record stores it (``checkpoint["hdf_inference"]["face_crop"]``);
* ``hdf predict`` writes the record of the crops it makes into its outputs and warns when it
  differs from the checkpoint's.

A folder of crops without a manifest (DFEW's own ``clip_224x224``, the synthetic data) has no
record: how it was cropped is unknown, and nothing is compared.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

__all__ = [
    "FRAME_SOURCE",
    "MANIFEST_NAME",
    "FaceCropRecord",
    "clips_crop_record",
    "manifest_crop_record",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
"""File name of the manifest ``hdf data extract --faces`` writes at the root of its crops."""

FRAME_SOURCE = "every decoded frame"
"""The frames crops are cut from: every frame that decodes (a frame folder's every file), in
order; frames without a tracked face are left out."""


@dataclass(frozen=True)
class FaceCropRecord:
    """The settings that decide what a face crop holds.

    Attributes:
        detector: the detector's name (``opencv``, ``none``: whole frames) or import path.
        margin: fraction of the face box added on each side (None for whole frames).
        size: side in pixels of the crops as made (``hdf predict`` crops at the checkpoint's
            ``load_size``, the side the training loader resizes the saved crops to).
        detect_every: the detector runs on every ``detect_every``-th frame (None: whole frames).
        detect_width: ... on frames downscaled to this width (None: whole frames).
        smooth: frames of the moving average over box centre and side (None: whole frames).
        max_gap: detections at most this many frames apart are joined (None: whole frames).
        frame_source: which frames are cropped (:data:`FRAME_SOURCE`).
    """

    detector: str
    margin: float | None
    size: int
    detect_every: int | None
    detect_width: int | None
    smooth: int | None
    max_gap: int | None
    frame_source: str = FRAME_SOURCE

    NOT_COMPARED: ClassVar[tuple[str, ...]] = ("size",)
    """Fields :meth:`differences` leaves out: the loader resizes saved crops to ``load_size``,
    the side ``hdf predict`` crops at, so the saved side does not change what the network sees
    beyond resampling."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (manifest, checkpoint, ``hdf predict`` outputs)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> FaceCropRecord:
        """The record of :meth:`to_dict`'s output.

        Raises:
            ValueError: not a dict of the record's fields (names what is missing or wrong).
        """
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict):
            raise ValueError(f"a face crop record is a mapping of {names}, got {data!r}")
        missing = [n for n in names if n not in data and n != "frame_source"]
        if missing:
            raise ValueError(f"face crop record without {missing}: {data}")

        def optional(name: str, kind: type) -> Any:
            value = data[name]
            return None if value is None else kind(value)

        return cls(
            detector=str(data["detector"]),
            margin=optional("margin", float),
            size=int(data["size"]),
            detect_every=optional("detect_every", int),
            detect_width=optional("detect_width", int),
            smooth=optional("smooth", int),
            max_gap=optional("max_gap", int),
            frame_source=str(data.get("frame_source", FRAME_SOURCE)),
        )

    def differences(self, other: FaceCropRecord) -> list[tuple[str, Any, Any]]:
        """``(field, this value, other value)`` for every compared field that differs."""
        return [
            (f.name, getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if f.name not in self.NOT_COMPARED and getattr(self, f.name) != getattr(other, f.name)
        ]

    def describe(self) -> str:
        """One phrase, e.g. ``opencv faces, margin 0.15, 224 px (detected every 5 frames at 320 px,
        smoothed over 5 frames, gaps up to 10 frames), every decoded frame``."""
        if self.margin is None:
            return f"whole frames ({self.detector}), {self.size} px, {self.frame_source}"
        return (
            f"{self.detector} faces, margin {self.margin:g}, {self.size} px (detected every "
            f"{self.detect_every} frames at {self.detect_width} px, smoothed over {self.smooth} "
            f"frames, gaps up to {self.max_gap} frames), {self.frame_source}"
        )


def manifest_crop_record(folder: Path) -> FaceCropRecord | None:
    """The record in ``folder/manifest.json``, or None when there is no readable one."""
    path = folder / MANIFEST_NAME
    try:
        content = json.loads(path.read_text())
        return FaceCropRecord.from_dict(content["face_crop"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("%s: no usable face crop record (%s)", path, err)
        return None


def _manifest_folder(folder: Path) -> Path:
    """``folder``, or the nearest folder above it holding a manifest (``folder`` when none)."""
    for candidate in (folder, *folder.parents):
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    return folder


def clips_crop_record(clips: Iterable[Path]) -> FaceCropRecord | None:
    """How a set of clip folders was cropped: the record of the manifest beside them.

    Each clip's manifest is looked up in its parent folder (``<crops>/<clip>/``, the layout ``hdf
    data extract --faces`` writes), else in the nearest folder above it that has one (one
    ``--recursive`` run writes a single manifest at its root). Returns the record when every clip
    has one and all agree;
    None when no clip has one. Clips cropped in different ways, or only partly from a manifest,
    have no single record: a warning says so and None is returned.
    """
    records: dict[Path, FaceCropRecord | None] = {}
    for clip in clips:
        parent = _manifest_folder(Path(clip).parent)
        if parent not in records:
            records[parent] = manifest_crop_record(parent)
    found = set(records.values())
    if not records or found == {None}:
        return None
    if len(found) == 1:
        return found.pop()
    folders = ", ".join(f"{p} ({r.describe() if r else 'no manifest'})" for p, r in records.items())
    log.warning("the clips were not all cropped the same way, no face crop recorded: %s", folders)
    return None
