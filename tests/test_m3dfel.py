"""M3DFEL baseline (docs/method.md §6) and r3d_18 weight loading."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.video import r3d_18

from hdf_lightning.models import DMIN, M3DFEL


@pytest.fixture(scope="module")
def model() -> M3DFEL:
    torch.manual_seed(0)
    return M3DFEL(num_classes=7, num_frames=8, instance_length=4)


@pytest.mark.parametrize("batch", [1, 4])
def test_forward_backward(model: M3DFEL, batch: int) -> None:
    model.zero_grad()
    x = torch.randn(batch, 3, 8, 16, 16)
    logits, feature = model(x)
    assert logits.shape == (batch, 7)
    assert feature.shape == (batch, 1024)
    (logits.sum() + feature.mean()).backward()
    for name in ("backbone.stem.0.weight", "lstm.weight_ih_l0", "to_qkv.weight", "pwconv.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_paper_defaults() -> None:
    m = M3DFEL()
    assert m.bag_size == 4 and m.num_frames == 16 and m.feature_dim == 1024
    assert m.pwconv.in_channels == 4
    assert m.fc.out_features == 7


def test_r3d18_weights_load_from_a_local_file(tmp_path) -> None:
    torch.manual_seed(1)
    reference = r3d_18()
    with torch.no_grad():
        for name, buf in reference.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                buf.uniform_(0.5, 1.5)
    path = tmp_path / "r3d_18.pth"
    torch.save(reference.state_dict(), path)
    m = M3DFEL(num_frames=8, weights=str(path))
    report = m.load_report
    assert report is not None
    assert set(report.skipped) == {"fc.weight", "fc.bias"}
    assert {"fc.weight", "lstm.weight_ih_l0", "pwconv.weight"} <= set(report.kept_init)
    assert len(report.loaded) == len(reference.state_dict()) - 2
    loaded = m.backbone.state_dict()
    for key, value in reference.state_dict().items():
        if not key.startswith("fc."):
            torch.testing.assert_close(loaded[key], value, msg=key)


def test_incomplete_r3d18_file_is_an_error(tmp_path) -> None:
    state = r3d_18().state_dict()
    del state["layer2.0.conv1.0.weight"]
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing.*backbone\.layer2\.0\.conv1\.0\.weight"):
        M3DFEL(num_frames=8, weights=str(path))


def test_invalid_arguments_and_inputs(model: M3DFEL) -> None:
    with pytest.raises(ValueError, match="multiple"):
        M3DFEL(num_frames=10, instance_length=4)
    with pytest.raises(ValueError, match=r"\(B, 3, 8, H, W\)"):
        model(torch.randn(1, 3, 16, 16, 16))


def test_dmin_with_instance_statistics_standardises_over_instances() -> None:
    norm = DMIN(6)
    with torch.no_grad():
        norm.mean_weight.copy_(torch.tensor([30.0, -30.0]))
        norm.var_weight.copy_(torch.tensor([30.0, -30.0]))
    x = 3.0 + 2.0 * torch.randn(2, 5, 6)  # (B, N, D)
    out = norm(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(2, 6), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(dim=1), torch.ones(2, 6), atol=1e-3, rtol=0)


def test_dmin_with_layer_statistics_uses_one_mean_per_sample() -> None:
    norm = DMIN(6)
    with torch.no_grad():
        norm.mean_weight.copy_(torch.tensor([-30.0, 30.0]))
        norm.var_weight.copy_(torch.tensor([-30.0, 30.0]))
    x = torch.randn(2, 5, 6)
    out = norm(x)
    expected = (x - x.mean(dim=(1, 2), keepdim=True)) / (
        x.var(dim=(1, 2), unbiased=False, keepdim=True) + 1e-5
    ).sqrt()
    # The layer variance mixes unbiased instance variances: compare up to that factor.
    ratio = (out / expected).flatten(1)
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4, rtol=1e-4)
