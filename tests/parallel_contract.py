"""The contract every parallel strategy keeps, as one function any number of processes run.

``check_strategy(strategy, folder)`` is called on every process of a strategy (one for
``single``, two under torchrun for ``ddp`` and ``fsdp``: see ``parallel_worker.py``) and fails
with an ``AssertionError`` naming the broken promise. It does not tear the strategy down.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from aam_core.interfaces import ParallelStrategy


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))


def _same(a: dict, b: dict) -> bool:
    """Nested dicts/lists of tensors and plain values, equal."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a.cpu(), b.cpu())
    return a == b


def check_strategy(strategy: ParallelStrategy, folder: Path) -> None:
    world, rank, device = strategy.world_size, strategy.global_rank, strategy.root_device
    assert 0 <= rank < world
    zeros = strategy.all_reduce(torch.tensor([float(strategy.is_global_zero)], device=device))
    assert zeros.item() == 1.0, "exactly one process is the global zero"

    # collectives
    x = torch.tensor([rank + 1.0], device=device)
    assert strategy.all_reduce(x, "sum").item() == world * (world + 1) / 2
    assert strategy.all_reduce(x, "mean").item() == (world + 1) / 2
    assert strategy.all_reduce(x, "max").item() == world
    assert x.item() == rank + 1.0, "all_reduce returns a copy"
    assert strategy.broadcast({"from": rank}, src=0) == {"from": 0}
    strategy.barrier()

    # all_gather: stacked, and its gradient reaches each process's own slice from every loss
    mine = (torch.arange(3.0, device=device) * (rank + 1)).requires_grad_()
    gathered = strategy.all_gather(mine)
    weight = torch.arange(1.0, 3 * world + 1, device=device).reshape(world, 3)
    assert gathered.shape == (world, 3)
    assert torch.equal(gathered.detach(), torch.arange(3.0, device=device)[None] * torch.arange(1.0, world + 1, device=device)[:, None])
    (gathered * weight).sum().backward()
    assert torch.allclose(mine.grad, world * weight[rank]), "every process's loss trains every slice"

    # the sampler: equal shares of one order, every item dealt, a new order each epoch
    sampler = strategy.sampler(7, seed=3)
    sampler.set_epoch(1)
    share = list(sampler)
    assert len(share) == len(sampler) == -(-7 // world)
    dealt = strategy.all_gather(torch.tensor(share, device=device)).flatten().tolist()
    assert set(dealt) == set(range(7)) and len(dealt) == world * len(share)
    sampler.set_epoch(2)
    assert list(sampler) != share or len(share) == 1

    # set-up, one step, clipping
    made = []

    def make_optimizer(module: nn.Module) -> torch.optim.Optimizer:
        made.append(module)
        return torch.optim.AdamW(module.parameters(), lr=1e-2)

    module, optimizer = strategy.setup(_tiny(), make_optimizer)
    assert made == [strategy.unwrap(module)], "the optimizer is built from the set-up model"
    torch.manual_seed(rank)
    inputs = torch.randn(5, 4, device=device)
    replicated = all(type(p.data) is torch.Tensor for p in strategy.unwrap(module).parameters())

    def every_gradient() -> torch.Tensor:
        return strategy.all_gather(torch.cat([p.grad.flatten() for p in strategy.unwrap(module).parameters()]))

    if replicated and world > 1:  # skipping the synchronisation leaves each process its own
        with strategy.no_backward_sync(module, skip=True):
            module(inputs).pow(2).mean().backward()
        assert not torch.allclose(*every_gradient()[[0, -1]]), "skip keeps gradients local"
        optimizer.zero_grad(set_to_none=True)
    with strategy.no_backward_sync(module, skip=False):
        module(inputs).pow(2).mean().backward()
    if replicated and world > 1:  # a synchronised backward leaves every process the same gradient
        assert torch.allclose(*every_gradient()[[0, -1]]), "gradients are averaged over processes"
    norm = strategy.clip_gradients(module, 1e-3)
    assert torch.isfinite(torch.as_tensor(norm)).all() and float(norm) > 1e-3
    after = strategy.clip_gradients(module, 1e9)
    assert float(after) <= 1e-3 * 1.001, "clipping bounds the global gradient norm"
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

    # checkpoints: full weights on the writer, round trips for weights and optimizer state
    state = strategy.module_state_dict(module)
    expected = {k: v.shape for k, v in _tiny().state_dict().items()}
    if strategy.is_global_zero:
        assert {k: v.shape for k, v in state.items()} == expected, "the full state has the plain model's names and shapes"
        assert all(v.device.type == "cpu" for v in state.values())
    state = copy.deepcopy(strategy.broadcast(state))  # a copy: one process's state may be the live tensors
    optim_state = copy.deepcopy(strategy.broadcast(strategy.optimizer_state_dict(module, optimizer)))
    module(inputs).pow(2).mean().backward()
    optimizer.step()  # move away from the saved state
    strategy.load_module_state_dict(module, state)
    strategy.load_optimizer_state_dict(module, optimizer, optim_state)
    again = strategy.module_state_dict(module)
    optim_again = strategy.optimizer_state_dict(module, optimizer)
    if strategy.is_global_zero:
        assert _same(again, state), "weights survive module_state_dict → load_module_state_dict"
        assert _same(optim_again["state"], optim_state["state"]), "so does the optimizer state"
    shards = folder / f"sharded-{type(strategy).__name__}"
    if strategy.save_sharded_state(module, optimizer, shards):
        assert any(p.is_file() for p in shards.rglob("*")), "a strategy that keeps shards wrote them"
    strategy.barrier()
