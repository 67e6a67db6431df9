"""Config validation: bad values name the flag, unknown keys fail, and configs round-trip."""

from __future__ import annotations

import json

import attrs
import pytest

from aam_core.config import (
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    load_config,
    save_config,
    structure,
    unstructure,
)
from aam_core.errors import ConfigError
from aam_core.specs import FusionSpec


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# -- ranges ---------------------------------------------------------------------------------------
BAD_VALUES = [
    (DataConfig, {"table": "t.biom", "max_asvs": -1}, "--max-asvs"),
    (DataConfig, {"table": "t.biom", "max_asvs": 0}, "--max-asvs"),
    (DataConfig, {"table": "t.biom", "max_bp": -5}, "--max-bp"),
    (DataConfig, {"table": "t.biom", "rarefy_depth": 0}, "--rarefy-depth"),
    (DataConfig, {"table": "t.biom", "val_fraction": 1.5}, "--val-fraction"),
    (DataConfig, {"table": "t.biom", "val_fraction": 0.0}, "--val-fraction"),
    (ModelConfig, {"embedding_dim": -16}, "--embedding-dim"),
    (ModelConfig, {"attention_heads": 0}, "--attention-heads"),
    (ModelConfig, {"patch_size": 0}, "--patch-size"),
    (TrainConfig, {"epochs": 0}, "--epochs"),
    (TrainConfig, {"lr": -1e-3}, "--lr"),
    (TrainConfig, {"batch_size": 0}, "--batch-size"),
    (TrainConfig, {"weight_decay": -0.1}, "--weight-decay"),
    (TrainConfig, {"patience": -1}, "--patience"),
]


@pytest.mark.parametrize(("cls", "values", "flag"), BAD_VALUES)
def test_bad_range_names_the_flag(cls, values, flag):
    with pytest.raises(ConfigError, match=flag) as err:
        cls(**values)
    bad = next(v for k, v in values.items() if k != "table")
    assert str(bad) in one_line(err)


@pytest.mark.parametrize(("cls", "values", "flag"), BAD_VALUES[:3] + BAD_VALUES[6:8])
def test_bad_range_in_a_dict_names_the_flag(cls, values, flag):
    section = {DataConfig: "data", ModelConfig: "model", TrainConfig: "training"}[cls]
    data = {"data": {"table": "t.biom"}}
    data.setdefault(section, {}).update(values)
    with pytest.raises(ConfigError, match=flag) as err:
        structure(data, RunConfig)
    one_line(err)


def test_embedding_dim_must_divide_by_heads():
    with pytest.raises(ConfigError) as err:
        ModelConfig(embedding_dim=30, attention_heads=4)
    message = one_line(err)
    assert "--embedding-dim 30" in message and "--attention-heads 4" in message
    with pytest.raises(ConfigError, match="--embedding-dim"):
        structure(
            {"data": {"table": "t"}, "model": {"embedding_dim": 30, "attention_heads": 4}},
            RunConfig,
        )


@pytest.mark.parametrize(
    ("cls", "values", "flag"),
    [
        (ModelConfig, {"dropout": 1.5}, "--dropout"),
        (TrainConfig, {"warmup_fraction": -0.1}, "--warmup-fraction"),
    ],
)
def test_fraction_flags_name_the_flag(cls, values, flag):
    with pytest.raises(ConfigError, match=flag):
        cls(**values)


def test_fraction_in_a_dict_names_the_flag():
    with pytest.raises(ConfigError, match="--dropout"):
        structure({"data": {"table": "t"}, "model": {"dropout": 1.5}}, RunConfig)


# -- keys and types -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"data": {"table": "t", "bogus": 1}}, "bogus"),
        ({"data": {"table": "t"}, "model": {"embeding_dim": 8}}, "embeding_dim"),
        ({"data": {"table": "t"}, "trainig": {}}, "trainig"),
    ],
)
def test_unknown_key_is_a_config_error(data, key):
    with pytest.raises(ConfigError, match=key) as err:
        structure(data, RunConfig)
    one_line(err)


def test_missing_table_is_a_config_error():
    with pytest.raises(ConfigError, match="data"):
        structure({}, RunConfig)


def test_wrong_type_is_a_config_error():
    with pytest.raises(ConfigError, match="--embedding-dim") as err:
        structure({"data": {"table": "t"}, "model": {"embedding_dim": "big"}}, RunConfig)
    one_line(err)


def test_categorical_columns_accept_a_comma_list():
    assert DataConfig(table="t", categorical_columns=" site, study ,").categorical_columns == [
        "site",
        "study",
    ]
    assert DataConfig(table="t", categorical_columns=None).categorical_columns == []


# -- round trips ----------------------------------------------------------------------------------
@pytest.fixture
def config() -> RunConfig:
    return RunConfig(
        data=DataConfig(
            table="data/table.biom",
            metadata="data/metadata.tsv",
            metadata_column="age",
            sequences="data/dna-sequences.fasta",
            categorical_columns=["site", "study"],
            max_asvs=64,
            max_bp=120,
            rarefy_depth=1000,
            val_fraction=0.25,
            stratify_by="study",
            normalize_by="site",
        ),
        model=ModelConfig(
            embedding_dim=16,
            attention_heads=2,
            attention_layers=1,
            asv_layers=2,
            dropout=0.0,
            fusion="cross-attention",
            fusion_options={"cross_attn_heads": 2},
            count_prediction=False,
            conditional_output_scaling="site",
        ),
        training=TrainConfig(
            epochs=3, batch_size=4, lr=1e-3, categorical_lr=1e-2, seed=7, device="cpu"
        ),
        output_dir="runs/x",
    )


def test_structure_unstructure_round_trip(config):
    assert structure(unstructure(config), RunConfig) == config
    assert structure(json.loads(json.dumps(unstructure(config))), RunConfig) == config
    default = RunConfig(data=DataConfig(table="t"))
    assert structure(unstructure(default), RunConfig) == default


def test_unstructure_is_plain_json(config):
    data = unstructure(config)
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {f.name for f in attrs.fields(RunConfig)}


def test_a_subset_of_fields_takes_the_defaults():
    cfg = structure({"data": {"table": "t"}, "training": {"epochs": 2}}, RunConfig)
    assert cfg.training.epochs == 2
    assert cfg.model == ModelConfig()
    assert cfg.training.batch_size == TrainConfig().batch_size


def test_save_and_load_config(tmp_path, config):
    path = tmp_path / "config.json"
    save_config(config, path)
    assert load_config(path) == config
    assert json.loads(path.read_text())["model"]["fusion"] == "cross-attention"


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(bad)
    bad.write_text(json.dumps({"data": {"table": "t", "max_asvs": -3}}))
    with pytest.raises(ConfigError, match="--max-asvs"):
        load_config(bad)
    bad.write_text(json.dumps({"data": {"table": "t"}, "extra": 1}))
    with pytest.raises(ConfigError, match=str(bad)):
        load_config(bad)


# -- plugin options -------------------------------------------------------------------------------
def _positive(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    if value <= 0:
        raise ConfigError(f"--{attribute.name.replace('_', '-')} must be positive, got {value}.")


@attrs.define
class FakeOptions:
    fake_width: int = attrs.field(default=4, validator=_positive)
    fake_mode: str = "sum"


SPEC = FusionSpec(name="fake", factory=object, description="test", options=FakeOptions)
NO_OPTIONS = FusionSpec(name="plain", factory=object, description="test")


def test_plugin_options_structure():
    assert SPEC.make_options({}) == FakeOptions()
    assert SPEC.make_options({"fake_width": 8}) == FakeOptions(fake_width=8)
    assert NO_OPTIONS.make_options({}) is None
    assert NO_OPTIONS.make_options(None) is None


def test_plugin_option_out_of_range_names_the_flag():
    with pytest.raises(ConfigError, match="--fake-width") as err:
        SPEC.make_options({"fake_width": 0})
    one_line(err)


def test_unknown_plugin_option_names_the_flag_and_plugin():
    with pytest.raises(ConfigError, match="--fake-depth") as err:
        SPEC.make_options({"fake_depth": 3, "fake_width": 2})
    assert "fusion 'fake'" in one_line(err)
    assert "--fake-width" not in str(err.value)


def test_option_for_a_plugin_without_options_names_the_flag():
    with pytest.raises(ConfigError, match="--fake-width") as err:
        NO_OPTIONS.make_options({"fake_width": 2})
    assert "fusion 'plain'" in one_line(err)


def test_wrongly_typed_plugin_option_names_the_flag():
    with pytest.raises(ConfigError, match="--fake-width"):
        SPEC.make_options({"fake_width": "wide"})
