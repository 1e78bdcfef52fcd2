"""Weights by name: torch.hub's cache, downloads from a loopback mirror, the hash check, one-line
errors without network and for bad weight files, and nothing half-written left behind."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path

import pytest
import torch
from pytorchvideo.models.hub.x3d import checkpoint_paths  # test-only reference
from torch import Tensor
from torchvision.models.video import R3D_18_Weights

from cli_utils import REPO, error_line, run_console, tiny_synthetic_data
from hdf_lightning.errors import CheckpointError
from hdf_lightning.models import (
    M3DFEL,
    MIRROR_ENV,
    R3D18_WEIGHTS,
    X3D,
    X3D_WEIGHTS,
    HDFNet,
    x3d_key_from_pytorchvideo,
)
from hdf_lightning.runners import cost_from_config
from weights_utils import WeightsServer, write_r3d18_state_dict, write_x3d_checkpoint

X3D_FILE = "X3D_S.pyth"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """torch.hub's checkpoint folder under a fresh ``TORCH_HOME`` (not created yet)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def x3d_served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Tensor]]:
    """A folder holding a fabricated ``X3D_S.pyth``, and its state dict."""
    folder = tmp_path_factory.mktemp("x3d_served")
    return folder, write_x3d_checkpoint(folder / X3D_FILE)


@pytest.fixture(scope="module")
def r3d_served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Tensor]]:
    """A folder holding one fabricated r3d_18 state dict under two names: ``r3d_18-<its own
    SHA-256 prefix>.pth`` and torchvision's ``r3d_18-b3b3357e.pth`` (a wrong hash for it)."""
    folder = tmp_path_factory.mktemp("r3d_served")
    state = write_r3d18_state_dict(folder / "r3d_18.pth")
    digest = hashlib.sha256((folder / "r3d_18.pth").read_bytes()).hexdigest()
    own_name = f"r3d_18-{digest[:8]}.pth"
    os.link(folder / "r3d_18.pth", folder / own_name)
    os.link(folder / "r3d_18.pth", folder / R3D18_WEIGHTS["kinetics400"].file_name)
    return folder, own_name, state


def _files(folder: Path) -> list[str]:
    """Everything in ``folder`` (hidden staging folders included); [] when it does not exist."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _assert_x3d_loaded(model: X3D, served: dict[str, Tensor]) -> None:
    """Every served tensor but the 400-class classifier is in the model, under X3D's name."""
    ours = model.state_dict()
    for key, value in served.items():
        name = x3d_key_from_pytorchvideo(key)
        assert name is not None
        if not name.startswith("head.proj."):
            torch.testing.assert_close(ours[name], value, msg=name)


# ------------------------------------------------------------------------------ the tables
def test_names_point_at_the_files_of_pytorchvideos_hub_and_torchvision() -> None:
    for size in ("xs", "s", "m", "l"):
        weights = X3D_WEIGHTS[f"kinetics400_{size}"]
        assert weights.url == checkpoint_paths[f"x3d_{size}"]
        assert weights.hash_prefix is None  # pytorchvideo publishes no hash
    assert X3D_WEIGHTS["kinetics400"] == X3D_WEIGHTS["kinetics400_s"]
    assert X3D_WEIGHTS["kinetics400"].url == (
        "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/X3D_S.pyth"
    )
    r3d = R3D18_WEIGHTS["kinetics400"]
    assert r3d.url == R3D_18_Weights.KINETICS400_V1.url
    assert r3d.url == "https://download.pytorch.org/models/r3d_18-b3b3357e.pth"
    assert r3d.hash_prefix == "b3b3357e"


def test_cache_path_and_mirror(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = R3D18_WEIGHTS["kinetics400"]
    assert weights.cache_path() == cache / "r3d_18-b3b3357e.pth"
    monkeypatch.delenv(MIRROR_ENV)
    assert weights.download_url() == weights.url
    monkeypatch.setenv(MIRROR_ENV, "http://mirror.example/models/")
    assert weights.download_url() == "http://mirror.example/models/r3d_18-b3b3357e.pth"


# ------------------------------------------------------------------------------ downloads
def test_first_use_downloads_and_the_second_uses_the_cache(
    cache: Path,
    x3d_served: tuple[Path, dict[str, Tensor]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder, served = x3d_served
    with WeightsServer(folder) as server, caplog.at_level(logging.INFO):
        monkeypatch.setenv(MIRROR_ENV, server.url)
        first = HDFNet(weights="kinetics400")
        assert server.requests == {X3D_FILE: 1}
        assert _files(cache) == [X3D_FILE]  # no staging folder or partial file left
        assert (cache / X3D_FILE).read_bytes() == (folder / X3D_FILE).read_bytes()
        second = X3D(weights="kinetics400")
        assert server.requests == {X3D_FILE: 1}  # the cache answered
    _assert_x3d_loaded(first, served)
    _assert_x3d_loaded(second, served)
    report = first.load_report
    assert report is not None and report.source == str(cache / X3D_FILE)
    assert set(report.skipped) == {"blocks.5.proj.weight", "blocks.5.proj.bias"}
    assert {k for k in report.kept_init if not k.startswith("dams.")} == {
        "head.proj.weight",
        "head.proj.bias",
    }
    summary = report.summary()
    assert summary in caplog.text
    assert f"loaded {len(served) - 2} tensors" in summary
    assert "skipped 2 checkpoint tensors [blocks.5.proj (2)]" in summary
    assert summary.endswith("nothing else missing")


def test_r3d18_is_downloaded_with_its_hash_checked_into_m3dfel(
    cache: Path,
    r3d_served: tuple[Path, str, dict[str, Tensor]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, own_name, served = r3d_served
    published = R3D18_WEIGHTS["kinetics400"]
    renamed = dataclasses.replace(published, url=published.url.replace("b3b3357e", own_name[7:15]))
    monkeypatch.setitem(R3D18_WEIGHTS, "kinetics400", renamed)
    with WeightsServer(folder) as server:
        monkeypatch.setenv(MIRROR_ENV, server.url)
        model = M3DFEL(num_frames=8, weights="kinetics400")
        assert server.requests == {own_name: 1}
    assert _files(cache) == [own_name]
    backbone = model.backbone.state_dict()
    for key, value in served.items():
        if not key.startswith("fc."):
            torch.testing.assert_close(backbone[key], value, msg=key)
    assert model.load_report is not None
    assert set(model.load_report.skipped) == {"fc.weight", "fc.bias"}


def test_a_wrong_hash_is_refused_and_nothing_is_cached(
    cache: Path,
    r3d_served: tuple[Path, str, dict[str, Tensor]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, _, _ = r3d_served
    with WeightsServer(folder) as server:
        monkeypatch.setenv(MIRROR_ENV, server.url)
        with pytest.raises(CheckpointError) as exc:
            M3DFEL(num_frames=8, weights="kinetics400")
        assert server.requests == {"r3d_18-b3b3357e.pth": 1}
    message = str(exc.value)
    assert "\n" not in message
    assert f"{server.url}/r3d_18-b3b3357e.pth" in message and "b3b3357e" in message
    digest = hashlib.sha256((folder / "r3d_18.pth").read_bytes()).hexdigest()
    assert f'invalid hash value (expected "b3b3357e", got "{digest}")' in message
    assert "nothing was cached" in message
    assert _files(cache) == []


def test_a_cut_download_leaves_nothing_in_the_cache(
    cache: Path,
    x3d_served: tuple[Path, dict[str, Tensor]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, _ = x3d_served
    with WeightsServer(folder, cut=True) as server:
        monkeypatch.setenv(MIRROR_ENV, server.url)
        with pytest.raises(CheckpointError, match="cut") as exc:
            X3D(weights="kinetics400")
        assert server.requests == {X3D_FILE: 1}
    assert "\n" not in str(exc.value) and f"{server.url}/{X3D_FILE}" in str(exc.value)
    assert _files(cache) == []


# ------------------------------------------------------------------------------ no network
def test_without_network_one_line_names_the_url_the_cache_path_and_a_local_path(
    cache: Path,
) -> None:
    # conftest points the mirror at a closed port: the connection is refused
    url = X3D_WEIGHTS["kinetics400"].download_url()
    with pytest.raises(CheckpointError) as exc:
        HDFNet(weights="kinetics400")
    message = str(exc.value)
    assert "\n" not in message
    assert url in message and "Connection refused" in message
    assert f"put that file at {cache / X3D_FILE} " in message
    assert "weights: <path of a local copy>" in message
    assert _files(cache) == []


def test_a_file_placed_in_the_cache_by_hand_is_used_without_network(cache: Path) -> None:
    served = write_x3d_checkpoint(cache / X3D_FILE)
    model = X3D(num_classes=7, weights="kinetics400")
    _assert_x3d_loaded(model, served)


def _fit_dfew(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *options: str,
) -> tuple[int, str]:
    """``hdf fit --config configs/dfew.yaml`` on a data root that does not exist, as the console
    script runs it: (exit code, stderr)."""
    args = [
        "fit",
        "--config",
        str(REPO / "configs" / "dfew.yaml"),
        *options,
        f"--data.root={tmp_path / 'no_dfew_here'}",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        "--trainer.logger=false",
        "--trainer.accelerator=cpu",
    ]
    return run_console(args, monkeypatch, capsys)


def test_hdf_fit_without_network_exits_2_before_reading_data(
    tmp_path: Path,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = _fit_dfew(tmp_path, monkeypatch, capsys)
    assert code == 2
    line = error_line(err)
    assert X3D_WEIGHTS["kinetics400"].download_url() in line
    assert str(cache / X3D_FILE) in line and "weights: <path" in line
    assert str(tmp_path / "no_dfew_here") not in err  # the DataModule never looked for its data
    assert not (tmp_path / "run" / "checkpoints").exists()


# ------------------------------------------------------------------------------ bad files
def _write_garbage(path: Path) -> None:
    path.write_bytes(b"<html>not found</html>\n")


def _write_truncated(path: Path) -> None:
    torch.save({"model_state": X3D(width_factor=1.0, depth_factor=0.5).state_dict()}, path)
    path.write_bytes(path.read_bytes()[:5000])


def _write_another_network(path: Path) -> None:
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 512)}, path)


def _write_another_width(path: Path) -> None:
    torch.save({"model_state": X3D(width_factor=1.0).state_dict()}, path)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_write_garbage, "truncated or not a PyTorch checkpoint"),
        (_write_truncated, "truncated or not a PyTorch checkpoint"),
        (_write_another_network, "keys of HDFNet are missing from the checkpoint"),
        (_write_another_width, "shape mismatch for 'stem.conv_xy.weight'"),
        (None, "no checkpoint file at"),
    ],
    ids=["garbage", "truncated", "another-network", "another-width", "missing"],
)
def test_a_bad_weights_file_is_one_line_naming_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make: object,
    expected: str,
) -> None:
    path = tmp_path / "weights.pyth"
    if callable(make):
        make(path)
    code, err = _fit_dfew(tmp_path, monkeypatch, capsys, f"--model.net.weights={path}")
    assert code == 2
    line = error_line(err)
    assert str(path) in line and expected in line


def test_an_unknown_name_lists_the_published_ones(cache: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint file at kinetics401") as exc:
        M3DFEL(weights="kinetics401")
    assert "published weights of M3DFEL (kinetics400)" in str(exc.value)
    with pytest.raises(FileNotFoundError, match=r"X3D \(kinetics400, kinetics400_xs"):
        X3D(weights="kinetics401")


# ------------------------------------------------------------------------------ when not needed
def test_evaluating_a_checkpoint_never_fetches_the_pretrained_weights(
    tmp_path: Path,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``hdf test --config configs/dfew.yaml --ckpt_path X`` offline with an empty cache: the
    checkpoint replaces the Kinetics weights, so they are not downloaded (the error that remains
    is the checkpoint's, which holds another network)."""
    ckpt = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"net.stem.conv_xy.weight": torch.zeros(3, 3, 1, 3, 3)}}, ckpt)
    args = [
        "test",
        "--config",
        str(REPO / "configs" / "dfew.yaml"),
        f"--ckpt_path={ckpt}",
        f"--data.root={tmp_path / 'no_dfew_here'}",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        "--trainer.logger=false",
    ]
    code, err = run_console(args, monkeypatch, capsys)
    line = error_line(err)
    assert code == 2 and "saved from another network" in line and str(ckpt) in line
    assert "kinetics" not in line.lower() and not _files(cache)


def test_hdf_fit_prints_the_load_report_of_its_weights(
    tmp_path: Path,
    x3d_served: tuple[Path, dict[str, Tensor]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder, _ = x3d_served
    args = [
        "fit",
        "--config",
        str(REPO / "configs" / "demo.yaml"),
        "--model.net=hdf_lightning.models.X3D",
        "--model.net.width_factor=2.0",
        "--model.net.depth_factor=2.2",
        "--model.net.head_dim=2048",
        "--model.net.num_frames=4",
        f"--model.net.weights={folder / X3D_FILE}",
        *tiny_synthetic_data(tmp_path / "data"),
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--figures.enabled=false",
    ]
    with caplog.at_level(logging.INFO):
        code, err = run_console(args, monkeypatch, capsys)
    assert code == 0, err
    report = [r.getMessage() for r in caplog.records if r.getMessage().startswith("X3D weights:")]
    assert len(report) == 1 and "loaded" in report[0] and str(folder / X3D_FILE) in report[0]


def test_the_cost_of_a_recipe_is_measured_without_its_pretrained_weights(cache: Path) -> None:
    report = cost_from_config(str(REPO / "configs" / "dfew.yaml"), iters=1)
    assert "GFLOPs" in report and not _files(cache)
