"""insert_dam: DAM after chosen stages of any (B, C, T, H, W) network, here torchvision r3d_18."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.video import r3d_18

from hdf_lightning.layers import DAM, DAMAfter, insert_dam


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return r3d_18(num_classes=5)


def test_insert_into_r3d18_with_a_dry_run_and_train(model: nn.Module) -> None:
    dams = insert_dam(model, after=["layer1", "layer3"], example_input=torch.zeros(1, 3, 8, 32, 32))
    # r3d_18 keeps T through layer1 and halves it in layer2 and layer3: 8 -> 8 -> 4 -> 2.
    assert (dams["layer1"].channels, dams["layer1"].num_frames) == (64, 8)
    assert (dams["layer3"].channels, dams["layer3"].num_frames) == (256, 2)
    assert isinstance(model.layer1, DAMAfter) and model.layer1.dam is dams["layer1"]
    assert model.training  # mode restored after the dry run
    keys = set(model.state_dict())
    assert "layer1.body.0.conv1.0.weight" in keys and "layer3.dam.gamma" in keys

    out = model(torch.randn(2, 3, 8, 32, 32))
    assert out.shape == (2, 5)
    out.square().sum().backward()
    for name, dam in dams.items():
        for pname, p in dam.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname}"


def test_explicit_sizes_without_a_dry_run(model: nn.Module) -> None:
    dams = insert_dam(model, after=["layer1", "layer2.1"], num_frames={"layer1": 8, "layer2.1": 4})
    assert dams["layer1"].channels == 64  # from layer1's last BatchNorm
    assert (dams["layer2.1"].channels, dams["layer2.1"].num_frames) == (128, 4)
    assert isinstance(model.layer2[1], DAMAfter)
    assert model(torch.randn(1, 3, 8, 32, 32)).shape == (1, 5)


def test_wrong_frame_count_is_caught(model: nn.Module) -> None:
    with pytest.raises(ValueError, match=r"num_frames=8 for 'layer3'.*T=2"):
        insert_dam(
            model, after=["layer3"], num_frames=8, example_input=torch.zeros(1, 3, 8, 32, 32)
        )
    insert_dam(model, after=["layer3"], num_frames=8)  # no dry run: DAM itself checks at run time
    with pytest.raises(ValueError, match=r"num_frames=8.*T=2"):
        model(torch.randn(1, 3, 8, 32, 32))


def test_bad_names_and_outputs(model: nn.Module) -> None:
    with pytest.raises(ValueError, match="no submodule named 'layer9'"):
        insert_dam(model, after=["layer9"], num_frames=8)
    with pytest.raises(ValueError, match="distinct"):
        insert_dam(model, after=["layer1", "layer1"], num_frames=8)
    with pytest.raises(ValueError, match=r"'fc' must output a \(B, C, T, H, W\)"):
        insert_dam(model, after=["fc"], example_input=torch.zeros(1, 3, 8, 32, 32))
    with pytest.raises(ValueError, match="cannot determine num_frames"):
        insert_dam(model, after=["layer1"])
    assert not any(isinstance(m, DAM) for m in model.modules())
