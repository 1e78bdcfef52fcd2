"""Tests for hdf_lightning.data.frame_sampling (table-driven)."""

from __future__ import annotations

import itertools

import pytest
import torch

from hdf_lightning.data.frame_sampling import (
    SAMPLERS,
    dense_indices,
    m3dfel_indices,
    multi_view_indices,
    sample_indices,
    segment_indices,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    ("num_frames", "clip_len", "expected"),
    [
        (32, 16, list(range(1, 32, 2))),
        (16, 16, list(range(16))),
        (10, 16, [*range(10), 9, 9, 9, 9, 9, 9]),
        (1, 4, [0, 0, 0, 0]),
        (12, 4, [1, 4, 7, 10]),
        (8, 3, [1, 3, 6]),  # segments [0, 2), [2, 5), [5, 8)
        (5, 1, [2]),
    ],
)
def test_segment_eval_table(num_frames: int, clip_len: int, expected: list[int]) -> None:
    assert segment_indices(num_frames, clip_len, train=False) == expected


@pytest.mark.parametrize(
    ("num_frames", "clip_len"), [(16, 16), (17, 16), (40, 16), (847, 16), (100, 7)]
)
def test_segment_train_stays_inside_each_segment(num_frames: int, clip_len: int) -> None:
    bounds = [(num_frames * i) // clip_len for i in range(clip_len + 1)]
    seen: set[tuple[int, ...]] = set()
    for seed in range(20):
        idx = segment_indices(num_frames, clip_len, train=True, generator=_gen(seed))
        assert len(idx) == clip_len
        for i, frame in enumerate(idx):
            assert bounds[i] <= frame < bounds[i + 1], (i, frame, bounds)
        seen.add(tuple(idx))
    if num_frames > clip_len:
        assert len(seen) > 1, "training sampling never varied"


def test_segment_train_reproducible_with_generator() -> None:
    a = segment_indices(200, 16, train=True, generator=_gen(3))
    b = segment_indices(200, 16, train=True, generator=_gen(3))
    assert a == b


def test_segment_short_clip_is_the_same_in_train() -> None:
    assert segment_indices(10, 16, train=True, generator=_gen(0)) == [*range(10), 9, 9, 9, 9, 9, 9]


@pytest.mark.parametrize("num_frames", [1, 5, 16, 33, 300])
@pytest.mark.parametrize("train", [True, False])
def test_segment_and_dense_ordered_in_range(num_frames: int, train: bool) -> None:
    for indices in (
        segment_indices(num_frames, 16, train=train, generator=_gen(1)),
        dense_indices(num_frames, 16, train=train, generator=_gen(1)),
    ):
        assert len(indices) == 16
        assert all(0 <= i < num_frames for i in indices)
        assert indices == sorted(indices)


@pytest.mark.parametrize(
    ("num_frames", "clip_len", "stride", "expected"),
    [
        (31, 16, 2, list(range(0, 31, 2))),  # span exactly 31
        (35, 4, 2, [14, 16, 18, 20]),  # span 7, max_start 28, centred start 14
        (20, 4, 1, [8, 9, 10, 11]),
        (5, 4, 2, [0, 2, 4, 4]),  # shorter than the span: pad with the last frame
        (1, 3, 3, [0, 0, 0]),
    ],
)
def test_dense_eval_table(num_frames: int, clip_len: int, stride: int, expected: list[int]) -> None:
    assert dense_indices(num_frames, clip_len, stride=stride, train=False) == expected


def test_dense_train_random_start_keeps_stride() -> None:
    starts = set()
    for seed in range(30):
        idx = dense_indices(100, 8, stride=3, train=True, generator=_gen(seed))
        assert [b - a for a, b in itertools.pairwise(idx)] == [3] * 7
        assert 0 <= idx[0] <= 100 - 22
        starts.add(idx[0])
    assert len(starts) > 1


@pytest.mark.parametrize("fn", [segment_indices, dense_indices])
def test_eval_is_deterministic_without_generator(fn: object) -> None:
    assert callable(fn)
    torch.manual_seed(0)
    a = fn(123, 16, train=False)
    torch.manual_seed(1)
    b = fn(123, 16, train=False)
    assert a == b


@pytest.mark.parametrize("num_frames", [1, 10, 16, 40, 500])
def test_m3dfel_clamps_and_matches_its_formula(num_frames: int) -> None:
    clip_len = 16
    idx = m3dfel_indices(num_frames, clip_len, generator=_gen(7))
    assert len(idx) == clip_len
    for i, frame in enumerate(idx):
        base = (num_frames * i) // clip_len
        assert 0 <= frame <= num_frames - 1
        assert base <= frame <= min(base + clip_len - 1, num_frames - 1)


def test_m3dfel_clamps_short_clip_to_last_frame() -> None:
    idx = m3dfel_indices(3, 16, generator=_gen(0))
    assert max(idx) == 2
    assert idx.count(2) >= 10  # base floor(3i/16) plus jitter up to 15 mostly hits the clamp


def test_m3dfel_is_random_in_evaluation_through_sample_indices() -> None:
    runs = {
        tuple(sample_indices("m3dfel", 40, 16, train=False, generator=_gen(s))) for s in range(5)
    }
    assert len(runs) > 1


def test_m3dfel_max_jitter_one_is_the_base_grid() -> None:
    assert m3dfel_indices(32, 16, generator=_gen(0), max_jitter=1) == list(range(0, 32, 2))


@pytest.mark.parametrize(
    ("mode", "num_frames", "clip_len", "views", "expected"),
    [
        # 4 segments of 2 frames: view 0 takes the first frame of each, view 1 the second
        ("segment", 8, 4, 2, [[0, 2, 4, 6], [1, 3, 5, 7]]),
        ("segment", 12, 4, 3, [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]),
        # span 7, max_start 13: starts floor(13·(2v+1)/6) = 2, 6, 10
        ("dense", 20, 4, 3, [[2, 4, 6, 8], [6, 8, 10, 12], [10, 12, 14, 16]]),
    ],
)
def test_multi_view_table(
    mode: str, num_frames: int, clip_len: int, views: int, expected: list[list[int]]
) -> None:
    got = multi_view_indices(num_frames, clip_len, views=views, mode=mode)  # type: ignore[arg-type]
    assert got == expected


@pytest.mark.parametrize("mode", ["segment", "dense"])
@pytest.mark.parametrize("num_frames", [3, 16, 50, 301])
def test_multi_view_single_view_equals_eval_and_views_are_ordered(
    mode: str, num_frames: int
) -> None:
    views = multi_view_indices(num_frames, 16, views=1, mode=mode)  # type: ignore[arg-type]
    assert views == [sample_indices(mode, num_frames, 16, train=False)]
    many = multi_view_indices(num_frames, 16, views=4, mode=mode)  # type: ignore[arg-type]
    assert len(many) == 4
    for view in many:
        assert view == sorted(view)
        assert all(0 <= i < num_frames for i in view)
    firsts = [view[0] for view in many]
    assert firsts == sorted(firsts)
    if num_frames >= 64:
        assert len({tuple(v) for v in many}) == 4


def test_samplers_mapping_has_the_config_names_and_common_signature() -> None:
    assert set(SAMPLERS) == {"segment", "m3dfel", "dense"}
    for sampler in SAMPLERS.values():
        idx = sampler(40, 16, train=True, generator=_gen(0))
        assert len(idx) == 16
        assert all(0 <= i < 40 for i in idx)


def test_sample_indices_dispatches() -> None:
    assert sample_indices("segment", 32, 16, train=False) == list(range(1, 32, 2))
    assert sample_indices("dense", 31, 16, train=False) == list(range(0, 31, 2))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sample_indices("uniform", 10, 4, train=False), r"dense.*m3dfel.*segment"),
        (lambda: sample_indices("segment", 0, 4, train=False), "source_len=0"),
        (lambda: segment_indices(0, 16, train=True), "at least 1 frame"),
        (lambda: dense_indices(-3, 16, train=False), "source_len=-3"),
        (lambda: m3dfel_indices(0, 16), "source_len=0"),
        (lambda: segment_indices(10, 0, train=False), "clip_len"),
        (lambda: dense_indices(10, 4, stride=0, train=False), "stride"),
        (lambda: multi_view_indices(10, 4, views=0), "views"),
        (lambda: multi_view_indices(10, 4, views=2, mode="m3dfel"), "multi-view mode"),  # type: ignore[arg-type]
        (lambda: m3dfel_indices(10, 4, max_jitter=0), "max_jitter"),
    ],
)
def test_invalid_arguments_raise_value_error(call: object, match: str) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match=match):
        call()
