"""The data benchmark runs end to end on a tiny tree and reports every pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

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
        ]
    )
    out = capsys.readouterr().out
    rows = [
        line for line in out.splitlines() if line.startswith("| train") or line.startswith("| eval")
    ]
    pipelines = {(row.split("|")[1].strip(), row.split("|")[3].strip()) for row in rows}
    assert pipelines == {
        ("train", "ours"),
        ("train", "ours (augment on device)"),
        ("train", "baseline"),
        ("train", "decode only"),
        ("eval", "ours"),
        ("eval", "baseline"),
        ("eval", "decode only"),
    }
    baseline = [row for row in rows if "| baseline |" in row]
    assert all("| 1.00x |" in row for row in baseline)
    assert "reproduce: python" in out
    assert (tmp_path / "tree" / "Clip" / "clip_224x224" / "00001").is_dir()
