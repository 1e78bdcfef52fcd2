"""Computational cost of a clip classifier: parameters, GFLOPs, peak memory, throughput.

Conventions (stated again in :class:`CostReport`):

* **GFLOPs** follow the DFER papers and fvcore: one multiply-accumulate (MAC) counts as one FLOP,
  so ``gflops_per_clip = MACs × 1e-9``. The count comes from
  ``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per MAC of matrix products,
  convolutions and attention (bias additions, normalisation, activations, pooling and other
  element-wise ops are not counted). The raw count is kept as ``flops_per_clip``;
  ``gflops_per_clip = flops_per_clip / 2 × 1e-9``.
* **Peak memory** is the peak of tensor memory allocated during one forward pass (inference mode,
  batch ``batch_size``) above what was allocated when it started: activations, temporaries and the
  output. Parameters and the input already exist and are not included. On CUDA it is
  ``torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated()`` (before the pass, after
  ``reset_peak_memory_stats``); on CPU it is the peak of the bytes of the tensor storages that the
  pass's operators created and that are still alive, followed operator by operator with a
  ``TorchDispatchMode`` (a storage counts from the operator that returns it until it is freed).
  Scratch memory an operator allocates and frees inside its own kernel, and memory a library
  allocates outside PyTorch's tensors, are not seen. (The profiler's allocator events would see
  them, but starting the profiler on a CPU-only machine prints device-probing errors.)
* **Throughput** is ``batch_size / median(seconds per forward)`` over ``iters`` timed forward passes
  in inference mode after ``warmup`` untimed ones (CUDA synchronised around each pass).
"""

from __future__ import annotations

import copy
import functools
import statistics
import time
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["CostReport", "format_cost", "format_cost_table", "measure_cost"]


_CPU_MEMORY_METHOD = "tensor storages created by the forward's operators: peak of live bytes"
_CUDA_MEMORY_METHOD = "torch.cuda.max_memory_allocated minus memory_allocated before the forward"


@dataclass(frozen=True)
class CostReport:
    """Cost of one model at one input size (see the module docstring for the exact conventions).

    Attributes:
        model: the model's class name.
        input_shape: shape of one clip, ``(C, T, H, W)``.
        batch_size: clips per forward pass in the memory and throughput measurements.
        device: device of the measurement, e.g. ``"cpu"`` or ``"cuda:0"``.
        dtype: parameter and input dtype, e.g. ``"float32"``.
        threads: ``torch.get_num_threads()`` during the measurement (matters on CPU).
        params: number of parameters.
        trainable_params: number of parameters with ``requires_grad``.
        flops_per_clip: raw ``FlopCounterMode`` count of one forward per clip (2 FLOPs per MAC).
        gflops_per_clip: paper/fvcore GFLOPs = multiply-accumulates per clip × 1e-9.
        peak_memory_bytes: peak extra tensor memory of one forward of ``batch_size`` clips, or
            ``None`` when it could not be measured.
        memory_method: how ``peak_memory_bytes`` was measured.
        clips_per_second: inference throughput (median over ``iters`` timed passes).
        iters: timed forward passes.
        warmup: untimed forward passes before timing.
        output_shape: shape of the logits for one batch, ``(batch_size, K)``.
    """

    model: str
    input_shape: tuple[int, ...]
    batch_size: int
    device: str
    dtype: str
    threads: int
    params: int
    trainable_params: int
    flops_per_clip: int
    gflops_per_clip: float
    peak_memory_bytes: int | None
    memory_method: str
    clips_per_second: float
    iters: int
    warmup: int
    output_shape: tuple[int, ...]

    @property
    def macs_per_clip(self) -> int:
        """Multiply-accumulates of one forward per clip (``flops_per_clip // 2``)."""
        return self.flops_per_clip // 2

    def to_dict(self) -> dict[str, object]:
        """Plain, JSON-serialisable values (tuples become lists), for loggers and files."""
        values: dict[str, object] = asdict(self)
        values["input_shape"] = list(self.input_shape)
        values["output_shape"] = list(self.output_shape)
        values["macs_per_clip"] = self.macs_per_clip
        return values


def _logits(output: object) -> Tensor:
    """The logits of a model output: a bare tensor or the first element of ``(logits, feature)``."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise ValueError(
        "model must return logits (B, K) or a tuple (logits (B, K), feature (B, D)), "
        f"got {type(output).__name__}"
    )


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _count_flops(model: nn.Module, clips: Tensor) -> tuple[int, Tensor]:
    """Total FlopCounterMode FLOPs of ``model(clips)`` and the logits."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        logits = _logits(model(clips))
    return int(counter.get_total_flops()), logits


def _peak_cuda_bytes(model: nn.Module, clips: Tensor) -> int:
    device = clips.device
    _synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    with torch.inference_mode():
        model(clips)
    _synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - before)


class _LiveStorageBytes(TorchDispatchMode):
    """Follow the bytes of the tensor storages created while the mode is active.

    Every operator's output storage not seen before (and not in ``existing``) is counted from
    that operator until the storage is freed (a weak-reference callback); ``peak`` is the
    largest total. Views share their base's storage and count once; a storage that grows
    (``resize_``) is counted at its new size.
    """

    def __init__(self, existing: list[Tensor]) -> None:
        super().__init__()
        self._existing = {self._key(t) for t in existing}
        self._sizes: dict[int, int] = {}
        self._refs: dict[int, weakref.ref[torch.UntypedStorage]] = {}
        self.live = 0
        self.peak = 0

    @staticmethod
    def _key(tensor: Tensor) -> int:
        return id(tensor.untyped_storage())

    def _freed(self, key: int, _: object) -> None:
        """Weak-reference callback: the storage ``key`` was freed."""
        self.live -= self._sizes.pop(key, 0)
        self._refs.pop(key, None)

    def _track(self, tensor: Tensor) -> None:
        if tensor.device.type != "cpu" or tensor.is_meta:
            return
        storage = tensor.untyped_storage()
        key = id(storage)
        if key in self._existing:
            return
        size = storage.nbytes()
        if key not in self._refs:
            self._refs[key] = weakref.ref(storage, functools.partial(self._freed, key))
            self._sizes[key] = 0
        self.live += size - self._sizes[key]
        self._sizes[key] = size
        self.peak = max(self.peak, self.live)

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, Tensor):
                self._track(leaf)
        return out


def _peak_cpu_bytes(model: nn.Module, clips: Tensor) -> int:
    """Peak bytes of live tensor storages created during one forward (see the module docs)."""
    existing = [clips, *model.parameters(), *model.buffers()]
    tracker = _LiveStorageBytes(existing)
    with torch.inference_mode(), tracker:
        model(clips)
    return tracker.peak


def _throughput(model: nn.Module, clips: Tensor, *, iters: int, warmup: int) -> float:
    """Clips per second: batch size over the median wall time of ``iters`` forward passes."""
    device = clips.device
    seconds: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(clips)
        for _ in range(iters):
            _synchronize(device)
            start = time.perf_counter()
            model(clips)
            _synchronize(device)
            seconds.append(time.perf_counter() - start)
    return clips.shape[0] / max(statistics.median(seconds), 1e-12)


def measure_cost(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    iters: int = 5,
    warmup: int = 2,
) -> CostReport:
    """Measure parameters, GFLOPs, peak memory and throughput of a clip classifier.

    The measurements run on a copy of ``model`` moved to ``device``/``dtype`` in eval mode, so the
    model passed in is left as it was. Inputs are uniform random clips.

    Args:
        model: ``forward(x (B, C, T, H, W)) -> (logits (B, K), feature (B, D))`` or ``-> logits``.
        input_shape: one clip's shape ``(C, T, H, W)``.
        batch_size: clips per forward pass (FLOPs are reported per clip whatever the batch).
        device: where to run, e.g. ``"cpu"`` or ``"cuda"``.
        dtype: floating dtype of the copy's parameters and of the input.
        iters: timed forward passes (median taken), >= 1.
        warmup: untimed forward passes before timing, >= 0.

    Returns:
        A :class:`CostReport`.
    """
    shape = tuple(input_shape)
    if len(shape) != 4 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"input_shape must be four positive ints (C, T, H, W), got {input_shape}")
    for name, value, low in (
        ("batch_size", batch_size, 1),
        ("iters", iters, 1),
        ("warmup", warmup, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(target)!r} requested but CUDA is not available")

    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    runner = copy.deepcopy(model).to(device=target, dtype=dtype).eval()
    clips = torch.rand((batch_size, *shape), device=target, dtype=dtype)  # (B, C, T, H, W)

    flops, logits = _count_flops(runner, clips)
    if target.type == "cuda":
        peak: int | None = _peak_cuda_bytes(runner, clips)
        memory_method = _CUDA_MEMORY_METHOD
    else:
        peak = _peak_cpu_bytes(runner, clips)
        memory_method = _CPU_MEMORY_METHOD
    clips_per_second = _throughput(runner, clips, iters=iters, warmup=warmup)

    flops_per_clip = flops // batch_size
    return CostReport(
        model=type(model).__name__,
        input_shape=shape,
        batch_size=batch_size,
        device=str(clips.device),
        dtype=str(dtype).removeprefix("torch."),
        threads=torch.get_num_threads(),
        params=params,
        trainable_params=trainable,
        flops_per_clip=flops_per_clip,
        gflops_per_clip=flops_per_clip / 2 * 1e-9,
        peak_memory_bytes=peak,
        memory_method=memory_method,
        clips_per_second=clips_per_second,
        iters=iters,
        warmup=warmup,
        output_shape=tuple(logits.shape),
    )


def _mib(size: int | None) -> str:
    return "n/a" if size is None else f"{size / 2**20:.1f} MiB"


def format_cost(report: CostReport) -> str:
    """A two-column text table of one report."""
    clip = "x".join(str(s) for s in report.input_shape)
    rows = [
        ("model", report.model),
        ("input", f"{report.batch_size} x (C,T,H,W)=({clip}) {report.dtype} on {report.device}"),
        ("parameters", f"{report.params:,} (trainable {report.trainable_params:,})"),
        ("GFLOPs / clip", f"{report.gflops_per_clip:.3f} (MACs x 1e-9, fvcore convention)"),
        ("FLOPs / clip", f"{report.flops_per_clip:,} (FlopCounterMode, 2 per MAC)"),
        (
            "peak memory",
            f"{_mib(report.peak_memory_bytes)} (one forward, batch {report.batch_size})",
        ),
        ("memory method", report.memory_method),
        (
            "throughput",
            f"{report.clips_per_second:.2f} clips/s (median of {report.iters} after "
            f"{report.warmup} warm-up, {report.threads} threads)",
        ),
        ("logits shape", str(tuple(report.output_shape))),
    ]
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)


def format_cost_table(reports: Sequence[CostReport]) -> str:
    """One row per report: model, params, GFLOPs/clip, peak memory, clips/s (Markdown table)."""
    header = (
        "| model | input (C,T,H,W) | params | GFLOPs/clip | peak mem | clips/s | batch | device |"
    )
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in reports:
        clip = "x".join(str(s) for s in r.input_shape)
        lines.append(
            f"| {r.model} | {clip} | {r.params:,} | {r.gflops_per_clip:.3f} | "
            f"{_mib(r.peak_memory_bytes)} | {r.clips_per_second:.2f} | {r.batch_size} | "
            f"{r.device} {r.dtype} |"
        )
    return "\n".join(lines)
