"""Seen- versus unseen-source accuracy of the HDF ablation variants on synthetic heterogeneous data.

Each variant of ``configs/ablations/`` is trained at the demo's sizes (``configs/demo.yaml``) on
the synthetic DFEW-layout data with one capture style held out of training
(``--data.unseen_source=true``), for several seeds. The best-validation checkpoint is tested on the
test fold (the checkpoint is selected on held-out training clips, ``--protocol honest``), and
WAR/UAR are computed separately on the test clips of the styles seen in training
and on those of the held-out style (``synthetic_manifest.csv``, column ``seen_in_training``).

Every variant starts from the same pretrained backbone, as video expression models are fine-tuned
from Kinetics-pretrained backbones (``configs/dfew.yaml`` takes a Kinetics X3D checkpoint;
HDF's own pretraining is not public). Before the study, plain X3D (CE, AdamW, no SAM) is trained
once at the same sizes on a separate synthetic data set (generator seed
:data:`PRETRAIN_SYNTH_SEED`: other identities and other capture styles, no unseen-style clips).
Its stem, stages and head convolutions (``runs/pretrain/backbone.pt``) initialise every run; the
classifier and the DAMs start from their init. ``--backbone scratch`` trains every run from
random init instead (plain X3D + SAM then collapses to one class, see
``docs/synthetic_study.md``).

Every training runs in its own ``hdf fit`` / ``hdf test`` subprocess; a run whose ``result.json``
exists is skipped, and an interrupted fit resumes from its ``last.ckpt``. Results go to
``<out>/synthetic_study.md`` (the table and the command line) and ``<out>/synthetic_study.csv``.

    python scripts/synthetic_study.py --out runs/synthetic_study
    python scripts/synthetic_study.py --dry-run                      # print the commands only
    python scripts/synthetic_study.py --seeds 0 --epochs 1 --variants x3d hdf \\
        --extra="--data.image_size=32 --data.crop_size=32"           # forward extra overrides
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from hdf_lightning.data.datasets import read_dfew_split
from hdf_lightning.evaluation.metrics import uar_war_from_predictions
from hdf_lightning.inference.checkpoint import network_weights, read_checkpoint

log = logging.getLogger("synthetic_study")

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("x3d", "x3d_dam", "x3d_dsm", "x3d_sam", "hdf")
PRETRAIN = "pretrain"
"""The backbone's pretraining run (``runs/pretrain``) and its data (``data/pretrain``)."""
PRETRAIN_SYNTH_SEED = 1000
"""Generator seed of the pretraining data: identities and styles unlike the study data's."""
BACKBONES = ("pretrained", "scratch")
RESULT_FILE = "result.json"
PREDICTIONS = Path("predictions") / "test_rank0.pt"


DEMO = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
"""configs/demo.yaml: the study trains at the demo's sizes, epochs and data size."""


def demo_net_args() -> list[str]:
    """The ablation configs carry the paper's network sizes; these bring them back to the demo's
    (read from configs/demo.yaml, so the study always trains at the demo's sizes)."""
    net = DEMO["model"]["net"]["init_args"]
    keys = ("num_frames", "width_factor", "depth_factor", "head_dim", "dropout")
    return [f"--model.net.{k}={net[k]}" for k in keys]


DEMO_NET = demo_net_args()
DEMO_DEFAULTS = {
    "epochs": int(DEMO["trainer"]["max_epochs"]),
    "subjects": int(DEMO["data"]["init_args"]["num_subjects"]),
    "clips_per_subject": int(DEMO["data"]["init_args"]["clips_per_subject"]),
}
"""The study's defaults: the demo's epochs and data size."""
SUBSETS = ("seen", "unseen")


@dataclass(frozen=True)
class Settings:
    """What every run of one study shares.

    Attributes:
        epochs: training epochs per run.
        subjects: synthetic subjects (split over the 5 folds).
        clips_per_subject: seen-source clips per subject.
        fold: the DFEW fold trained and tested.
        protocol: the DataModule's validation protocol; ``"honest"`` selects the best checkpoint
            on a held-out part of the training clips (seen sources only), ``"paper"`` on the test
            fold itself (which then includes the unseen-source clips).
        extra: CLI overrides appended to every ``hdf fit`` / ``hdf test`` command.
        synth_seed: the generator seed shared by every run (one data set), or ``None`` to
            generate the data of each run with its training seed (one data set per seed).
        backbone: ``"pretrained"`` (every run starts from the pretraining run's backbone) or
            ``"scratch"`` (random init).
    """

    epochs: int
    subjects: int
    clips_per_subject: int
    fold: int
    protocol: str
    extra: tuple[str, ...]
    synth_seed: int | None = 0
    backbone: str = "pretrained"

    def as_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "subjects": self.subjects,
            "clips_per_subject": self.clips_per_subject,
            "fold": self.fold,
            "protocol": self.protocol,
            "extra": list(self.extra),
            "synth_seed": "seed" if self.synth_seed is None else self.synth_seed,
            "backbone": self.backbone,
        }


@dataclass(frozen=True)
class Run:
    """One (variant, seed) training under ``out`` on the data of generator seed ``synth_seed``.

    The backbone's pretraining is the run with ``pretrain=True`` (variant ``x3d``, data without
    unseen-style clips, in ``runs/pretrain`` and ``data/pretrain``).
    """

    variant: str
    seed: int
    out: Path
    synth_seed: int
    pretrain: bool = False

    @property
    def run_dir(self) -> Path:
        if self.pretrain:
            return self.out / "runs" / PRETRAIN
        return self.out / "runs" / self.variant / f"seed_{self.seed}"

    @property
    def data_root(self) -> Path:
        if self.pretrain:
            return self.out / "data" / PRETRAIN
        return self.out / "data" / f"seed_{self.synth_seed}"


def pretrain_run(out: Path) -> Run:
    """The backbone's pretraining: plain X3D, seed 0, on the data of :data:`PRETRAIN_SYNTH_SEED`."""
    return Run("x3d", 0, out, PRETRAIN_SYNTH_SEED, pretrain=True)


def backbone_path(out: Path) -> Path:
    """The pretrained backbone's state dict (X3D names) that initialises every study run."""
    return pretrain_run(out).run_dir / "backbone.pt"


def save_backbone(checkpoint: Path, target: Path) -> int:
    """Write the network weights of an ``hdf fit`` checkpoint (its ``net.*`` tensors, prefix
    removed) to ``target``, a state dict that ``X3D(weights=...)`` loads. Returns the count."""
    net = network_weights(read_checkpoint(checkpoint), checkpoint)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net, target)
    return len(net)


def hdf_command() -> list[str]:
    """The ``hdf`` console script beside this interpreter, else ``python -m hdf_lightning.cli``."""
    script = Path(sys.executable).with_name("hdf")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "hdf_lightning.cli"]


def common_args(run: Run, settings: Settings) -> list[str]:
    """Config, network, data and trainer arguments shared by the fit and test of ``run``."""
    weights = (
        [f"--model.net.weights={backbone_path(run.out)}"]
        if settings.backbone == "pretrained" and not run.pretrain
        else []
    )
    return [
        "--config",
        str(REPO / "configs" / "demo.yaml"),
        "--config",
        str(REPO / "configs" / "ablations" / f"{run.variant}.yaml"),
        *DEMO_NET,
        f"--seed_everything={run.seed}",
        f"--data.root={run.data_root}",
        f"--data.unseen_source={str(not run.pretrain).lower()}",
        f"--data.num_subjects={settings.subjects}",
        f"--data.clips_per_subject={settings.clips_per_subject}",
        f"--data.synth_seed={run.synth_seed}",
        f"--data.seed={run.seed}",
        f"--data.fold={settings.fold}",
        f"--data.protocol={settings.protocol}",
        f"--trainer.max_epochs={settings.epochs}",
        f"--trainer.default_root_dir={run.run_dir}",
        "--trainer.logger=pytorch_lightning.loggers.CSVLogger",
        f"--trainer.logger.save_dir={run.run_dir}",
        "--trainer.enable_progress_bar=false",
        *weights,
        *settings.extra,
    ]


def fit_command(run: Run, settings: Settings) -> list[str]:
    """``hdf fit``, resuming from ``checkpoints/last.ckpt`` when an interrupted fit left one."""
    last = run.run_dir / "checkpoints" / "last.ckpt"
    resume = [f"--ckpt_path={last}"] if last.is_file() else []
    return [*hdf_command(), "fit", *common_args(run, settings), *resume]


def test_command(run: Run, settings: Settings) -> list[str]:
    """``hdf test`` of the best-validation checkpoint, saving every test prediction."""
    return [
        *hdf_command(),
        "test",
        *common_args(run, settings),
        f"--ckpt_path={run.run_dir / 'checkpoints' / 'best.ckpt'}",
        "--trainer.callbacks+=hdf_lightning.callbacks.EvalPredictionWriter",
    ]


def run_logged(
    command: Sequence[str], log_file: Path, env_extra: Mapping[str, str] | None = None
) -> None:
    """Run ``command`` with its output in ``log_file`` and ``env_extra`` added to its
    environment; raise with the log's tail on failure."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log.info("%s  (output: %s)", shlex.join(command), log_file)
    env = {
        **os.environ,
        "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
        **(env_extra or {}),
    }
    with log_file.open("w") as fh:
        proc = subprocess.run(
            list(command), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    if proc.returncode != 0:
        tail = "\n".join(log_file.read_text().splitlines()[-30:])
        raise RuntimeError(f"exit code {proc.returncode} of: {shlex.join(command)}\n{tail}")


def ensure_backbone(out: Path, settings: Settings) -> Path:
    """Train the pretraining run and write :func:`backbone_path` (kept when it exists)."""
    target = backbone_path(out)
    if target.is_file():
        log.info("pretrained backbone %s exists: pretraining skipped", target)
        return target
    run = pretrain_run(out)
    run_logged(fit_command(run, settings), run.run_dir / "fit.log")
    count = save_backbone(run.run_dir / "checkpoints" / "best.ckpt", target)
    log.info("pretrained backbone: %d tensors in %s", count, target)
    return target


def run_all(runs: Sequence[Run], settings: Settings, jobs: int) -> list[dict[str, Any]]:
    """:func:`run_one` for every run, ``jobs`` at a time, results in the order of ``runs``.

    With ``settings.backbone == "pretrained"`` the backbone is pretrained first (alone).

    The first run of each data set runs alone, since its fit writes the data; the others then
    share the written tree, each with cores ÷ ``jobs`` threads (``OMP_NUM_THREADS``) unless the
    environment sets them.
    """
    if settings.backbone == "pretrained" and runs:
        ensure_backbone(runs[0].out, settings)
    first: dict[Path, int] = {}
    for i, run in enumerate(runs):
        first.setdefault(run.data_root, i)
    results: dict[int, dict[str, Any]] = {}
    for i in sorted(first.values()):
        results[i] = run_one(runs[i], settings)
    threads: dict[str, str] = {}
    if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    rest = [i for i in range(len(runs)) if i not in results]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {i: pool.submit(run_one, runs[i], settings, threads) for i in rest}
        for i, future in futures.items():
            results[i] = future.result()
    return [results[i] for i in range(len(runs))]


def read_manifest(data_root: Path) -> dict[str, bool]:
    """``video_name`` (5-digit id) -> whether its capture style was seen in training."""
    path = data_root / "synthetic_manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"synthetic manifest not found: {path} (written with the data)")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "seen_in_training" not in rows[0]:
        raise ValueError(f"{path}: expected a 'seen_in_training' column, got {list(rows[:1])}")
    return {row["video_name"]: row["seen_in_training"] == "True" for row in rows}


def split_metrics(run: Run, settings: Settings) -> dict[str, dict[str, float]]:
    """WAR/UAR of the saved test predictions on seen-source, unseen-source and all test clips.

    ``predictions/test_rank0.pt`` holds ``index`` (row of the test split), ``label``, ``pred``
    (each ``(N,)``) and ``probs`` ``(N, K)``.
    """
    saved = torch.load(run.run_dir / PREDICTIONS)
    index, labels, preds = saved["index"].long(), saved["label"].long(), saved["pred"].long()
    num_classes = int(saved["probs"].shape[1])
    records = read_dfew_split(run.data_root, settings.fold, "test")
    if len(set(index.tolist())) != len(records):
        raise ValueError(
            f"{run.run_dir / PREDICTIONS}: expected one prediction per test clip "
            f"({len(records)}), got {len(set(index.tolist()))} distinct indices"
        )
    seen_of = read_manifest(run.data_root)
    seen = torch.tensor([seen_of[records[i].clip_id] for i in index.tolist()], dtype=torch.bool)
    masks = {"seen": seen, "unseen": ~seen, "all": torch.ones_like(seen)}
    metrics = {}
    for name, mask in masks.items():
        war, uar = uar_war_from_predictions(preds[mask], labels[mask], num_classes)
        metrics[name] = {"war": war, "uar": uar, "clips": int(mask.sum())}
    return metrics


def run_one(
    run: Run, settings: Settings, env_extra: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Fit, test and score one run (or read its ``result.json`` when it already finished);
    ``env_extra`` is added to the environment of its ``hdf`` subprocesses."""
    result_path = run.run_dir / RESULT_FILE
    if result_path.is_file():
        result: dict[str, Any] = json.loads(result_path.read_text())
        if result.get("settings") != settings.as_dict():
            raise ValueError(
                f"{result_path} was written with settings {result.get('settings')}, expected "
                f"{settings.as_dict()}; use another --out for other settings"
            )
        log.info("%s seed %d already finished (%s): skipped", run.variant, run.seed, result_path)
        return result
    fit, test = fit_command(run, settings), test_command(run, settings)
    run_logged(fit, run.run_dir / "fit.log", env_extra)
    run_logged(test, run.run_dir / "test.log", env_extra)
    result = {
        "variant": run.variant,
        "seed": run.seed,
        "settings": settings.as_dict(),
        "metrics": split_metrics(run, settings),
        "fit_command": shlex.join(fit),
        "test_command": shlex.join(test),
    }
    result_path.write_text(json.dumps(result, indent=2))
    return result


def _mean_std(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def study_table(results: Sequence[dict[str, Any]], variants: Sequence[str]) -> str:
    """Markdown table: WAR/UAR (%) mean ± std over seeds on seen and unseen sources per variant."""
    lines = [
        "| variant | seeds | WAR seen | UAR seen | WAR unseen | UAR unseen | UAR seen − unseen |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant in variants:
        runs = [r for r in results if r["variant"] == variant]
        if not runs:
            continue
        cells = [
            _mean_std([r["metrics"][subset][metric] for r in runs])
            for subset in SUBSETS
            for metric in ("war", "uar")
        ]
        gap = _mean_std([r["metrics"]["seen"]["uar"] - r["metrics"]["unseen"]["uar"] for r in runs])
        seeds = ",".join(str(r["seed"]) for r in runs)
        lines.append(f"| {variant} | {seeds} | " + " | ".join(cells) + f" | {gap} |")
    return "\n".join(lines)


def write_outputs(
    out: Path, results: Sequence[dict[str, Any]], table: str, command: str, wall: float
) -> None:
    """Write ``<out>/synthetic_study.md`` (command, wall time, table) and ``synthetic_study.csv``
    (per run). ``wall`` is this invocation's wall time in seconds (runs read from an earlier
    invocation's ``result.json`` cost nothing here)."""
    clips = {subset: results[0]["metrics"][subset]["clips"] for subset in SUBSETS}
    (out / "synthetic_study.md").write_text(
        f"command: `{command}`\n\n"
        f"wall time: {wall / 60:.1f} min\n\n"
        f"settings: {json.dumps(results[0]['settings'])}\n\n"
        f"test clips per seed (first run): {clips['seen']} seen-source, "
        f"{clips['unseen']} unseen-source\n\n{table}\n"
    )
    with (out / "synthetic_study.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "variant",
                "seed",
                *(f"{m}_{s}" for s in (*SUBSETS, "all") for m in ("war", "uar", "clips")),
            ]
        )
        for r in results:
            row = [r["metrics"][s][m] for s in (*SUBSETS, "all") for m in ("war", "uar", "clips")]
            writer.writerow([r["variant"], r["seed"], *row])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Seen/unseen-source WAR and UAR of the ablation variants on synthetic data.",
        epilog='--extra takes one string of overrides: --extra="--data.image_size=32 --a.b=1"',
    )
    for flag, key, what in (
        ("--epochs", "epochs", "training epochs per run"),
        ("--subjects", "subjects", "synthetic subjects"),
        ("--clips-per-subject", "clips_per_subject", "seen-source clips per subject"),
    ):
        default = DEMO_DEFAULTS[key]
        parser.add_argument(flag, type=int, default=default, help=f"{what} (the demo's: {default})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--out", type=Path, default=Path("runs/synthetic_study"))
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs trained at once; each gets cores/jobs threads unless OMP_NUM_THREADS is set",
    )
    parser.add_argument(
        "--synth-seed",
        type=int,
        default=0,
        help="generator seed of the one data set shared by all runs (default 0)",
    )
    parser.add_argument(
        "--vary-data",
        action="store_true",
        help="generate one data set per training seed (synth_seed = seed) instead",
    )
    parser.add_argument(
        "--backbone",
        default="pretrained",
        choices=BACKBONES,
        help="start every run from a backbone pretrained on separate synthetic data "
        "(pretrained, the default) or from random init (scratch)",
    )
    parser.add_argument("--fold", type=int, default=1, choices=range(1, 6), metavar="{1..5}")
    parser.add_argument(
        "--protocol",
        default="honest",
        choices=["honest", "paper"],
        help="checkpoint selection on held-out training clips (honest) or on the test fold",
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        help="CLI overrides forwarded to every hdf fit/test (shell-split; repeatable)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    command = shlex.join(["python", *(sys.argv if argv is None else ["synthetic_study.py", *argv])])
    extra = tuple(part for chunk in args.extra for part in shlex.split(chunk))
    synth_seed = None if args.vary_data else args.synth_seed
    settings = Settings(
        args.epochs,
        args.subjects,
        args.clips_per_subject,
        args.fold,
        args.protocol,
        extra,
        synth_seed,
        args.backbone,
    )
    runs = [
        Run(v, s, args.out, s if synth_seed is None else synth_seed)
        for s in args.seeds
        for v in args.variants
    ]
    if args.dry_run:
        if settings.backbone == "pretrained":
            print(shlex.join(fit_command(pretrain_run(args.out), settings)))
        for run in runs:
            print(shlex.join(fit_command(run, settings)))
            print(shlex.join(test_command(run, settings)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        results = run_all(runs, settings, args.jobs)
    except (ValueError, RuntimeError) as err:
        log.error("synthetic_study: %s", err)
        return 1
    wall = time.monotonic() - start
    table = study_table(results, args.variants)
    write_outputs(args.out, results, table, command, wall)
    print(f"command: {command}\n\nwall time: {wall / 60:.1f} min\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
