"""DAM: the time-frequency distributional attention module of HDF (docs/method.md §2).

DAM re-weights a video feature map with two gates computed in parallel and fused:

* a **temporal gate** ``g[b, t]`` from channel-binned average/max statistics, their dispersion and
  bin-to-bin differences, a linear map over time and a single-head self-attention over the T frames;
* a **frequency gate** ``σ(m)[b, h, w]`` from a sliding 7x7 DCT of the time-averaged, channel-summed
  map, a learnable sign perturbation ("DRO adversarial branch"), an adaptive dynamic tanh and a
  49 -> 1 7x7 convolution.

``out = (w_t · X ⊙ (1 + g) + w_s · X ⊙ (1 + σ(m))) / 2``.

The gates are small tensors (``(B, T, K)`` and ``(B, 49, H, W)``), so they are always computed in
float32 (autocast is suspended for them) and only the final per-position scale is cast back to the
input's dtype. The module compiles with ``torch.compile`` and exports to ONNX with both exporters:
the TorchScript-based one (``torch.onnx.export(..., dynamo=False)``, opset 17) and the
``torch.export``-based one (``dynamo=True``, opset 18, its lowest); onnxruntime reproduces the
PyTorch output to float32 precision. The shapes are static in the exported graph (C and T are fixed
by construction; export with the H, W and batch size you will use).

The two gates can be read for inspection: set ``record_maps = True`` on a DAM (or call
:func:`dam_maps` on a whole network) and the next forward stores them, detached, in
``last_maps``. Recording never changes the output.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from hdf_lightning.layers.dct import DCT_SIZE, NUM_FREQUENCIES, dct_1d, dct_basis_7x7

_EPS = 1e-6
_WASSERSTEIN_REG = 0.05
_NOISE_STRENGTH = 0.1


def channel_bins(channels: int, bins: int) -> list[tuple[int, int]]:
    """Channel ranges of adaptive pooling of ``channels`` values into ``bins`` bins.

    Bin ``k`` covers ``[floor(k C / K), ceil((k + 1) C / K))``, exactly as ``nn.AdaptiveAvgPool*``
    splits an axis (bins overlap when ``C`` is not a multiple of ``K``, and repeat when ``C < K``).

    Returns:
        ``K`` half-open ``(start, stop)`` ranges.
    """
    return [((k * channels) // bins, -((-(k + 1) * channels) // bins)) for k in range(bins)]


class DAMMaps(NamedTuple):
    """The two gates of one DAM forward, detached float32 tensors.

    Attributes:
        temporal: the temporal gate ``g`` ``(B, T)`` in (0, 1), one weight per frame.
        frequency: the frequency attention ``σ(m)`` ``(B, H, W)`` in (0, 1), one weight per position
            of the feature map (shared by all frames and channels).
    """

    temporal: Tensor
    frequency: Tensor


class DAM(nn.Module):
    """Time-frequency distributional attention (HDF, ACM MM 2025), shape preserving.

    Args:
        channels: number of input channels ``C``.
        num_frames: number of frames ``T`` of the input; also the number ``K`` of channel bins of
            the temporal branch (the released module ties the two). The parameter count,
            ``49·49 + 6K² + 3K + 3·49 + 99 + 6`` (4,237 for K = 16), does not depend on ``C``.

    Shape:
        input ``(B, C, T, H, W)`` with ``C == channels``, ``T == num_frames``, any ``H, W >= 1``;
        output: same shape and dtype as the input.

    At initialisation the output is about ``0.82 · x`` on standard normal input; DAM is not an
    identity at init, the following BatchNorm absorbs the scale.

    Attributes:
        record_maps: when True, every forward stores its gates in ``last_maps`` (False by default).
        last_maps: the :class:`DAMMaps` of the last forward run with ``record_maps``, else None.
    """

    dct_rows: Tensor
    dct_cols: Tensor
    bin_weights: Tensor
    bin_index: Tensor

    def __init__(self, channels: int, num_frames: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"DAM expects channels >= 1, got {channels}")
        if num_frames < 1:
            raise ValueError(f"DAM expects num_frames >= 1, got {num_frames}")
        self.channels = channels
        self.num_frames = num_frames
        k = num_frames

        # Temporal branch (steps 1-8 of docs/method.md §2).
        self.fuse_alpha = nn.Parameter(torch.tensor([0.5]))  # α: weight of the average map
        self.fuse_beta = nn.Parameter(torch.tensor([0.5]))  # β: weight of the max map
        self.gamma = nn.Parameter(torch.ones(k, k))  # Γ[t, k]
        self.delta = nn.Parameter(torch.zeros(k, k))  # Δ[t, k]
        self.fc_t = nn.Linear(k, k, bias=False)
        self.attn_q = nn.Linear(k, k)
        self.attn_k = nn.Linear(k, k)
        self.attn_v = nn.Linear(k, k)

        # Frequency branch (steps 9-14).
        # The 49 filters B_k are applied through their separable factors: a 1x7 pass with C[v]
        # along W (7 channels), then 7x1 passes with C[u] along H in 7 groups (k = u + 7 v).
        # The 7x7 basis itself is the `dct_basis` property (derived, never saved).
        cos1d = dct_1d(DCT_SIZE)  # (7 frequencies, 7 positions)
        self.register_buffer("dct_cols", cos1d[:, None, None, :].clone(), persistent=False)
        self.register_buffer(
            "dct_rows", cos1d.repeat(DCT_SIZE, 1)[:, None, :, None].clone(), persistent=False
        )  # (49, 1, 7, 1)
        self.noise = nn.Parameter(torch.randn(1, NUM_FREQUENCIES, 1, 1) * _NOISE_STRENGTH)  # ν
        self.adv_alpha = nn.Parameter(torch.ones(1, NUM_FREQUENCIES, 1, 1))  # a
        self.adv_beta = nn.Parameter(torch.zeros(1, NUM_FREQUENCIES, 1, 1))  # b
        self.mix_dct = nn.Parameter(torch.tensor([0.5]))  # al
        self.mix_adv = nn.Parameter(torch.tensor([0.5]))  # be
        self.tanh_alpha = nn.Parameter(torch.tensor([0.5]))  # α_d
        self.tanh_gamma = nn.Parameter(torch.ones(NUM_FREQUENCIES))
        self.tanh_beta = nn.Parameter(torch.zeros(NUM_FREQUENCIES))
        self.freq_conv = nn.Conv2d(
            NUM_FREQUENCIES, 1, kernel_size=DCT_SIZE, padding=DCT_SIZE // 2, bias=False
        )

        # Fusion (step 15).
        self.t_weight = nn.Parameter(torch.tensor([0.8]))
        self.s_weight = nn.Parameter(torch.tensor([0.3]))

        # Adaptive channel pooling into K bins as a (C, K) averaging matrix and a (K, L) gather
        # index for the max (short bins repeat their last channel, which leaves the max unchanged).
        bins = channel_bins(channels, k)
        longest = max(stop - start for start, stop in bins)
        bin_weights = torch.zeros(channels, k)
        bin_index = torch.zeros(k, longest, dtype=torch.long)
        for b, (start, stop) in enumerate(bins):
            bin_weights[start:stop, b] = 1.0 / (stop - start)
            bin_index[b] = torch.arange(longest).clamp(max=stop - start - 1) + start
        self.register_buffer("bin_weights", bin_weights, persistent=False)
        self.register_buffer("bin_index", bin_index, persistent=False)

        self.record_maps = False
        self.last_maps: DAMMaps | None = None

    @property
    def dct_basis(self) -> Tensor:
        """The 49 filters ``B_k``, a conv2d weight ``(49, 1, 7, 7)`` in the buffers' dtype, device.

        :meth:`forward` applies the same filters through their separable 1-D factors, so the 2-D
        basis is derived on demand (from :func:`~hdf_lightning.layers.dct.dct_basis_7x7`) rather
        than stored: it is neither a buffer nor a state-dict entry.
        """
        reference = self.dct_cols
        basis = dct_basis_7x7(torch.float64).to(device=reference.device, dtype=reference.dtype)
        return basis.unsqueeze(1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_frames={self.num_frames}"

    def forward(self, x: Tensor) -> Tensor:
        """Re-weight ``x``.

        Args:
            x: features ``(B, C, T, H, W)``.

        Returns:
            ``(B, C, T, H, W)``, the dtype of ``x``.
        """
        self._check_input(x)
        with _float32_region(x):
            scale = self.scale(x)  # (B, 1, T, H, W), float32
        return x * scale.to(x.dtype)

    def scale(self, x: Tensor) -> Tensor:
        """The fused per-position factor ``(w_t (1 + g) + w_s (1 + σ(m))) / 2``.

        Args:
            x: features ``(B, C, T, H, W)`` (shape not checked here).

        Returns:
            float32 factor ``(B, 1, T, H, W)``; ``DAM(x) == x * scale(x)``.
        """
        t_gate = self.temporal_gate(x)  # (B, T)
        s_gate = self.frequency_gate(x)  # (B, H, W)
        if self.record_maps:
            self.last_maps = DAMMaps(t_gate.detach(), s_gate.detach())
        t_term = self.t_weight.float() * (1.0 + rearrange(t_gate, "b t -> b 1 t 1 1"))
        s_term = self.s_weight.float() * (1.0 + rearrange(s_gate, "b h w -> b 1 1 h w"))
        return (t_term + s_term) / 2

    def temporal_gate(self, x: Tensor) -> Tensor:
        """Temporal branch: ``g = σ(mean_k SelfAttn(fc_t(I)))`` (docs/method.md §2 steps 1-8).

        Args:
            x: features ``(B, C, T, H, W)``.

        Returns:
            float32 gate ``(B, T)`` in (0, 1).
        """
        k = self.num_frames
        # Pool H, W first, then the channels into K bins: equal to AdaptiveAvg/MaxPool3d((K, 1, 1))
        # of the (B, T, C, H, W) view.
        hw_mean = rearrange(x.mean(dim=(3, 4), dtype=torch.float32), "b c t -> b t c")
        hw_max = rearrange(x.amax(dim=(3, 4)).float(), "b c t -> b t c")
        avg = hw_mean @ self.bin_weights.float()  # A: (B, T, K)
        mx = hw_max[..., self.bin_index].amax(dim=-1)  # M: (B, T, K, L) -> (B, T, K)

        centred = avg - avg.mean(dim=-1, keepdim=True)
        dispersion = torch.linalg.vector_norm(centred, dim=-1, keepdim=True)  # W: (B, T, 1)
        fused = self.fuse_alpha.float() * avg + self.fuse_beta.float() * mx  # F
        diff = F.pad((avg[..., 1:] - avg[..., :-1]).abs(), (1, 0))  # D: (B, T, K), D[..., 0] = 0
        interaction = torch.sigmoid(
            self.gamma.float() * fused + self.delta.float() * dispersion - diff
        )  # I: (B, T, K)

        # Linear over time: U[b, s, k] = Σ_t Wt[s, t] I[b, t, k].
        mixed = torch.einsum("st,btk->bsk", self.fc_t.weight.float(), interaction)
        q = F.linear(mixed, self.attn_q.weight.float(), self.attn_q.bias.float())
        key = F.linear(mixed, self.attn_k.weight.float(), self.attn_k.bias.float())
        v = F.linear(mixed, self.attn_v.weight.float(), self.attn_v.bias.float())
        attn = torch.softmax(q @ key.transpose(1, 2) / math.sqrt(k), dim=-1)  # (B, T, T)
        return torch.sigmoid((attn @ v).mean(dim=-1))  # (B, T)

    def frequency_gate(self, x: Tensor) -> Tensor:
        """Frequency branch: ``σ(conv(ADyT(mix(DCT, DCT + P))))`` (docs/method.md §2 steps 9-14).

        The DCT of the time-averaged map with the basis repeated over the C input channels equals
        the single-channel DCT of the channel sum, which is what is computed.

        Args:
            x: features ``(B, C, T, H, W)``.

        Returns:
            float32 gate ``(B, H, W)`` in (0, 1).
        """
        t = x.shape[2]
        summed = x.sum(dim=(1, 2), dtype=torch.float32) / t  # Σ_c mean_t X: (B, H, W)
        pad = DCT_SIZE // 2
        # conv2d with the (49, 1, 7, 7) basis, done separably (4x cheaper at 28x28, same values).
        along_w = F.conv2d(summed.unsqueeze(1), self.dct_cols.float(), padding=(0, pad))
        freq = F.conv2d(
            along_w, self.dct_rows.float(), padding=(pad, 0), groups=DCT_SIZE
        )  # Fq: (B, 49, H, W)

        centred = freq - freq.mean(dim=(2, 3), keepdim=True)
        spread = torch.linalg.vector_norm(centred, dim=(2, 3), keepdim=True)  # Wf: (B, 49, 1, 1)
        # P = (ν a + 0.05 b Wf) ⊙ sign(Fq) and F' = (al Fq + be (Fq + P)) / 2
        #   = ((al + be) / 2) Fq + (be / 2) (ν a + 0.05 b Wf) ⊙ sign(Fq),
        # with the per-frequency factors formed on the small (B, 49, 1, 1) tensors.
        mix_dct, mix_adv = self.mix_dct.float(), self.mix_adv.float()
        push = self.noise.float() * self.adv_alpha.float() + _WASSERSTEIN_REG * (
            self.adv_beta.float() * spread
        )  # (B, 49, 1, 1)
        mixed = (mix_dct + mix_adv) / 2 * freq + (mix_adv / 2 * push) * torch.sign(freq)

        deviation = mixed - mixed.mean(dim=1, keepdim=True)
        variance = deviation.square().sum(dim=1, keepdim=True) / (NUM_FREQUENCIES - 1)  # unbiased
        std = torch.sqrt(variance + _EPS)  # (B, 1, H, W)
        squashed = torch.tanh(self.tanh_alpha.float() / (std + _EPS) * mixed)
        normed = torch.addcmul(
            rearrange(self.tanh_beta.float(), "n -> 1 n 1 1"),
            squashed,
            rearrange(self.tanh_gamma.float(), "n -> 1 n 1 1"),
        )  # tanh(...) ⊙ γ + β
        normed = normed.contiguous(memory_format=torch.channels_last)  # faster 49 -> 1 conv
        logit = F.conv2d(normed, self.freq_conv.weight.float(), padding=pad)
        return torch.sigmoid(logit[:, 0])  # (B, H, W)

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 5:
            raise ValueError(
                f"DAM expects a (B, C, T, H, W) tensor, got {x.ndim} dimensions {tuple(x.shape)}"
            )
        if x.shape[1] != self.channels:
            raise ValueError(
                f"DAM was built for channels={self.channels}, got C={x.shape[1]} "
                f"in input of shape {tuple(x.shape)}"
            )
        if x.shape[2] != self.num_frames:
            raise ValueError(
                f"DAM was built for num_frames={self.num_frames}, got T={x.shape[2]} "
                f"in input of shape {tuple(x.shape)} (expected (B, C, T, H, W))"
            )


@torch.no_grad()
def dam_maps(model: nn.Module, *inputs: Any, **kwargs: Any) -> dict[str, DAMMaps]:
    """Run ``model(*inputs, **kwargs)`` once and return the gates of each DAM inside it.

    The model runs in eval mode without gradients (its mode and each DAM's ``record_maps`` are
    restored afterwards, also on an exception); the outputs are not changed by the recording.

    Args:
        model: any module containing DAMs (HDFNet, a network after :func:`insert_dam`, a DAM).
        inputs, kwargs: the arguments of ``model``'s forward, e.g. a clip batch ``(B, 3, T, H, W)``.

    Returns:
        ``{module name: DAMMaps}`` in the order of ``model.named_modules()``, for every DAM that ran
        (``""`` names ``model`` itself when it is a DAM).

    Raises:
        ValueError: ``model`` contains no DAM.
    """
    dams = {name: m for name, m in model.named_modules() if isinstance(m, DAM)}
    if not dams:
        raise ValueError(f"dam_maps: {type(model).__name__} contains no DAM")
    was_training = model.training
    recording = {name: dam.record_maps for name, dam in dams.items()}
    try:
        model.eval()
        for dam in dams.values():
            dam.record_maps, dam.last_maps = True, None
        model(*inputs, **kwargs)
        return {name: dam.last_maps for name, dam in dams.items() if dam.last_maps is not None}
    finally:
        model.train(was_training)
        for name, dam in dams.items():
            dam.record_maps = recording[name]
            if not dam.record_maps:
                dam.last_maps = None


def _float32_region(x: Tensor) -> contextlib.AbstractContextManager[object]:
    """Suspend autocast (when active) so that the small gate tensors stay in float32."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.autocast(device_type=x.device.type, enabled=False)
    return contextlib.nullcontext()
