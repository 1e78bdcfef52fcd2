"""M3DFEL (Wang et al., CVPR 2023), the multi-instance baseline of docs/method.md §6.

The clip is cut into ``num_frames / instance_length`` instances; each is encoded by torchvision's
``r3d_18`` (without its classifier), the instance sequence by a 2-layer BiLSTM, re-weighted by an
8-head self-attention gate normalised with DMIN, and reduced to one 1024-d bag feature by a Conv1d
over the instance axis.
"""

from __future__ import annotations

import logging
import os

import torch
from einops import rearrange
from torch import Tensor, nn
from torchvision.models.video import R3D_18_Weights, r3d_18

from hdf_lightning.models.weights import LoadReport, PublishedWeights, load_checked, read_weights

log = logging.getLogger(__name__)

_BACKBONE_DIM = 512
_LSTM_HIDDEN = 512
_HEADS = 8

R3D18_WEIGHTS: dict[str, PublishedWeights] = {
    "kinetics400": PublishedWeights(
        url=R3D_18_Weights.KINETICS400_V1.url,
        description="torchvision R3D_18_Weights.KINETICS400_V1",
        check_hash=True,
    ),
}
"""Published weights of M3DFEL's r3d_18 backbone by ``weights`` name: torchvision's Kinetics-400
state dict, whose file name carries the prefix of its SHA-256 (checked on download)."""


class DMIN(nn.Module):
    """Dynamic multi-instance normalisation (M3DFEL).

    Mixes per-feature statistics over the instance axis ("instance" mean/variance, unbiased) with
    their average over the features ("layer" statistics) using softmax-ed learnable weights, then
    applies a per-feature affine map.

    Args:
        num_features: feature width ``D``.
        eps: added to the variance.

    Shape: ``(B, N, D)`` -> ``(B, N, D)``, ``N >= 2`` instances.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, num_features, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_features, 1))
        self.mean_weight = nn.Parameter(torch.ones(2))
        self.var_weight = nn.Parameter(torch.ones(2))

    def forward(self, x: Tensor) -> Tensor:
        x = rearrange(x, "b n d -> b d n")
        mean_in = x.mean(dim=-1, keepdim=True)  # (B, D, 1), over instances
        var_in = x.var(dim=-1, keepdim=True)
        mean_ln = mean_in.mean(dim=1, keepdim=True)  # (B, 1, 1), over features
        var_ln = (var_in + mean_in**2).mean(dim=1, keepdim=True) - mean_ln**2
        mean_w = torch.softmax(self.mean_weight, dim=0)
        var_w = torch.softmax(self.var_weight, dim=0)
        mean = mean_w[0] * mean_in + mean_w[1] * mean_ln
        var = var_w[0] * var_in + var_w[1] * var_ln
        x = (x - mean) / (var + self.eps).sqrt()
        x = x * self.weight + self.bias
        return rearrange(x, "b d n -> b n d")


class M3DFEL(nn.Module):
    """M3DFEL: r3d_18 instances + BiLSTM + attention/DMIN gate + Conv1d bag pooling.

    Args:
        num_classes: number of output classes.
        num_frames: frames per clip ``T``.
        instance_length: frames per instance (4 in M3DFEL); must divide ``num_frames``.
        weights: ``kinetics400`` (:data:`R3D18_WEIGHTS`, torchvision's Kinetics-400 weights,
            downloaded once into torch.hub's cache) or the local path of a torchvision ``r3d_18``
            state dict, loaded into the backbone with strict key/shape checks; its ``fc`` is
            skipped (see ``load_report``).

    Attributes:
        num_classes, num_frames, feature_dim (1024), bag_size (instances per clip), load_report.

    Shape:
        input ``(B, 3, num_frames, H, W)``; output ``(logits (B, num_classes), feature (B, 1024))``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 7,
        num_frames: int = 16,
        instance_length: int = 4,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"M3DFEL expects num_classes >= 1, got {num_classes}")
        if instance_length < 1 or num_frames % instance_length or num_frames < 2 * instance_length:
            raise ValueError(
                "M3DFEL expects num_frames to be a multiple (>= 2) of instance_length, got "
                f"num_frames={num_frames}, instance_length={instance_length}"
            )
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.instance_length = instance_length
        self.bag_size = num_frames // instance_length
        self.feature_dim = 2 * _LSTM_HIDDEN

        backbone = r3d_18(weights=None)
        backbone.fc = nn.Identity()  # (B', 3, L, H, W) -> (B', 512) after the global pool
        self.backbone = backbone
        self.lstm = nn.LSTM(
            _BACKBONE_DIM, _LSTM_HIDDEN, num_layers=2, batch_first=True, bidirectional=True
        )
        self.heads = _HEADS
        self.to_qkv = nn.Linear(self.feature_dim, 3 * self.feature_dim, bias=False)
        self.norm = DMIN(self.feature_dim)
        self.pwconv = nn.Conv1d(self.bag_size, 1, kernel_size=3, padding=1)
        self.fc = nn.Linear(self.feature_dim, num_classes)

        self.load_report: LoadReport | None = None
        if weights is not None:
            self.load_weights(weights)

    def load_weights(self, weights: str) -> LoadReport:
        """Load torchvision r3d_18 weights into the backbone (see :func:`load_r3d18_weights`)."""
        self.load_report = load_r3d18_weights(self, weights)
        return self.load_report

    def aggregate(self, instances: Tensor) -> Tensor:
        """Multi-instance aggregation of M3DFEL.

        Args:
            instances: instance features ``(B, N, 512)``.

        Returns:
            The gated sequence ``(B, N, 1024)``.
        """
        ori, _ = self.lstm(instances)  # (B, N, 1024)
        q, k, v = (
            rearrange(t, "b n (h d) -> b h n d", h=self.heads)
            for t in self.to_qkv(ori).chunk(3, dim=-1)
        )
        scale = q.shape[-1] ** -0.5
        attn = torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1)  # (B, h, N, N)
        attended = rearrange(attn @ v, "b h n d -> b n (h d)")
        return ori * torch.sigmoid(self.norm(attended))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Classify clips.

        Args:
            x: clips ``(B, 3, num_frames, H, W)``.

        Returns:
            ``(logits (B, num_classes), feature (B, 1024))``; no softmax.
        """
        if x.ndim != 5 or x.shape[1] != 3 or x.shape[2] != self.num_frames:
            raise ValueError(
                f"M3DFEL expects clips (B, 3, {self.num_frames}, H, W), got {tuple(x.shape)}"
            )
        batch = x.shape[0]
        instances = rearrange(x, "b c (n l) h w -> (b n) c l h w", n=self.bag_size)
        encoded = self.backbone(instances).flatten(1)  # (B·N, 512)
        encoded = rearrange(encoded, "(b n) d -> b n d", b=batch)
        gated = self.aggregate(encoded)  # (B, N, 1024)
        feature = self.pwconv(gated).flatten(1)  # Conv1d over instances: (B, 1, 1024) -> (B, 1024)
        return self.fc(feature), feature


def load_r3d18_weights(model: M3DFEL, source: str | os.PathLike[str]) -> LoadReport:
    """Load torchvision ``r3d_18`` weights into M3DFEL's backbone (``fc`` skipped).

    Args:
        model: an :class:`~hdf_lightning.models.M3DFEL`.
        source: a name of :data:`R3D18_WEIGHTS` (``kinetics400``, from torch.hub's cache,
            downloaded and hash-checked on first use) or a local file holding
            ``torchvision.models.video.r3d_18().state_dict()`` (keys ``stem.*``, ``layer1..4.*``,
            ``fc.*``), optionally wrapped.

    Returns:
        The :class:`LoadReport`; every layer outside the backbone keeps its init.
    """
    state_dict, file = read_weights(source, R3D18_WEIGHTS, network=type(model).__name__)
    return load_checked(
        model,
        state_dict,
        source=str(file),
        rename=lambda key: key if key.startswith("backbone.") else f"backbone.{key}",
        skip=lambda key: key.startswith("backbone.fc."),
        keep_init=lambda key: not key.startswith("backbone."),
    )
