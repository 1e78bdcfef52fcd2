"""HDFNet: X3D with DAMs after chosen stages (docs/method.md §1)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hdf_lightning.layers import DAM
from hdf_lightning.models import X3D, HDFNet

TINY = {"width_factor": 1.0, "depth_factor": 0.5, "head_dim": 32}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_paper_configuration_counts_and_shapes() -> None:
    model = HDFNet(num_classes=7, num_frames=16).eval()
    assert n_params(model) == 3_005_965
    assert n_params(model) - n_params(X3D(num_classes=7, num_frames=16)) == 4 * 4237
    assert [model.dams[str(s)].channels for s in (1, 2, 3, 4)] == [24, 48, 96, 192]
    with torch.no_grad():
        stages = model.forward_stages(torch.randn(1, 3, 16, 112, 112))
        logits, feature = model.head(stages[-1])
    assert [tuple(s.shape[1:]) for s in stages] == [
        (24, 16, 28, 28),
        (48, 16, 14, 14),
        (96, 16, 7, 7),
        (192, 16, 4, 4),
    ]
    assert logits.shape == (1, 7)
    assert feature.shape == (1, 2048)
    assert model.feature_dim == 2048 and model.num_classes == 7


def test_forward_contract_on_a_batch() -> None:
    model = HDFNet(num_classes=4, num_frames=8, **TINY).eval()
    logits, feature = model(torch.randn(3, 3, 8, 40, 40))
    assert logits.shape == (3, 4)
    assert feature.shape == (3, 32)


def test_no_dam_is_the_x3d_baseline() -> None:
    torch.manual_seed(0)
    baseline = X3D(num_frames=8, **TINY).eval()
    plain = HDFNet(num_frames=8, dam_stages=(), **TINY).eval()
    assert n_params(plain) == n_params(baseline)
    assert len(plain.dams) == 0
    plain.load_state_dict(baseline.state_dict())
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(plain(x)[0], baseline(x)[0])
    assert n_params(HDFNet(dam_stages=())) == 2_989_017


def test_dam_subsets() -> None:
    model = HDFNet(num_frames=4, dam_stages=(4, 2), **TINY)
    assert model.dam_stages == (2, 4)
    assert sorted(model.dams) == ["2", "4"]
    assert model.dams["2"].channels == model.stage_channels[1]
    assert n_params(model) == n_params(X3D(num_frames=4, **TINY)) + 2 * 4 * 4 * 6 + 2 * (
        2401 + 12 + 147 + 99 + 6
    )
    x = torch.randn(2, 3, 4, 64, 64)  # stage 4 is 2x2: a 1x1 map has no spatial spread
    logits, _ = model(x)
    logits.sum().backward()
    for name, p in model.dams.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("stages", [(0,), (5,), (1, 1)])
def test_invalid_dam_stages(stages: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="dam_stages"):
        HDFNet(dam_stages=stages, **TINY)


def test_wrong_clip_length_raises() -> None:
    model = HDFNet(num_frames=8, **TINY)
    with pytest.raises(ValueError, match=r"num_frames=8.*T=4"):
        model(torch.randn(1, 3, 4, 32, 32))


def test_x3d_weights_load_into_the_backbone_and_dams_keep_init(tmp_path) -> None:
    source = X3D(num_classes=400, num_frames=8, **TINY)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    path = tmp_path / "x3d.pt"
    torch.save({"model_state": source.state_dict()}, path)

    torch.manual_seed(3)
    model = HDFNet(num_classes=7, num_frames=8, weights=str(path), **TINY)
    torch.manual_seed(3)
    fresh = HDFNet(num_classes=7, num_frames=8, **TINY)

    report = model.load_report
    assert report is not None
    assert set(report.skipped) == {"head.proj.weight", "head.proj.bias"}
    dam_keys = {k for k in model.state_dict() if k.startswith("dams.")}
    assert dam_keys and dam_keys <= set(report.kept_init)
    torch.testing.assert_close(model.stem.conv_xy.weight, source.stem.conv_xy.weight)
    for (name, p), (_, q) in zip(
        model.dams.named_parameters(), fresh.dams.named_parameters(), strict=True
    ):
        torch.testing.assert_close(p, q, msg=name)
    assert isinstance(model.dams["1"], DAM)


def test_bf16_autocast_forward_backward_on_cpu() -> None:
    model = HDFNet(num_frames=4, **TINY)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, feature = model(torch.randn(2, 3, 4, 32, 32))
    assert torch.isfinite(logits.float()).all() and feature.shape == (2, 32)
    logits.float().sum().backward()
    dam_parameters = list(model.dams.parameters())
    assert dam_parameters
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in dam_parameters)


def test_hdfnet_takes_x3ds_arguments_with_x3ds_defaults() -> None:
    """HDFNet declares only its own arguments; X3D's reach it through ``**x3d``, visible to the
    config parser and to the checkpoint record."""
    from jsonargparse import ArgumentParser

    from hdf_lightning.imports import constructor_parameters
    from hdf_lightning.models import X3D

    ours, x3d = constructor_parameters(HDFNet), constructor_parameters(X3D)
    assert set(x3d) <= set(ours)
    assert all(ours[name].default == x3d[name].default for name in x3d)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(X3D, "net")
    flags = ["width_factor=0.5", "num_classes=5", "num_frames=4"]
    args = ["--net=hdf_lightning.models.HDFNet", *(f"--net.init_args.{f}" for f in flags)]
    cfg = parser.parse_args(args)
    assert (cfg.net.init_args.width_factor, cfg.net.init_args.num_classes) == (0.5, 5)
    net = HDFNet(num_classes=5, num_frames=4, width_factor=0.5, depth_factor=0.3, head_dim=32)
    assert (net.num_classes, net.num_frames, net.feature_dim) == (5, 4, 32)
    assert all(dam.num_frames == 4 for dam in net.dams.values())
