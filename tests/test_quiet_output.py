"""``hdf`` drops exactly the library messages that tell a user nothing, and keeps the others."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from cli_utils import run_hdf, tiny_fit_args
from hdf_lightning.lit.lightning_cli import quiet_library_output
from hdf_lightning.lit.lightning_private import (
    drop_unset_wandb_anonymous as _drop_unset_wandb_anonymous,
)

NOISE = (
    "gpuGetDeviceCount",
    "USDT",
    "LeafSpec",
    "litlogger",
    "anonymous setting has no effect",
)


def test_leafspec_deprecation_is_dropped_and_other_warnings_stay() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_output()
        warnings.warn(
            "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec) "
            "and treespec.is_leaf()` instead.",
            FutureWarning,
            stacklevel=1,
        )
        warnings.warn("something the user should read", FutureWarning, stacklevel=1)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == [
        "something the user should read",
        "`isinstance(treespec, LeafSpec)` is deprecated",  # another category: not ours to drop
    ]


def test_litlogger_tip_is_dropped_and_other_info_stays(caplog: pytest.LogCaptureFixture) -> None:
    quiet_library_output()
    quiet_library_output()  # idempotent: one filter
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    assert len(logger.filters) == len({type(f) for f in logger.filters})
    with caplog.at_level(logging.INFO, logger="pytorch_lightning.utilities.rank_zero"):
        logger.info("💡 Tip: For seamless cloud logging and experiment tracking, try litlogger")
        logger.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]


def test_wandb_init_gets_no_unset_anonymous_setting(tmp_path: Path) -> None:
    from pytorch_lightning.loggers import WandbLogger

    unset = WandbLogger(save_dir=str(tmp_path), offline=True)
    chosen = WandbLogger(save_dir=str(tmp_path), offline=True, anonymous=True)
    assert unset._wandb_init["anonymous"] is None  # what Lightning passes to wandb.init
    _drop_unset_wandb_anonymous(SimpleNamespace(loggers=[unset, chosen]))  # type: ignore[arg-type]
    assert "anonymous" not in unset._wandb_init
    assert chosen._wandb_init["anonymous"] == "allow"  # a user's explicit choice is kept


@pytest.mark.slow
def test_cpu_hdf_test_prints_none_of_the_library_noise(tmp_path: Path) -> None:
    fit_args = tiny_fit_args(tmp_path, epochs=1)
    # the default logger (wandb, offline) instead of the CSV logger of the tiny arguments
    fit_args = [a for a in fit_args if not a.startswith("--trainer.logger")]
    fit = run_hdf(fit_args, cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    test = run_hdf(["test", *fit_args[1:], f"--ckpt_path={ckpt}"], cwd=tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    for output in (fit.stdout + fit.stderr, test.stdout + test.stderr):
        assert [word for word in NOISE if word in output] == []
    assert "peak memory" in test.stdout + test.stderr  # the cost report still ran
