"""X3D: pytorchvideo parity, key map, local checkpoint loading, presets, tiny configurations."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from pytorchvideo.models.x3d import create_x3d  # test-only reference (the "test" extra)
from torch import nn

from hdf_lightning.models import X3D, load_x3d_weights, x3d_key_from_pytorchvideo, x3d_preset


def pytorchvideo_x3d(num_classes: int = 7, frames: int = 16, crop: int = 112, **kw) -> nn.Module:
    """pytorchvideo's X3D without the softmax, with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = create_x3d(
        input_channel=3,
        input_clip_length=frames,
        input_crop_size=crop,
        model_num_class=num_classes,
        head_activation=None,
        **kw,
    )
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=gen))
            elif name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=gen))
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def save_checkpoint(model: nn.Module, path: Path) -> str:
    torch.save({"model_state": model.state_dict(), "epoch": 1}, path)
    return str(path)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_matches_pytorchvideo_at_16x112() -> None:
    ours = X3D(num_classes=7, num_frames=16)
    assert n_params(ours) == 2_989_017
    assert n_params(pytorchvideo_x3d()) == 2_989_017
    assert ours.stage_channels == (24, 48, 96, 192)
    assert [len(stage) for stage in ours.stages] == [3, 5, 11, 7]


def test_key_map_covers_every_pytorchvideo_key() -> None:
    reference = pytorchvideo_x3d().state_dict()
    ours = X3D().state_dict()
    mapped = {x3d_key_from_pytorchvideo(k): v.shape for k, v in reference.items()}
    assert mapped == {k: v.shape for k, v in ours.items()}
    # The stem's spatial conv is pytorchvideo's "conv_t": the map swaps the names.
    assert x3d_key_from_pytorchvideo("blocks.0.conv.conv_t.weight") == "stem.conv_xy.weight"
    assert ours["stem.conv_xy.weight"].shape == (24, 3, 1, 3, 3)
    assert x3d_key_from_pytorchvideo("blocks.3.res_blocks.4.branch2.conv_a.weight") == (
        "stages.2.4.conv_a.weight"
    )
    assert x3d_key_from_pytorchvideo("blocks.7.foo") is None


def test_same_logits_as_pytorchvideo_in_eval_mode() -> None:
    reference = pytorchvideo_x3d().eval()
    ours = X3D().eval()
    report = load_x3d_weights(ours, reference.state_dict(), skip="none")
    assert len(report.loaded) == len(reference.state_dict())
    assert report.skipped == () and report.kept_init == ()
    x = torch.randn(1, 3, 16, 112, 112)
    with torch.no_grad():
        expected = reference(x)
        logits, feature = ours(x)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)
    assert feature.shape == (1, 2048)
    assert (feature >= 0).all()  # post-ReLU projection
    torch.testing.assert_close(ours.head.proj(feature), logits)


def test_checkpoint_file_loads_from_path_and_reports_skipped_head(tmp_path, caplog) -> None:
    kinetics = pytorchvideo_x3d(num_classes=400, frames=8, crop=64)
    path = save_checkpoint(kinetics, tmp_path / "X3D_S.pyth")
    with caplog.at_level(logging.INFO, logger="hdf_lightning.models.weights"):
        model = X3D(num_classes=7, weights=path)
    report = model.load_report
    assert report is not None
    assert set(report.skipped) == {"blocks.5.proj.weight", "blocks.5.proj.bias"}
    assert set(report.kept_init) == {"head.proj.weight", "head.proj.bias"}
    assert "head.proj" in caplog.text and "skipped 2" in caplog.text
    torch.testing.assert_close(
        model.stem.conv_xy.weight, kinetics.state_dict()["blocks.0.conv.conv_t.weight"]
    )
    torch.testing.assert_close(
        model.stages[3][0].se.reduce.bias,
        kinetics.state_dict()["blocks.4.res_blocks.0.branch2.norm_b.1.block.0.bias"],
    )
    assert model.head.proj.weight.shape == (7, 2048)


def test_shape_mismatch_names_the_key(tmp_path) -> None:
    path = save_checkpoint(
        pytorchvideo_x3d(num_classes=400, frames=8, crop=64), tmp_path / "k.pyth"
    )
    with pytest.raises(ValueError, match=r"'head\.proj\.weight'.*\(400, 2048\).*\(7, 2048\)"):
        X3D(num_classes=7, weights=path, weights_skip="none")
    with pytest.raises(ValueError, match=r"'head\.post_conv\.weight'"):
        X3D(head_dim=128, weights=path)
    model = X3D(head_dim=128, weights=path, weights_skip="head")
    assert model.load_report is not None
    assert all(k.startswith("head.") for k in model.load_report.kept_init)
    assert len(model.load_report.kept_init) == len(
        [k for k in model.state_dict() if k.startswith("head.")]
    )


def test_missing_and_unknown_keys_are_errors(tmp_path) -> None:
    state = pytorchvideo_x3d(frames=8, crop=64).state_dict()
    missing = dict(state)
    del missing["blocks.2.res_blocks.1.branch2.conv_b.weight"]
    with pytest.raises(ValueError, match=r"missing.*stages\.1\.1\.conv_b\.weight"):
        load_x3d_weights(X3D(), missing)
    unknown = dict(state)
    unknown["blocks.9.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"blocks\.9\.extra\.weight"):
        load_x3d_weights(X3D(), unknown)
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        X3D(weights=str(tmp_path / "absent.pyth"))


def test_own_state_dict_round_trips(tmp_path) -> None:
    model = X3D(width_factor=1.0, depth_factor=0.5, head_dim=64).eval()
    path = tmp_path / "own.pt"
    torch.save(model.state_dict(), path)
    loaded = X3D(
        width_factor=1.0, depth_factor=0.5, head_dim=64, weights=str(path), weights_skip="none"
    )
    loaded.eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], model(x)[0])


def test_presets_match_pytorchvideo_sizes() -> None:
    assert x3d_preset("S") == {
        "num_frames": 13,
        "depth_factor": 2.2,
        "width_factor": 2.0,
        "bottleneck_factor": 2.25,
    }
    large = X3D(**x3d_preset("l"), num_classes=400)
    assert [len(stage) for stage in large.stages] == [5, 10, 25, 15]
    reference = create_x3d(input_clip_length=16, input_crop_size=312, depth_factor=5.0)
    assert n_params(large) == n_params(reference)
    with pytest.raises(ValueError, match="unknown X3D preset"):
        x3d_preset("xxl")


@pytest.mark.parametrize("shape", [(1, 3, 5, 50, 70), (2, 3, 8, 33, 33), (1, 3, 1, 16, 16)])
def test_adaptive_head_accepts_any_clip_size(shape: tuple[int, ...]) -> None:
    model = X3D(num_classes=5, width_factor=1.0, depth_factor=0.5, head_dim=32).eval()
    logits, feature = model(torch.randn(*shape))
    assert logits.shape == (shape[0], 5)
    assert feature.shape == (shape[0], 32)
    assert model.num_classes == 5 and model.feature_dim == 32 and model.num_frames == 16


def test_stage_outputs_keep_time_and_halve_space() -> None:
    model = X3D(width_factor=1.0, depth_factor=0.5, head_dim=32).eval()
    with torch.no_grad():
        stages = model.forward_stages(torch.randn(1, 3, 8, 64, 64))
    assert [tuple(s.shape[1:]) for s in stages] == [
        (16, 8, 16, 16),
        (24, 8, 8, 8),
        (48, 8, 4, 4),
        (96, 8, 2, 2),
    ]
    assert model.stage_channels == (16, 24, 48, 96)


def test_tiny_configuration_trains() -> None:
    torch.manual_seed(0)
    model = X3D(width_factor=1.0, depth_factor=0.5, head_dim=128)
    x = torch.randn(4, 3, 4, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        logits, _ = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_invalid_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        X3D(num_classes=0)
    with pytest.raises(ValueError, match="dropout"):
        X3D(dropout=1.0)
    model = X3D(width_factor=1.0, depth_factor=0.5, head_dim=32)
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        model(torch.randn(1, 8, 3, 32, 32))
    with pytest.raises(ValueError, match="skip must be"):
        load_x3d_weights(model, {}, skip="everything")  # type: ignore[arg-type]


class _Config:
    """An arbitrary pickled object, which a weights-only load refuses."""

    depth = 2.2


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path) -> None:
    path = tmp_path / "ckpt.pyth"
    state = X3D(width_factor=1.0, depth_factor=0.5, head_dim=32).state_dict()
    torch.save({"model_state": state, "cfg": _Config()}, path)
    with pytest.raises(ValueError, match="pickled objects"):
        X3D(width_factor=1.0, depth_factor=0.5, head_dim=32, weights=str(path))
