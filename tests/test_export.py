"""``hdf export``: ONNX (dynamic batch) and TorchScript / torch.export with preprocessing.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hdf_lightning.cli import main
from hdf_lightning.inference.checkpoint import load_model
from hdf_lightning.models import HDFNet

NET_ARGS = {"num_frames": 4, "width_factor": 0.5, "depth_factor": 0.3, "head_dim": 32}
CLASSES = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A checkpoint laid out as ``hdf fit`` writes it: a tiny HDFNet (with its four DAMs)."""
    torch.manual_seed(0)
    net = HDFNet(num_classes=7, **NET_ARGS)
    for m in net.modules():  # non-trivial BatchNorm statistics, so that eval mode matters
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "tiny.ckpt"
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "hyper_parameters": {"num_classes": 7, "class_names": CLASSES},
            "datamodule_hyper_parameters": {
                "num_frames": 4,
                "crop_size": 32,
                "load_size": 40,
                "normalize": "kinetics",
                "sampler": "segment",
            },
            "hdf_inference": {
                "net": {"class_path": "hdf_lightning.models.HDFNet", "init_args": NET_ARGS}
            },
        },
        path,
    )
    return path


def test_export_onnx_and_torchscript_match_pytorch(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnxruntime as ort  # the "test" extra: fail, never skip

    out = tmp_path / "export"
    code = main(
        ["export", f"--ckpt_path={checkpoint}", f"--out={out}", "--formats=[onnx, torchscript]"]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "onnx" in printed and "max |Δ logits| = " in printed and "torchscript" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "model.onnx",
        "model.torchscript.pt",
        "preprocessing.json",
    ]
    pre = json.loads((out / "preprocessing.json").read_text())
    assert pre["num_frames"] == 4 and pre["crop_size"] == 32 and pre["load_size"] == 40
    assert pre["mean"] == [0.45] * 3 and pre["std"] == [0.225] * 3
    assert pre["class_names"] == CLASSES and pre["sampler"] == "segment"
    assert pre["input_shape"] == ["batch", 3, 4, 32, 32]
    assert pre["network"]["class_path"] == "hdf_lightning.models.HDFNet"

    net = load_model(checkpoint).net
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "clips"
    scripted = torch.jit.load(str(out / "model.torchscript.pt"))
    for batch in (1, 5):  # the batch axis is dynamic
        x = torch.randn(batch, 3, 4, 32, 32)
        with torch.no_grad():
            expected = net(x)[0].numpy()
            (got,) = session.run(None, {"clips": x.numpy()})
            assert got.shape == (batch, 7)
            assert np.abs(got - expected).max() <= 1e-4
            assert np.abs(scripted(x).numpy() - expected).max() <= 1e-4


@pytest.mark.slow
def test_export_torch_export_program(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "export"
    assert main(["export", f"--ckpt_path={checkpoint}", f"--out={out}", "--formats=[pt2]"]) == 0
    program = torch.export.load(str(out / "model.pt2")).module()
    net = load_model(checkpoint).net
    x = torch.randn(3, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(program(x), net(x)[0], atol=1e-5)


def test_export_rejects_bad_checkpoints_and_formats(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint" * 10)
    assert main(["export", f"--ckpt_path={garbage}", f"--out={tmp_path / 'x'}"]) == 2
    err = capsys.readouterr().err
    assert "garbage.ckpt" in err and "not a PyTorch checkpoint" in err
    code = main(["export", f"--ckpt_path={checkpoint}", f"--out={tmp_path}", "--formats=[tflite]"])
    assert code == 2
    assert "unknown export format" in capsys.readouterr().err


def test_print_config_writes_a_yaml_that_config_runs(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    flags = [f"--ckpt_path={checkpoint}", f"--out={out}", "--formats=[torchscript]"]
    with pytest.raises(SystemExit) as done:
        main(["export", *flags, "--print_config"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert "opset: 18" in printed and "tolerance: 0.0001" in printed  # the defaults, listed
    config = tmp_path / "export.yaml"
    config.write_text(printed)
    assert main(["export", "--config", str(config)]) == 0, capsys.readouterr().err
    assert (out / "model.torchscript.pt").is_file() and not (out / "model.onnx").exists()
