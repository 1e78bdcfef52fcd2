"""DAM (docs/method.md §2) and its 7x7 DCT basis."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from hdf_lightning.layers import DAM, DAMMaps, channel_bins, dam_maps, dct_basis_7x7, insert_dam


def reference_dam(dam: DAM, x: Tensor) -> Tensor:
    """docs/method.md §2 written step by step in the released layout, with DAM's parameters.

    Uses the literal operations of the spec: adaptive 3-D pooling of the (B, T, C, H, W) view,
    the DCT basis repeated over the C input channels, and the two re-weighted copies of X.
    """
    k = dam.num_frames
    xt = rearrange(x, "b c t h w -> b t c h w")
    avg = nn.AdaptiveAvgPool3d((k, 1, 1))(xt)[..., 0, 0]  # (B, T, K)
    mx = nn.AdaptiveMaxPool3d((k, 1, 1))(xt)[..., 0, 0]
    dispersion = torch.sqrt(((avg - avg.mean(dim=2, keepdim=True)) ** 2).sum(dim=2, keepdim=True))
    fused = dam.fuse_alpha * avg + dam.fuse_beta * mx
    diff = torch.zeros_like(avg)
    diff[:, :, 1:] = (avg[:, :, 1:] - avg[:, :, :-1]).abs()
    inter = torch.sigmoid(dam.gamma * fused + dam.delta * dispersion - diff)
    u = dam.fc_t(inter.transpose(1, 2)).transpose(1, 2)  # linear over t
    q, kk, v = dam.attn_q(u), dam.attn_k(u), dam.attn_v(u)
    attended = torch.softmax(q @ kk.transpose(1, 2) / math.sqrt(k), dim=-1) @ v
    gate_t = torch.sigmoid(attended.mean(dim=2))[:, :, None, None, None]
    x_t = xt * gate_t + xt

    channels = x.shape[1]
    weight = dct_basis_7x7().unsqueeze(1).repeat(1, channels, 1, 1)  # (49, C, 7, 7)
    freq = F.conv2d(xt.mean(dim=1), weight, torch.zeros(49), stride=1, padding=3)
    spread = torch.sqrt(((freq - freq.mean(dim=(2, 3), keepdim=True)) ** 2).sum(dim=(2, 3)))
    spread = spread[:, :, None, None]
    sign = torch.sign(freq)
    adv = freq + dam.noise * dam.adv_alpha * sign + 0.05 * (dam.adv_beta * spread) * sign
    mixed = (dam.mix_dct * freq + dam.mix_adv * adv) / 2
    std = torch.sqrt(mixed.var(dim=1, keepdim=True) + 1e-6)
    y = torch.tanh(dam.tanh_alpha / (std + 1e-6) * mixed)
    y = y * dam.tanh_gamma[:, None, None] + dam.tanh_beta[:, None, None]
    gate_s = torch.sigmoid(dam.freq_conv(y)).unsqueeze(1)  # (B, 1, 1, H, W)
    x_s = xt * gate_s + xt
    out = (dam.t_weight * x_t + dam.s_weight * x_s) / 2
    return rearrange(out, "b t c h w -> b c t h w")


def perturb_(module: nn.Module, seed: int = 0) -> None:
    """Move every parameter off its initial value (so zero-initialised terms matter)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("channels", [1, 24, 96, 192])
def test_parameter_count_is_4237_for_16_frames(channels: int) -> None:
    dam = DAM(channels, 16)
    assert sum(p.numel() for p in dam.parameters()) == 4237


@pytest.mark.parametrize("k", [2, 4, 8])
def test_parameter_count_formula(k: int) -> None:
    expected = 49 * 49 + 6 * k * k + 3 * k + 3 * 49 + 99 + 6
    assert sum(p.numel() for p in DAM(8, k).parameters()) == expected


@pytest.mark.parametrize(
    "shape", [(24, 16, 28, 28), (5, 4, 3, 3), (7, 4, 9, 5), (192, 16, 4, 4), (3, 2, 1, 1)]
)
def test_output_shape_equals_input_shape(shape: tuple[int, int, int, int]) -> None:
    c, t, h, w = shape
    x = torch.randn(2, c, t, h, w)
    out = DAM(c, t)(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("shape", [(20, 8, 9, 7), (10, 16, 5, 6), (3, 4, 8, 8), (32, 4, 12, 12)])
def test_matches_the_step_by_step_reference(shape: tuple[int, int, int, int]) -> None:
    c, t, h, w = shape
    torch.manual_seed(1)
    dam = DAM(c, t)
    perturb_(dam)
    x = torch.randn(3, c, t, h, w)
    torch.testing.assert_close(dam(x), reference_dam(dam, x), rtol=1e-4, atol=1e-5)


def test_channel_bins_match_adaptive_pooling() -> None:
    # C = 10 into K = 4 bins: [0, 3), [2, 5), [5, 8), [7, 10) (overlapping, as AdaptiveAvgPool).
    assert channel_bins(10, 4) == [(0, 3), (2, 5), (5, 8), (7, 10)]
    assert channel_bins(2, 4) == [(0, 1), (0, 1), (1, 2), (1, 2)]
    x = torch.arange(10.0).reshape(1, 10, 1)
    pooled = F.adaptive_avg_pool1d(x.transpose(1, 2), 4).flatten()
    expected = torch.tensor([sum(range(a, b)) / (b - a) for a, b in channel_bins(10, 4)])
    torch.testing.assert_close(pooled, expected)


def test_every_parameter_receives_a_real_gradient_except_the_key_bias() -> None:
    # softmax(q kᵀ) is invariant to the key bias (it adds q·b to a whole row), so the exact gradient
    # of attn_k.bias is zero and only rounding noise reaches it; every other parameter learns.
    torch.manual_seed(0)
    dam = DAM(16, 8)
    perturb_(dam)
    x = torch.randn(2, 16, 8, 10, 10)
    (dam(x) * torch.randn_like(x)).sum().backward()
    grads = {name: p.grad for name, p in dam.named_parameters()}
    assert all(g is not None for g in grads.values())
    key_bias = grads.pop("attn_k.bias")
    assert key_bias is not None
    largest = max(float(g.abs().max()) for g in grads.values() if g is not None)
    assert float(key_bias.abs().max()) < 1e-6 * largest
    for name, g in grads.items():
        assert g is not None
        assert float(g.abs().max()) > 1e-4 * largest, f"{name} got no real gradient"


def test_output_is_about_082_of_the_input_at_init() -> None:
    torch.manual_seed(0)
    dam = DAM(48, 16)
    x = torch.randn(4, 48, 16, 14, 14)
    out = dam(x)
    ratio = (out.norm() / x.norm()).item()
    assert ratio == pytest.approx(0.82, abs=0.03)


def test_wrong_number_of_frames_raises_value_error() -> None:
    dam = DAM(8, 16)
    with pytest.raises(ValueError, match=r"num_frames=16.*T=8"):
        dam(torch.randn(1, 8, 8, 7, 7))


def test_wrong_channels_or_rank_raises_value_error() -> None:
    dam = DAM(8, 4)
    with pytest.raises(ValueError, match=r"channels=8.*C=6"):
        dam(torch.randn(1, 6, 4, 7, 7))
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        dam(torch.randn(8, 4, 7, 7))
    with pytest.raises(ValueError, match="num_frames >= 1"):
        DAM(8, 0)


def test_dct_basis_is_orthonormal_with_known_entries() -> None:
    basis = dct_basis_7x7(torch.float64)
    assert basis.shape == (49, 7, 7)
    flat = basis.reshape(49, 49)
    torch.testing.assert_close(flat @ flat.T, torch.eye(49, dtype=torch.float64))
    torch.testing.assert_close(basis[0], torch.full((7, 7), 1 / 7, dtype=torch.float64))
    # Index convention k = u + 7 v, u the row (H) frequency: B_1 = c(1) c(0) cos(π(2i+1)/14),
    # so B_1[0, 0] = sqrt(2/7) sqrt(1/7) cos(π/14) = 0.19697.
    assert basis[1, 0, 0].item() == pytest.approx(0.19697, abs=1e-5)
    assert torch.allclose(basis[1], basis[1][:, :1].expand(7, 7))  # constant along W (v = 0)


def test_buffers_follow_to_and_are_not_saved() -> None:
    dam = DAM(8, 4)
    keys = set(dam.state_dict())
    assert not {"dct_basis", "dct_rows", "dct_cols", "bin_weights", "bin_index"} & keys
    assert "dct_basis" not in dict(dam.named_buffers())  # derived on demand, never stored
    dam = dam.to(torch.float64)
    assert dam.dct_basis.dtype == torch.float64
    assert dam.dct_basis.shape == (49, 1, 7, 7)
    torch.testing.assert_close(dam.dct_basis[:, 0], dct_basis_7x7(torch.float64))
    out = dam(torch.randn(1, 8, 4, 7, 7, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert dam.to("meta").dct_basis.device.type == "meta"  # devices follow too


def test_separable_factors_apply_the_dct_basis() -> None:
    # forward applies dct_cols then dct_rows; together they are the conv with the 7x7 basis
    torch.manual_seed(0)
    dam = DAM(4, 2).to(torch.float64)
    image = torch.randn(2, 1, 9, 11, dtype=torch.float64)
    along_w = F.conv2d(image, dam.dct_cols, padding=(0, 3))
    separable = F.conv2d(along_w, dam.dct_rows, padding=(3, 0), groups=7)
    # the factors and the basis are built in float32: they agree to float32's precision
    torch.testing.assert_close(
        separable, F.conv2d(image, dam.dct_basis, padding=3), rtol=1e-6, atol=1e-6
    )


def test_recorded_maps_are_the_gates_and_leave_the_output_unchanged() -> None:
    torch.manual_seed(0)
    dam = DAM(12, 4)
    perturb_(dam)
    x = torch.randn(3, 12, 4, 9, 8)
    plain = dam(x)
    assert dam.last_maps is None
    dam.record_maps = True
    recorded = dam(x)
    torch.testing.assert_close(recorded, plain, rtol=0, atol=0)
    maps = dam.last_maps
    assert isinstance(maps, DAMMaps)
    assert maps.temporal.shape == (3, 4) and maps.frequency.shape == (3, 9, 8)
    assert not maps.temporal.requires_grad and not maps.frequency.requires_grad
    assert bool(((maps.temporal > 0) & (maps.temporal < 1)).all())
    # out = x (w_t (1 + g) + w_s (1 + σ(m))) / 2, written from the recorded maps
    g = maps.temporal[:, None, :, None, None]
    s = maps.frequency[:, None, None]
    rebuilt = x * (dam.t_weight * (1 + g) + dam.s_weight * (1 + s)) / 2
    torch.testing.assert_close(rebuilt, plain, rtol=1e-5, atol=1e-6)
    # the temporal map is the frame weighting: input frames scaled alike get alike weights
    torch.testing.assert_close(maps.temporal, dam.temporal_gate(x))


def test_dam_maps_of_a_network_names_each_dam_and_restores_state() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv3d(3, 8, 3, padding=1), nn.Conv3d(8, 16, 3, stride=(2, 2, 2), padding=1)
    )
    clip = torch.randn(2, 3, 8, 12, 12)
    insert_dam(net, after=["0", "1"], example_input=clip)
    net.train()
    with torch.no_grad():
        expected = net.eval()(clip)
    net.train()
    maps = dam_maps(net, clip)
    assert list(maps) == ["0.dam", "1.dam"]
    assert maps["0.dam"].temporal.shape == (2, 8) and maps["0.dam"].frequency.shape == (2, 12, 12)
    assert maps["1.dam"].temporal.shape == (2, 4) and maps["1.dam"].frequency.shape == (2, 6, 6)
    assert net.training  # mode restored
    dams = [m for m in net.modules() if isinstance(m, DAM)]
    assert all(not d.record_maps and d.last_maps is None for d in dams)
    torch.testing.assert_close(net.eval()(clip), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="contains no DAM"):
        dam_maps(nn.Linear(2, 2), torch.zeros(1, 2))


def test_bf16_autocast_on_cpu() -> None:
    torch.manual_seed(0)
    dam = DAM(16, 8)
    x = torch.randn(2, 16, 8, 9, 9)
    expected = dam(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_fp32_in = dam(x)
        out_bf16_in = dam(x.bfloat16())
    assert out_fp32_in.dtype == torch.float32
    assert out_bf16_in.dtype == torch.bfloat16
    torch.testing.assert_close(out_fp32_in, expected)
    torch.testing.assert_close(out_bf16_in.float(), expected, rtol=2e-2, atol=2e-2)
    out_bf16_in.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in dam.parameters())


@pytest.mark.slow
def test_torch_compile_matches_eager() -> None:
    torch.manual_seed(0)
    dam = DAM(12, 4)
    x = torch.randn(2, 12, 4, 9, 9, requires_grad=True)
    compiled = torch.compile(dam)
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, dam(x), rtol=1e-4, atol=1e-5)
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning"
)
@pytest.mark.parametrize(("dynamo", "opset"), [(False, 17), (True, 18)], ids=["legacy", "dynamo"])
def test_onnx_export_matches_onnxruntime(tmp_path, dynamo: bool, opset: int) -> None:
    import onnxruntime as ort  # test dependencies (the "test" extra): fail, never skip

    torch.manual_seed(0)
    dam = DAM(12, 4).eval()
    perturb_(dam)
    x = torch.randn(2, 12, 4, 9, 9)
    path = tmp_path / "dam.onnx"
    torch.onnx.export(dam, (x,), str(path), opset_version=opset, dynamo=dynamo, input_names=["x"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = dam(x).numpy()
    assert got.shape == expected.shape
    assert abs(got - expected).max() < 1e-4
