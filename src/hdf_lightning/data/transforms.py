"""Clip transforms on tensors: training augmentation and evaluation resizing.

The parameters are drawn per *clip* and shared by all frames of the clip (docs/method.md §7): random
resized crop (area 0.08–1, aspect ratio 3/4–4/3, torchvision semantics), horizontal flip 0.5 and
colour jitter 0.4. Two implementations draw them with the same function
(:meth:`ClipAugment.sample_params`):

* :meth:`ClipAugment.forward`, batched, for the accelerator in a DataModule's
  ``on_after_batch_transfer`` (``augment_on="device"``): the loaders only decode ``uint8`` clips
  ``(B, 3, T, H, W)``, and each operation is one kernel over all ``B·T`` frames (no Python loop
  over clips or frames);
* :meth:`ClipAugment.augment_clip`, one uint8 clip ``(3, T, H, W)`` in a DataLoader worker
  (``augment_on="loader"``, the DataModules' default): uint8 crop, resize and flip
  (:func:`crop_resize_flip_uint8`), then :func:`color_jitter_uint8` (per-frame lookup tables
  for brightness and contrast, one rounding), uint8 out.

The building blocks are public pure functions (:func:`random_resized_crop_params`,
:func:`crop_resize_flip`, :func:`color_jitter`, :func:`normalize`, ...); :class:`ClipAugment` and
:class:`ClipEval` accept both ``(B, 3, T, H, W)`` and ``(3, T, H, W)``.

Input convention: ``uint8`` in [0, 255] or floating point in [0, 1]. Output: floating point in
[0, 1], then ``(x - mean) / std`` when ``mean``/``std`` are given (``augment_clip``: uint8).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from hdf_lightning.data.opencv import opencv

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "NORMALIZATION",
    "AugmentParams",
    "ClipAugment",
    "ClipEval",
    "color_jitter",
    "color_jitter_uint8",
    "crop_resize_flip",
    "crop_resize_flip_uint8",
    "decode_jpeg_clips",
    "normalize",
    "planar_uint8",
    "random_resized_crop_params",
    "resize_clip",
    "to_float_clip",
]

KINETICS_MEAN: tuple[float, float, float] = (0.45, 0.45, 0.45)
"""Per-channel mean expected by Kinetics-pretrained X3D (pytorchvideo)."""
KINETICS_STD: tuple[float, float, float] = (0.225, 0.225, 0.225)
"""Per-channel standard deviation expected by Kinetics-pretrained X3D (pytorchvideo)."""
_Triple = tuple[float, float, float]
NORMALIZATION: dict[str, tuple[_Triple | None, _Triple | None]] = {
    "none": (None, None),
    "kinetics": (KINETICS_MEAN, KINETICS_STD),
}
"""``normalize`` option (of the DataModules and the checkpoint's preprocessing) -> (mean, std)
applied after scaling to [0, 1] and augmentation; None: no normalisation."""

_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale
_CROP_TRIES = 10


def _as_batch(video: Tensor) -> tuple[Tensor, bool]:
    """``(B, 3, T, H, W)`` view of a batched or single clip, and whether it was single."""
    if video.ndim == 4:
        video = video.unsqueeze(0)
        single = True
    elif video.ndim == 5:
        single = False
    else:
        raise ValueError(
            "expected a clip (3, T, H, W) or a batch (B, 3, T, H, W), "
            f"got shape {tuple(video.shape)}"
        )
    if video.shape[1] != 3:
        raise ValueError(f"expected 3 (RGB) channels at dim -4, got shape {tuple(video.shape)}")
    return video, single


def to_float_clip(video: Tensor) -> Tensor:
    """``uint8`` [0, 255] -> float32 [0, 1]; floating-point input is returned unchanged.

    Raises:
        ValueError: any other dtype.
    """
    if video.dtype == torch.uint8:
        return video.float().div_(255.0)
    if video.is_floating_point():
        return video
    raise ValueError(f"expected a uint8 or floating-point clip, got dtype {video.dtype}")


def _check_mean_std(
    mean: tuple[float, float, float] | None, std: tuple[float, float, float] | None
) -> tuple[Tensor, Tensor] | None:
    """Validated ``(1, 3, 1, 1, 1)`` mean and std tensors, or None when both are None."""
    if mean is None and std is None:
        return None
    if mean is None or std is None:
        raise ValueError(f"expected mean and std both given or both None, got {mean=} {std=}")
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"expected 3 means and 3 positive stds (RGB), got {mean=} {std=}")
    shape = (1, 3, 1, 1, 1)
    return torch.tensor(mean).view(shape), torch.tensor(std).view(shape)


def normalize(video: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``(video - mean) / std`` per channel.

    Args:
        video: Float clips ``(B, 3, T, H, W)``.
        mean: ``(1, 3, 1, 1, 1)`` (or anything broadcastable to ``video``).
        std: Same shape as ``mean``.
    """
    return (video - mean.to(video)) / std.to(video)


def resize_clip(video: Tensor, size: int, *, antialias: bool = True) -> Tensor:
    """Bilinear resize of every frame to ``size × size`` (``align_corners=False``).

    Args:
        video: Float clips ``(B, C, T, H, W)``.
        size: Output side ``S``.
        antialias: Low-pass filter when downscaling (torchvision's ``Resize`` default).

    Returns:
        ``(B, C, T, S, S)``; the input itself when it already has that size.
    """
    b, _, t, h, w = video.shape
    if (h, w) == (size, size):
        return video
    frames = rearrange(video, "b c t h w -> (b t) c h w")
    frames = F.interpolate(
        frames, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias
    )
    return rearrange(frames, "(b t) c h w -> b c t h w", b=b, t=t)


def _rand(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """Uniform [0, 1) draws from ``generator`` (on its device), returned as CPU float64."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=device).to("cpu", torch.float64)


def random_resized_crop_params(
    batch: int,
    height: int,
    width: int,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Crop boxes of torchvision's ``RandomResizedCrop.get_params``, one per clip.

    For each clip: up to 10 tries of (area fraction ~ U(scale), log aspect ratio ~
    U(log ratio)); the first try whose rounded box fits inside the frame is kept, at a uniformly
    random position. Clips without a fitting try get torchvision's fallback: the largest centred
    crop whose aspect ratio is clamped to ``ratio``.

    Args:
        batch: Number of clips ``B``.
        height: Frame height ``H``.
        width: Frame width ``W``.
        scale: Range of the crop area as a fraction of ``H·W``.
        ratio: Range of the crop aspect ratio ``w / h``.
        generator: Optional generator (its device is used for the draws).

    Returns:
        ``(B, 4)`` int64 CPU tensor of ``(top, left, crop_height, crop_width)``.
    """
    if not 0 < scale[0] <= scale[1]:
        raise ValueError(f"expected 0 < scale[0] <= scale[1], got scale={scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"expected 0 < ratio[0] <= ratio[1], got ratio={ratio}")
    # One draw for the whole batch, then torchvision's scalar algorithm per clip in Python: a
    # loop over B·10 floats is cheaper than a dozen tensor kernels, for one clip or a batch.
    draws = _rand((batch, 2 * _CROP_TRIES + 2), generator).tolist()
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    area_lo, area_span = height * width * scale[0], height * width * (scale[1] - scale[0])
    fallback = _centre_crop_fallback(height, width, ratio)
    boxes = []
    for u in draws:
        box = fallback
        for k in range(_CROP_TRIES):
            area = area_lo + area_span * u[k]
            aspect = math.exp(log_lo + (log_hi - log_lo) * u[_CROP_TRIES + k])
            w = round(math.sqrt(area * aspect))  # round half to even, as torchvision
            h = round(math.sqrt(area / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = min(math.floor(u[-2] * (height - h + 1)), height - h)
                left = min(math.floor(u[-1] * (width - w + 1)), width - w)
                box = (top, left, h, w)
                break
        boxes.append(box)
    return torch.tensor(boxes, dtype=torch.int64).view(batch, 4)


def _centre_crop_fallback(
    height: int, width: int, ratio: tuple[float, float]
) -> tuple[int, int, int, int]:
    """torchvision's fallback box: the whole frame, its aspect ratio clamped to ``ratio``."""
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fb_w, fb_h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fb_w, fb_h = round(height * ratio[1]), height
    else:
        fb_w, fb_h = width, height
    return (height - fb_h) // 2, (width - fb_w) // 2, fb_h, fb_w


def crop_resize_flip(video: Tensor, boxes: Tensor, flip: Tensor, size: int) -> Tensor:
    """Crop each clip to its box, resize to ``size × size`` and optionally mirror it, in one pass.

    One ``affine_grid`` + ``grid_sample`` (bilinear, ``align_corners=False``, border padding)
    over all ``B·T`` frames; a clip's box and flip apply to all its frames. A box covering the
    whole frame without flip equals a plain bilinear resize without antialiasing. There is no
    antialiasing filter, so boxes much larger than ``size`` alias; decode frames at about the
    crop size (see ``load_frames(size=...)``) to keep the scale factor near 1.

    Args:
        video: Float clips ``(B, C, T, H, W)``.
        boxes: ``(B, 4)`` ``(top, left, crop_height, crop_width)`` in pixels.
        flip: ``(B,)`` bool, mirror left-right.
        size: Output side ``S``.

    Returns:
        ``(B, C, T, S, S)`` in the dtype of ``video``.
    """
    b, c, t, h, w = video.shape
    if boxes.shape != (b, 4) or flip.shape != (b,):
        raise ValueError(
            f"expected boxes (B, 4) and flip (B,) for B={b}, "
            f"got {tuple(boxes.shape)} and {tuple(flip.shape)}"
        )
    top, left, crop_h, crop_w = boxes.to("cpu", torch.float64).unbind(dim=1)
    # Normalised source coordinates x_in = sx * x_out + cx map the output square onto the box.
    sx = torch.where(flip.cpu(), -crop_w / w, crop_w / w)
    sy = crop_h / h
    cx = (2 * left + crop_w) / w - 1
    cy = (2 * top + crop_h) / h - 1
    zero = torch.zeros_like(sx)
    theta = torch.stack([sx, zero, cx, zero, sy, cy], dim=1).view(b, 2, 3)
    theta = theta.to(device=video.device, dtype=video.dtype)
    grid = F.affine_grid(theta, [b, c, size, size], align_corners=False)  # (B, S, S, 2)
    # The frames of a clip share its grid: build B grids, not B·T, then repeat over T.
    grid = grid.unsqueeze(1).expand(b, t, size, size, 2).reshape(b * t, size, size, 2)
    frames = rearrange(video, "b c t h w -> (b t) c h w")
    out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return rearrange(out, "(b t) c h w -> b c t h w", b=b, t=t)


def _gray(video: Tensor) -> Tensor:
    """Luma ``(B, 1, T, H, W)`` of RGB clips ``(B, 3, T, H, W)``."""
    r, g, b = video.unbind(dim=1)
    gray = r * _GRAY_WEIGHTS[0]
    gray.add_(g, alpha=_GRAY_WEIGHTS[1]).add_(b, alpha=_GRAY_WEIGHTS[2])
    return gray.unsqueeze(1)


def _per_clip(factor: Tensor, video: Tensor) -> Tensor:
    """``(B,)`` -> ``(B, 1, 1, 1, 1)`` on the device and dtype of ``video``."""
    return factor.to(device=video.device, dtype=video.dtype).view(-1, 1, 1, 1, 1)


def _rgb_to_hsv(video: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Hue, saturation, value ``(B, T, H, W)`` each, in [0, 1], of RGB ``(B, 3, T, H, W)``."""
    r, g, b = video.unbind(dim=1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    chroma = maxc - minc
    grey = chroma == 0
    ones = torch.ones_like(maxc)
    sat = chroma / torch.where(grey, ones, maxc)
    safe = torch.where(grey, ones, chroma)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    is_b = ~is_r & ~is_g
    hue = is_r * (bc - gc) + is_g * (2.0 + rc - bc) + is_b * (4.0 + gc - rc)
    hue = torch.fmod(hue / 6.0 + 1.0, 1.0)
    return hue, sat, maxc


def _hsv_to_rgb(hue: Tensor, sat: Tensor, val: Tensor) -> Tensor:
    """RGB ``(B, 3, T, H, W)`` of hue, saturation, value ``(B, T, H, W)`` in [0, 1]."""
    sector = torch.floor(hue * 6.0)
    frac = hue * 6.0 - sector
    sector = sector.to(torch.int64) % 6
    p = (val * (1.0 - sat)).clamp(0.0, 1.0)
    q = (val * (1.0 - sat * frac)).clamp(0.0, 1.0)
    t = (val * (1.0 - sat * (1.0 - frac))).clamp(0.0, 1.0)
    # For each of the 6 hue sectors, which of (v, q, p, t) is R, G and B.
    table = torch.stack([val, q, p, t])  # (4, B, T, H, W)
    pick = torch.tensor(
        [[0, 1, 2, 2, 3, 0], [3, 0, 0, 1, 2, 2], [2, 2, 3, 0, 0, 1]], device=hue.device
    )  # (RGB, sector) -> row of `table`
    rows = pick[:, sector]  # (3, B, T, H, W)
    rgb = table.gather(0, rows)
    return rearrange(rgb, "c b t h w -> b c t h w")


def _blend_(out: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """In place ``out = f·out + (1 - f)·other`` with per-clip factors ``(B,)``."""
    if factor.numel() == 1:  # one clip: a scalar lerp is one pass
        return out.lerp_(other, 1.0 - float(factor))
    f = _per_clip(factor, out)
    return out.mul_(f).add_(other * (1.0 - f))


def color_jitter(
    video: Tensor,
    brightness: Tensor,
    contrast: Tensor,
    saturation: Tensor,
    hue: Tensor | None = None,
) -> Tensor:
    """torchvision's colour adjustments with per-clip factors, applied in a fixed order.

    Brightness ``x·b``; contrast ``c·x + (1 - c)·mean(gray(frame))``; saturation
    ``s·x + (1 - s)·gray(x)``; hue: rotate the HSV hue by ``h`` (fraction of a turn). Each step
    clamps to [0, 1], like ``torchvision.transforms.functional.adjust_*`` applied frame by frame.
    Unlike ``ColorJitter`` the order is fixed (brightness, contrast, saturation, hue) instead of
    a random permutation per call, which keeps the batch in one kernel per step.

    Args:
        video: Float clips in [0, 1] or uint8 clips in [0, 255] ``(B, 3, T, H, W)``.
        brightness: ``(B,)`` factors (1 = unchanged).
        contrast: ``(B,)`` factors (1 = unchanged).
        saturation: ``(B,)`` factors (1 = unchanged).
        hue: ``(B,)`` shifts in [-0.5, 0.5], or None to skip the (costlier) hue step.

    Returns:
        ``(B, 3, T, H, W)`` in [0, 1], float32 for uint8 input, else the input's dtype.
    """
    # One new tensor, then in-place steps.
    if video.dtype == torch.uint8:  # the [0, 255] -> [0, 1] scale rides on the brightness pass
        out = video.float()
        out.mul_(_per_clip(brightness, out) / 255.0)
    else:
        out = video * _per_clip(brightness, video)
    out.clamp_(0.0, 1.0)
    video = out  # dtype and device reference for the factors below
    # The mean luma of a frame is the luma of its channel means: no full-size grey image.
    weights = torch.tensor(_GRAY_WEIGHTS, device=out.device, dtype=out.dtype).view(1, 3, 1)
    channel_mean = out.mean(dim=(-2, -1))  # (B, 3, T)
    frame_mean = (channel_mean * weights).sum(dim=1).view(out.shape[0], 1, -1, 1, 1)
    _blend_(out, frame_mean, contrast).clamp_(0.0, 1.0)
    _blend_(out, _gray(out), saturation).clamp_(0.0, 1.0)
    if hue is not None:
        h, sat, val = _rgb_to_hsv(out)
        h = torch.remainder(h + _per_clip(hue, video).squeeze(1), 1.0)
        out = _hsv_to_rgb(h, sat, val)
    return out


def color_jitter_uint8(
    clip: Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float | None = None,
) -> Tensor:
    """:func:`color_jitter` of one uint8 clip, uint8 out, without a float pass per step.

    Works on interleaved RGB (``(T, H, W, 3)`` memory, as decoded frames and
    :func:`crop_resize_flip_uint8` hold them) with OpenCV's vectorised kernels:

    * brightness then contrast are one lookup table per frame (brightness ``min(b·v, 255)``,
      then ``c·y + (1 - c)·m`` with ``m`` the frame's mean luma after brightness, computed
      exactly from uint8 sums), so both cost one gather;
    * without saturation and hue the table is rounded to uint8 and that gather is the whole
      jitter; otherwise it gathers float32 values (no rounding in between), the saturation blend
      is one 3×3 colour matrix (``s·I + (1 - s)·1·w^T``, ``w`` the luma weights), clamped to
      [0, 255], and the hue rotation is OpenCV's float HSV round trip (the same maths as
      torchvision's ``adjust_hue``);
    * the result is rounded once and copied to planar memory.

    Equal to torchvision's float ``adjust_brightness``, ``adjust_contrast``,
    ``adjust_saturation``, ``adjust_hue`` (in that order) on ``clip / 255`` within one grey level.

    Args:
        clip: uint8 ``(3, T, H, W)`` (any strides; interleaved memory is fastest).
        brightness: Brightness factor (1 = unchanged).
        contrast: Contrast factor (1 = unchanged).
        saturation: Saturation factor (1 = unchanged).
        hue: Hue shift in turns, in [-0.5, 0.5], or None to skip it.

    Returns:
        uint8 ``(3, T, H, W)``, contiguous (planar).
    """
    cv2 = opencv()
    if clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[0] != 3:
        raise ValueError(
            f"expected a uint8 clip (3, T, H, W), got {clip.dtype} {tuple(clip.shape)}"
        )
    frames = np.ascontiguousarray(clip.permute(1, 2, 3, 0).numpy())  # (T, H, W, 3)
    t, h, w, _ = frames.shape
    levels = np.arange(256, dtype=np.float64)
    lut = np.minimum(levels * brightness, 255.0)[None].repeat(t, 0)  # (T, 256)
    if contrast != 1.0:
        lut = lut * contrast + (1.0 - contrast) * _mean_luma(frames, brightness)[:, None]
        np.clip(lut, 0.0, 255.0, out=lut)
    shift = 0.0 if hue is None else hue % 1.0  # the hue rotation in turns, in [0, 1)
    rest = saturation != 1.0 or shift != 0.0
    table = lut.astype(np.float32) if rest else np.rint(lut).astype(np.uint8)
    out = np.empty(frames.shape, dtype=table.dtype)
    for f in range(t):  # one gather per frame
        cv2.LUT(frames[f], table[f], dst=out[f])
    if rest:
        image = out.reshape(t * h, w, 3)
        if saturation != 1.0:
            weights = np.asarray(_GRAY_WEIGHTS, dtype=np.float32)
            matrix = saturation * np.eye(3, dtype=np.float32) + (1.0 - saturation) * weights
            image = cv2.transform(image, matrix)
            cv2.threshold(image, 255.0, 255.0, cv2.THRESH_TRUNC, dst=image)
            cv2.threshold(image, 0.0, 0.0, cv2.THRESH_TOZERO, dst=image)
        if shift != 0.0:
            hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)  # H in degrees [0, 360)
            cv2.add(hsv, (360.0 * shift, 0.0, 0.0, 0.0), dst=hsv)  # H in [0, 720)
            image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        out = cv2.convertScaleAbs(image).reshape(t, h, w, 3)  # round half to even, saturate
    return planar_uint8(torch.from_numpy(out).permute(3, 0, 1, 2))


def _mean_luma(frames: np.ndarray, brightness: float) -> np.ndarray:
    """Mean luma per frame ``(T,)`` of ``min(brightness·x, 255)`` for uint8 ``(T, H, W, 3)``.

    Exact: with ``k = floor(255 / b)``, ``min(b·v, 255)`` is ``b·v`` for ``v <= k`` and 255
    above, so the sums need only those of ``min(x, k)`` and ``min(x, k + 1)`` (their difference
    counts the values above ``k``).
    """
    cv2 = opencv()

    def sums(cap: int | None = None) -> np.ndarray:  # per frame and channel, (T, 3)
        capped = frames
        if cap is not None:  # min(x, cap) on every channel
            capped = cv2.threshold(frames.reshape(-1, 3), cap, 255, cv2.THRESH_TRUNC)[1]
            capped = capped.reshape(frames.shape)
        return np.array([cv2.sumElems(f)[:3] for f in capped])

    if brightness <= 1.0:
        total = sums() * brightness
    else:
        k = math.floor(255.0 / brightness)
        low = sums(k)
        high = sums(k + 1) - low  # how many values exceed k
        total = brightness * (low - k * high) + 255.0 * high
    weights = np.asarray(_GRAY_WEIGHTS, dtype=np.float64)  # (3,)
    return cast(np.ndarray, total @ weights / (frames.shape[1] * frames.shape[2]))


@dataclass(frozen=True)
class AugmentParams:
    """Per-clip random parameters drawn by :meth:`ClipAugment.sample_params` (CPU tensors).

    Attributes:
        boxes: ``(B, 4)`` int64 ``(top, left, crop_height, crop_width)``.
        flip: ``(B,)`` bool.
        brightness: ``(B,)`` float factors.
        contrast: ``(B,)`` float factors.
        saturation: ``(B,)`` float factors.
        hue: ``(B,)`` float shifts, or None when hue jitter is off.
    """

    boxes: Tensor
    flip: Tensor
    brightness: Tensor
    contrast: Tensor
    saturation: Tensor
    hue: Tensor | None


class _ClipTransform(nn.Module):
    """What :class:`ClipAugment` and :class:`ClipEval` share: the output side ``size`` (``S``)
    and the optional per-channel normalisation by ``mean`` and ``std`` (non-persistent buffers
    ``(1, 3, 1, 1, 1)``, or None)."""

    mean: Tensor | None
    std: Tensor | None

    def __init__(self, size: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"expected size >= 1, got size={size}")
        self.size = size

    def _set_mean_std(
        self, mean: tuple[float, float, float] | None, std: tuple[float, float, float] | None
    ) -> None:
        """Validate ``mean`` and ``std`` and keep them as buffers (None when both are None)."""
        stats = _check_mean_std(mean, std)
        self.register_buffer("mean", None if stats is None else stats[0], persistent=False)
        self.register_buffer("std", None if stats is None else stats[1], persistent=False)

    def _normalized(self, video: Tensor) -> Tensor:
        """``video`` ``(B, 3, T, S, S)`` normalised by ``mean`` and ``std`` (as is without them)."""
        if self.mean is not None and self.std is not None:
            return normalize(video, self.mean, self.std)
        return video


class ClipAugment(_ClipTransform):
    """Training augmentation of clip batches, parameters drawn per clip, shared by its frames.

    Random resized crop (torchvision semantics) to ``size`` and horizontal flip are one
    ``affine_grid`` + ``grid_sample`` pass over all ``B·T`` frames (see :func:`crop_resize_flip`,
    which does not antialias: feed frames decoded near the crop size). Then colour jitter
    (brightness, contrast and saturation factors each uniform in ``[max(0, 1 - jitter),
    1 + jitter]``; hue shift uniform in ``[-hue, hue]``, off by default, see
    :func:`color_jitter`), then optional normalisation.

    Two entry points, one per place the augmentation can run, with parameters drawn by
    :meth:`sample_params` either way:

    * :meth:`forward`, the batched path (float out) for the accelerator
      (``augment_on="device"``);
    * :meth:`augment_clip`, the per-clip path (uint8 in and out) for the DataLoader workers
      (``augment_on="loader"``).

    Args:
        size: Output side ``S``.
        scale: Range of the crop area as a fraction of the frame area.
        ratio: Range of the crop aspect ratio ``w / h``.
        flip_p: Probability of a left-right flip per clip.
        jitter: Strength of the brightness, contrast and saturation jitter (0 disables it).
        hue: Strength of the hue jitter in [0, 0.5] (0 disables it; the paper recipe, M3DFEL's
            ``ColorJitter(0.4)``, uses 0.4: ``configs/dfew.yaml`` and ``ferv39k.yaml`` set it).
        mean: Per-channel mean for normalisation (e.g. :data:`KINETICS_MEAN`), or None.
        std: Per-channel std for normalisation (e.g. :data:`KINETICS_STD`), or None.

    Shape:
        ``forward``: ``(B, 3, T, H, W)`` or ``(3, T, H, W)`` uint8 [0, 255] or float [0, 1]
        -> float ``(B, 3, T, S, S)`` (resp. ``(3, T, S, S)``) in [0, 1] before normalisation.
        ``augment_clip``: uint8 ``(3, T, H, W)`` -> uint8 ``(3, T, S, S)``.
    """

    def __init__(
        self,
        *,
        size: int,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        jitter: float = 0.4,
        hue: float = 0.0,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ) -> None:
        super().__init__(size)
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"expected 0 < scale[0] <= scale[1], got scale={scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"expected 0 < ratio[0] <= ratio[1], got ratio={ratio}")
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"expected 0 <= flip_p <= 1, got flip_p={flip_p}")
        if jitter < 0:
            raise ValueError(f"expected jitter >= 0, got jitter={jitter}")
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"expected 0 <= hue <= 0.5, got hue={hue}")
        self.scale = scale
        self.ratio = ratio
        self.flip_p = flip_p
        self.jitter = jitter
        self.hue = hue
        self._set_mean_std(mean, std)

    def sample_params(
        self, batch: int, height: int, width: int, generator: torch.Generator | None = None
    ) -> AugmentParams:
        """Draw the per-clip parameters for ``batch`` clips of ``height × width`` frames.

        :meth:`forward` (batched, on the device) and :meth:`augment_clip` (one clip, in a
        DataLoader worker) both draw here, so their parameters follow one distribution.
        """
        boxes = random_resized_crop_params(
            batch, height, width, scale=self.scale, ratio=self.ratio, generator=generator
        )
        u = _rand((batch, 5), generator)
        lo = max(0.0, 1.0 - self.jitter)
        factors = (lo + (1.0 + self.jitter - lo) * u[:, 1:4]).float()  # (B, 3)
        hue = ((2.0 * u[:, 4] - 1.0) * self.hue).float() if self.hue > 0 else None
        return AugmentParams(
            boxes=boxes,
            flip=u[:, 0] < self.flip_p,
            brightness=factors[:, 0],
            contrast=factors[:, 1],
            saturation=factors[:, 2],
            hue=hue,
        )

    def forward(self, video: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The batched path: augment ``(B, 3, T, H, W)`` (or one clip ``(3, T, H, W)``) at once.

        For the accelerator, in a DataModule's ``on_after_batch_transfer``
        (``augment_on="device"``): one ``grid_sample`` and element-wise kernels over all ``B·T``
        frames, float out, normalised when ``mean``/``std`` are set.
        """
        batch, single = _as_batch(video)
        b, _, _, h, w = batch.shape
        out = self._apply_batch(batch, self.sample_params(b, h, w, generator))
        return out.squeeze(0) if single else out

    def augment_clip(self, clip: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The per-clip path: augment one uint8 clip on the CPU, uint8 out (DataLoader workers).

        The same augmentation as :meth:`forward`, with parameters drawn the same way (a batch of
        one): crop, resize and flip on uint8 (:func:`crop_resize_flip_uint8`, antialiased), then
        :func:`color_jitter_uint8` (lookup tables, rounded once). No normalisation and no float
        conversion: the batch leaves the loader as uint8 and the model's device converts it
        (:class:`ClipEval`).

        Args:
            clip: uint8 ``(3, T, H, W)``, fastest with frame-major interleaved memory (as
                ``load_frames(..., planar=False)`` returns).
            generator: Source of the parameters.

        Returns:
            uint8 ``(3, T, S, S)``, contiguous.
        """
        if clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[0] != 3:
            raise ValueError(
                f"expected a uint8 clip (3, T, H, W), got {clip.dtype} {tuple(clip.shape)}"
            )
        params = self.sample_params(1, clip.shape[-2], clip.shape[-1], generator)
        return self._apply_clip(clip, params)

    def _apply_batch(self, video: Tensor, params: AugmentParams) -> Tensor:
        """:meth:`forward` with given parameters: ``(B, 3, T, H, W)`` -> ``(B, 3, T, S, S)``."""
        if video.dtype == torch.uint8:
            # Sample in [0, 255] and rescale the smaller output: one pass less over the input.
            out = crop_resize_flip(video.float(), params.boxes, params.flip, self.size)
            out = out.mul_(1.0 / 255.0)
        else:
            out = crop_resize_flip(to_float_clip(video), params.boxes, params.flip, self.size)
        if self.jitter > 0 or params.hue is not None:
            out = color_jitter(
                out, params.brightness, params.contrast, params.saturation, params.hue
            )
        return self._normalized(out)

    def _apply_clip(self, clip: Tensor, params: AugmentParams) -> Tensor:
        """:meth:`augment_clip` with given parameters (a batch of 1)."""
        top, left, height, width = (int(v) for v in params.boxes[0])
        box = (top, left, height, width)
        out = crop_resize_flip_uint8(clip, box, bool(params.flip[0]), self.size)
        if self.jitter == 0 and params.hue is None:
            return planar_uint8(out)
        return color_jitter_uint8(
            out,
            float(params.brightness[0]),
            float(params.contrast[0]),
            float(params.saturation[0]),
            None if params.hue is None else float(params.hue[0]),
        )

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, scale={self.scale}, ratio={self.ratio}, flip_p={self.flip_p}, "
            f"jitter={self.jitter}, hue={self.hue}, normalize={self.mean is not None}"
        )


class ClipEval(_ClipTransform):
    """Evaluation transform: bilinear antialiased resize to ``size × size``, [0, 1], normalise.

    Args:
        size: Output side ``S``.
        mean: Per-channel mean for normalisation (e.g. :data:`KINETICS_MEAN`), or None.
        std: Per-channel std for normalisation (e.g. :data:`KINETICS_STD`), or None.

    Shape:
        ``forward``: ``(B, 3, T, H, W)`` or ``(3, T, H, W)`` uint8 [0, 255] or float [0, 1]
        -> float ``(B, 3, T, S, S)`` (resp. ``(3, T, S, S)``).
    """

    def __init__(
        self,
        *,
        size: int,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ) -> None:
        super().__init__(size)
        self._set_mean_std(mean, std)

    def forward(self, video: Tensor) -> Tensor:
        """Resize and normalise a batch ``(B, 3, T, H, W)`` or a single clip ``(3, T, H, W)``."""
        batch, single = _as_batch(video)
        if batch.dtype == torch.uint8:
            out = resize_clip(batch.float(), self.size).mul_(1.0 / 255.0)
        else:
            out = resize_clip(to_float_clip(batch), self.size)
        out = self._normalized(out)
        return out.squeeze(0) if single else out

    def extra_repr(self) -> str:
        return f"size={self.size}, normalize={self.mean is not None}"


def decode_jpeg_clips(
    jpeg: Sequence[Sequence[Tensor]], size: int, device: torch.device | str
) -> Tensor:
    """Decode clips of JPEG frames on ``device`` (nvJPEG on CUDA) into one uint8 batch.

    All ``B·T`` frames go to one batched ``torchvision.io.decode_jpeg`` call; frames that are
    not ``size × size`` are resized there (bilinear, antialiased, in float, rounded back).

    Args:
        jpeg: ``B`` clips of ``T`` 1-D uint8 CPU tensors of file bytes (as
            :func:`~hdf_lightning.data.video.read_frame_bytes` returns and
            :func:`~hdf_lightning.data.datasets.collate_clips` batches).
        size: Output side ``S``.
        device: Where to decode (``"cuda"``; ``"cpu"`` works too, for tests).

    Returns:
        uint8 ``(B, 3, T, S, S)`` on ``device``.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    if not jpeg or any(len(clip) != len(jpeg[0]) for clip in jpeg) or not jpeg[0]:
        raise ValueError("expected B >= 1 clips with the same number T >= 1 of frames")
    b, t = len(jpeg), len(jpeg[0])
    flat = [frame for clip in jpeg for frame in clip]
    frames = decode_jpeg(flat, mode=ImageReadMode.RGB, device=torch.device(device))
    out = []
    for frame in frames:  # (3, H, W) each
        if frame.shape[-2:] != (size, size):
            frame = (
                F.interpolate(
                    frame.unsqueeze(0).float(),
                    size=(size, size),
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )
                .squeeze(0)
                .round_()
                .clamp_(0, 255)
                .to(torch.uint8)
            )
        out.append(frame)
    return rearrange(torch.stack(out), "(b t) c h w -> b c t h w", b=b, t=t)


# ---------------------------------------------------------------- one clip, in the loader


def planar_uint8(clip: Tensor) -> Tensor:
    """A contiguous copy of a uint8 clip ``(3, T, H, W)`` of any memory layout.

    Clips decoded from images or videos are frame-major with interleaved RGB (``(T, H, W, 3)``
    in memory); numpy's transposing copy into planar ``(3, T, H, W)`` is several times faster
    than torch's for uint8 on the CPU.
    """
    if clip.is_contiguous():
        return clip
    if clip.device.type != "cpu" or clip.dtype != torch.uint8:
        return clip.contiguous()
    return torch.from_numpy(np.ascontiguousarray(clip.numpy()))


def crop_resize_flip_uint8(
    clip: Tensor, box: tuple[int, int, int, int], flip: bool, size: int
) -> Tensor:
    """Crop one uint8 clip to ``box``, resize it to ``size × size`` and optionally mirror it.

    Bilinear with antialiasing (``align_corners=False``) on uint8, as torchvision's
    ``resized_crop`` on uint8 tensors; the box is cut from the frames as decoded, so larger
    decoded frames keep more detail in small crops. Frames stored with interleaved RGB
    (``(T, H, W, 3)`` memory, as :func:`~hdf_lightning.data.video.load_frames` returns them)
    take torch's vectorised uint8 channels-last kernel; other layouts are copied to it first.

    Args:
        clip: uint8 ``(3, T, H, W)``.
        box: ``(top, left, crop_height, crop_width)`` in pixels of ``clip``.
        flip: Mirror left-right.
        size: Output side ``S``.

    Returns:
        uint8 ``(3, T, S, S)`` with ``(T, S, S, 3)`` memory (see :func:`planar_uint8`).
    """
    if clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[0] != 3:
        raise ValueError(
            f"expected a uint8 clip (3, T, H, W), got {clip.dtype} {tuple(clip.shape)}"
        )
    top, left, height, width = (int(v) for v in box)
    _, _, h, w = clip.shape
    if min(top, left) < 0 or min(height, width) < 1:
        raise ValueError(f"expected a non-empty box inside the frame, got {box}")
    if top + height > h or left + width > w:
        raise ValueError(f"box {box} does not fit in {h}x{w} frames")
    frames = clip.permute(1, 0, 2, 3)  # (T, 3, H, W), channels-last for decoded clips
    if not frames.is_contiguous(memory_format=torch.channels_last):
        frames = frames.contiguous(memory_format=torch.channels_last)
    region = frames[:, :, top : top + height, left : left + width]
    if (height, width) != (size, size):
        region = F.interpolate(
            region, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    if flip:
        region = region.flip(-1)
    return region.permute(1, 0, 2, 3)
