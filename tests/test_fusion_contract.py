"""The contract every registered fusion keeps, built-in or third-party.

Parametrised over ``list_plugins('fusion')``, so an installed plugin (``examples/aam-fusion-example``)
or a new built-in gets these checks without a line of its own: shape, gradients, padding, an
all-padding row, state save and load, and K = 1 and K = 3 metadata columns.
"""

from __future__ import annotations

import math

import pytest
import torch

from aam_core import FusionOutput, get_plugin, list_plugins

BUILT_IN = {"add", "concat", "cross-attention", "gmu", "perceiver"}
FUSIONS = sorted(info.name for info in list_plugins("fusion"))
DIM, BATCH, SEQ = 16, 3, 7
COLUMNS = {1: ["body_site"], 3: ["body_site", "sex", "country"]}

pytestmark = pytest.mark.parametrize("name", FUSIONS)
n_columns = pytest.mark.parametrize("k", sorted(COLUMNS))


def make(name: str, k: int, seed: int = 0):
    spec = get_plugin("fusion", name)
    torch.manual_seed(seed)
    return spec.factory(dim=DIM, n_columns=k, options=spec.make_options({}))


def batch(k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``asv [B, S, D]``, ``mask [B, S]`` with padding at the end and inside, ``cat [B, K, D]``."""
    gen = torch.Generator().manual_seed(seed)
    asv = torch.randn(BATCH, SEQ, DIM, generator=gen)
    cat = torch.randn(BATCH, k, DIM, generator=gen)
    mask = torch.ones(BATCH, SEQ, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 2] = False
    return asv, mask, cat


def test_builtins_are_registered(name):
    assert name in FUSIONS
    assert BUILT_IN <= set(FUSIONS), f"missing built-in fusions: {BUILT_IN - set(FUSIONS)}"


@n_columns
def test_output_shape_and_extras(name, k, masked_mean_pool):
    asv, mask, cat = batch(k)
    out = make(name, k)(asv, mask, cat, masked_mean_pool)
    assert isinstance(out, FusionOutput)
    assert out.pooled.shape == (BATCH, DIM)
    assert torch.isfinite(out.pooled).all()
    for key, value in out.extras.items():
        assert isinstance(key, str) and isinstance(value, torch.Tensor)


@n_columns
def test_declared_extras_axes_run_over_the_asv_slots(name, k, masked_mean_pool):
    """Every extra has a declared axis (or None); a declared axis has one entry per ASV slot."""
    asv, mask, cat = batch(k)
    fusion = make(name, k).eval()
    out = fusion(asv, mask, cat, None if not fusion.uses_pool else masked_mean_pool)
    for key, value in out.extras.items():
        assert key in fusion.extras_axes, f"{name} does not declare the axes of extra '{key}'"
        axis = fusion.extras_axes[key]
        if axis is not None:
            assert value.shape[1 + axis] == SEQ, (key, value.shape)


@n_columns
def test_gradients_reach_both_inputs_and_parameters(name, k, masked_mean_pool):
    asv, mask, cat = batch(k)
    asv.requires_grad_(True)
    cat.requires_grad_(True)
    fusion = make(name, k)
    out = fusion(asv, mask, cat, masked_mean_pool)
    # A random projection: a plain sum can have zero gradient through a LayerNorm.
    (
        out.pooled * torch.randn(BATCH, DIM, generator=torch.Generator().manual_seed(1))
    ).sum().backward()

    assert asv.grad[mask].abs().sum() > 0, "no gradient reaches the ASV representation"
    assert torch.equal(asv.grad[~mask], torch.zeros_like(asv.grad[~mask])), "padding gets gradient"
    assert cat.grad.abs().sum() > 0, "no gradient reaches the category tokens"
    for param_name, param in fusion.named_parameters():
        # A parameter outside the graph breaks DDP (unused parameters); NaN breaks training.
        assert param.grad is not None, f"{param_name} gets no gradient"
        assert torch.isfinite(param.grad).all(), f"{param_name} gradient is not finite"


@n_columns
def test_padded_values_do_not_change_the_output(name, k, masked_mean_pool):
    asv, mask, cat = batch(k)
    fusion = make(name, k).eval()
    changed = asv.clone()
    changed[~mask] = 100.0 * torch.randn(int((~mask).sum()), DIM)
    with torch.no_grad():
        before = fusion(asv, mask, cat, masked_mean_pool).pooled
        after = fusion(changed, mask, cat, masked_mean_pool).pooled
    assert torch.allclose(before, after)


@n_columns
def test_all_padding_row_is_finite(name, k, masked_mean_pool):
    asv, mask, cat = batch(k)
    mask[0] = False
    fusion = make(name, k).eval()
    with torch.no_grad():
        out = fusion(asv, mask, cat, masked_mean_pool)
    assert torch.isfinite(out.pooled).all()
    for key, value in out.extras.items():
        assert torch.isfinite(value.float()).all(), f"extras[{key!r}] is not finite"
    summary = fusion.summarize(out.extras, COLUMNS[k])
    assert all(math.isfinite(v) for v in summary.values())


@n_columns
def test_state_dict_round_trip(name, k, masked_mean_pool):
    asv, mask, cat = batch(k)
    trained, fresh = make(name, k, seed=0).eval(), make(name, k, seed=1).eval()
    fresh.load_state_dict(trained.state_dict())
    with torch.no_grad():
        expected = trained(asv, mask, cat, masked_mean_pool).pooled
        got = fresh(asv, mask, cat, masked_mean_pool).pooled
    assert torch.equal(expected, got)


@n_columns
def test_summarize_returns_finite_floats(name, k, masked_mean_pool):
    asv, mask, cat = batch(k)
    fusion = make(name, k)
    with torch.no_grad():
        out = fusion(asv, mask, cat, masked_mean_pool)
    summary = fusion.summarize(out.extras, COLUMNS[k])
    assert isinstance(summary, dict)
    for key, value in summary.items():
        assert isinstance(key, str) and isinstance(value, float) and math.isfinite(value)
