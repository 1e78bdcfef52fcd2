"""SAM / ASAM: sharpness-aware minimisation around any base optimizer, and BatchNorm freezing.

One SAM step (Foret et al., ICLR 2021; ASAM: Kwon et al., ICML 2021)::

    loss(model(x)).backward()              # first pass at w
    g = optimizer.first_step(zero_grad=True)   # w <- w + e, returns g
    with frozen_bn_stats(model):
        loss(model(x)).backward()          # second pass at w + e
    optimizer.second_step(zero_grad=True)  # w restored exactly, base step with the second gradient

With a ``torch.amp.GradScaler``: ``scaler.unscale_(optimizer)`` before ``first_step`` (a
non-finite g skips the perturbation), scale the second loss, then ``optimizer.restore()`` and
``scaler.step(optimizer.base_optimizer)``, which unscales the second gradient and skips the step
when it is not finite, and ``scaler.update()``.

:class:`SAM`'s ``step(closure)`` expects the first backward to have run already (the loop above).
:class:`ClosureSAM` follows ``torch.optim``'s own closure convention instead (the closure clears
the gradients, computes the loss and calls ``backward``; ``step(closure)`` runs it twice): it is
the one to return from ``configure_optimizers`` of a LightningModule in automatic optimisation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer

__all__ = ["SAM", "ClosureSAM", "frozen_bn_stats", "gradient_norm"]

log = logging.getLogger(__name__)

_EPS = 1e-12


@torch.no_grad()
def gradient_norm(params: Iterable[Tensor], *, adaptive: bool = False) -> Tensor:
    """Global L2 norm of the gradients of ``params`` (of w·∇ with ``adaptive``), float32.

    Parameters without a gradient are skipped. Returns a () tensor on the device of the first
    gradient (a CPU zero when there is none). SAM's g, and DSM's g when training without SAM.
    """
    norms: list[Tensor] = []
    device: torch.device | None = None
    for p in params:
        if p.grad is None:
            continue
        device = p.grad.device if device is None else device
        grad = p.grad * p.abs() if adaptive else p.grad
        norms.append(torch.linalg.vector_norm(grad, dtype=torch.float32).to(device))
    if not norms:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(norms))


class SAM(Optimizer):
    """Sharpness-aware minimisation wrapping a base optimizer.

    ``param_groups`` (and ``state``) are those of the base optimizer, so LR schedulers, gradient
    clipping and ``GradScaler.unscale_`` act on both. ``state_dict()`` is the base optimizer's.

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``/``adaptive``).
        base_optimizer: builds the base optimizer from parameter groups, e.g.
            ``functools.partial(torch.optim.AdamW, lr=5e-4, weight_decay=0.05)``.
        rho: neighbourhood radius ρ ≥ 0 (0.05 for SAM, about 2.0 for ASAM).
        adaptive: ASAM, a perturbation scaled by the weights: e = ρ·w²·∇ / ||w·∇||.

    Attributes:
        base_optimizer: the wrapped optimizer.
        last_grad_norm: g of the last :meth:`first_step` (scalar tensor), None before.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: Callable[[Iterable[Any]], Optimizer],
        *,
        rho: float = 0.05,
        adaptive: bool = False,
    ) -> None:
        if not rho >= 0.0:
            raise ValueError(f"expected rho >= 0, got {rho}")
        super().__init__(params, {"rho": rho, "adaptive": adaptive})
        self.base_optimizer = base_optimizer(self.param_groups)
        if not isinstance(self.base_optimizer, Optimizer):
            raise ValueError(
                "expected base_optimizer to build a torch.optim.Optimizer, got "
                f"{type(self.base_optimizer).__name__}"
            )
        self._share_base_state()
        self.defaults.update(self.base_optimizer.defaults)
        self.last_grad_norm: Tensor | None = None
        self._backup: dict[Tensor, Tensor] = {}

    def _share_base_state(self) -> None:
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group to the base optimizer (with this optimizer's ρ and adaptive)."""
        if not hasattr(self, "base_optimizer"):  # called by Optimizer.__init__
            super().add_param_group(param_group)
            return
        for key, value in self.defaults.items():
            if key in ("rho", "adaptive"):
                param_group.setdefault(key, value)
        self.base_optimizer.add_param_group(param_group)

    @property
    def is_perturbed(self) -> bool:
        """Whether the weights currently hold a perturbation that :meth:`restore` will undo."""
        return bool(self._backup)

    @torch.no_grad()
    def grad_norm(self) -> Tensor:
        """Global L2 norm g of the gradients (ASAM groups: of w·∇), as a float32 scalar.

        Returns:
            () tensor on the device of the first parameter with a gradient (0 without any).
        """
        norms = [
            gradient_norm(group["params"], adaptive=group["adaptive"])
            for group in self.param_groups
            if any(p.grad is not None for p in group["params"])
        ]
        if not norms:
            return torch.zeros(())
        if len(norms) == 1:
            return norms[0]
        return torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]))

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> Tensor:
        """Move the weights to the worst case w + e of the neighbourhood and return g.

        e = ρ·∇ / (g + 1e-12), or for ASAM e = ρ·w²·∇ / (||w·∇|| + 1e-12). The weights before the
        perturbation are stored as exact copies for :meth:`restore` (a perturbation still in
        place is undone first). When g is not finite the weights are left as they are and g is
        returned (the caller skips the step).

        Args:
            zero_grad: clear the gradients afterwards (before the second pass).

        Returns:
            g, a float32 scalar tensor (also in ``last_grad_norm``).
        """
        self.restore()
        g = self.grad_norm()
        self.last_grad_norm = g
        if bool(torch.isfinite(g)):
            for group in self.param_groups:
                scale = group["rho"] / (g + _EPS)
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    self._backup[p] = p.detach().clone()
                    e_w = p.grad * scale.to(device=p.device, dtype=p.dtype)
                    if group["adaptive"]:
                        e_w = e_w * p.square()
                    p.add_(e_w)
        else:
            log.debug("SAM: gradient norm %s is not finite, weights not perturbed", g.item())
        if zero_grad:
            self.zero_grad()
        return g

    @torch.no_grad()
    def restore(self) -> None:
        """Copy the weights stored by :meth:`first_step` back (bitwise); no-op if not perturbed."""
        for p, old in self._backup.items():
            p.copy_(old)
        self._backup.clear()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore the weights and take the base optimizer's step with the current gradients.

        Args:
            zero_grad: clear the gradients afterwards.
        """
        self.restore()
        self.base_optimizer.step()
        # LR schedulers watch ``optimizer.step`` to check the call order; record the step here.
        self._opt_called = True
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One SAM step for plain loops, after the first forward/backward has been run.

        Not for Lightning's automatic optimisation, whose closure runs the *first* pass: there
        this step would perturb along the previous step's gradient. Use :class:`ClosureSAM`.

        Performs :meth:`first_step` (clearing the gradients), calls ``closure`` (which must run
        the forward and backward pass again, at the perturbed weights) and :meth:`second_step`.
        When g is not finite, the closure and the update are skipped. Raises ``ValueError`` when
        no parameter has a gradient (the first backward has not run).

        Args:
            closure: re-evaluates the model and calls ``backward``; returns the loss.

        Returns:
            The closure's loss at the perturbed weights, or None when the step was skipped.
        """
        if closure is None:
            raise ValueError(
                "SAM.step needs a closure that runs the forward and backward pass again; "
                "or call first_step() and second_step() around the second pass yourself"
            )
        if not any(p.grad is not None for group in self.param_groups for p in group["params"]):
            raise ValueError(
                "SAM.step(closure) expects the first forward/backward to have run (no parameter "
                "has a gradient); for a closure that runs the first pass itself, as Lightning's "
                "automatic optimisation passes, use ClosureSAM"
            )
        g = self.first_step(zero_grad=True)
        if not bool(torch.isfinite(g)):
            log.warning("SAM: gradient norm %s is not finite, step skipped", g.item())
            return None
        with torch.enable_grad():
            loss = closure()
        self.second_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict (its param_groups include ``rho`` and ``adaptive``)."""
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict produced by :meth:`state_dict` into the base optimizer."""
        self.restore()
        self.base_optimizer.load_state_dict(state_dict)
        self._share_base_state()


class ClosureSAM(SAM):
    """SAM whose ``step(closure)`` runs both passes, for the standard ``torch.optim`` closure.

    The closure must clear the gradients, compute the loss and call ``backward`` (the convention
    of ``torch.optim.LBFGS``, and what Lightning's automatic optimisation passes to
    ``optimizer.step``: ``training_step``, ``zero_grad``, ``backward`` and its gradient hooks).
    One :meth:`step`::

        loss = closure()                     # first pass at w
        g = first_step(zero_grad=True)       # w <- w + e; on_grad_norm(g)
        with frozen_bn_stats(model):         # when `model` is given
            closure()                        # second pass at w + e
        second_step()                        # w restored, base step with the second gradient

    and returns the first pass's loss. In a LightningModule (automatic optimisation, precision
    ``32-true`` or ``bf16-mixed``)::

        def configure_optimizers(self):
            return ClosureSAM(self.parameters(), partial(torch.optim.AdamW, lr=1e-3),
                              model=self, on_grad_norm=self.dsm.observe_grad_norm)

    What changes for the module:

    * ``training_step`` runs twice per optimizer step; :attr:`is_perturbed` is True in the second
      run (``self.optimizers().is_perturbed``). HDF's DSM wants the *unweighted* loss in the first
      pass, whose gradient norm g sets the weights of the second:
      ``self.dsm(logits, feature, y, weighted=self.optimizers().is_perturbed)``. Log in the first
      run only (``self.log`` in both runs logs twice per step).
    * ``on_before_optimizer_step`` and gradient clipping run after each of the two backward
      passes (Lightning calls them after the closure), so g is the norm after clipping.
    * Lightning reports the loss of the last closure call, the second pass's.
    * Not supported: ``16-mixed`` (Lightning's GradScaler calls ``step()`` without a closure;
      :meth:`step` then raises), and gradient accumulation (SAM's perturbation needs the gradient
      of the whole batch at once). ``HDFClassifier`` (manual optimisation) handles fp16 too.

    Args:
        params, base_optimizer, rho, adaptive: as for :class:`SAM`.
        model: its BatchNorm running statistics are kept unchanged during the second pass
            (:func:`frozen_bn_stats`); None leaves them to update in both passes.
        on_grad_norm: called with g (a () float32 tensor) after each first pass with a finite g,
            before the second, e.g. ``DSM.observe_grad_norm``.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: Callable[[Iterable[Any]], Optimizer],
        *,
        rho: float = 0.05,
        adaptive: bool = False,
        model: nn.Module | None = None,
        on_grad_norm: Callable[[Tensor], Any] | None = None,
    ) -> None:
        super().__init__(params, base_optimizer, rho=rho, adaptive=adaptive)
        self._model = model
        self._on_grad_norm = on_grad_norm

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One SAM step: the closure's first pass at w, the perturbation, the second pass, update.

        When g is not finite the second pass and the update are skipped (the gradients are
        cleared) and the first pass's loss is returned.

        Args:
            closure: clears the gradients, computes the loss, calls ``backward``, returns the loss.

        Returns:
            The first pass's loss (at the unperturbed weights).
        """
        if closure is None:
            raise ValueError(
                "ClosureSAM.step needs the closure that runs the forward and backward pass "
                "(under Lightning's 16-mixed precision its GradScaler calls step() without one: "
                "use precision 32-true or bf16-mixed, or manual optimisation as in HDFClassifier)"
            )
        with torch.enable_grad():
            loss = closure()
        g = self.first_step(zero_grad=True)
        if not bool(torch.isfinite(g)):
            log.warning("SAM: gradient norm %s is not finite, step skipped", g.item())
            return loss
        if self._on_grad_norm is not None:
            self._on_grad_norm(g)
        freeze = frozen_bn_stats(self._model) if self._model is not None else nullcontext()
        try:
            with freeze, torch.enable_grad():
                closure()
        except BaseException:
            self.restore()
            raise
        self.second_step()
        return loss


@contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Keep every BatchNorm's running statistics and ``num_batches_tracked`` unchanged inside.

    Sets the momentum of each ``_BatchNorm`` to 0 and, on exit (also on an exception), restores
    the momenta and copies the saved buffers back, so the statistics are bitwise unchanged.
    Normalisation itself is unaffected (training mode still uses the batch statistics).

    Args:
        model: any module; its BatchNorm submodules are affected.
    """
    saved: list[tuple[_BatchNorm, float | None, dict[str, Tensor]]] = []
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            buffers = {
                name: buffer.detach().clone()
                for name in ("running_mean", "running_var", "num_batches_tracked")
                if (buffer := getattr(module, name, None)) is not None
            }
            saved.append((module, module.momentum, buffers))
            module.momentum = 0.0
    try:
        yield
    finally:
        with torch.no_grad():
            for module, momentum, buffers in saved:
                module.momentum = momentum
                for name, value in buffers.items():
                    getattr(module, name).copy_(value)
