"""Every file under configs/ is parsed; every runnable one trains a batch on tiny generated data.

Sizes are overridden (few frames, 32 px, batch 2); the network families, losses, SAM settings,
DataModule classes and Kinetics weights are the configs' own (the weights fabricated, with the
real names and shapes, and placed in torch.hub's cache as on a machine without network). GPU
trainer presets are parsed and checked, not run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cli_utils import REPO
from corpora_utils import build_cremad, build_mafw, build_ravdess
from hdf_lightning.cli import main
from hdf_lightning.data.synthetic import SynthConfig, generate_dfew, generate_ferv39k
from hdf_lightning.models import R3D18_WEIGHTS, X3D_WEIGHTS
from weights_utils import write_r3d18_state_dict, write_x3d_checkpoint

CONFIGS = REPO / "configs"
ALL_CONFIGS = sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml"))
ABLATIONS = sorted(p.name for p in (CONFIGS / "ablations").glob("*.yaml"))
GPU_PRESETS = ["trainer/gpu_bf16.yaml", "trainer/ddp.yaml", "trainer/ddp_multinode.yaml"]
TINY = SynthConfig(num_subjects=5, clips_per_subject=2, image_size=32, num_frames_range=(6, 12))


@pytest.fixture(scope="module")
def dfew_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dfew")
    generate_dfew(root / "DFEW", TINY)
    return root / "DFEW"


@pytest.fixture(scope="module")
def ferv39k_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ferv39k")
    generate_ferv39k(root / "FERV39k", TINY)
    return root / "FERV39k"


@pytest.fixture(scope="module")
def corpus_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The data options of configs/{mafw,ravdess,cremad}.yaml on miniature trees (the face-crop
    frame folders for RAVDESS and CREMA-D, five actors each for the five folds)."""
    root = tmp_path_factory.mktemp("corpora")
    mafw = build_mafw(root / "MAFW").root
    ravdess = build_ravdess(root / "RAVDESS_faces", [1, 2, 3, 4, 5], frames=True).root
    cremad = build_cremad(root / "CREMA-D_faces", [1001, 1002, 1003, 1004, 1005], frames=True)
    return {
        "mafw.yaml": [f"--data.root={mafw}"],
        "ravdess.yaml": [f"--data.root={ravdess}", "--data.actors=[1, 2, 3, 4, 5]"],
        "cremad.yaml": [f"--data.root={cremad.root}", f"--data.actors={list(range(1001, 1006))}"],
    }


@pytest.fixture(scope="module")
def kinetics_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """torch.hub's cache holding the ``kinetics400`` files of X3D and r3d_18 (fabricated)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        write_x3d_checkpoint(X3D_WEIGHTS["kinetics400"].cache_path())
        write_r3d18_state_dict(R3D18_WEIGHTS["kinetics400"].cache_path())
        yield


def test_every_config_is_covered_below() -> None:
    covered = {"demo.yaml", "dfew.yaml", "ferv39k.yaml", "m3dfel_dfew.yaml", "trainer/cpu.yaml"}
    covered |= set(CORPORA)
    covered |= {f"ablations/{name}" for name in ABLATIONS} | set(GPU_PRESETS)
    assert set(ALL_CONFIGS) == covered


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_config_parses(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    configs = ["--config", str(CONFIGS / name)]
    if name.startswith(("ablations/", "trainer/")):
        configs = ["--config", str(CONFIGS / "dfew.yaml"), *configs]
    with pytest.raises(SystemExit) as exc:
        main(["fit", *configs, "--print_config"])
    assert exc.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    own = yaml.safe_load((CONFIGS / name).read_text())
    # what the file sets is what the parsed configuration holds
    for key, value in (own.get("trainer") or {}).items():
        assert cfg["trainer"][key] == value, key
    net = (own.get("model") or {}).get("net")
    if net is not None:
        assert cfg["model"]["net"]["class_path"] == net["class_path"]
    # the recipes (and the ablations and presets over configs/dfew.yaml) start from Kinetics
    weights = None if name == "demo.yaml" else "kinetics400"
    assert cfg["model"]["net"]["init_args"]["weights"] == weights


def _fast_dev_run(tmp: Path, configs: list[str], data: list[str], net: list[str]) -> None:
    """One training batch; the network loaded its configured weights, if any."""
    cli = main(
        [
            "fit",
            *configs,
            *data,
            *net,
            "--data.crop_size=32",
            "--data.batch_size=2",
            "--data.num_workers=0",
            "--trainer.fast_dev_run=1",
            "--trainer.accelerator=cpu",
            "--trainer.devices=1",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp}",
        ]
    )
    assert cli.trainer.global_step == 1
    assert "val/uar" in cli.trainer.callback_metrics
    assert cli.model.net.num_frames == cli.datamodule.num_frames  # linked from the data
    configured = cli.config["fit"]["model"]["net"]["init_args"]["weights"]
    assert (cli.model.net.load_report is None) == (configured is None)


FOUR_FRAMES = ["--data.num_frames=4"]
"""The network's num_frames follows the data's."""


def test_demo_config_runs(tmp_path: Path) -> None:
    data = [
        f"--data.root={tmp_path / 'synth'}",
        "--data.num_subjects=5",
        "--data.clips_per_subject=2",
        "--data.image_size=32",
    ]
    _fast_dev_run(tmp_path, ["--config", str(CONFIGS / "demo.yaml")], data, FOUR_FRAMES)


@pytest.mark.usefixtures("kinetics_cache")
def test_dfew_config_runs(tmp_path: Path, dfew_root: Path) -> None:
    _fast_dev_run(
        tmp_path,
        ["--config", str(CONFIGS / "dfew.yaml")],
        [f"--data.root={dfew_root}"],
        FOUR_FRAMES,
    )


@pytest.mark.usefixtures("kinetics_cache")
def test_cpu_trainer_preset_runs(tmp_path: Path, dfew_root: Path) -> None:
    configs = [
        "--config",
        str(CONFIGS / "dfew.yaml"),
        "--config",
        str(CONFIGS / "trainer/cpu.yaml"),
    ]
    _fast_dev_run(tmp_path, configs, [f"--data.root={dfew_root}"], FOUR_FRAMES)


@pytest.mark.usefixtures("kinetics_cache")
def test_ferv39k_config_runs(tmp_path: Path, ferv39k_root: Path) -> None:
    _fast_dev_run(
        tmp_path,
        ["--config", str(CONFIGS / "ferv39k.yaml")],
        [f"--data.root={ferv39k_root}"],
        FOUR_FRAMES,
    )


CORPORA = ["mafw.yaml", "ravdess.yaml", "cremad.yaml"]


@pytest.mark.usefixtures("kinetics_cache")
@pytest.mark.parametrize("name", CORPORA)
def test_corpus_config_runs(tmp_path: Path, corpus_roots: dict[str, list[str]], name: str) -> None:
    _fast_dev_run(tmp_path, ["--config", str(CONFIGS / name)], corpus_roots[name], FOUR_FRAMES)


@pytest.mark.usefixtures("kinetics_cache")
def test_m3dfel_config_runs(tmp_path: Path, dfew_root: Path) -> None:
    frames = ["--data.num_frames=8"]
    _fast_dev_run(
        tmp_path,
        ["--config", str(CONFIGS / "m3dfel_dfew.yaml")],
        [f"--data.root={dfew_root}"],
        frames,
    )


@pytest.mark.usefixtures("kinetics_cache")
@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_config_runs(tmp_path: Path, dfew_root: Path, name: str) -> None:
    configs = [
        "--config",
        str(CONFIGS / "dfew.yaml"),
        "--config",
        str(CONFIGS / "ablations" / name),
    ]
    _fast_dev_run(tmp_path, configs, [f"--data.root={dfew_root}"], FOUR_FRAMES)


@pytest.mark.parametrize("name", GPU_PRESETS)
def test_gpu_presets_ask_for_gpus_and_mixed_precision(name: str) -> None:
    trainer = yaml.safe_load((CONFIGS / name).read_text())["trainer"]
    assert trainer["accelerator"] == "gpu" and trainer["precision"] == "bf16-mixed"
    if "ddp" in name:
        assert trainer["strategy"] == "ddp"
