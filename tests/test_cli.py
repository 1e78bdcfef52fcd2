"""The ``hdf`` command line run for real on tiny generated data."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from cli_utils import REPO, TINY_NET, run_console, run_hdf, tiny_fit_args, tiny_synthetic_data
from hdf_lightning.cli import main
from hdf_lightning.data.errors import DatasetNotFoundError
from hdf_lightning.data.transforms import ClipAugment
from import_utils import loaded_modules


def test_help_lists_trainer_and_extra_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("fit", "validate", "test", "predict", "hdf data verify", "hdf cv", "hdf cost"):
        assert word in out


def test_fit_help_shows_model_and_data_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "--model.sam_rho" in out and "--data CONFIG" in out and "--ckpt_path" in out


def test_print_config_of_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", str(REPO / "configs" / "demo.yaml"), "--print_config"])
    assert exc.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["net"]["class_path"] == "hdf_lightning.models.HDFNet"
    assert cfg["model"]["loss"]["class_path"] == "hdf_lightning.losses.DSM"
    assert cfg["model"]["sam"] is True
    assert cfg["data"]["class_path"] == "hdf_lightning.data.SyntheticDFEWDataModule"


def test_missing_dataset_root_fails_with_the_expected_layout(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    with pytest.raises(DatasetNotFoundError) as exc:
        main(
            [
                "fit",
                "--config",
                str(REPO / "configs" / "dfew.yaml"),
                "--model.net.weights=null",
                f"--data.root={missing}",
                "--trainer.logger=false",
                "--trainer.enable_progress_bar=false",
                "--trainer.accelerator=cpu",
            ]
        )
    message = str(exc.value)
    assert str(missing) in message
    assert "EmoLabel_DataSplit" in message and "clip_224x224" in message


def test_console_script_prints_one_paragraph_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    proc = run_hdf(
        [
            "fit",
            "--config",
            str(REPO / "configs" / "dfew.yaml"),
            "--model.net.weights=null",
            "--data.root",
            str(missing),
            "--trainer.logger=false",
            "--trainer.accelerator=cpu",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert str(missing) in proc.stderr and "EmoLabel_DataSplit" in proc.stderr


def test_fit_then_test_through_main(tmp_path: Path) -> None:
    cli = main(tiny_fit_args(tmp_path, epochs=2))
    ckpt_dir = tmp_path / "run" / "checkpoints"
    assert (ckpt_dir / "best.ckpt").is_file() and (ckpt_dir / "last.ckpt").is_file()
    assert cli.trainer.global_step == 2  # 8 training clips, batch 8, 2 epochs
    metrics_csv = next((tmp_path / "run").rglob("metrics.csv"))
    rows = list(csv.DictReader(metrics_csv.open()))
    assert any(r.get("val/uar") for r in rows) and any(r.get("train/grad_norm") for r in rows)

    test_cli = main(
        [
            "test",
            "--config",
            str(REPO / "configs" / "demo.yaml"),
            *tiny_fit_args(tmp_path)[3:],
            f"--ckpt_path={ckpt_dir / 'best.ckpt'}",
        ]
    )
    metrics = test_cli.trainer.callback_metrics
    assert 0.0 <= float(metrics["test/war"]) <= 1.0 and 0.0 <= float(metrics["test/uar"]) <= 1.0
    figures = sorted(p.name for p in (tmp_path / "run").rglob("test_*.png"))
    assert figures == ["test_confusion_matrix.png", "test_per_class_recall.png"]


# Lightning maps precision="16-mixed" to bf16 on the CPU; the explicit plugin keeps real fp16
# autocast with a GradScaler, so the scaler path of the SAM step (unscaled g, skip on overflow)
# runs here too.
FP16_ON_CPU = [
    "--trainer.plugins=pytorch_lightning.plugins.precision.MixedPrecision",
    "--trainer.plugins.precision=16-mixed",
    "--trainer.plugins.device=cpu",
]


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_fit_with_sam_in_mixed_precision(tmp_path: Path, precision: str) -> None:
    extra = FP16_ON_CPU if precision == "16-mixed" else [f"--trainer.precision={precision}"]
    cli = main(tiny_fit_args(tmp_path, extra=extra))
    assert cli.trainer.precision == precision
    assert cli.trainer.global_step + cli.model.skipped_steps >= 1
    params = torch.cat([p.detach().flatten() for p in cli.model.net.parameters()])
    assert torch.isfinite(params).all()
    scaler = getattr(cli.trainer.precision_plugin, "scaler", None)
    assert (scaler is not None) == (precision == "16-mixed")


def test_validate_runs(tmp_path: Path) -> None:
    main(tiny_fit_args(tmp_path))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    common = tiny_fit_args(tmp_path)[1:]
    val = main(["validate", *common, f"--ckpt_path={ckpt}"])
    assert "val/uar" in val.trainer.callback_metrics


def test_data_verify_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny_synthetic_data(tmp_path / "data")
    # the synthetic DataModule writes its data in prepare_data; verify only reads
    from hdf_lightning.data.synthetic import SynthConfig, generate_dfew

    generate_dfew(
        tmp_path / "data", SynthConfig(num_subjects=5, clips_per_subject=2, image_size=32)
    )
    code = main(["data", "verify", "--config", str(REPO / "configs" / "demo.yaml"), *data])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "train" in out and "test" in out
    victim = next((tmp_path / "data" / "Clip" / "clip_224x224").iterdir())
    for frame in victim.iterdir():
        frame.unlink()
    victim.rmdir()
    code = main(["data", "verify", "--config", str(REPO / "configs" / "demo.yaml"), *data])
    out = capsys.readouterr().out
    assert code == 1
    assert victim.name in out


def test_data_synth_command_writes_the_dfew_layout(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    code = main(
        [
            "data",
            "synth",
            f"--out={out}",
            "--num_subjects=5",
            "--clips_per_subject=1",
            "--image_size=32",
        ]
    )
    assert code == 0
    for fold in range(1, 6):
        assert (out / "EmoLabel_DataSplit" / "train(single-labeled)" / f"set_{fold}.csv").is_file()
    assert len(list((out / "Clip" / "clip_224x224").iterdir())) == 5


def test_data_synth_writes_held_out_styles_and_refuses_an_unknown_family(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    base = ["data", "synth", f"--out={out}", "--num_subjects=5", "--clips_per_subject=1"]
    code = main([*base, "--image_size=16", "--held_out=[timing]", "--held_out_clips_per_subject=2"])
    assert code == 0
    with (out / "synthetic_manifest.csv").open(newline="") as fh:
        sources = [row["source"] for row in csv.DictReader(fh)]
    assert sources.count("held_out_timing") == 5 * 2
    proc = run_hdf(
        [*base[:2], f"--out={tmp_path / 'other'}", "--held_out=[lighting]"], cwd=tmp_path
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "held_out must name distinct families" in proc.stderr
    assert not (tmp_path / "other").exists()


def test_wandb_offline_run_holds_the_pictures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")  # never online from a test, even with a key
    main(tiny_fit_args(tmp_path))
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    wandb_root = tmp_path / "wandb_run"
    main(
        [
            "test",
            "--config",
            str(REPO / "configs" / "demo.yaml"),
            *TINY_NET,
            *tiny_synthetic_data(tmp_path / "data"),
            f"--trainer.default_root_dir={wandb_root}",
            "--trainer.enable_progress_bar=false",
            f"--ckpt_path={ckpt}",
        ]
    )
    runs = list(wandb_root.rglob("offline-run-*"))
    assert runs, f"no offline wandb run under {wandb_root}"
    images = list(runs[0].rglob("*.png"))
    names = " ".join(str(p) for p in images)
    assert "confusion_matrix" in names and "per_class_recall" in names
    # and the same pictures as PNG files in the run folder
    assert any(p.name == "test_confusion_matrix.png" for p in wandb_root.rglob("figures/*.png"))


def test_cli_refuses_sam_with_gradient_accumulation(tmp_path: Path) -> None:
    args = tiny_fit_args(tmp_path, extra=["--trainer.accumulate_grad_batches=2"])
    with pytest.raises(ValueError, match="accumulate_grad_batches=2 cannot be combined with sam"):
        main(args)


def test_fit_on_a_csv_of_frame_folders_and_video_files(tmp_path: Path) -> None:
    """VideoCSVDataModule through the CLI: user data given as frame folders and video files."""
    import numpy as np
    from PIL import Image

    from hdf_lightning.data.synthetic import render_clip
    from hdf_lightning.data.video import write_video

    classes = ["happy", "sad", "neutral"]
    rows: dict[str, list[str]] = {"train": [], "test": []}
    for i in range(12):
        label = i % 3
        clip = render_clip(label, num_frames=8, image_size=32, seed=i)  # (T, H, W, 3) uint8
        split = "test" if i >= 9 else "train"
        if i % 2:
            path = tmp_path / "videos" / f"clip{i}.mp4"
            path.parent.mkdir(exist_ok=True)
            write_video(path, clip)
        else:
            path = tmp_path / "frames" / f"clip{i}"
            path.mkdir(parents=True)
            for t, frame in enumerate(clip):
                Image.fromarray(np.ascontiguousarray(frame)).save(path / f"{t + 1:05d}.jpg")
        rows[split].append(f"{path.relative_to(tmp_path)},{classes[label]}")
    for split, lines in rows.items():
        (tmp_path / f"{split}.csv").write_text("path,label\n" + "\n".join(lines) + "\n")

    cli = main(
        [
            "fit",
            "--config",
            str(REPO / "configs" / "demo.yaml"),
            *TINY_NET,
            "--data=hdf_lightning.data.VideoCSVDataModule",
            f"--data.train_csv={tmp_path / 'train.csv'}",
            f"--data.test_csv={tmp_path / 'test.csv'}",
            f"--data.classes={classes}",
            "--data.num_frames=4",
            "--data.crop_size=32",
            "--data.load_size=40",
            "--data.augment=true",  # the loader workers' augmentation on both kinds of clip
            "--data.batch_size=3",
            "--data.num_workers=0",
            "--data.protocol=paper",  # all 9 listed clips train
            "--trainer.max_epochs=1",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path / 'run'}",
        ]
    )
    assert cli.datamodule.augment and cli.datamodule.augment_on == "loader"
    transform = cli.datamodule.datasets["train"].transform  # the workers' per-clip augmentation
    assert isinstance(getattr(transform, "__self__", None), ClipAugment)
    assert transform.__name__ == "augment_clip"
    assert cli.model.num_classes == 3 and list(cli.model.class_names) == classes
    assert cli.trainer.global_step == 3  # 9 training clips, batch 3
    kinds = {r.kind for r in cli.datamodule.split_records("train")}
    assert kinds == {"frames", "video"}


def test_top_level_help_loads_no_torch_lightning_opencv_or_matplotlib() -> None:
    """``hdf --help`` answers without importing the heavy libraries (checked in a fresh process)."""
    code = (
        "from hdf_lightning.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
    )
    heavy = ("torch", "pytorch_lightning", "lightning_fabric", "cv2", "matplotlib")
    loaded, printed = loaded_modules(code, heavy)
    assert "hdf predict" in printed and "hdf app" in printed
    assert loaded == []


def test_data_synth_print_config_writes_a_yaml_that_config_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "synth"
    flags = [f"--out={out}", "--num_subjects=5", "--clips_per_subject=1", "--image_size=16"]
    with pytest.raises(SystemExit) as done:
        main(["data", "synth", *flags, "--print_config"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert "held_out_clips_per_subject: null" in printed and "jpeg_quality: 90" in printed
    config = tmp_path / "synth.yaml"
    config.write_text(printed)
    assert main(["data", "synth", "--config", str(config)]) == 0
    assert len(list((out / "Clip" / "clip_224x224").iterdir())) == 5


@pytest.mark.parametrize(
    "command",
    [
        ["fit"],
        ["test"],
        ["predict", "clip.mp4"],
        ["export"],
        ["app"],
        ["data", "synth"],
        ["data", "verify"],
        ["cv"],
        ["cost"],
    ],
)
def test_a_missing_config_file_is_one_line_naming_it(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "missing.yaml"
    code, err = run_console([*command, "--config", str(missing)], monkeypatch, capsys)
    assert code == 2
    assert err.splitlines() == [f"hdf: error: config file not found: {missing} (--config)"]


@pytest.mark.parametrize(
    ("content", "found"),
    [("- a\n- b\n", "found a list"), ("", "found nothing"), ("just text\n", "found a str")],
)
@pytest.mark.parametrize("command", [["predict", "clip.mp4"], ["fit"], ["data", "synth"]])
def test_a_config_that_is_not_a_mapping_is_one_line(
    command: list[str],
    content: str,
    found: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "options.yaml"
    config.write_text(content)
    code, err = run_console([*command, f"--config={config}"], monkeypatch, capsys)
    assert code == 2
    expected = f"--config {config}: expected a YAML mapping of options (name: value), {found}"
    assert err.splitlines() == [f"hdf: error: {expected}"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "not a file (expected a YAML file of options)"),
        (lambda p: p.write_text("a: [1\n"), "not valid YAML ("),
        (lambda p: p.write_bytes(b"\xff\xfe\x00"), "not a text file (expected YAML)"),
    ],
)
def test_a_config_that_is_no_yaml_file_is_one_line(
    make: Callable[[Path], object],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "options.yaml"
    make(config)
    code, err = run_console(["predict", "clip.mp4", "--config", str(config)], monkeypatch, capsys)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith(f"hdf: error: --config {config}: {message}")


def test_an_inline_config_mapping_is_left_to_the_parser(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    inline = f'{{"out": "{out}", "num_subjects": 5, "clips_per_subject": 1, "image_size": 16}}'
    assert main(["data", "synth", "--config", inline]) == 0
    assert len(list((out / "Clip" / "clip_224x224").iterdir())) == 5
