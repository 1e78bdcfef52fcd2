"""Accuracy of the HDF ablation variants on seen and on held-out kinds of heterogeneity.

Each variant of ``configs/ablations/`` is trained at the demo's sizes (``configs/demo.yaml``) on
the synthetic DFEW-layout data, for several seeds. The data holds one test-only style per family
of heterogeneity (``--data.held_out``: colour, quality, sampling, timing; each outside the seen
range in its own family only), with ``--held-out-clips`` clips per subject and style. The
best-validation checkpoint (selected on held-out training clips, ``--protocol honest``) is tested
on the test fold, and WAR/UAR are computed separately on the test clips of the seen styles and on
those of each held-out style (``synthetic_manifest.csv``, column ``source``).

The report gives, per variant and test set, the mean WAR over seeds with its seed spread and a
95 % interval that combines the seeds and the draw of the test clips
(:func:`hdf_lightning.evaluation.stats.crossed_interval`), and the paired difference against
``x3d`` (same seed, same clips) with its interval.

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
exists is skipped, and an interrupted fit resumes from its checkpoint
(``RunLayout.resume_candidate``). Results go to ``<out>/synthetic_study.md`` (the tables and the
command line), ``<out>/synthetic_study.csv`` (per run) and ``<out>/synthetic_study_intervals.csv``,
all written atomically; ``--report-only`` rebuilds them from the run folders' ``result.json`` alone.

    python scripts/synthetic_study.py --out runs/synthetic_study
    python scripts/synthetic_study.py --dry-run                      # print the commands only
    python scripts/synthetic_study.py --out runs/synthetic_study --report-only
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
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from hdf_lightning.commands import build_datamodule, split_data_overrides
from hdf_lightning.data.splits import read_dfew_split
from hdf_lightning.data.synthetic import HELD_OUT_FAMILIES
from hdf_lightning.evaluation.metrics import uar_war_from_predictions
from hdf_lightning.evaluation.stats import Interval, crossed_interval, mean_std, seed_interval
from hdf_lightning.inference.checkpoint import network_weights, read_checkpoint
from hdf_lightning.io import atomic_path, atomic_write_text
from hdf_lightning.run_folder import RunLayout

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
    (read from configs/demo.yaml, so the study always trains at the demo's sizes). The clip
    length follows the demo's ``data.num_frames``."""
    net = DEMO["model"]["net"]["init_args"]
    keys = ("width_factor", "depth_factor", "head_dim", "dropout")
    return [f"--model.net.{k}={net[k]}" for k in keys]


DEMO_NET = demo_net_args()
DEMO_DEFAULTS = {
    "epochs": int(DEMO["trainer"]["max_epochs"]),
    "subjects": int(DEMO["data"]["init_args"]["num_subjects"]),
    "clips_per_subject": int(DEMO["data"]["init_args"]["clips_per_subject"]),
}
"""The study's defaults: the demo's epochs and data size."""
FAMILIES = tuple(HELD_OUT_FAMILIES)
HELD_OUT_CLIPS = 100
"""Default clips per subject of each held-out style: 1200 test clips per style on a 60-subject
fold (one run's WAR then has a sampling error of at most 1.45 points)."""
BASELINE = "x3d"
"""The variant every other one is paired against."""


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
        held_out: the held-out families (test-only styles) of the study data.
        held_out_clips: clips per subject of each held-out style.
    """

    epochs: int
    subjects: int
    clips_per_subject: int
    fold: int
    protocol: str
    extra: tuple[str, ...]
    synth_seed: int | None = 0
    backbone: str = "pretrained"
    held_out: tuple[str, ...] = FAMILIES
    held_out_clips: int = HELD_OUT_CLIPS

    @property
    def subsets(self) -> tuple[str, ...]:
        """The test sets reported: ``seen``, then one per held-out family."""
        return ("seen", *self.held_out)

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
            "held_out": list(self.held_out),
            "held_out_clips": self.held_out_clips,
        }


@dataclass(frozen=True)
class Run:
    """One (variant, seed) training under ``out`` on the data of generator seed ``synth_seed``.

    The backbone's pretraining is the run with ``pretrain=True`` (variant ``x3d``, data without
    held-out styles, in ``runs/pretrain`` and ``data/pretrain``).
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
        "--data.unseen_source=false",
        f"--data.held_out=[{'' if run.pretrain else ','.join(settings.held_out)}]",
        f"--data.held_out_clips_per_subject={settings.held_out_clips}",
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
    """``hdf fit``, resuming as ``hdf cv`` does when an interrupted fit left a checkpoint."""
    last = RunLayout(run.run_dir).resume_candidate()
    resume = [f"--ckpt_path={last}"] if last is not None else []
    return [*hdf_command(), "fit", *common_args(run, settings), *resume]


def test_command(run: Run, settings: Settings) -> list[str]:
    """``hdf test`` of the best-validation checkpoint, saving every test prediction."""
    return [
        *hdf_command(),
        "test",
        *common_args(run, settings),
        f"--ckpt_path={RunLayout(run.run_dir).best}",
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
    count = save_backbone(RunLayout(run.run_dir).best, target)
    log.info("pretrained backbone: %d tensors in %s", count, target)
    return target


def prepare_data(run: Run, settings: Settings) -> None:
    """Write the synthetic data of ``run`` (kept when it exists) as its ``hdf fit`` would.

    The DataModule is built from configs/demo.yaml and the run's ``--data.*`` arguments and
    generates into a temporary folder beside ``run.data_root``, renamed when complete, so an
    interrupted generation never leaves a partial tree behind.
    """
    if run.data_root.exists():
        return
    overrides, _ = split_data_overrides(common_args(run, settings))
    partial = run.data_root.with_name(f".{run.data_root.name}.partial")
    if partial.exists():
        shutil.rmtree(partial)
    datamodule = build_datamodule(str(REPO / "configs" / "demo.yaml"), overrides)
    datamodule.root = partial
    log.info("writing the synthetic data %s", run.data_root)
    datamodule.prepare_data()
    partial.rename(run.data_root)


def run_all(runs: Sequence[Run], settings: Settings, jobs: int) -> list[dict[str, Any]]:
    """:func:`run_one` for every run, ``jobs`` at a time, results in the order of ``runs``.

    First, and at the same time: each missing data set is written (:func:`prepare_data`) and,
    with ``settings.backbone == "pretrained"``, the backbone is pretrained. Then the runs share
    the written trees, each with cores ÷ ``jobs`` threads (``OMP_NUM_THREADS``) unless the
    environment sets them.
    """
    first: dict[Path, Run] = {}
    for run in runs:
        first.setdefault(run.data_root, run)
    with ThreadPoolExecutor(max_workers=len(first) + 1) as pool:
        writes = [pool.submit(prepare_data, run, settings) for run in first.values()]
        if settings.backbone == "pretrained" and runs:
            ensure_backbone(runs[0].out, settings)
        for write in writes:
            write.result()
    threads: dict[str, str] = {}
    if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_one, run, settings, threads) for run in runs]
        return [future.result() for future in futures]


def read_manifest(data_root: Path) -> dict[str, str]:
    """``video_name`` (5-digit id) -> its test set: ``"seen"`` or the held-out family."""
    path = data_root / "synthetic_manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"synthetic manifest not found: {path} (written with the data)")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"seen_in_training", "source"} <= set(rows[0]):
        raise ValueError(
            f"{path}: expected 'source' and 'seen_in_training' columns, got {list(rows[:1])}"
        )
    return {
        row["video_name"]: (
            "seen" if row["seen_in_training"] == "True" else row["source"].removeprefix("held_out_")
        )
        for row in rows
    }


def split_metrics(run: Run, settings: Settings) -> dict[str, dict[str, Any]]:
    """WAR/UAR of the saved test predictions on each test set (:attr:`Settings.subsets`).

    ``predictions/test_rank0.pt`` holds ``index`` (row of the test split), ``label``, ``pred``
    (each ``(N,)``) and ``probs`` ``(N, K)``. Each test set's entry also keeps its clip ids and
    a ``correct`` string (``"1"``/``"0"`` per clip, in id order), from which the intervals of
    the report are computed.
    """
    saved = torch.load(run.run_dir / PREDICTIONS)
    index, labels, preds = saved["index"].long(), saved["label"].long(), saved["pred"].long()
    num_classes = int(saved["probs"].shape[1])
    records = read_dfew_split(run.data_root, settings.fold, "test")
    if sorted(index.tolist()) != list(range(len(records))):
        raise ValueError(
            f"{run.run_dir / PREDICTIONS}: expected one prediction per test clip "
            f"({len(records)}), got {len(set(index.tolist()))} distinct indices"
        )
    subset_of = read_manifest(run.data_root)
    clip_ids = [records[i].clip_id for i in index.tolist()]
    subsets = [subset_of[clip_id] for clip_id in clip_ids]
    metrics = {}
    for name in settings.subsets:
        rows = sorted(
            (cid, i) for i, (cid, s) in enumerate(zip(clip_ids, subsets, strict=True)) if s == name
        )
        if not rows:
            raise ValueError(f"{run.data_root}: no test clip of the {name!r} test set")
        picks = torch.tensor([i for _, i in rows])
        war, uar = uar_war_from_predictions(preds[picks], labels[picks], num_classes)
        correct = (preds[picks] == labels[picks]).tolist()
        metrics[name] = {
            "war": war,
            "uar": uar,
            "clips": len(rows),
            "ids": [cid for cid, _ in rows],
            "correct": "".join("1" if c else "0" for c in correct),
        }
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
    atomic_write_text(result_path, json.dumps(result, indent=2))
    return result


def _scores(run: dict[str, Any], subset: str) -> tuple[tuple[str, ...], np.ndarray]:
    """A run's clip ids and 0/1 correctness on one test set."""
    entry = run["metrics"][subset]
    return tuple(entry["ids"]), np.frombuffer(entry["correct"].encode(), dtype=np.uint8) - 48


def interval(rows: Sequence[tuple[tuple[str, ...], np.ndarray]]) -> Interval | None:
    """The interval of per-seed score rows (ids, scores); ``None`` for a single seed.

    Rows over the same clips give :func:`crossed_interval` (seeds and clips); rows over
    different clips (``--vary-data``) give :func:`seed_interval` of their means.
    """
    if len(rows) < 2:
        return None
    if all(ids == rows[0][0] for ids, _ in rows):
        return crossed_interval(np.stack([scores for _, scores in rows]).astype(np.float64))
    return seed_interval([float(scores.mean()) for _, scores in rows])


def study_intervals(
    results: Sequence[dict[str, Any]], variants: Sequence[str], subsets: Sequence[str]
) -> list[dict[str, Any]]:
    """Per variant and test set: the WAR interval (``kind="war"``) and, for every variant but
    :data:`BASELINE`, the paired WAR difference against it over the seeds both have
    (``kind="diff"``). Values are fractions; ``interval`` is ``None`` for one seed."""
    by_run = {(r["variant"], r["seed"]): r for r in results}
    rows: list[dict[str, Any]] = []
    for variant in variants:
        seeds = sorted(seed for v, seed in by_run if v == variant)
        paired = [s for s in seeds if (BASELINE, s) in by_run] if variant != BASELINE else []
        for subset in subsets:
            scores = {s: _scores(by_run[variant, s], subset) for s in seeds}
            rows.append(_interval_row(variant, subset, "war", seeds, list(scores.values())))
            if not paired:
                continue
            diffs = []
            for s in paired:
                ids, mine = scores[s]
                base_ids, base = _scores(by_run[BASELINE, s], subset)
                if ids != base_ids:
                    raise ValueError(
                        f"{variant} and {BASELINE} seed {s} were tested on different {subset} "
                        "clips; the paired difference needs the same test set"
                    )
                diffs.append((ids, mine.astype(np.float64) - base))
            rows.append(_interval_row(variant, subset, "diff", paired, diffs))
    return rows


def _interval_row(
    variant: str,
    subset: str,
    kind: str,
    seeds: Sequence[int],
    scores: Sequence[tuple[tuple[str, ...], np.ndarray]],
) -> dict[str, Any]:
    values = [float(s.mean()) for _, s in scores]
    mean, std = mean_std(values)
    return {
        "variant": variant,
        "subset": subset,
        "kind": kind,
        "seeds": list(seeds),
        "mean": mean,
        "seed_std": std,
        "clips": len(scores[0][0]),
        "interval": interval(scores),
    }


def _cell(row: dict[str, Any], signed: bool = False) -> str:
    sign = "+" if signed else ""
    text = f"{100 * row['mean']:{sign}.1f} ± {100 * row['seed_std']:.1f}"
    ci = row["interval"]
    if ci is None:
        return text
    return f"{text} [{100 * ci.low:{sign}.1f}, {100 * ci.high:{sign}.1f}]"


def study_table(
    rows: Sequence[dict[str, Any]], variants: Sequence[str], subsets: Sequence[str]
) -> str:
    """Two markdown tables of :func:`study_intervals`'s ``rows``: WAR (%) per variant and test
    set, then the paired difference against :data:`BASELINE` (points); each cell is
    ``mean ± seed std [95 % interval]``."""
    header = "| variant | seeds | " + " | ".join(subsets) + " |"
    rule = "|---|---|" + "---|" * len(subsets)
    tables = []
    for kind, title in (
        ("war", "WAR (%): mean ± seed std [95 % interval over seeds and test clips]"),
        ("diff", f"WAR − {BASELINE} WAR (points), same seed and clips: mean ± seed std [95 %]"),
    ):
        lines = [title, "", header, rule]
        for variant in variants:
            cells = [r for r in rows if r["variant"] == variant and r["kind"] == kind]
            if cells:
                seeds = ",".join(str(s) for s in cells[0]["seeds"])
                text = " | ".join(_cell(r, signed=kind == "diff") for r in cells)
                lines.append(f"| {variant} | {seeds} | {text} |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def write_outputs(
    out: Path,
    results: Sequence[dict[str, Any]],
    variants: Sequence[str],
    command: str,
    wall: float | None,
) -> str:
    """Write ``<out>/synthetic_study.md`` (command, wall time, tables), ``synthetic_study.csv``
    (per run and test set) and ``synthetic_study_intervals.csv`` (per variant, test set and kind),
    each atomically; return the tables. ``wall`` is this invocation's wall time in seconds
    (``None`` when only the report was rebuilt)."""
    subsets = tuple(results[0]["metrics"])
    rows = study_intervals(results, variants, subsets)
    table = study_table(rows, variants, subsets)
    clips = ", ".join(f"{s} {results[0]['metrics'][s]['clips']}" for s in subsets)
    wall_text = "report rebuilt from the run folders" if wall is None else f"{wall / 60:.1f} min"
    atomic_write_text(
        out / "synthetic_study.md",
        f"command: `{command}`\n\nwall time: {wall_text}\n\n"
        f"settings: {json.dumps(results[0]['settings'])}\n\n"
        f"test clips per run: {clips}\n\n{table}\n",
    )
    with atomic_path(out / "synthetic_study.csv") as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["variant", "seed", "subset", "war", "uar", "clips"])
        for r in results:
            for s in subsets:
                m = r["metrics"][s]
                writer.writerow([r["variant"], r["seed"], s, m["war"], m["uar"], m["clips"]])
    fields = ["variant", "subset", "kind", "seeds", "clips", "mean", "seed_std"]
    with atomic_path(out / "synthetic_study_intervals.csv") as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*fields, "low", "high", "half_width", "df"])
        for row in rows:
            ci = row["interval"]
            bounds = ["", "", "", ""] if ci is None else [ci.low, ci.high, ci.half_width, ci.df]
            seeds = " ".join(str(s) for s in row["seeds"])
            writer.writerow(
                [*(row[f] for f in fields[:3]), seeds, *(row[f] for f in fields[4:]), *bounds]
            )
    return table


def collect_results(out: Path, variants: Sequence[str]) -> list[dict[str, Any]]:
    """Every finished run's ``result.json`` under ``<out>/runs/<variant>/seed_*``, by variant
    then seed."""
    results = []
    for variant in variants:
        paths = (out / "runs" / variant).glob(f"seed_*/{RESULT_FILE}")
        found = [json.loads(p.read_text()) for p in paths]
        results += sorted(found, key=lambda r: r["seed"])
    if not results:
        raise ValueError(f"no finished run ({RESULT_FILE}) under {out / 'runs'}")
    settings = {json.dumps(r["settings"], sort_keys=True) for r in results}
    if len(settings) > 1:
        raise ValueError(f"the runs under {out} were made with different settings: {settings}")
    return results


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
    parser.add_argument(
        "--held-out",
        nargs="+",
        default=list(FAMILIES),
        choices=FAMILIES,
        help="held-out families, one test-only style each (default: all)",
    )
    parser.add_argument(
        "--held-out-clips",
        type=int,
        default=HELD_OUT_CLIPS,
        help=f"clips per subject of each held-out style (default {HELD_OUT_CLIPS})",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: rebuild the report from the result.json files under --out",
    )
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.held_out_clips < 1:
        parser.error(f"--held-out-clips must be >= 1, got {args.held_out_clips}")
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
        tuple(args.held_out),
        args.held_out_clips,
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
    start = time.monotonic()
    try:
        if args.report_only:
            results, wall = collect_results(args.out, args.variants), None
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            results = run_all(runs, settings, args.jobs)
            wall = time.monotonic() - start
        table = write_outputs(args.out, results, args.variants, command, wall)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        log.error("synthetic_study: %s", err)
        return 1
    wall_text = "" if wall is None else f"wall time: {wall / 60:.1f} min\n\n"
    print(f"command: {command}\n\n{wall_text}{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
