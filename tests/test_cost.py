"""Tests of hdf_lightning.evaluation.cost: FLOPs against an analytic MAC count, params, memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from cli_utils import error_line, run_console, sam_with_accumulation_config
from hdf_lightning.evaluation.cost import (
    CostReport,
    format_cost,
    format_cost_table,
    measure_cost,
)

INPUT = (3, 4, 8, 8)  # (C, T, H, W)


class TinyClipNet(nn.Module):
    """Conv3d stem, grouped 1x1x1 conv, pooling, linear head; returns (logits, feature)."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Conv3d(3, 8, kernel_size=(3, 3, 3), stride=(1, 2, 2), padding=1)
        self.mix = nn.Conv3d(8, 8, kernel_size=1, groups=2, bias=False)
        self.norm = nn.BatchNorm3d(8)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.relu(self.norm(self.mix(self.stem(x))))  # (B, 8, 4, 4, 4)
        feature = x.mean(dim=(2, 3, 4))  # (B, 8)
        return self.head(feature), feature


# Analytic multiply-accumulates of one (3, 4, 8, 8) clip:
#   stem: output (8, 4, 4, 4) = 512 values, each 3 * 27 MACs
#   mix: output 512 values, each 8 / 2 = 4 MACs (groups=2)
#   head: 8 * 5
TINY_MACS = 512 * 3 * 27 + 512 * 4 + 8 * 5


class BareLogits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 4 * 8 * 8, 7)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.flatten(1))  # (B, C*T*H*W) -> (B, 7)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_flops_match_analytic_macs(batch_size: int) -> None:
    report = measure_cost(TinyClipNet(), INPUT, batch_size=batch_size, iters=2, warmup=1)
    assert report.macs_per_clip == TINY_MACS
    assert report.flops_per_clip == 2 * TINY_MACS
    assert report.gflops_per_clip == pytest.approx(TINY_MACS * 1e-9, rel=1e-12)
    assert report.output_shape == (batch_size, 5)
    assert report.batch_size == batch_size


def test_params_memory_and_throughput() -> None:
    model = TinyClipNet()
    model.head.requires_grad_(False)
    report = measure_cost(model, INPUT, batch_size=2, iters=3, warmup=1)
    assert report.params == sum(p.numel() for p in model.parameters())
    assert report.trainable_params == report.params - sum(
        p.numel() for p in model.head.parameters()
    )
    assert report.clips_per_second > 0
    assert report.peak_memory_bytes is not None
    stem_output_bytes = 2 * 8 * 4 * 4 * 4 * 4  # (B, 8, 4, 4, 4) float32
    assert report.peak_memory_bytes >= stem_output_bytes
    assert report.memory_method.startswith("tensor storages")
    assert report.device == "cpu" and report.dtype == "float32"
    assert report.input_shape == INPUT


class BigTemporary(nn.Module):
    """Materialises a 4 MiB temporary that is freed before the forward returns."""

    def forward(self, x: Tensor) -> Tensor:
        temporary = x.new_ones(2**20)  # 4 MiB of float32
        return x.flatten(1).sum(dim=1, keepdim=True) + temporary.sum()  # (B, 1)


def test_peak_memory_sees_a_known_temporary() -> None:
    report = measure_cost(BigTemporary(), INPUT, iters=1, warmup=0)
    assert report.peak_memory_bytes is not None
    assert 2**22 <= report.peak_memory_bytes < 2**22 + 2**16


class FreesATemporary(nn.Module):
    """4,000 B and 8,000 B alive together, then the first freed before a 2,000 B one."""

    def forward(self, x: Tensor) -> Tensor:
        first = x.new_zeros(1000)  # 4,000 B of float32
        second = x.new_zeros(2000)  # 8,000 B: 12,000 B alive, the peak
        del first
        third = x.new_zeros(500)  # 2,000 B: 10,000 B alive
        return (second.sum() + third.sum()).reshape(1, 1)


def test_cpu_peak_memory_is_exact_and_follows_frees() -> None:
    report = measure_cost(FreesATemporary(), INPUT, iters=1, warmup=0)
    assert report.peak_memory_bytes == 12_000


def test_cpu_measurement_does_not_start_the_profiler(monkeypatch: pytest.MonkeyPatch) -> None:
    # the profiler prints device-probing errors on a CPU-only machine with a CUDA build
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.profiler.profile was started")

    monkeypatch.setattr(torch.profiler, "profile", refuse)
    report = measure_cost(TinyClipNet(), INPUT, iters=1, warmup=0)
    assert report.peak_memory_bytes is not None and report.peak_memory_bytes > 0


def test_peak_memory_counts_coexisting_activations() -> None:
    report = measure_cost(TinyClipNet(), INPUT, batch_size=8, iters=1, warmup=0)
    activation_bytes = 8 * 8 * 4 * 4 * 4 * 4  # one (8, 8, 4, 4, 4) float32 activation
    assert report.peak_memory_bytes is not None
    assert report.peak_memory_bytes >= 2 * activation_bytes  # stem output alive while mix runs


def test_bare_tensor_output_and_model_left_unchanged() -> None:
    model = BareLogits().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = measure_cost(model, INPUT, dtype=torch.float64, iters=1, warmup=0)
    assert report.macs_per_clip == 3 * 4 * 8 * 8 * 7
    assert report.output_shape == (1, 7)
    assert report.dtype == "float64"
    assert model.training
    assert model.fc.weight.dtype == torch.float32
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_bad_output_raises() -> None:
    class ReturnsDict(nn.Module):
        def forward(self, x: Tensor) -> dict[str, Tensor]:
            return {"logits": x.flatten(1)}

    with pytest.raises(ValueError, match=r"logits \(B, K\)"):
        measure_cost(ReturnsDict(), INPUT, iters=1, warmup=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_shape": (3, 8, 8)}, "input_shape"),
        ({"input_shape": (3, 4, 0, 8)}, "input_shape"),
        ({"batch_size": 0}, "batch_size"),
        ({"iters": 0}, "iters"),
        ({"warmup": -1}, "warmup"),
        ({"dtype": torch.int64}, "floating"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, message: str) -> None:
    arguments = {"input_shape": INPUT, **kwargs}
    with pytest.raises(ValueError, match=message):
        measure_cost(TinyClipNet(), **arguments)


def test_to_dict_and_formatting() -> None:
    report = measure_cost(TinyClipNet(), INPUT, iters=1, warmup=0)
    values = report.to_dict()
    assert json.loads(json.dumps(values)) == values
    assert values["macs_per_clip"] == TINY_MACS
    assert values["input_shape"] == list(INPUT)
    text = format_cost(report)
    assert "TinyClipNet" in text
    assert f"{report.params:,}" in text
    assert f"{report.gflops_per_clip:.3f}" in text
    assert f"{2 * TINY_MACS:,}" in text
    table = format_cost_table([report, report])
    assert len(table.splitlines()) == 4
    assert table.count("TinyClipNet") == 2


def test_report_is_frozen() -> None:
    report = measure_cost(TinyClipNet(), INPUT, iters=1, warmup=0)
    assert isinstance(report, CostReport)
    with pytest.raises(AttributeError):
        report.params = 0  # type: ignore[misc]


@pytest.mark.slow
def test_r3d_18_matches_torchvision_published_gflops() -> None:
    from torchvision.models.video import R3D_18_Weights, r3d_18

    report = measure_cost(r3d_18(), (3, 16, 112, 112), iters=1, warmup=0)
    assert report.gflops_per_clip == pytest.approx(R3D_18_Weights.DEFAULT.meta["_ops"], abs=1e-3)
    assert report.params == R3D_18_Weights.DEFAULT.meta["num_params"]


def test_hdf_cost_refuses_what_fit_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SAM with gradient accumulation: hdf cost ends with hdf fit's one-line message."""
    config = str(sam_with_accumulation_config(tmp_path))
    fit_code, fit_err = run_console(["fit", "--config", config], monkeypatch, capsys)
    code, err = run_console(["cost", "--config", config], monkeypatch, capsys)
    assert fit_code == code == 2
    assert "accumulate_grad_batches=2 cannot be combined with sam" in error_line(fit_err)
    assert err.splitlines() == [error_line(fit_err)]
