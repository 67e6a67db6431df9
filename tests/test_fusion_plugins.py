"""What each built-in fusion promises beyond the shared contract."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from aam_core import ConfigError, get_plugin

DIM, BATCH, SEQ = 16, 3, 7
COLUMNS = ["body_site", "sex", "country"]


def make(name: str, k: int = len(COLUMNS), dim: int = DIM, **options):
    spec = get_plugin("fusion", name)
    torch.manual_seed(0)
    return spec.factory(dim=dim, n_columns=k, options=spec.make_options(options))


def batch(k: int = len(COLUMNS), seq: int = SEQ, size: int = BATCH):
    gen = torch.Generator().manual_seed(0)
    asv = torch.randn(size, seq, DIM, generator=gen)
    cat = torch.randn(size, k, DIM, generator=gen)
    mask = torch.ones(size, seq, dtype=torch.bool)
    if size > 1 and seq > 4:
        mask[1, 4:] = False
    return asv, mask, cat


# -- concat and add -------------------------------------------------------------------------------
def test_add_is_pooled_plus_sum_of_tokens(masked_mean_pool):
    asv, mask, cat = batch()
    out = make("add")(asv, mask, cat, masked_mean_pool)
    assert torch.allclose(out.pooled, masked_mean_pool(asv, mask) + cat.sum(dim=1))
    assert out.extras == {}


def test_concat_input_width_follows_columns():
    assert make("concat", k=3).proj.in_features == 4 * DIM
    assert make("concat", k=1).proj.in_features == 2 * DIM


# -- gmu ------------------------------------------------------------------------------------------
def test_gmu_gate_is_in_unit_interval_and_summarised(masked_mean_pool):
    asv, mask, cat = batch()
    fusion = make("gmu")
    out = fusion(asv, mask, cat, masked_mean_pool)
    gate = out.extras["gate"]
    assert gate.shape == (BATCH, DIM)
    assert ((gate > 0) & (gate < 1)).all()
    summary = fusion.summarize(out.extras, COLUMNS)
    assert set(summary) == {"gate_mean"}
    assert summary["gate_mean"] == pytest.approx(float(gate.detach().mean()))


def test_gmu_closed_gate_passes_the_sequence_through(masked_mean_pool):
    asv, mask, cat = batch()
    fusion = make("gmu")
    with torch.no_grad():
        fusion.gate.bias.fill_(-1e4)
        out = fusion(asv, mask, cat, masked_mean_pool)
    assert torch.allclose(out.pooled, masked_mean_pool(asv, mask))


# -- cross-attention ------------------------------------------------------------------------------
def test_cross_attention_weights_shape_and_rows(masked_mean_pool):
    asv, mask, cat = batch()
    out = make("cross-attention", cross_attn_heads=4)(asv, mask, cat, masked_mean_pool)
    weights = out.extras["attention"]
    assert weights.shape == (BATCH, 4, SEQ, len(COLUMNS))
    rows = weights.sum(dim=-1)  # [B, H, S]
    valid = mask[:, None, :].expand_as(rows)
    assert torch.allclose(rows[valid], torch.ones_like(rows[valid]))
    assert torch.equal(rows[~valid], torch.zeros_like(rows[~valid]))  # padded rows carry nothing


def test_cross_attention_default_heads():
    assert make("cross-attention").heads == 8


@pytest.mark.parametrize("heads", [3, 5])
def test_cross_attention_heads_must_divide_dim(heads):
    with pytest.raises(ConfigError, match="--cross-attn-heads") as err:
        make("cross-attention", cross_attn_heads=heads)
    assert "--embedding-dim" in str(err.value)
    assert "\n" not in str(err.value)


def test_cross_attention_heads_must_be_positive():
    with pytest.raises(ConfigError, match="--cross-attn-heads"):
        get_plugin("fusion", "cross-attention").make_options({"cross_attn_heads": 0})


def test_cross_attention_summary_has_one_share_per_column(masked_mean_pool):
    asv, mask, cat = batch()
    fusion = make("cross-attention")
    out = fusion(asv, mask, cat, masked_mean_pool)
    summary = fusion.summarize(out.extras, COLUMNS)
    assert list(summary) == [f"attention/{c}" for c in COLUMNS]
    # Mean over unpadded rows that each sum to 1: the shares add up to 1.
    assert sum(summary.values()) == pytest.approx(1.0, abs=1e-5)


# -- perceiver ------------------------------------------------------------------------------------
def _perceiver_flops(fusion, seq: int, pool) -> int:
    asv, mask, cat = batch(seq=seq, size=2)
    # The math backend spells attention out as matmuls, so the counter sees it on CPU too.
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fusion(asv, mask, cat, pool)
    return counter.get_total_flops()


def test_perceiver_cost_is_linear_in_asvs(masked_mean_pool):
    fusion = make("perceiver").eval()
    f64, f512, f960 = (_perceiver_flops(fusion, s, masked_mean_pool) for s in (64, 512, 960))
    assert f512 / f64 < 12  # quadratic in S would be ~64
    # Equal steps in S cost equal FLOPs: no S² term at all.
    assert f960 - f512 == pytest.approx(f512 - f64, rel=0.01)
    assert f512 > f64


def test_perceiver_attention_extras_and_summary(masked_mean_pool):
    asv, mask, cat = batch()
    fusion = make("perceiver", perceiver_num_latents=5, perceiver_heads=2)
    assert fusion(asv, mask, cat, masked_mean_pool).extras == {}  # not computed while training
    fusion.eval()
    out = fusion(asv, mask, cat, masked_mean_pool)
    weights = torch.cat([out.extras["attention"], out.extras["metadata_attention"]], dim=-1)
    assert out.extras["attention"].shape == (BATCH, 2, 5, SEQ)
    assert out.extras["metadata_attention"].shape == (BATCH, 2, 5, len(COLUMNS))
    assert torch.allclose(weights.sum(dim=-1), torch.ones(BATCH, 2, 5))
    assert torch.equal(weights[1, :, :, 4:SEQ], torch.zeros_like(weights[1, :, :, 4:SEQ]))
    summary = fusion.summarize(out.extras, COLUMNS)
    assert set(summary) == {"attention_asvs"} | {f"attention/{c}" for c in COLUMNS}
    assert sum(summary.values()) == pytest.approx(1.0, abs=1e-5)


def test_perceiver_options_shape_the_module(masked_mean_pool):
    fusion = make("perceiver", perceiver_num_latents=3, perceiver_num_layers=0)
    assert fusion.latents.shape == (3, DIM)
    assert len(fusion.layers) == 0
    asv, mask, cat = batch()
    assert fusion(asv, mask, cat, masked_mean_pool).pooled.shape == (BATCH, DIM)


def test_perceiver_heads_must_divide_dim():
    with pytest.raises(ConfigError, match="--perceiver-heads") as err:
        make("perceiver", perceiver_heads=3)
    assert "--embedding-dim" in str(err.value)


def test_perceiver_ignores_pool():
    asv, mask, cat = batch()

    def broken_pool(*_):
        raise AssertionError("perceiver must not call pool")

    make("perceiver")(asv, mask, cat, broken_pool)


# -- options through the spec ---------------------------------------------------------------------
def test_option_for_a_fusion_without_options_names_the_flag_and_the_fusion():
    with pytest.raises(ConfigError, match="--cross-attn-heads") as err:
        get_plugin("fusion", "gmu").make_options({"cross_attn_heads": 4})
    assert "gmu" in str(err.value)


def test_option_of_another_fusion_names_the_flag():
    with pytest.raises(ConfigError, match="--perceiver-heads") as err:
        get_plugin("fusion", "cross-attention").make_options({"perceiver_heads": 4})
    assert "cross-attention" in str(err.value)


def test_unknown_option_names_the_flag():
    with pytest.raises(ConfigError, match="--perceiver-depth"):
        get_plugin("fusion", "perceiver").make_options({"perceiver_depth": 4})


def test_options_structure_from_a_dict():
    options = get_plugin("fusion", "perceiver").make_options({"perceiver_num_latents": 8})
    assert (options.perceiver_num_latents, options.perceiver_num_layers) == (8, 2)
    assert options.perceiver_heads == 4
    assert get_plugin("fusion", "concat").make_options({}) is None
