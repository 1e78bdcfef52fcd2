"""Tests of the gradient-preserving all-gather and of DSM under DistributedDataParallel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from hdf_lightning.losses import DSM, gather_tensor, gather_with_grad

WORLD_SIZE = 2
SPLIT = (5, 3)  # unequal local batches, as in the last batch of an epoch
CLASS_WEIGHTS = [1.0, 2.0, 0.5]


class _TinyNet(nn.Module):
    """(N, 6) -> logits (N, 3), feature (N, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feature = self.body(x)
        return self.head(feature), feature


def _setup() -> tuple[_TinyNet, Tensor, Tensor, DSM]:
    torch.manual_seed(0)
    model = _TinyNet()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(sum(SPLIT), 6, generator=generator)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    loss = DSM(class_weights=CLASS_WEIGHTS, fixed_weights=(10.0, 0.1))
    return model, x, y, loss


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        model, x, y, loss = _setup()
        start = sum(SPLIT[:rank])
        local = slice(start, start + SPLIT[rank])
        ddp = DistributedDataParallel(model)
        logits, feature = ddp(x[local])
        out = loss(logits, feature, y[local])
        out.loss.backward()

        # the gather itself: rank order, and gradients summed over ranks
        values = torch.full((SPLIT[rank], 2), float(rank), requires_grad=True)
        gathered = gather_with_grad(values)
        coefficients = torch.arange(gathered.numel(), dtype=torch.float32).reshape(-1, 2)
        (gathered * coefficients).sum().backward()
        torch.save(
            {
                "grads": [p.grad for p in model.parameters()],
                "parts": out.parts,
                "gathered": gathered.detach(),
                "gathered_labels": gather_tensor(y[local]),
                "values_grad": values.grad,
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_identity_without_a_process_group() -> None:
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x
    assert gather_tensor(x) is x


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ddp_gradient_equals_single_process_gradient(tmp_path: Path) -> None:
    mp.spawn(
        _worker,
        args=(str(tmp_path / "init"), str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=True,
    )
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]

    # single process on the concatenated batch
    model, x, y, loss = _setup()
    logits, feature = model(x)
    out = loss(logits, feature, y)
    out.loss.backward()

    for result in results:
        for grad, expected in zip(result["grads"], model.parameters(), strict=True):
            assert expected.grad is not None
            torch.testing.assert_close(grad, expected.grad)
        # the contrastive and IB terms see the global batch on every rank
        torch.testing.assert_close(result["parts"]["dsc"], out.parts["dsc"])
        torch.testing.assert_close(result["parts"]["ib"], out.parts["ib"])
        expected_rows = torch.cat([torch.full((n, 2), float(r)) for r, n in enumerate(SPLIT)])
        torch.testing.assert_close(result["gathered"], expected_rows)
        torch.testing.assert_close(result["gathered_labels"], y)
    # the cross-entropy averaged over ranks is the global one
    mean_ce = torch.stack([result["parts"]["ce"] for result in results]).mean()
    torch.testing.assert_close(mean_ce, out.parts["ce"])
    # each rank receives the sum over ranks of the gradient of its own rows
    coefficients = torch.arange(2 * sum(SPLIT), dtype=torch.float32).reshape(-1, 2)
    start = 0
    for r, n in enumerate(SPLIT):
        torch.testing.assert_close(
            results[r]["values_grad"], WORLD_SIZE * coefficients[start : start + n]
        )
        start += n
