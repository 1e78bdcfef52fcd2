"""X3D (Feichtenhofer, CVPR 2020), built as pytorchvideo's ``create_x3d`` builds it.

The layer layout, widths, depths, rounding rules and initialisation follow pytorchvideo 0.1.5, so a
pytorchvideo state dict (or a Kinetics checkpoint ``{"model_state": state_dict}``) loads through the
explicit key map at the end of this module (:func:`load_x3d_weights`). Two deliberate differences:
the head pools adaptively (any T, H, W; pytorchvideo fixes the pooling kernel at build time) and
never applies a softmax, and :meth:`X3D.forward` returns ``(logits, feature)``.

Module names, with pytorchvideo's after the arrow (``B = blocks.{s+1}.res_blocks.{j}``)::

    stem.conv_xy   1x3x3 spatial conv, stride (1, 2, 2)  <- blocks.0.conv.conv_t
    stem.conv_t    5x1x1 depthwise temporal conv          <- blocks.0.conv.conv_xy
    stem.norm                                             <- blocks.0.norm
    stages.{s}.{j}.shortcut_conv, .shortcut_norm          <- B.branch1_conv, B.branch1_norm
    stages.{s}.{j}.conv_a, .norm_a, .conv_b, .conv_c, .norm_c  <- B.branch2.<same name>
    stages.{s}.{j}.norm_b                                 <- B.branch2.norm_b.0
    stages.{s}.{j}.se.reduce, .se.expand                  <- B.branch2.norm_b.1.block.0, .2
    head.pre_conv, .pre_norm, .post_conv                  <- blocks.5.pool.<same name>
    head.proj                                             <- blocks.5.proj
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from hdf_lightning.models.weights import LoadReport, PublishedWeights, load_checked, read_weights

log = logging.getLogger(__name__)

WeightsSkip = Literal["classifier", "head", "none"]
"""What of a checkpoint's head is not loaded: the final Linear (``"classifier"``, for Kinetics
weights with another number of classes), the whole head (``"head"``, e.g. another ``head_dim``),
or nothing (``"none"``)."""

STAGE_DEPTHS: tuple[int, ...] = (1, 2, 5, 3)
"""Blocks per stage before the depth factor (X3D's base network)."""

_STEM_DIM = 12
_STAGE_EXPANSION = 2.0


def round_width(width: float, multiplier: float, *, min_width: int = 8, divisor: int = 8) -> int:
    """Scale a channel count and round it to a multiple of ``divisor`` (pytorchvideo's rule)."""
    if not multiplier:
        return int(width)
    scaled = width * multiplier
    out = max(min_width, int(scaled + divisor / 2) // divisor * divisor)
    if out < 0.9 * scaled:
        out += divisor
    return int(out)


def round_repeats(repeats: int, multiplier: float) -> int:
    """Scale a block count and round it up (pytorchvideo's rule)."""
    if not multiplier:
        return repeats
    return math.ceil(multiplier * repeats)


@dataclass(frozen=True)
class X3DPreset:
    """A named X3D size: constructor values and the input it was trained on (Kinetics)."""

    num_frames: int
    crop_size: int
    depth_factor: float
    width_factor: float = 2.0
    bottleneck_factor: float = 2.25


X3D_PRESETS: dict[str, X3DPreset] = {
    "xs": X3DPreset(num_frames=4, crop_size=160, depth_factor=2.2),
    "s": X3DPreset(num_frames=13, crop_size=160, depth_factor=2.2),
    "m": X3DPreset(num_frames=16, crop_size=224, depth_factor=2.2),
    "l": X3DPreset(num_frames=16, crop_size=312, depth_factor=5.0),
}
"""pytorchvideo's X3D sizes: XS 4x160², S 13x160², M 16x224², L 16x312² (frames x crop)."""


def _pytorchvideo_kinetics(size: str) -> PublishedWeights:
    """The Kinetics-400 checkpoint of an X3D size as pytorchvideo's hub publishes it."""
    preset = X3D_PRESETS[size]
    return PublishedWeights(
        url=f"https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/X3D_{size.upper()}.pyth",
        description=(
            f"pytorchvideo X3D-{size.upper()}, Kinetics-400, "
            f"{preset.num_frames}x{preset.crop_size}x{preset.crop_size}"
        ),
    )


X3D_WEIGHTS: dict[str, PublishedWeights] = {
    "kinetics400": _pytorchvideo_kinetics("s"),
    "kinetics400_xs": _pytorchvideo_kinetics("xs"),
    "kinetics400_s": _pytorchvideo_kinetics("s"),
    "kinetics400_m": _pytorchvideo_kinetics("m"),
    "kinetics400_l": _pytorchvideo_kinetics("l"),
}
"""Published X3D weights by ``weights`` name: the Kinetics-400 checkpoints that pytorchvideo's hub
(``pytorchvideo.models.hub.x3d``) downloads, ``{"model_state": state_dict}`` files without a
published hash. ``kinetics400_xs``, ``_s`` and ``_m`` fit the width 2.0 / depth 2.2 network of the
recipe (XS, S and M differ only in the clips they were trained on), ``kinetics400_l`` the depth
5.0 one (``x3d_preset("l")``); ``kinetics400`` is X3D-S's, trained on the input closest to the
recipe's 16x112x112."""


def x3d_preset(name: str) -> dict[str, Any]:
    """Constructor keyword arguments of a named X3D size (``"xs"``, ``"s"``, ``"m"``, ``"l"``).

    The returned ``num_frames`` is the preset's clip length; its crop size (input H = W) is
    ``X3D_PRESETS[name].crop_size``. The network itself accepts any T, H, W.

    Example: ``X3D(**x3d_preset("s"), num_classes=7, weights="X3D_S.pyth")``.
    """
    key = name.lower()
    if key not in X3D_PRESETS:
        raise ValueError(f"unknown X3D preset {name!r}; expected one of {sorted(X3D_PRESETS)}")
    values = asdict(X3D_PRESETS[key])
    del values["crop_size"]
    return values


class SqueezeExcite(nn.Module):
    """Channel squeeze-excitation: ``x · σ(expand(ReLU(reduce(mean_{T,H,W} x))))``.

    Shape: ``(B, C, T, H, W)`` -> same.
    """

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv3d(channels, reduced, kernel_size=1, bias=True)
        self.expand = nn.Conv3d(reduced, channels, kernel_size=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        squeezed = x.mean(dim=(2, 3, 4), keepdim=True)  # (B, C, 1, 1, 1)
        return x * torch.sigmoid(self.expand(torch.relu(self.reduce(squeezed))))


class X3DBlock(nn.Module):
    """X3D residual bottleneck: 1x1x1 -> depthwise 3x3x3 (+SE, Swish) -> 1x1x1, plus shortcut.

    Args:
        dim_in: input channels.
        dim_inner: bottleneck (depthwise) channels.
        dim_out: output channels.
        spatial_stride: stride of the depthwise conv and the shortcut in H and W (never in T).
        se_ratio: squeeze-excitation reduction (0 disables SE).

    Shape: ``(B, dim_in, T, H, W)`` -> ``(B, dim_out, T, ⌈H/s⌉, ⌈W/s⌉)``.
    """

    def __init__(
        self, dim_in: int, dim_inner: int, dim_out: int, *, spatial_stride: int, se_ratio: float
    ) -> None:
        super().__init__()
        stride = (1, spatial_stride, spatial_stride)
        needs_conv = dim_in != dim_out or spatial_stride > 1
        # pytorchvideo normalises the shortcut only when the width changes.
        self.shortcut_conv: nn.Module = (
            nn.Conv3d(dim_in, dim_out, kernel_size=1, stride=stride, bias=False)
            if needs_conv
            else nn.Identity()
        )
        self.shortcut_norm: nn.Module = (
            nn.BatchNorm3d(dim_out) if dim_in != dim_out else nn.Identity()
        )
        self.conv_a = nn.Conv3d(dim_in, dim_inner, kernel_size=1, bias=False)
        self.norm_a = nn.BatchNorm3d(dim_inner)
        self.conv_b = nn.Conv3d(
            dim_inner,
            dim_inner,
            kernel_size=3,
            stride=stride,
            padding=1,
            groups=dim_inner,
            bias=False,
        )
        self.norm_b = nn.BatchNorm3d(dim_inner)
        self.se: nn.Module = (
            SqueezeExcite(dim_inner, round_width(dim_inner, se_ratio))
            if se_ratio > 0
            else nn.Identity()
        )
        self.conv_c = nn.Conv3d(dim_inner, dim_out, kernel_size=1, bias=False)
        self.norm_c = nn.BatchNorm3d(dim_out)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.shortcut_norm(self.shortcut_conv(x))
        y = torch.relu(self.norm_a(self.conv_a(x)))
        y = nn.functional.silu(self.se(self.norm_b(self.conv_b(y))))  # Swish
        y = self.norm_c(self.conv_c(y))
        return torch.relu(shortcut + y)


class X3DStem(nn.Module):
    """Spatial 1x3x3 conv (stride 2 in H, W), depthwise temporal 5x1x1 conv, BN, ReLU.

    Shape: ``(B, 3, T, H, W)`` -> ``(B, dim_out, T, ⌈H/2⌉, ⌈W/2⌉)``.
    """

    def __init__(self, in_channels: int, dim_out: int) -> None:
        super().__init__()
        self.conv_xy = nn.Conv3d(
            in_channels, dim_out, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False
        )
        self.conv_t = nn.Conv3d(
            dim_out, dim_out, (5, 1, 1), padding=(2, 0, 0), groups=dim_out, bias=False
        )
        self.norm = nn.BatchNorm3d(dim_out)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.norm(self.conv_t(self.conv_xy(x))))


class X3DHead(nn.Module):
    """Projected pooling head: 1x1x1 conv + BN + ReLU, global average pool, 1x1x1 conv + ReLU
    (the feature), dropout, linear classifier.

    Shape: ``(B, dim_in, T, H, W)`` -> ``(logits (B, num_classes), feature (B, head_dim))``.
    """

    def __init__(
        self, dim_in: int, dim_inner: int, head_dim: int, num_classes: int, dropout: float
    ) -> None:
        super().__init__()
        self.pre_conv = nn.Conv3d(dim_in, dim_inner, kernel_size=1, bias=False)
        self.pre_norm = nn.BatchNorm3d(dim_inner)
        self.post_conv = nn.Conv3d(dim_inner, head_dim, kernel_size=1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(head_dim, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.relu(self.pre_norm(self.pre_conv(x)))
        x = x.mean(dim=(2, 3, 4), keepdim=True)  # (B, dim_inner, 1, 1, 1)
        feature = torch.relu(self.post_conv(x)).flatten(1)  # (B, head_dim)
        return self.proj(self.dropout(feature)), feature


class X3D(nn.Module):
    """X3D video classifier returning ``(logits, feature)``; pytorchvideo-compatible weights.

    The defaults are X3D-S/M's (width 2.0, depth 2.2): at 16x112² and 7 classes it has 2,989,017
    parameters, like pytorchvideo's ``create_x3d`` with the same values. T is never strided.

    Args:
        num_classes: number of output classes.
        num_frames: clip length the model is meant for (informational for X3D, which accepts any
            T; :class:`~hdf_lightning.models.HDFNet` requires it).
        width_factor: channel multiplier (stage widths ``round_width(12·2^s, width_factor)``).
        depth_factor: depth multiplier (stage depths ``⌈depth_factor·(1, 2, 5, 3)⌉``).
        bottleneck_factor: inner-width expansion of the bottlenecks and the head.
        se_ratio: squeeze-excitation ratio, on every other block (0 disables SE).
        head_dim: width of the projected feature (2048 in X3D).
        dropout: dropout before the classifier.
        weights: the name of published weights (:data:`X3D_WEIGHTS`: ``kinetics400`` ...,
            downloaded once into torch.hub's cache), or the local path of a pytorchvideo X3D state
            dict or checkpoint (``{"model_state": state_dict}``) or of a state dict of this class;
            loaded with strict key and shape checks.
        weights_skip: what of the checkpoint's head is not loaded (see :data:`WeightsSkip`).

    Attributes:
        num_classes, num_frames, feature_dim (= head_dim), stage_channels (output widths of the 4
        stages), load_report (what ``weights`` loaded, or None).

    Shape:
        input ``(B, 3, T, H, W)``; output ``(logits (B, num_classes), feature (B, head_dim))``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 7,
        num_frames: int = 16,
        width_factor: float = 2.0,
        depth_factor: float = 2.2,
        bottleneck_factor: float = 2.25,
        se_ratio: float = 0.0625,
        head_dim: int = 2048,
        dropout: float = 0.5,
        weights: str | None = None,
        weights_skip: WeightsSkip = "classifier",
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"X3D expects num_classes >= 1, got {num_classes}")
        if num_frames < 1:
            raise ValueError(f"X3D expects num_frames >= 1, got {num_frames}")
        if width_factor <= 0 or depth_factor <= 0 or bottleneck_factor <= 0:
            raise ValueError(
                "X3D expects positive width/depth/bottleneck factors, got "
                f"{width_factor}/{depth_factor}/{bottleneck_factor}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"X3D expects 0 <= dropout < 1, got {dropout}")
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.feature_dim = head_dim
        self.in_channels = 3

        stem_dim = round_width(_STEM_DIM, width_factor)
        self.stem = X3DStem(self.in_channels, stem_dim)
        base = _STEM_DIM
        dim_in = stem_dim
        stages: list[nn.Module] = []
        channels: list[int] = []
        dim_inner = stem_dim
        for depth in STAGE_DEPTHS:
            dim_out = round_width(base, width_factor)
            dim_inner = int(bottleneck_factor * dim_out)
            blocks = [
                X3DBlock(
                    dim_in if j == 0 else dim_out,
                    dim_inner,
                    dim_out,
                    spatial_stride=2 if j == 0 else 1,
                    se_ratio=se_ratio if j % 2 == 0 else 0.0,
                )
                for j in range(round_repeats(depth, depth_factor))
            ]
            stages.append(nn.Sequential(*blocks))
            channels.append(dim_out)
            dim_in = dim_out
            base = round_width(base, _STAGE_EXPANSION)
        self.stages = nn.ModuleList(stages)
        self.stage_channels: tuple[int, ...] = tuple(channels)
        self.head = X3DHead(dim_in, dim_inner, head_dim, num_classes, dropout)
        self._init_weights()

        self.load_report: LoadReport | None = None
        if weights is not None:
            self.load_weights(weights, skip=weights_skip)

    def load_weights(self, weights: str, *, skip: WeightsSkip = "classifier") -> LoadReport:
        """Load published X3D weights or a local checkpoint (see :func:`load_x3d_weights`)."""
        self.load_report = load_x3d_weights(self, weights, skip=skip)
        return self.load_report

    def backbone_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of the parts that X3D checkpoints provide."""
        return ("stem.", "stages.", "head.")

    def _init_weights(self) -> None:
        """pytorchvideo's ResNet-style init: MSRA fan-out convs, unit BN, N(0, 0.01²) linear."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def check_input(self, x: Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(B, 3, T, H, W)``."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects a clip batch (B, {self.in_channels}, T, H, W), "
                f"got shape {tuple(x.shape)}"
            )

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """The output of each of the 4 stages.

        Args:
            x: clips ``(B, 3, T, H, W)``.

        Returns:
            4 tensors ``(B, stage_channels[s], T, H_s, W_s)``, ``H_s = ⌈H / 2^(s+2)⌉``.
        """
        self.check_input(x)
        x = self.stem(x)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs

    def forward_features(self, x: Tensor) -> Tensor:
        """The last stage's feature map ``(B, stage_channels[-1], T, H/32, W/32)``."""
        return self.forward_stages(x)[-1]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Classify clips.

        Args:
            x: clips ``(B, 3, T, H, W)``.

        Returns:
            ``(logits (B, num_classes), feature (B, feature_dim))``; no softmax.
        """
        return self.head(self.forward_features(x))


# ----------------------------------------------------------------- pytorchvideo key map
_X3D_STEM_AND_HEAD: tuple[tuple[str, str], ...] = (
    # pytorchvideo calls the stem's spatial 1x3x3 conv "conv_t" and the temporal 5x1x1 "conv_xy".
    ("blocks.0.conv.conv_t.", "stem.conv_xy."),
    ("blocks.0.conv.conv_xy.", "stem.conv_t."),
    ("blocks.0.norm.", "stem.norm."),
    ("blocks.5.pool.", "head."),
    ("blocks.5.proj.", "head.proj."),
)
_X3D_BLOCK = re.compile(r"^blocks\.([1-4])\.res_blocks\.(\d+)\.(.+)$")
_X3D_BLOCK_PARTS: tuple[tuple[str, str], ...] = (
    ("branch1_conv.", "shortcut_conv."),
    ("branch1_norm.", "shortcut_norm."),
    ("branch2.norm_b.0.", "norm_b."),
    ("branch2.norm_b.1.block.0.", "se.reduce."),
    ("branch2.norm_b.1.block.2.", "se.expand."),
    ("branch2.", ""),
)


def x3d_key_from_pytorchvideo(key: str) -> str | None:
    """Map a pytorchvideo ``create_x3d`` state-dict key to :class:`X3D`'s name for it.

    ``blocks.0`` is the stem, ``blocks.1..4`` the stages, ``blocks.5`` the head. Keys that are not
    pytorchvideo X3D keys (no ``blocks.`` prefix) are returned unchanged; unknown ``blocks.`` keys
    give None.
    """
    if not key.startswith("blocks."):
        return key
    for old, new in _X3D_STEM_AND_HEAD:
        if key.startswith(old):
            return new + key[len(old) :]
    match = _X3D_BLOCK.match(key)
    if match is None:
        return None
    stage, block, rest = int(match.group(1)) - 1, match.group(2), match.group(3)
    for old, new in _X3D_BLOCK_PARTS:
        if rest.startswith(old):
            return f"stages.{stage}.{block}.{new}{rest[len(old) :]}"
    return None


def load_x3d_weights(
    model: X3D,
    source: str | os.PathLike[str] | Mapping[str, Tensor],
    *,
    skip: WeightsSkip = "classifier",
) -> LoadReport:
    """Load X3D weights (pytorchvideo or this package's names) into an X3D or HDFNet.

    Args:
        model: an :class:`X3D` (or subclass such as HDFNet, whose extra modules keep their init).
        source: a name of :data:`X3D_WEIGHTS` (e.g. ``kinetics400``, from torch.hub's cache,
            downloaded on first use), a local file (state dict or ``{"model_state": sd}``) or an
            in-memory state dict.
        skip: ``"classifier"`` leaves ``head.proj`` at init (Kinetics weights, other classes),
            ``"head"`` the whole head, ``"none"`` loads everything.

    Returns:
        The :class:`LoadReport`.
    """
    if skip not in ("classifier", "head", "none"):
        raise ValueError(f"skip must be 'classifier', 'head' or 'none', got {skip!r}")
    if isinstance(source, Mapping):
        state_dict, name = dict(source), "<state dict>"
    else:
        state_dict, file = read_weights(source, X3D_WEIGHTS, network=type(model).__name__)
        name = str(file)
    skipped_prefix = {"classifier": "head.proj.", "head": "head.", "none": None}[skip]
    backbone = model.backbone_prefixes()
    return load_checked(
        model,
        state_dict,
        source=name,
        rename=x3d_key_from_pytorchvideo,
        skip=lambda key: (
            (skipped_prefix is not None and key.startswith(skipped_prefix))
            or not key.startswith(backbone)
        ),
        keep_init=lambda key: not key.startswith(backbone),
    )
