"""Tests for hdf_lightning.data.transforms (batched and per-clip clip augmentation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
import torchvision.transforms.v2.functional as TF2

from hdf_lightning.data.transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    ClipAugment,
    ClipEval,
    color_jitter,
    color_jitter_uint8,
    crop_resize_flip,
    crop_resize_flip_uint8,
    decode_jpeg_clips,
    planar_uint8,
    random_resized_crop_params,
    to_float_clip,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _clip(b: int, t: int, h: int, w: int, *, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    x = torch.randint(0, 256, (b, 3, t, h, w), generator=_gen(123), dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255.0


def _static_clip(b: int, t: int, h: int, w: int) -> torch.Tensor:
    """Clips whose T frames are identical (one random frame per clip, repeated)."""
    frame = torch.randint(0, 256, (b, 3, 1, h, w), generator=_gen(5), dtype=torch.uint8)
    return frame.expand(b, 3, t, h, w).contiguous()


# ---------------------------------------------------------------- ClipAugment


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_augment_shape_dtype_range(dtype: torch.dtype) -> None:
    aug = ClipAugment(size=8)
    out = aug(_clip(3, 4, 20, 24, dtype=dtype), generator=_gen())
    assert out.shape == (3, 3, 4, 8, 8)
    assert out.dtype == torch.float32
    assert out.min() >= 0.0
    assert out.max() <= 1.0
    assert out.std() > 0.05  # not a constant image


@pytest.mark.parametrize("hue", [0.0, 0.3])
def test_all_frames_of_a_clip_get_the_same_augmentation(hue: float) -> None:
    aug = ClipAugment(size=12, jitter=0.4, hue=hue)
    out = aug(_static_clip(6, 5, 24, 20), generator=_gen(1))
    for t in range(1, 5):
        assert torch.equal(out[:, :, t], out[:, :, 0])
    # ... while the parameters do differ between clips: identical clips, different outputs.
    same = aug(_static_clip(1, 2, 24, 20).expand(6, -1, -1, -1, -1), generator=_gen(2))
    assert not torch.allclose(same[0], same[1])


def test_flip_equals_torch_flip() -> None:
    video = _clip(2, 3, 16, 16, dtype=torch.float32)
    aug = ClipAugment(size=16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0, jitter=0.0)
    out = aug(video, generator=_gen(0))
    torch.testing.assert_close(out, torch.flip(video, dims=[-1]), atol=1e-5, rtol=0)


def test_no_flip_full_crop_is_identity_and_plain_resize() -> None:
    video = _clip(2, 3, 16, 16, dtype=torch.float32)
    aug = ClipAugment(size=16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter=0.0)
    torch.testing.assert_close(aug(video, generator=_gen()), video, atol=1e-5, rtol=0)

    small = ClipAugment(size=6, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter=0.0)
    frames = video.permute(0, 2, 1, 3, 4).reshape(6, 3, 16, 16)  # (B·T, C, H, W)
    expected = F.interpolate(frames, size=(6, 6), mode="bilinear", align_corners=False)
    expected = expected.reshape(2, 3, 3, 6, 6).permute(0, 2, 1, 3, 4)  # (B, C, T, S, S)
    torch.testing.assert_close(small(video, generator=_gen()), expected, atol=1e-5, rtol=0)


def test_crop_resize_flip_takes_exactly_the_box() -> None:
    video = _clip(2, 2, 14, 18, dtype=torch.float32)
    boxes = torch.tensor([[2, 3, 8, 8], [5, 9, 8, 8]])
    out = crop_resize_flip(video, boxes, torch.tensor([False, True]), 8)
    torch.testing.assert_close(out[0], video[0, :, :, 2:10, 3:11], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        out[1], torch.flip(video[1, :, :, 5:13, 9:17], dims=[-1]), atol=1e-5, rtol=0
    )


def test_uint8_and_float_inputs_agree() -> None:
    aug = ClipAugment(size=10, hue=0.1, mean=KINETICS_MEAN, std=KINETICS_STD)
    a = aug(_clip(2, 3, 16, 16), generator=_gen(9))
    b = aug(_clip(2, 3, 16, 16, dtype=torch.float32), generator=_gen(9))
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_augment_is_reproducible_with_a_generator_and_varies_without() -> None:
    aug = ClipAugment(size=8)
    video = _clip(4, 2, 16, 16)
    assert torch.equal(aug(video, generator=_gen(3)), aug(video, generator=_gen(3)))
    assert not torch.equal(aug(video, generator=_gen(3)), aug(video, generator=_gen(4)))


def test_augment_normalisation() -> None:
    video = _clip(2, 2, 16, 16)
    plain = ClipAugment(size=8)(video, generator=_gen(7))
    normed = ClipAugment(size=8, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.5))(
        video, generator=_gen(7)
    )
    mean = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(normed, (plain - mean) / std)


def test_single_clip_input() -> None:
    out = ClipAugment(size=8)(_clip(1, 3, 16, 16)[0], generator=_gen())
    assert out.shape == (3, 3, 8, 8)


def test_sampled_params_respect_their_ranges() -> None:
    aug = ClipAugment(size=8, jitter=0.4, hue=0.2)
    p = aug.sample_params(256, 40, 30, generator=_gen(11))
    for factors in (p.brightness, p.contrast, p.saturation):
        assert factors.min() >= 0.6
        assert factors.max() <= 1.4
        assert factors.std() > 0.1
    assert p.hue is not None
    assert p.hue.abs().max() <= 0.2
    assert 0.3 < p.flip.float().mean() < 0.7
    assert ClipAugment(size=8).sample_params(4, 40, 30).hue is None


def test_random_resized_crop_params_boxes_fit_and_follow_scale_and_ratio() -> None:
    h, w = 60, 80
    boxes = random_resized_crop_params(
        500, h, w, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), generator=_gen(2)
    )
    top, left, ch, cw = boxes.unbind(1)
    assert boxes.dtype == torch.int64
    assert (top >= 0).all()
    assert (left >= 0).all()
    assert (ch >= 1).all()
    assert (cw >= 1).all()
    assert (top + ch <= h).all()
    assert (left + cw <= w).all()
    frac = (ch * cw).double() / (h * w)
    assert frac.min() > 0.07
    assert frac.max() <= 1.0
    aspect = cw.double() / ch.double()
    assert aspect.min() > 0.7
    assert aspect.max() < 1.4
    assert frac.std() > 0.1  # really random
    assert len({tuple(b) for b in boxes.tolist()}) > 400


@pytest.mark.parametrize(
    ("h", "w", "expected"),
    [(20, 30, [0, 5, 20, 20]), (30, 20, [5, 0, 20, 20]), (16, 16, [0, 0, 16, 16])],
)
def test_random_resized_crop_falls_back_to_centre_crop(h: int, w: int, expected: list[int]) -> None:
    # scale (1, 1) with ratio (1, 1) only fits a square frame; otherwise torchvision centre-crops.
    boxes = random_resized_crop_params(3, h, w, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert boxes.tolist() == [expected] * 3


@pytest.mark.parametrize("batch", [1, 2])  # one clip takes the scalar path
def test_color_jitter_matches_torchvision_frame_by_frame(batch: int) -> None:
    video = _clip(2, 3, 9, 7, dtype=torch.float32)[:batch]
    b = torch.tensor([1.3, 0.7])[:batch]
    c = torch.tensor([0.6, 1.4])[:batch]
    s = torch.tensor([1.2, 0.65])[:batch]
    h = torch.tensor([0.15, -0.3])[:batch]
    out = color_jitter(video, b, c, s, h)
    for i in range(batch):
        for t in range(3):
            frame = video[i, :, t]
            ref = TF.adjust_brightness(frame, float(b[i]))
            ref = TF.adjust_contrast(ref, float(c[i]))
            ref = TF.adjust_saturation(ref, float(s[i]))
            ref = TF.adjust_hue(ref, float(h[i]))
            torch.testing.assert_close(out[i, :, t], ref, atol=2e-5, rtol=0)


def test_color_jitter_takes_uint8_as_float_over_255() -> None:
    video = _clip(2, 3, 9, 7)
    factors = [torch.tensor([1.3, 0.7]), torch.tensor([0.6, 1.4]), torch.tensor([1.2, 0.65])]
    out = color_jitter(video, *factors)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, color_jitter(video.float() / 255, *factors), atol=1e-6, rtol=0)


def test_color_jitter_identity_factors() -> None:
    video = _clip(2, 2, 5, 5, dtype=torch.float32)
    ones = torch.ones(2)
    torch.testing.assert_close(color_jitter(video, ones, ones, ones, torch.zeros(2)), video)


# ---------------------------------------------------------------- ClipEval


def test_eval_resize_matches_torchvision_and_normalises() -> None:
    video = _clip(2, 3, 20, 24)
    out = ClipEval(size=8)(video)
    assert out.shape == (2, 3, 3, 8, 8)
    assert out.dtype == torch.float32
    for i in range(2):
        for t in range(3):
            ref = TF.resize(video[i, :, t].float() / 255.0, [8, 8], antialias=True)
            torch.testing.assert_close(out[i, :, t], ref, atol=1e-5, rtol=0)
    normed = ClipEval(size=8, mean=KINETICS_MEAN, std=KINETICS_STD)(video)
    torch.testing.assert_close(normed, (out - 0.45) / 0.225)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_eval_same_size_only_converts(dtype: torch.dtype) -> None:
    video = _clip(1, 2, 8, 8, dtype=dtype)
    out = ClipEval(size=8)(video)
    torch.testing.assert_close(out, to_float_clip(video))
    assert ClipEval(size=8)(video[0]).shape == (3, 2, 8, 8)


def test_mean_std_are_not_in_the_state_dict_but_follow_to() -> None:
    aug = ClipAugment(size=8, mean=KINETICS_MEAN, std=KINETICS_STD)
    assert aug.state_dict() == {}
    aug.to(torch.float64)
    assert aug.mean is not None and aug.std is not None
    assert aug.mean.dtype == aug.std.dtype == torch.float64
    expected = torch.tensor([KINETICS_MEAN, KINETICS_STD], dtype=torch.float64)
    torch.testing.assert_close(torch.stack([aug.mean.flatten(), aug.std.flatten()]), expected)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ClipAugment(size=8, mean=(0.5, 0.5, 0.5)), "both"),
        (lambda: ClipEval(size=8, mean=(0.5, 0.5, 0.5), std=(0.2, 0.0, 0.2)), "positive"),
        (lambda: ClipAugment(size=0), "size"),
        (lambda: ClipAugment(size=8, scale=(0.5, 0.1)), "scale"),
        (lambda: ClipAugment(size=8, ratio=(0.0, 1.0)), "ratio"),
        (lambda: ClipAugment(size=8, flip_p=1.5), "flip_p"),
        (lambda: ClipAugment(size=8, hue=0.7), "hue"),
        (lambda: ClipAugment(size=8)(torch.zeros(4, 4, 4)), "B, 3, T, H, W"),
        (lambda: ClipEval(size=8)(torch.zeros(1, 4, 2, 8, 8)), "3 \\(RGB\\) channels"),
        (lambda: ClipEval(size=8)(torch.zeros(1, 3, 2, 8, 8, dtype=torch.int32)), "dtype"),
    ],
)
def test_invalid_arguments_raise_value_error(make: object, match: str) -> None:
    assert callable(make)
    with pytest.raises(ValueError, match=match):
        make()


# ---------------------------------------------------------------- one clip, uint8, in the loader


def _interleaved(clip: torch.Tensor) -> torch.Tensor:
    """A ``(3, T, H, W)`` view of frame-major RGB-interleaved memory, as decoders return."""
    return clip.permute(1, 2, 3, 0).contiguous().permute(3, 0, 1, 2)


def _smooth_clip(t: int, h: int, w: int, seed: int = 3) -> torch.Tensor:
    """uint8 ``(3, T, H, W)`` of smooth colour fields (interpolation differences stay small)."""
    coarse = torch.rand((t, 3, h // 4, w // 4), generator=_gen(seed))
    fine = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    return (fine.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 0, 2, 3).contiguous()


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("box", [(3, 5, 9, 11), (0, 0, 24, 20), (2, 1, 20, 18)])
def test_crop_resize_flip_uint8_matches_torchvision(box: tuple[int, ...], flip: bool) -> None:
    clip = _clip(1, 4, 24, 20)[0]  # (3, T, H, W)
    out = crop_resize_flip_uint8(_interleaved(clip), box, flip, 12)  # type: ignore[arg-type]
    assert out.shape == (3, 4, 12, 12) and out.dtype == torch.uint8
    top, left, h, w = box
    ref = TF2.resized_crop(
        clip.permute(1, 0, 2, 3), top, left, h, w, [12, 12], antialias=True
    )  # (T, 3, S, S)
    if flip:
        ref = ref.flip(-1)
    diff = (out.permute(1, 0, 2, 3).int() - ref.int()).abs()
    assert diff.max() <= 1  # same filter; uint8 kernels may round differently by one level
    # any memory layout gives the same pixels
    assert torch.equal(crop_resize_flip_uint8(clip, box, flip, 12), out)  # type: ignore[arg-type]


def test_planar_uint8_copies_only_when_needed() -> None:
    clip = _clip(1, 3, 6, 5)[0]
    assert planar_uint8(clip) is clip
    view = _interleaved(clip)
    out = planar_uint8(view)
    assert out.is_contiguous() and torch.equal(out, clip)


def test_augment_clip_draws_like_a_batch_of_one() -> None:
    aug = ClipAugment(size=8, jitter=0.4, hue=0.2)
    clip = _clip(1, 3, 30, 40)[0]
    params = aug.sample_params(1, 30, 40, _gen(11))
    assert torch.equal(aug.augment_clip(clip, _gen(11)), aug._apply_clip(clip, params))


def test_augment_clip_is_close_to_the_batched_path_with_the_same_draws() -> None:
    # upscaling crops: no antialiasing either way; the two differ only at the crop's border
    # (grid_sample reads the pixels outside the box, interpolate clamps) and by rounding
    clip = _smooth_clip(4, 48, 48)
    for seed in range(8):
        kwargs = {"size": 32, "scale": (0.2, 0.4), "jitter": 0.4}
        aug = ClipAugment(**kwargs)
        loader = aug.augment_clip(_interleaved(clip), _gen(seed)).float() / 255
        batched = aug(clip.unsqueeze(0), generator=_gen(seed))[0]
        inner = (loader - batched)[..., 2:-2, 2:-2].abs()
        assert inner.max() <= 3 / 255, seed


def _torchvision_jitter(clip: torch.Tensor, b: float, c: float, s: float, h: float | None):
    """torchvision's float functional jitter, frame by frame, on ``clip / 255`` -> [0, 255]."""
    frames = clip.permute(1, 0, 2, 3).float() / 255  # (T, 3, H, W)
    out = []
    for frame in frames:
        frame = TF.adjust_brightness(frame, b)
        frame = TF.adjust_contrast(frame, c)
        frame = TF.adjust_saturation(frame, s)
        if h is not None:
            frame = TF.adjust_hue(frame, h)
        out.append(frame)
    return torch.stack(out, dim=1) * 255


@pytest.mark.parametrize("hue", [False, True])
def test_color_jitter_uint8_within_one_grey_level_of_torchvision(hue: bool) -> None:
    g = torch.Generator().manual_seed(5)
    for trial in range(12):
        clip = torch.randint(0, 256, (3, 3, 9, 11), generator=g, dtype=torch.uint8)
        if trial % 3 == 1:  # low-contrast, mid-grey clips: the contrast mean matters
            clip = (clip // 5 + 90).to(torch.uint8)
        if trial % 3 == 2:  # bright clips: brightness > 1 saturates many pixels
            clip = (clip // 3 + 170).to(torch.uint8)
        b, c, s = (0.6 + 0.8 * torch.rand(3, generator=g)).tolist()
        h = (0.8 * torch.rand(1, generator=g).item() - 0.4) if hue else None
        out = color_jitter_uint8(clip, b, c, s, h)
        ref = _torchvision_jitter(clip, b, c, s, h)
        assert out.dtype == torch.uint8 and out.is_contiguous() and out.shape == clip.shape
        assert (out.float() - ref).abs().max() <= 1.0, (trial, b, c, s, h)
        assert not torch.equal(out, clip)


@pytest.mark.parametrize("hue", [-0.5, -0.49, -0.01, 0.01, 0.49, 0.5])
def test_color_jitter_uint8_hue_wraps_in_either_memory_layout(hue: float) -> None:
    # every hue of the circle: a ramp of saturated colours plus random pixels
    g = _gen(11)
    clip = torch.randint(0, 256, (3, 4, 8, 16), generator=g, dtype=torch.uint8)
    angle = torch.linspace(0, 1, 16)
    ramp = torch.stack([angle, (angle + 1 / 3) % 1, (angle + 2 / 3) % 1])  # (3, 16)
    clip[:, 0, :, :] = (255 * (ramp > 0.5)).to(torch.uint8)[:, None, :]
    ref = _torchvision_jitter(clip, 1.1, 0.9, 1.2, hue)
    for layout in (clip, _interleaved(clip)):
        out = color_jitter_uint8(layout, 1.1, 0.9, 1.2, hue)
        assert out.is_contiguous() and out.shape == clip.shape
        assert (out.float() - ref).abs().max() <= 1.0, hue


def test_color_jitter_uint8_brightness_and_contrast_only_is_one_rounding() -> None:
    clip = _clip(1, 2, 7, 7)[0]
    out = color_jitter_uint8(clip, 1.3, 0.7, 1.0, None)
    ref = _torchvision_jitter(clip, 1.3, 0.7, 1.0, None)
    assert (out.float() - ref).abs().max() <= 0.5 + 1e-3
    assert torch.equal(color_jitter_uint8(clip, 1.0, 1.0, 1.0, None), clip)


def test_augment_clip_jitter_matches_torchvision() -> None:
    clip = _clip(1, 3, 10, 10)[0]
    aug = ClipAugment(size=10, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter=0.4, hue=0.4)
    params = aug.sample_params(1, 10, 10, _gen(4))
    out = aug._apply_clip(_interleaved(clip), params)
    assert params.hue is not None
    ref = _torchvision_jitter(
        clip,
        float(params.brightness[0]),
        float(params.contrast[0]),
        float(params.saturation[0]),
        float(params.hue[0]),
    )
    assert out.is_contiguous() and out.dtype == torch.uint8
    assert (out.float() - ref).abs().max() <= 1.0
    assert not torch.equal(out, clip)  # the factors are not all 1


def test_decode_jpeg_clips_on_cpu_matches_the_loader(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from hdf_lightning.data.video import load_frames, read_frame_bytes

    rng = np.random.default_rng(0)
    paths = []
    for t in range(3):
        path = tmp_path / f"{t}.jpg"
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    jpeg = [read_frame_bytes(paths), read_frame_bytes(paths[::-1])]
    out = decode_jpeg_clips(jpeg, 16, "cpu")
    assert out.shape == (2, 3, 3, 16, 16) and out.dtype == torch.uint8
    # libjpeg-turbo either way; IDCT and upsampling settings may differ by a grey level or two
    assert (out[0].float() - load_frames(paths).float()).abs().max() <= 3
    assert torch.equal(out[1], out[0].flip(1))
    small = decode_jpeg_clips(jpeg, 8, "cpu")
    assert small.shape == (2, 3, 3, 8, 8)


def test_augment_clip_same_params_for_all_frames_and_reproducible() -> None:
    static = _static_clip(1, 5, 24, 20)[0]
    aug = ClipAugment(size=12, jitter=0.4, hue=0.1)
    out = aug.augment_clip(_interleaved(static), _gen(1))
    assert out.shape == (3, 5, 12, 12) and out.dtype == torch.uint8
    for t in range(1, 5):
        assert torch.equal(out[:, t], out[:, 0])
    assert torch.equal(aug.augment_clip(static, _gen(1)), out)
    assert not torch.equal(aug.augment_clip(static, _gen(2)), out)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ClipAugment(size=8).augment_clip(torch.zeros(3, 2, 8, 8)), "uint8"),
        (
            lambda: crop_resize_flip_uint8(
                torch.zeros(3, 2, 8, 8, dtype=torch.uint8), (4, 4, 5, 2), False, 4
            ),
            "does not fit",
        ),
        (
            lambda: crop_resize_flip_uint8(
                torch.zeros(3, 2, 8, 8, dtype=torch.uint8), (0, 0, 0, 2), False, 4
            ),
            "non-empty",
        ),
    ],
)
def test_uint8_path_invalid_arguments(make: object, match: str) -> None:
    assert callable(make)
    with pytest.raises(ValueError, match=match):
        make()
