"""The data benchmark runs end to end on a tiny tree and reports every pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_data


def test_bench_data_reports_all_pipelines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench_data.main(
        [
            "--root",
            str(tmp_path / "tree"),
            "--clips",
            "3",
            "--frames",
            "5",
            "--image-size",
            "32",
            "--crop",
            "16",
            "--load-size",
            "16",
            "--clip-len",
            "4",
            "--batch-size",
            "2",
            "--samples",
            "6",
            "--workers",
            "0",
            "--repeats",
            "2",
            "--content",
            "texture",
        ]
    )
    out = capsys.readouterr().out
    rows = [
        line for line in out.splitlines() if line.startswith("| train") or line.startswith("| eval")
    ]
    pipelines = {(row.split("|")[1].strip(), row.split("|")[3].strip()) for row in rows}
    assert pipelines == {
        ("train, hue 0", "ours"),
        ("train, hue 0", "baseline"),
        ("train, hue 0.4", "ours"),
        ("train, hue 0.4", "baseline"),
        ("train", "decode bound"),
        ("eval", "ours"),
        ("eval", "baseline"),
        ("eval", "decode bound"),
    }
    baseline = [row for row in rows if "| baseline |" in row]
    assert len(baseline) == 3 and all("| 1.00x |" in row for row in baseline)
    ours = [row for row in rows if "| ours |" in row]
    assert all(float(row.split("|")[5].strip().rstrip("x")) > 0 for row in ours)
    assert "reproduce: python" in out
    assert (tmp_path / "tree" / "Clip" / "clip_224x224" / "00001").is_dir()


def test_baseline_is_the_reference_pipeline(tmp_path: Path) -> None:
    """The reference loader: one crop box and flip per clip, jitter on PIL, (T, 3, S, S)."""
    import random

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    static = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    paths = []
    for t in range(3):
        path = tmp_path / f"{t}.png"
        Image.fromarray(static).save(path)
        paths.append(path)
    random.seed(1)
    out = bench_data.BaselineTrainLoad(16, 0.4, 0.4)(paths)
    assert out.shape == (3, 3, 16, 16) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])  # same params per frame
    evaluated = bench_data.BaselineEvalLoad(16)(paths)
    expected = np.asarray(Image.fromarray(static).resize((16, 16), Image.Resampling.BILINEAR))
    assert torch.allclose(evaluated[0], torch.from_numpy(expected).permute(2, 0, 1) / 255)


@pytest.mark.slow
def test_gpu_check_smoke_mode_runs_on_the_cpu() -> None:
    import gpu_check

    text = gpu_check.main(["--smoke"])
    for needle in ("loader, CPU decode", "loader, GPU decode", "train step fp32", "GPU busy"):
        assert needle in text
    assert "hdf predict, 0 workers:" in text and "FAILED" not in text
