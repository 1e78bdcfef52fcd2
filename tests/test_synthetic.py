"""Tests of the synthetic DFER generator: layouts, determinism, splits, and the renderer itself."""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hdf_lightning.data.synthetic import (
    CLASS_NAMES,
    FERV39K_CLASS_NAMES,
    HELD_OUT_FAMILIES,
    NUM_FOLDS,
    Identity,
    SourceStyle,
    SynthConfig,
    Timeline,
    class_strip,
    generate_dfew,
    generate_ferv39k,
    plan_clips,
    render_clip,
    source_styles,
)

TINY = SynthConfig(
    num_subjects=5,
    clips_per_subject=2,
    image_size=32,
    num_frames_range=(3, 8),
    num_sources=2,
    seed=3,
)
HAPPY, SAD, NEUTRAL = (CLASS_NAMES.index(name) for name in ("happy", "sad", "neutral"))


def read_split(path: Path) -> list[tuple[str, int]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["video_name", "label"], f"{path} header is {rows[0]}"
    return [(name, int(label)) for name, label in rows[1:]]


def read_manifest(root: Path) -> list[dict[str, str]]:
    with (root / "synthetic_manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def dfew_splits(root: Path) -> dict[tuple[str, int], list[tuple[str, int]]]:
    split_dir = root / "EmoLabel_DataSplit"
    return {
        (split, fold): read_split(split_dir / f"{split}(single-labeled)" / f"set_{fold}.csv")
        for split in ("train", "test")
        for fold in range(1, NUM_FOLDS + 1)
    }


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_dfew_layout(tmp_path: Path) -> None:
    config = replace(TINY, write_16f=True)
    summary = generate_dfew(tmp_path, config)
    clip_dir = tmp_path / "Clip" / "clip_224x224"
    folders = sorted(p.name for p in clip_dir.iterdir())
    assert len(folders) == summary["num_clips"] == 10
    assert all(re.fullmatch(r"\d{5}", name) for name in folders)
    for name in folders:
        frames = sorted(p.name for p in (clip_dir / name).iterdir())
        assert frames == [f"{i:05d}.jpg" for i in range(1, len(frames) + 1)]
        assert 3 <= len(frames) <= 8
        with Image.open(clip_dir / name / frames[0]) as image:
            assert image.size == (32, 32) and image.mode == "RGB"
        frames_16 = sorted(
            p.name for p in (tmp_path / "Clip" / "clip_224x224_16f" / name).iterdir()
        )
        assert frames_16 == [f"{i:05d}.jpg" for i in range(1, 17)]

    splits = dfew_splits(tmp_path)
    assert len(list((tmp_path / "EmoLabel_DataSplit").rglob("*.csv"))) == 2 * NUM_FOLDS
    manifest = {row["video_name"]: row for row in read_manifest(tmp_path)}
    test_count: Counter[str] = Counter()
    for (split, fold), rows in splits.items():
        for name, label in rows:
            folder = name.zfill(5)
            assert (clip_dir / folder).is_dir(), f"{name} in {split} set_{fold} has no folder"
            assert 1 <= label <= len(CLASS_NAMES)
            assert int(manifest[folder]["label"]) == label - 1
            if split == "test":
                test_count[folder] += 1
                assert int(manifest[folder]["fold"]) == fold
    assert dict(test_count) == dict.fromkeys(folders, 1), "every clip is in exactly one test file"
    assert any(name != name.zfill(5) for (_, _), rows in splits.items() for name, _ in rows)

    for fold in range(1, NUM_FOLDS + 1):
        train = {name for name, _ in splits["train", fold]}
        test = {name for name, _ in splits["test", fold]}
        assert train and test and not train & test
        assert train | test == {str(int(name)) for name in folders}
        train_subjects = {manifest[n.zfill(5)]["subject"] for n in train}
        test_subjects = {manifest[n.zfill(5)]["subject"] for n in test}
        assert not train_subjects & test_subjects, f"fold {fold} shares subjects"
    assert summary["fold_counts"][1]["train"] == len(splits["train", 1])
    assert (tmp_path / "README.txt").read_text().startswith("Synthetic DFEW")


def test_dfew_ids_keep_zeros_and_manifest_frames(tmp_path: Path) -> None:
    config = replace(TINY, clips_per_subject=1, num_frames_range=(2, 4), strip_leading_zeros=False)
    generate_dfew(tmp_path, config)
    names = [name for rows in dfew_splits(tmp_path).values() for name, _ in rows]
    assert names and all(re.fullmatch(r"\d{5}", name) for name in names)
    for row in read_manifest(tmp_path):
        frames = list((tmp_path / "Clip" / "clip_224x224" / row["video_name"]).glob("*.jpg"))
        assert len(frames) == int(row["num_frames"])
        assert int(row["onset"]) <= int(row["apex"]) <= int(row["offset"]) < len(frames)


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    config = replace(TINY, num_frames_range=(2, 4))
    generate_dfew(tmp_path / "a", config)
    generate_dfew(tmp_path / "b", config)
    generate_dfew(tmp_path / "c", replace(config, seed=config.seed + 1))
    assert tree_hash(tmp_path / "a") == tree_hash(tmp_path / "b")
    assert tree_hash(tmp_path / "a") != tree_hash(tmp_path / "c")


def test_refuses_to_write_into_existing_tree(tmp_path: Path) -> None:
    config = replace(TINY, clips_per_subject=1, num_frames_range=(1, 1))
    generate_dfew(tmp_path, config)
    with pytest.raises(FileExistsError, match="clip_224x224"):
        generate_dfew(tmp_path, config)


def test_unseen_source_only_in_test_files(tmp_path: Path) -> None:
    config = replace(TINY, unseen_source=True, num_frames_range=(2, 3))
    summary = generate_dfew(tmp_path, config)
    rows = read_manifest(tmp_path)
    unseen = {row["video_name"] for row in rows if row["seen_in_training"] == "False"}
    assert unseen == {row["video_name"] for row in rows if row["source"] == "unseen_source"}
    assert len(unseen) == summary["unseen_clips"] == 5  # one extra clip per subject
    splits = dfew_splits(tmp_path)
    in_train = {
        name.zfill(5) for (split, _), r in splits.items() if split == "train" for name, _ in r
    }
    in_test = Counter(
        name.zfill(5) for (split, _), r in splits.items() if split == "test" for name, _ in r
    )
    assert not unseen & in_train
    assert all(in_test[name] == 1 for name in unseen)
    assert {row["video_name"] for row in rows} - unseen <= in_train


def test_unseen_source_keeps_the_seen_clips() -> None:
    seen = plan_clips(TINY)
    with_unseen = plan_clips(replace(TINY, unseen_source=True))
    assert with_unseen[: len(seen)] == seen
    assert all(not spec.seen_in_training for spec in with_unseen[len(seen) :])


def test_source_styles_are_distinct() -> None:
    styles = source_styles(replace(TINY, num_sources=4, unseen_source=True))
    seen, unseen = styles[:4], styles[4]
    assert len({(s.brightness, s.blur, s.resolution, s.drop_rate) for s in seen}) == 4
    assert unseen.resolution < min(s.resolution for s in seen)
    assert unseen.blur > max(s.blur for s in seen)
    assert unseen.jpeg_quality < min(s.jpeg_quality for s in seen)


def test_seen_styles_stay_mild_and_the_unseen_style_lies_beyond_them() -> None:
    for seed in range(5):
        styles = source_styles(replace(TINY, num_sources=4, unseen_source=True, seed=seed))
        seen, unseen = styles[:4], styles[4]
        for style in seen:
            assert 0.7 <= style.resolution <= 1.0 and 0.0 <= style.blur <= 0.7
            assert 0.0 <= style.noise <= 0.025 and 0.0 <= style.drop_rate <= 0.2
            assert abs(style.brightness) <= 0.1 and 0.82 <= style.contrast <= 1.18
        assert unseen.noise > max(s.noise for s in seen)
        assert unseen.drop_rate > max(s.drop_rate for s in seen)
        assert unseen.brightness > max(s.brightness for s in seen)
        assert unseen.contrast < min(s.contrast for s in seen)


_FAMILY_FACTORS = {
    "colour": {"brightness", "contrast", "cast"},
    "quality": {"blur", "noise", "jpeg_quality"},
    "sampling": {"resolution", "drop_rate"},
    "timing": {"expression_span"},
}
_FACTORS = set().union(*_FAMILY_FACTORS.values())


def _outside(style: SourceStyle, factor: str, seen: Sequence[SourceStyle]) -> bool:
    """Whether ``style``'s ``factor`` lies outside the range of the ``seen`` styles."""
    if factor == "cast":
        magnitude = float(np.linalg.norm(style.cast))
        return magnitude > max(float(np.linalg.norm(s.cast)) for s in seen)
    if factor == "expression_span":
        return style.expression_span[1] < min(s.expression_span[0] for s in seen)
    values = [getattr(s, factor) for s in seen]
    return not min(values) <= getattr(style, factor) <= max(values)


def test_each_held_out_style_leaves_the_seen_range_in_its_own_family_only() -> None:
    assert set(_FAMILY_FACTORS) == set(HELD_OUT_FAMILIES)
    for seed in range(5):
        config = replace(TINY, num_sources=4, held_out=tuple(HELD_OUT_FAMILIES), seed=seed)
        styles = source_styles(config)
        seen, held = styles[:4], dict(zip(HELD_OUT_FAMILIES, styles[4:], strict=True))
        assert [s.name for s in styles[4:]] == [f"held_out_{f}" for f in HELD_OUT_FAMILIES]

        for family, style in held.items():
            moved = {factor for factor in _FACTORS if _outside(style, factor, seen)}
            assert moved == _FAMILY_FACTORS[family], (seed, family, moved)


def test_held_out_clips_are_test_only_and_keep_the_seen_clips(tmp_path: Path) -> None:
    config = replace(
        TINY, held_out=("timing", "colour"), held_out_clips_per_subject=3, num_frames_range=(20, 24)
    )
    specs = plan_clips(config)
    without = plan_clips(replace(config, held_out=()))
    assert specs[: len(without)] == without
    held = [s for s in specs if not s.seen_in_training]
    assert Counter(s.source for s in held) == {2: 15, 3: 15}  # 5 subjects x 3 clips, per style
    assert all(Counter(s.subject for s in held if s.source == 2)[k] == 3 for k in range(5))
    for spec in held:
        span = (spec.timeline.offset - spec.timeline.onset) / (spec.num_frames - 1)
        # timing: 25-40% of the clip (seen: 55-95%), give or take the rounding to whole frames
        assert (span < 0.475) == (spec.source == 2), spec
    generate_dfew(tmp_path, config)
    rows = read_manifest(tmp_path)
    by_source = Counter(row["source"] for row in rows if row["seen_in_training"] == "False")
    assert by_source == {"held_out_timing": 15, "held_out_colour": 15}
    held_names = {row["video_name"] for row in rows if row["seen_in_training"] == "False"}
    splits = dfew_splits(tmp_path)
    in_train = {
        name.zfill(5) for (split, _), r in splits.items() if split == "train" for name, _ in r
    }
    assert not held_names & in_train


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"held_out": ("lighting",)}, "held_out must name distinct families"),
        ({"held_out": ("colour", "colour")}, "held_out must name distinct families"),
        ({"held_out_clips_per_subject": 0}, "held_out_clips_per_subject must be >= 1"),
    ],
)
def test_held_out_options_are_checked(change: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        replace(TINY, **change)


def test_sampled_expressions_are_strong_and_long() -> None:
    rng = np.random.default_rng(0)
    for num_frames in (10, 17, 24, 40):
        for _ in range(50):
            timeline = Timeline.sample(num_frames, rng)
            last = num_frames - 1
            assert 0.8 <= timeline.intensity <= 1.0
            assert timeline.offset - timeline.onset >= round(0.55 * last)
            assert timeline.offset <= last
            strong = timeline.envelope(num_frames) >= 0.5 * timeline.intensity
            assert strong.mean() >= 0.3, "the expression should fill a good part of the clip"


def test_class_names_are_the_package_wide_list() -> None:
    from hdf_lightning.data import classes, synthetic

    assert synthetic.CLASS_NAMES is classes.CLASS_NAMES
    assert len(CLASS_NAMES) == len(FERV39K_CLASS_NAMES) == synthetic.CLASS_ACTIONS.shape[0]


def test_dfew_imbalance_makes_disgust_rarest(tmp_path: Path) -> None:
    config = SynthConfig(
        num_subjects=20, clips_per_subject=10, image_size=16, num_frames_range=(1, 1),
        imbalance="dfew",
    )  # fmt: skip
    summary = generate_dfew(tmp_path, config)
    labels = Counter(label for rows in dfew_splits(tmp_path).values() for _, label in rows)
    disgust = CLASS_NAMES.index("disgust") + 1
    assert labels[disgust] > 0
    assert all(labels[disgust] < count for label, count in labels.items() if label != disgust)
    counts = summary["class_counts"]
    assert min(counts, key=counts.get) == "disgust"
    assert counts["happy"] > 5 * counts["disgust"]


def test_ferv39k_layout(tmp_path: Path) -> None:
    config = replace(TINY, num_frames_range=(8, 20), image_size=16, unseen_source=True)
    summary = generate_ferv39k(tmp_path, config)
    split_dir = tmp_path / "4_setups" / "All_scenes"
    lines = {s: (split_dir / f"{s}_All.csv").read_text().splitlines() for s in ("train", "test")}
    first_clip, first_label = lines["train"][0].split(" ")
    assert (tmp_path / "2_ClipsforFaceCrop" / first_clip).is_dir(), "first line is a real clip"
    assert first_label in FERV39K_CLASS_NAMES

    clips = {}
    for split, rows in lines.items():
        for line in rows:
            name, emotion = line.split(" ")
            _scene, folder_emotion, number = name.split("/")
            assert folder_emotion == emotion and emotion in FERV39K_CLASS_NAMES
            assert re.fullmatch(r"\d{4}", number)
            clips[name] = split
    assert len(clips) == summary["num_clips"] == sum(len(r) for r in lines.values())
    on_disk = {
        str(p.relative_to(tmp_path / "2_ClipsforFaceCrop"))
        for p in (tmp_path / "2_ClipsforFaceCrop").glob("*/*/*")
    }
    assert on_disk == set(clips)

    manifest = read_manifest(tmp_path)
    lengths = [int(row["num_frames"]) for row in manifest]
    assert min(lengths) < 16 <= max(lengths)
    assert summary["short_clips"] == sum(n < 16 for n in lengths)
    for row in manifest:
        split = clips[row["video_name"]]
        if row["seen_in_training"] == "True":
            assert (split == "test") == (row["fold"] == "1"), "test split = subject group 1"
        else:
            assert split == "test", "the unseen scene is only in the test split"
    subjects = {row["subject"] for row in manifest}
    assert len({(row["subject"], row["fold"]) for row in manifest}) == len(subjects)
    assert "Surveillance" in {name.split("/")[0] for name in clips}


def mouth_corner_lift(frame: np.ndarray) -> float:
    """Row of the lip corners minus row of the lip centre (negative: corners up), in pixels."""
    size = frame.shape[0]
    rgb = frame.astype(np.int64)
    lips = (rgb[..., 0] - rgb[..., 1] > 80) & (rgb[..., 0] > 120)  # (H, W)
    box = np.zeros_like(lips)
    box[size // 2 : int(0.8 * size), int(0.3 * size) : int(0.7 * size)] = True
    rows, cols = np.nonzero(lips & box)
    assert len(rows) > 10, "the mouth should be visible"
    left, right = cols.min(), cols.max()
    corners = rows[(cols <= left + 1) | (cols >= right - 1)].mean()
    centre = rows[np.abs(cols - (left + right) / 2) <= 1].mean()
    return float(corners - centre)


def test_apex_mouth_encodes_the_class() -> None:
    apex = Timeline(0, 0, 0, intensity=1.0)
    frames = {
        label: render_clip(label, num_frames=1, image_size=96, timeline=apex, jitter=False)[0]
        for label in (HAPPY, SAD, NEUTRAL)
    }
    lift = {label: mouth_corner_lift(frame) for label, frame in frames.items()}
    assert lift[HAPPY] < -1.0 < lift[NEUTRAL] < 1.0 < lift[SAD]


def test_expression_follows_onset_apex_offset() -> None:
    timeline = Timeline(onset=4, apex=7, offset=10, intensity=1.0)
    kwargs = {"num_frames": 12, "image_size": 48, "timeline": timeline, "seed": 5}
    happy = render_clip(HAPPY, **kwargs).astype(np.float64)  # type: ignore[arg-type]
    neutral = render_clip(NEUTRAL, **kwargs).astype(np.float64)  # type: ignore[arg-type]
    distance = np.abs(happy - neutral).mean(axis=(1, 2, 3))  # (T,)
    assert distance[7] > 0.5
    assert distance[0] < 0.1 * distance[7]
    assert distance[11] < 0.1 * distance[7]
    np.testing.assert_allclose(timeline.envelope(12)[[0, 4, 7, 10, 11]], [0, 0, 1, 0, 0])


def test_render_clip_shape_determinism_and_frame_drops() -> None:
    identity = Identity(aspect=0.7, skin=(140, 100, 70))
    clip = render_clip(SAD, num_frames=6, image_size=40, identity=identity, seed=1)
    assert clip.shape == (6, 40, 40, 3) and clip.dtype == np.uint8
    np.testing.assert_array_equal(
        clip, render_clip(SAD, num_frames=6, image_size=40, identity=identity, seed=1)
    )
    frozen = render_clip(SAD, num_frames=6, image_size=40, style=SourceStyle(drop_rate=1.0))
    assert all(np.array_equal(frame, frozen[0]) for frame in frozen)
    degraded = render_clip(
        SAD, num_frames=6, image_size=40, identity=identity, seed=1,
        style=SourceStyle(brightness=0.2, blur=1.5, noise=0.05, resolution=0.4),
    )  # fmt: skip
    assert degraded.mean() > clip.mean() + 20
    with pytest.raises(ValueError, match="label"):
        render_clip(len(CLASS_NAMES))


def test_class_strip_shows_seven_different_faces() -> None:
    strip = class_strip(replace(TINY, image_size=48), gap=2)
    assert strip.shape == (48, 7 * 48 + 6 * 2, 3) and strip.dtype == np.uint8
    panels = [strip[:, i * 50 : i * 50 + 48].astype(np.int64) for i in range(7)]
    for i in range(7):
        for j in range(i + 1, 7):
            assert np.abs(panels[i] - panels[j]).sum() > 0, f"{CLASS_NAMES[i]} == {CLASS_NAMES[j]}"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_subjects": 4}, "num_subjects"),
        ({"num_frames_range": (5, 2)}, "num_frames_range"),
        ({"imbalance": "zipf"}, "imbalance"),
        ({"jpeg_quality": 0}, "jpeg_quality"),
        ({"num_sources": 0}, "num_sources"),
    ],
)
def test_config_rejects_bad_values(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(TINY, **changes)  # type: ignore[arg-type]
