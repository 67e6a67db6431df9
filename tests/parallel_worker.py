"""Two gloo processes on the CPU, for ``tests/test_parallel.py``:

    torchrun --standalone --nproc-per-node 2 tests/parallel_worker.py DATA OUT

``DATA`` holds ``table.biom``, ``metadata.tsv`` and ``tree.nwk``. The first strategy makes the
process group and every later one reuses it, as in any script that trains several times in one
torchrun job. Rank 0 writes ``OUT/results.json``; the runs go to ``OUT/runs/<name>``. A broken
promise raises, and the non-zero exit fails the test that started this.

- ``contract``: ``parallel_contract.check_strategy`` for ``ddp`` and ``fsdp``;
- ``gradients``: one step of the pairwise UniFrac loss (plus the target loss) on 2 processes ×
  B samples against 1 process × 2B, and the same with the classic mistake (a gather that passes
  the gradient of the local slice only), which must differ;
- ``ddp`` (train, 1 epoch), ``fsdp`` (2 epochs, gradient accumulation, sharded checkpoints),
  ``fsdp-resumed`` (the same, stopped by a SIGTERM that only rank 1 receives, mid-epoch 2, then
  resumed), ``pretrain`` (ddp);
- ``foreign_writes``: files rank 1 opened for writing under ``OUT/runs`` (its shard of a
  sharded checkpoint excepted).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from parallel_contract import check_strategy

TINY = dict(embedding_dim=16, attention_heads=2, attention_layers=1, max_bp=40, batch_size=4, seed=7)


class WriteGuard:
    """Every file opened for writing (or renamed, removed, made) under ``root``."""

    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    def __init__(self, root: Path):
        self.root = str(root.resolve())
        self.found: list[str] = []
        sys.addaudithook(self)

    def __call__(self, event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], str | os.PathLike):
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & self.WRITE_FLAGS)
            if writes:
                self._note(args[0])
        elif event in ("os.rename", "os.replace", "os.remove", "os.mkdir", "shutil.rmtree") and args:
            self._note(args[0])

    def _note(self, path) -> None:
        text = os.path.abspath(os.fsdecode(path))
        if text.startswith(self.root) and "sharded" not in text:
            self.found.append(text)


def quiet_plots() -> None:
    """Drawing PNGs costs most of a tiny run and is not what is tested here: the files are only
    named (and listed in the run's manifest)."""
    import matplotlib.figure

    from aam_core.training import supervised

    def figure(*drawn, **keywords) -> matplotlib.figure.Figure:
        del drawn, keywords  # nothing is drawn
        return matplotlib.figure.Figure()

    def named(actual, predicted, path, *rest, **keywords) -> Path:
        del actual, predicted, rest, keywords  # nothing is drawn
        return Path(path)

    def curves(history, path, *rest, **keywords) -> Path:
        del history, rest, keywords  # nothing is drawn
        return Path(path)

    supervised.predicted_vs_actual_figure = figure
    supervised.save_predicted_vs_actual = named
    supervised.save_training_curves = curves


def gradients(name: str, data: Path) -> dict[str, float]:
    """Largest gradient difference (relative to the largest gradient) between 2 processes × B
    samples and 1 process × 2B, with the real gather and with a local-slice-only gather."""
    from aam_core.config import RunConfig
    from aam_core.data.batching import BatchKey
    from aam_core.data.dataset import load_dataset
    from aam_core.model.build import build_model
    from aam_core.options import build_config
    from aam_core.plugins import get_plugin
    from aam_core.targets import TargetEncoding
    from aam_core.training.supervised import Split, SupervisedTask
    from aam_core.training.unifrac_source import distance_source
    from aam_plugins.parallel.single import SingleDeviceStrategy
    from aam_plugins.transforms.zscore import ZScoreTransform

    b = 6
    config: RunConfig = build_config(
        table=str(data / "table.biom"), metadata=str(data / "metadata.tsv"), metadata_column="age",
        tree=str(data / "tree.nwk"), unifrac_penalty=1.0, dropout=0.0, count_prediction=False,
        **{**TINY, "batch_size": b},
    )  # fmt: skip
    dataset = load_dataset(config.data)
    rows = np.arange(2 * b)
    encoding = TargetEncoding(None, ZScoreTransform().fit(dataset.target), None)
    distances = distance_source(config.data, dataset)
    codes = np.zeros((len(dataset), 0), dtype=np.int64)

    def step(strategy, model, key) -> dict[str, torch.Tensor]:
        task = SupervisedTask(
            config=config, model=model, dataset=dataset, split=Split(train=rows, val=rows[:0]), codes=codes,
            encoding=encoding, strategy=strategy, distances=distances,
        )  # fmt: skip
        module, _ = strategy.setup(model, lambda m: torch.optim.SGD(m.parameters(), lr=0.0))
        loss, _ = task.loss(module, task.build(key), 1, 1)
        loss.backward()
        grads = {}
        for n, p in strategy.unwrap(module).named_parameters():
            grad = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
            grads[n] = grad.detach().clone()
        return grads

    torch.manual_seed(0)
    model = build_model(config, out_dim=1, category_sizes=[], scaling=None)
    rank = dist.get_rank()
    one = SingleDeviceStrategy(device="cpu")
    reference = step(one, copy.deepcopy(model), BatchKey(epoch=1, index=1, rows=rows, group=rows, training=True))
    mine = rows[rank * b : (rank + 1) * b]
    key = BatchKey(epoch=1, index=1, rows=mine, group=rows, training=True, offset=rank * b)
    scale = max(float(g.abs().max()) for g in reference.values())

    def error(grads: dict[str, torch.Tensor]) -> float:
        assert grads.keys() == reference.keys()
        return max(float((grads[n] - reference[n]).abs().max()) for n in grads) / scale

    strategy = get_plugin("parallel", name).factory(device="cpu", options=None)
    exact = error(step(strategy, copy.deepcopy(model), key))

    class LocalSliceOnly(type(strategy)):
        def all_gather(self, tensor):
            every = super().all_gather(tensor.detach())
            return torch.stack([tensor if r == self.global_rank else every[r] for r in range(self.world_size)])

    wrong = LocalSliceOnly(device="cpu", options=None)
    local_only = error(step(wrong, copy.deepcopy(model), key))
    return {"error": exact, "local_slice_only_error": local_only}


def train_runs(data: Path, runs: Path) -> None:
    from aam_core import pretrain, train
    from aam_core.errors import RunInterrupted
    from aam_core.training.supervised import SupervisedTask

    files = dict(table=str(data / "table.biom"), metadata=str(data / "metadata.tsv"), metadata_column="age")
    common = dict(**files, **TINY, device="cpu", categorical_columns="site", fusion="gmu", dropout=0.2)
    train(**common, parallel="ddp", epochs=1, output_dir=runs / "ddp")
    fsdp = dict(**common, parallel="fsdp", epochs=2, checkpoint_every=1, grad_accum=2, fsdp_sharded_checkpoint=True)
    train(**fsdp, output_dir=runs / "fsdp")

    original = SupervisedTask.loss

    def signalled(self, model, batch, epoch, index):
        if (epoch, index) == (2, 2) and dist.get_rank() == 1:
            signal.raise_signal(signal.SIGTERM)  # rank 0 must stop with it, at the same step
        return original(self, model, batch, epoch, index)

    SupervisedTask.loss = signalled
    try:
        train(**fsdp, output_dir=runs / "fsdp-resumed")
        raise AssertionError("the SIGTERM did not stop the run")
    except RunInterrupted as exc:
        assert (exc.epoch, exc.batch) == (2, 2), (exc.epoch, exc.batch)
    finally:
        SupervisedTask.loss = original
    train(resume_from=runs / "fsdp-resumed" / "checkpoints" / "last.pt")

    pretrain(
        table=files["table"], tree=str(data / "tree.nwk"), **TINY, device="cpu", parallel="ddp", epochs=1,
        output_dir=runs / "pretrain",
    )  # fmt: skip


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    runs = out / "runs"
    guard = WriteGuard(runs) if rank != 0 else None
    quiet_plots()
    from aam_core.plugins import get_plugin

    results: dict = {"contract": {}, "gradients": {}}
    for name in ("ddp", "fsdp"):
        strategy = get_plugin("parallel", name).factory(device="cpu", options=None)
        check_strategy(strategy, out)
        results["contract"][name] = "ok"
    for name in ("ddp", "fsdp"):
        results["gradients"][name] = gradients(name, data)
    train_runs(data, runs)
    found = [None] * dist.get_world_size()
    dist.all_gather_object(found, guard.found if guard is not None else [])
    results["foreign_writes"] = [path for paths in found for path in paths]
    if rank == 0:
        (out / "results.json").write_text(json.dumps(results, indent=2))
    dist.barrier()  # the group itself is destroyed at exit


if __name__ == "__main__":
    main()
