"""Insert DAM after chosen submodules of any network that produces (B, C, T, H, W) features.

Example, DAM after ``layer1`` and ``layer3`` of torchvision's ``r3d_18``::

    model = torchvision.models.video.r3d_18()
    clip = torch.zeros(1, 3, 16, 112, 112)
    dams = insert_dam(model, after=["layer1", "layer3"], example_input=clip)
    # r3d_18 halves T in layer2..layer4: the DAMs were built for T = 16 and T = 4

Each named submodule ``m`` is replaced in its parent by :class:`DAMAfter` ``(m, DAM(C, T))``; the
submodule's parameter names gain a ``.body`` infix (``layer1.0.conv1...`` becomes
``layer1.body.0.conv1...``), so load pretrained weights *before* inserting DAMs.

``C`` and ``T`` of each insertion point come from, in order of precedence: the ``channels`` and
``num_frames`` arguments, a dry run on ``example_input`` (shapes recorded by forward hooks, in eval
mode and without gradients), and, for the channels only, the output width of the submodule's last
BatchNorm or convolution. ``T`` must equal the number of frames *at that point*: networks with a
temporal stride (r3d_18, R(2+1)D, SlowFast) reduce it stage by stage, so give ``example_input``
or a per-name mapping for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from hdf_lightning.layers.dam import DAM


class DAMAfter(nn.Module):
    """``dam(body(x))``: a submodule followed by a DAM on its (B, C, T, H, W) output.

    Args:
        body: the wrapped submodule; its output must be ``(B, C, T, H, W)``.
        dam: the DAM applied to that output.
    """

    def __init__(self, body: nn.Module, dam: DAM) -> None:
        super().__init__()
        self.body = body
        self.dam = dam

    def forward(self, x: Tensor) -> Tensor:
        """Run the body, then DAM: ``(B, ...) -> (B, C, T, H, W)``."""
        return self.dam(self.body(x))


def insert_dam(
    model: nn.Module,
    after: Sequence[str],
    *,
    num_frames: int | Mapping[str, int] | None = None,
    channels: Mapping[str, int] | None = None,
    example_input: Tensor | None = None,
) -> dict[str, DAM]:
    """Insert a DAM after each named submodule of ``model``, in place.

    Args:
        model: any network; the submodules named in ``after`` must output ``(B, C, T, H, W)``.
        after: dotted submodule names (as in ``model.named_modules()``), e.g. ``["layer1"]``.
        num_frames: ``T`` at every insertion point (an int when it is the same everywhere, or a
            mapping per name); inferred from ``example_input`` when omitted.
        channels: ``C`` per name; inferred from ``example_input``, else from the submodule's last
            BatchNorm/convolution, when omitted.
        example_input: an input for a dry run that records each insertion point's output shape
            (the model runs once in eval mode without gradients; its mode is restored). When given,
            explicit ``num_frames``/``channels`` are checked against the recorded shapes.

    Returns:
        The inserted DAMs by name (new DAMs are on the device and dtype of ``model``'s first
        parameter, if any).

    Raises:
        ValueError: an unknown or repeated name, an output that is not 5-D, a ``T``/``C`` that
            contradicts the dry run, or a ``T``/``C`` that cannot be determined.
    """
    names = list(after)
    if not names:
        raise ValueError("insert_dam expects at least one submodule name in `after`, got none")
    if len(set(names)) != len(names):
        raise ValueError(f"insert_dam expects distinct names in `after`, got {names}")
    modules = dict(model.named_modules())
    for name in names:
        if name == "" or name not in modules:
            children = [n for n, _ in model.named_children()]
            raise ValueError(
                f"insert_dam: no submodule named {name!r}; top-level children are {children}"
            )

    shapes = _record_output_shapes(model, names, example_input) if example_input is not None else {}
    reference = next(model.parameters(), None)
    inserted: dict[str, DAM] = {}
    for name in names:
        c, t = _resolve_sizes(name, modules[name], shapes.get(name), num_frames, channels)
        dam = DAM(c, t)
        if reference is not None:
            dam = dam.to(device=reference.device, dtype=reference.dtype)
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child_name, DAMAfter(modules[name], dam))
        inserted[name] = dam
    return inserted


def _record_output_shapes(
    model: nn.Module, names: Sequence[str], example_input: Tensor
) -> dict[str, tuple[int, ...]]:
    """Run ``model(example_input)`` once and return each named submodule's output shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name in names:

        def hook(_m: nn.Module, _i: object, out: object, name: str = name) -> None:
            if isinstance(out, Tensor):
                shapes[name] = tuple(out.shape)

        handles.append(model.get_submodule(name).register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    for name in names:
        shape = shapes.get(name)
        if shape is None or len(shape) != 5:
            raise ValueError(
                f"insert_dam: {name!r} must output a (B, C, T, H, W) tensor, got "
                f"{'no tensor' if shape is None else shape} on the example input"
            )
    return shapes


def _resolve_sizes(
    name: str,
    module: nn.Module,
    shape: tuple[int, ...] | None,
    num_frames: int | Mapping[str, int] | None,
    channels: Mapping[str, int] | None,
) -> tuple[int, int]:
    """``(C, T)`` for one insertion point from the arguments, the dry run or the module."""
    given_t = num_frames.get(name) if isinstance(num_frames, Mapping) else num_frames
    given_c = channels.get(name) if channels is not None else None
    if shape is not None:
        _, out_c, t, _, _ = shape
        if given_t is not None and given_t != t:
            raise ValueError(
                f"insert_dam: num_frames={given_t} for {name!r}, but its output has T={t} on the "
                f"example input {shape} (a temporal stride before this point changes T)"
            )
        if given_c is not None and given_c != out_c:
            raise ValueError(
                f"insert_dam: channels={given_c} for {name!r}, but its output has C={out_c} "
                f"on the example input {shape}"
            )
        return out_c, t
    c = given_c if given_c is not None else _last_width(module)
    if c is None or given_t is None:
        missing = "num_frames" if given_t is None else "channels"
        raise ValueError(
            f"insert_dam: cannot determine {missing} for {name!r}; pass example_input or "
            f"give {missing} for it explicitly"
        )
    return c, given_t


def _last_width(module: nn.Module) -> int | None:
    """Output width of the last BatchNorm/convolution registered in ``module``, if any."""
    width: int | None = None
    for sub in module.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            width = sub.num_features
        elif isinstance(sub, nn.modules.conv._ConvNd):
            width = sub.out_channels
    return width
