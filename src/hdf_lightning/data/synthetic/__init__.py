"""Procedural, heterogeneous dynamic-facial-expression clips written in the real dataset layouts.

DFEW and FERV39k are licence-gated, so demos, tests and heterogeneity studies run on cartoon
faces rendered here (numpy + PIL only) and written exactly as the real datasets are laid out on
disk, so the real dataset code path reads them.

* **Faces.** Each subject has an identity (face aspect, skin/hair/eye colours, framing, head
  motion, a resting expression). A clip animates 9 action parameters (:data:`ACTION_NAMES`) from
  the subject's resting pose towards the class's apex pose (:data:`CLASS_ACTIONS`) along an
  onset-apex-offset envelope placed at a random time in the clip, with per-frame jitter, blinks
  and head motion.
* **Sources.** Each clip comes from one of ``num_sources`` capture styles (brightness, contrast,
  colour cast, blur, noise, JPEG quality, resolution, frame drops); with ``unseen_source`` an
  extra, distinct style appears in the test files only, and each family of ``held_out`` adds one
  test-only style that leaves the seen range in that family alone (:data:`HELD_OUT_FAMILIES`).
* **Determinism.** Every random draw comes from a numpy ``Generator`` seeded by
  ``(seed, tag, index)``, so the same :class:`SynthConfig` always writes byte-identical files,
  whatever the iteration order.

Layouts written (docs/method.md §7):

* :func:`generate_dfew`: ``Clip/clip_224x224/<5-digit id>/<5-digit frame>.jpg`` (optionally
  ``Clip/clip_224x224_16f``) and ``EmoLabel_DataSplit/{train,test}(single-labeled)/set_{1..5}.csv``.
* :func:`generate_ferv39k`: ``2_ClipsforFaceCrop/<Scene>/<Emotion>/<4-digit clip>/*.jpg`` and the
  header-less, space-separated ``4_setups/All_scenes/{train,test}_All.csv``.

Both also write ``synthetic_manifest.csv`` (one row per clip; ``label`` is the 0-based class
index in :data:`CLASS_NAMES` order) and ``README.txt``.
"""

from __future__ import annotations

from hdf_lightning.data.classes import CLASS_NAMES
from hdf_lightning.data.synthetic.config import (
    CLASS_PRIORS,
    FERV39K_CLASS_NAMES,
    HELD_OUT_FAMILIES,
    NUM_FOLDS,
    SynthConfig,
)
from hdf_lightning.data.synthetic.faces import (
    ACTION_NAMES,
    CLASS_ACTIONS,
    EXPRESSION_GAIN,
    FACE_RADIUS,
    Identity,
    subject_identity,
)
from hdf_lightning.data.synthetic.plan import ClipSpec, plan_clips
from hdf_lightning.data.synthetic.render import Timeline, class_strip, render_clip
from hdf_lightning.data.synthetic.styles import SourceStyle, source_styles
from hdf_lightning.data.synthetic.writers import generate_dfew, generate_ferv39k

__all__ = [
    "ACTION_NAMES",
    "CLASS_ACTIONS",
    "CLASS_NAMES",
    "CLASS_PRIORS",
    "EXPRESSION_GAIN",
    "FACE_RADIUS",
    "FERV39K_CLASS_NAMES",
    "HELD_OUT_FAMILIES",
    "NUM_FOLDS",
    "ClipSpec",
    "Identity",
    "SourceStyle",
    "SynthConfig",
    "Timeline",
    "class_strip",
    "generate_dfew",
    "generate_ferv39k",
    "plan_clips",
    "render_clip",
    "source_styles",
    "subject_identity",
]
