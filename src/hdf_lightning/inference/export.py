"""``hdf export``: a checkpoint's network as ONNX, torch.export (``.pt2``) or TorchScript.

The exported model maps clips ``(B, 3, T, S, S)`` (RGB in [0, 1], normalised with the
checkpoint's mean/std) to logits ``(B, K)``; the batch size ``B`` is dynamic. Beside the model,
``preprocessing.json`` records the frames, size, mean/std, sampler and class names, so another
runtime prepares clips as ``hdf predict`` does. Each export is run once more on a batch of another
size and compared with PyTorch; the largest absolute logit difference is printed.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hdf_lightning.errors import RunFolderError, command_error
from hdf_lightning.inference.checkpoint import CheckpointError, LoadedModel, load_model
from hdf_lightning.inference.options import FIT_CONFIG, command_parser
from hdf_lightning.io import atomic_path, atomic_write_text, check_writable

__all__ = ["FORMATS", "LogitsOnly", "export_main", "export_model"]

log = logging.getLogger(__name__)

FORMATS = ("onnx", "pt2", "torchscript")
"""``onnx`` (``model.onnx``), ``pt2`` (``torch.export``, ``model.pt2``), ``torchscript``
(``model.torchscript.pt``, traced)."""


class LogitsOnly(nn.Module):
    """The network with one output: ``(B, 3, T, S, S) -> logits (B, K)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, clips: Tensor) -> Tensor:
        logits, _ = self.net(clips)
        return logits


def _export_onnx(module: nn.Module, example: Tensor, path: Path, opset: int, dynamo: bool) -> None:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        # the torch.export-based exporter takes dynamic shapes; the TorchScript-based one (several
        # times faster to export) dynamic axes
        dynamic: dict[str, Any] = (
            {"dynamic_shapes": {"clips": {0: torch.export.Dim("batch", min=1, max=1024)}}}
            if dynamo
            else {"dynamic_axes": {"clips": {0: "batch"}, "logits": {0: "batch"}}}
        )
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["clips"],
            output_names=["logits"],
            opset_version=opset,
            dynamo=dynamo,
            **dynamic,
        )


def _run_onnx(path: Path, x: Tensor) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"clips": x.numpy()})
    return out


def _export_pt2(module: nn.Module, example: Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(module, (example,), dynamic_shapes={"clips": {0: batch}})
    torch.export.save(program, str(path))


def _run_pt2(path: Path, x: Tensor) -> np.ndarray:
    loaded = torch.export.load(str(path)).module()
    with torch.no_grad():
        return loaded(x).numpy()


def _export_torchscript(module: nn.Module, example: Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, (example,), check_trace=False)
        torch.jit.save(traced, str(path))


def _run_torchscript(path: Path, x: Tensor) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path))
    with torch.no_grad():
        return loaded(x).numpy()


RUNNERS: dict[str, Callable[[Path, Tensor], np.ndarray]] = {
    "onnx": _run_onnx,
    "pt2": _run_pt2,
    "torchscript": _run_torchscript,
}
"""Format -> function running an exported file on a batch (the parity check)."""

FILES = {"onnx": "model.onnx", "pt2": "model.pt2", "torchscript": "model.torchscript.pt"}


def export_model(
    model: LoadedModel,
    out: Path,
    formats: tuple[str, ...] = ("onnx", "pt2"),
    *,
    opset: int = 18,
    dynamo: bool = False,
    check_batch: int = 3,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Export ``model`` into ``out`` and check each export against PyTorch.

    Args:
        model: the network and preprocessing of a checkpoint (:func:`load_model`).
        out: output folder (created); gets one file per format and ``preprocessing.json``.
        formats: a subset of :data:`FORMATS` (``onnx``, ``pt2``, ``torchscript``).
        opset: ONNX opset.
        dynamo: ONNX through the ``torch.export``-based exporter instead of the TorchScript-based
            one (both give a dynamic batch axis; the latter exports several times faster).
        check_batch: batch size of the parity check (differs from the export's 2, so the
            dynamic batch axis is exercised).
        seed: seed of the random clips of the parity check.

    Returns:
        Per format: ``{"path": ..., "max_abs_diff": float | None, "note": str}`` (``None`` when
        the runtime to check it is not installed).
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}: expected some of {list(FORMATS)}")
    pre = model.preprocessing
    module = LogitsOnly(model.net).eval()
    shape = (3, pre.num_frames, pre.crop_size, pre.crop_size)
    generator = torch.Generator().manual_seed(seed)
    example = torch.rand((2, *shape), generator=generator)
    check = torch.rand((check_batch, *shape), generator=generator)
    if pre.mean is not None and pre.std is not None:
        mean = torch.tensor(pre.mean).view(1, 3, 1, 1, 1)
        std = torch.tensor(pre.std).view(1, 3, 1, 1, 1)
        example, check = (example - mean) / std, (check - mean) / std
    with torch.no_grad():
        expected = module(check).numpy()
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for fmt in formats:
        path = out / FILES[fmt]
        with atomic_path(path, keep_suffix=True) as temporary:
            if fmt == "onnx":
                _export_onnx(module, example, temporary, opset, dynamo)
            elif fmt == "pt2":
                _export_pt2(module, example, temporary)
            else:
                _export_torchscript(module, example, temporary)
        try:
            got = RUNNERS[fmt](path, check)
        except ImportError as err:
            results[fmt] = {"path": str(path), "max_abs_diff": None, "note": f"not checked: {err}"}
            continue
        diff = float(np.abs(got - expected).max())
        results[fmt] = {"path": str(path), "max_abs_diff": diff, "note": f"batch {check_batch}"}
    record = {
        **pre.to_dict(),
        "checkpoint": str(model.path.resolve()),
        "network": model.net_config,
        "output": "logits (B, K); softmax gives the class probabilities",
        "files": {fmt: FILES[fmt] for fmt in formats},
    }
    atomic_write_text(out / "preprocessing.json", json.dumps(record, indent=2) + "\n")
    return results


_EXPORT_ARGUMENTS = ("model", "out")
"""Parameters of :func:`export_model` that are not flags (the checkpoint, ``--out``)."""


def _export_parameters() -> list[str]:
    """The parameters of :func:`export_model` that ``hdf export`` takes as flags."""
    names = inspect.signature(export_model).parameters
    return [name for name in names if name not in _EXPORT_ARGUMENTS]


def _parser() -> Any:
    """``hdf export``'s flags: those of :func:`export_model`'s signature, ``--out`` and
    ``--tolerance``."""
    parser = command_parser(
        "hdf export",
        "Export the network of a checkpoint (clips (B, 3, T, S, S) -> logits (B, K), dynamic "
        "batch) with its preprocessing.json, and check it against PyTorch.",
        checkpoint=True,
    )
    parser.add_argument("--out", type=Path, default=Path("export"), help="output folder")
    parser.add_function_arguments(export_model, None, as_group=False, skip=set(_EXPORT_ARGUMENTS))
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max |Δ logits| allowed")
    return parser


def export_main(argv: list[str]) -> int:
    """``hdf export --ckpt_path CKPT [--out DIR] [--formats [onnx,pt2,torchscript]]``.

    Returns 0 when every export matched PyTorch within ``--tolerance``, 1 otherwise, 2 for an
    unusable checkpoint or option.
    """
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    cfg = _parser().parse_args(argv)
    try:
        check_writable(cfg.out, "--out")
        model = load_model(cfg.ckpt_path, config=cfg[FIT_CONFIG])
        kwargs = {name: cfg[name] for name in _export_parameters()}
        results = export_model(model, cfg.out, **kwargs)
    except (CheckpointError, RunFolderError, ValueError) as err:
        return command_error("export", err)
    status = 0
    pre = model.preprocessing
    print(
        f"exported {model.net_config.get('class_path')} from {model.path}: input (B, 3, "
        f"{pre.num_frames}, {pre.crop_size}, {pre.crop_size}), {len(pre.class_names)} classes; "
        f"preprocessing in {cfg.out / 'preprocessing.json'}"
    )
    for fmt, result in results.items():
        diff = result["max_abs_diff"]
        if diff is None:
            print(f"  {fmt:12s} {result['path']}: parity {result['note']}")
            continue
        ok = diff <= cfg.tolerance
        status |= 0 if ok else 1
        print(
            f"  {fmt:12s} {result['path']}: parity vs PyTorch max |Δ logits| = {diff:.3g} "
            f"({result['note']}) {'ok' if ok else f'ABOVE the tolerance {cfg.tolerance:g}'}"
        )
    return status
