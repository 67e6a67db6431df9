"""``aam train`` / ``aam predict`` / ``aam plugins`` from the command line: the same outputs as
the API, help with defaults, the categorical guide, and bad input — exit status 2, one line
naming the problem, no traceback, and an existing output directory left exactly as it was."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aam_core import list_plugins, train
from aam_core.guide import categorical_guide

PREVIOUS_RUN = {
    "config.json": b'{"previous": "run"}\n',
    "metrics.json": b'{"val": {"mae": 1.0}}\n',
    "val_predictions.tsv": b"sample_id\tactual\tpredicted\tepoch\nA\t1.0\t2.0\t1\n",
    "train_samples.txt": b"A\n",
    "val_samples.txt": b"B\n",
    "checkpoints/best.pt": b"not really a checkpoint",
    "checkpoints/last.pt": b"not really a checkpoint either",
    "plots/predicted_vs_actual.png": b"\x89PNG\r\n\x1a\nfake",
    "tensorboard/events.out.tfevents.1.host": b"fake events",
    "notes.txt": b"a person's own notes\n",
}


def write_previous_run(folder: Path) -> Path:
    for name, content in PREVIOUS_RUN.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return folder


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every path under ``folder`` with its bytes and modification time (folders: b'')."""
    return {
        str(p.relative_to(folder)): (b"" if p.is_dir() else p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def assert_one_line_error(result, *needles: str) -> None:
    assert result.code == 2, (result.code, result.err)
    assert result.err.startswith("aam: error: "), result.err
    assert result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in result.err, (needle, result.err)


def data_flags(data) -> list[object]:
    return ["--table", data.table, "--metadata", data.metadata, "--metadata-column", "age"]


def run_files(folder: Path) -> set[str]:
    """Relative file names of a run; TensorBoard event names (host, time) reduced to the folder."""
    return {
        "tensorboard/<events>" if p.parent.name == "tensorboard" else str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_cli_train_matches_the_api(tiny_data, tiny_model, as_flags, run_cli, tmp_path):
    api_dir, cli_dir = tmp_path / "api", tmp_path / "cli"
    options = dict(categorical_columns="site", seed=3, **tiny_model)
    train(
        table=tiny_data.table,
        metadata=tiny_data.metadata,
        metadata_column="age",
        output_dir=api_dir,
        **options,
    )
    result = run_cli("train", *data_flags(tiny_data), "--output-dir", cli_dir, *as_flags(options))
    assert result.code == 0, result.err
    assert str(cli_dir) in result.out and "Best epoch 1" in result.out

    assert run_files(cli_dir) == run_files(api_dir)
    assert run_files(cli_dir) >= {
        "config.json",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "train_samples.txt",
        "val_samples.txt",
        "val_predictions.tsv",
        "metrics.json",
        "plots/predicted_vs_actual.png",
        "tensorboard/<events>",
    }
    for name in ("train_samples.txt", "val_samples.txt", "val_predictions.tsv"):
        assert (cli_dir / name).read_text() == (api_dir / name).read_text(), name
    api_config = json.loads((api_dir / "config.json").read_text())
    cli_config = json.loads((cli_dir / "config.json").read_text())
    assert cli_config.pop("output_dir") == str(cli_dir)
    assert api_config.pop("output_dir") == str(api_dir)
    assert cli_config == api_config


def _help_text(run_cli, *command: str) -> str:
    result = run_cli(*command, "--help")
    assert result.code == 0, result.err
    return " ".join(result.out.split())  # undo click's line wrapping


def _option_help(run_cli, command: str) -> dict[str, str]:
    """``--flag`` → its whole help entry, line wrapping undone."""
    result = run_cli(command, "--help")
    assert result.code == 0, result.err
    entries: list[str] = []
    for line in result.out.splitlines():
        if re.match(r"^  -", line):
            entries.append(line)
        elif entries and line.startswith("   "):
            entries[-1] += " " + line
    return {entry.split()[0].rstrip(","): " ".join(entry.split()) for entry in entries}


@pytest.mark.parametrize(
    ("flag", "default"),
    [
        ("--embedding-dim", "128"),
        ("--attention-heads", "4"),
        ("--attention-layers", "2"),
        ("--asv-layers", "1"),
        ("--max-asvs", "128"),
        ("--max-bp", "150"),
        ("--fusion", "gmu"),
        ("--target-transform", "zscore"),
        ("--target-loss", "mae"),
        ("--unknown-head", "on"),
        ("--parallel", "single"),
        ("--epochs", "15"),
        ("--batch-size", "32"),
        ("--lr", "0.001"),
        ("--seed", "42"),
        ("--cross-attn-heads", "8"),
        ("--perceiver-num-latents", "16"),
        ("--count-prediction", "on"),
        ("--categorical-lr", "--lr"),
    ],
)
def test_train_help_shows_defaults(run_cli, flag, default):
    entry = _option_help(run_cli, "train")[flag]
    assert f"[default: {default}]" in entry, entry


def test_predict_and_plugins_help(run_cli):
    text = _help_text(run_cli, "predict")
    for flag in ("--model", "--table", "--metadata", "--output", "--batch-size", "--device"):
        assert flag in text
    assert "[default: the training batch size]" in text
    text = _help_text(run_cli, "plugins")
    assert "--family" in text and "--json" in text
    for family in ("baseline", "fusion", "parallel", "transform"):
        assert family in text


def test_categorical_help_prints_the_guide(run_cli):
    result = run_cli("train", "--categorical-help")
    assert result.code == 0
    assert result.out == categorical_guide() + "\n"
    for fusion in ("concat", "gmu", "cross-attention", "perceiver", "--conditional-output-scaling"):
        assert fusion in result.out
    # assembled from the plugins: the example's fusion (no guide text) is still named
    assert "Also installed: scaled-add." in result.out


def test_plugins_lists_the_builtins_and_the_example(run_cli):
    result = run_cli("plugins", "--family", "fusion", "--json")
    assert result.code == 0, result.err
    names = {row["name"]: row for row in json.loads(result.out)}
    assert {"add", "concat", "cross-attention", "gmu", "perceiver", "scaled-add"} <= set(names)
    assert names["scaled-add"]["distribution"] == "aam-fusion-example"


# -- bad input -----------------------------------------------------------------------------------


def _metadata_with_ages(data, write_tsv, ages, name: str) -> Path:
    rows = [[s, a, c] for s, a, c in zip(data.sample_ids, ages, data.site, strict=True)]
    return write_tsv(data.folder / name, ["sample-id", "age", "site"], rows)


@pytest.fixture
def bad_files(tiny_data, write_tsv) -> dict[str, Path]:
    """Files for the bad-input cases, by the placeholder names used in :data:`BAD_INPUTS`."""
    corrupt = tiny_data.folder / "corrupt.biom"
    corrupt.write_bytes(np.random.default_rng(1).bytes(3000))
    n = len(tiny_data.age)
    return {
        "folder": tiny_data.folder,
        "corrupt": corrupt,
        "negative": _metadata_with_ages(
            tiny_data, write_tsv, tiny_data.age - 100.0, "negative.tsv"
        ),
        "constant": _metadata_with_ages(tiny_data, write_tsv, np.full(n, 7.5), "constant.tsv"),
    }


def _choices(family: str) -> str:
    return ", ".join(sorted(info.name for info in list_plugins(family)))


#: case → (flags added to a valid tiny run, with {placeholders} from ``bad_files``; what the
#: error line must contain)
BAD_INPUTS = {
    "missing-table": (["--table", "{folder}/absent.biom"], ["Table file not found", "absent.biom"]),
    "missing-metadata": (
        ["--metadata", "{folder}/absent.tsv"],
        ["Metadata file not found", "absent.tsv"],
    ),
    "corrupt-biom": (["--table", "{corrupt}"], ["corrupt.biom", "not a readable BIOM table"]),
    "unknown-column": (
        ["--metadata-column", "agee"],
        ["--metadata-column 'agee'", "Available: age, site"],
    ),
    "unknown-categorical-column": (
        ["--categorical-columns", "site,body"],
        ["'body'", "Available: age, site"],
    ),
    "unknown-fusion": (
        ["--categorical-columns", "site", "--fusion", "gmm"],
        ["Unknown fusion 'gmm'", f"Available: {_choices('fusion')}.", "Run 'aam plugins'"],
    ),
    "unknown-transform": (
        ["--target-transform", "zcore"],
        [
            "Unknown target transform 'zcore'",
            f"Available: {_choices('transform')}.",
            "Run 'aam plugins'",
        ],
    ),
    "cross-attn-heads-with-gmu": (
        ["--categorical-columns", "site", "--fusion", "gmu", "--cross-attn-heads", "4"],
        ["--cross-attn-heads", "'gmu'"],
    ),
    "cross-attn-heads-not-dividing": (
        ["--categorical-columns", "site", "--fusion", "cross-attention", "--cross-attn-heads", "3"],
        ["--cross-attn-heads 3", "--embedding-dim 16"],
    ),
    "normalize-by-without-zscore-category": (
        ["--normalize-by", "site"],
        ["--normalize-by", "zscore-category"],
    ),
    "zscore-category-without-normalize-by": (
        ["--target-transform", "zscore-category"],
        ["zscore-category", "--normalize-by"],
    ),
    "normalize-by-missing-column": (
        ["--target-transform", "zscore-category", "--normalize-by", "body"],
        ["'body'", "Available: age, site"],
    ),
    "log-transform-of-target-below-minus-one": (
        ["--target-transform", "log-zscore", "--metadata", "{negative}"],
        ["log-zscore", "> -1"],
    ),
    "zscore-of-constant-target": (["--metadata", "{constant}"], ["zscore", "constant"]),
    "legacy-and-new-flag": (
        ["--normalize-targets", "--target-transform", "minmax"],
        ["--normalize-targets", "--target-transform"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_touches_nothing(
    case, tiny_data, tiny_model, as_flags, bad_files, run_cli, tmp_path
):
    extra, needles = BAD_INPUTS[case]
    extra = [flag.format(**bad_files) for flag in extra]
    flags = [*data_flags(tiny_data), *as_flags(tiny_model), *extra]

    previous = write_previous_run(tmp_path / "previous")
    before = snapshot(previous)
    result = run_cli("train", *flags, "--output-dir", previous, "--force")
    assert_one_line_error(result, *needles)
    assert snapshot(previous) == before

    fresh = tmp_path / "fresh"
    result = run_cli("train", *flags, "--output-dir", fresh)
    assert_one_line_error(result, *needles)
    assert not fresh.exists()


def test_log_transform_checks_validation_targets_too(tiny_data, tiny_model, write_tsv, tmp_path):
    """A target <= -1 that only the validation split holds is still refused before any file
    is written (the transform is fitted on training rows but applied to every row)."""
    from aam_core import DataError

    ages = tiny_data.age.copy()
    ages[-1] = -1.0
    metadata = _metadata_with_ages(tiny_data, write_tsv, ages, "minus-one.tsv")
    with pytest.raises(DataError, match="> -1"):
        train(
            table=tiny_data.table,
            metadata=metadata,
            metadata_column="age",
            target_transform="log-minmax",
            output_dir=tmp_path / "run",
            train_samples=tiny_data.sample_ids[:24],
            val_samples=tiny_data.sample_ids[24:],
            **tiny_model,
        )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--fusion", "gmm"], ["Unknown fusion 'gmm'", "Run 'aam plugins'"]),
        (["--cross-attn-heads", "4"], ["--cross-attn-heads", "'gmu'"]),
    ],
    ids=["unknown-fusion", "option-of-another-fusion"],
)
def test_fusion_is_checked_without_categorical_columns(
    tiny_data, tiny_model, as_flags, recorded_plots, run_cli, tmp_path, flags, needles
):
    del recorded_plots
    out = tmp_path / "run"
    result = run_cli(
        "train", *data_flags(tiny_data), *as_flags(tiny_model), *flags, "--output-dir", out
    )
    assert_one_line_error(result, *needles)
    assert not out.exists()


def test_previous_run_needs_force(
    tiny_data, tiny_model, as_flags, recorded_plots, run_cli, tmp_path
):
    del recorded_plots
    previous = write_previous_run(tmp_path / "previous")
    before = snapshot(previous)
    flags = [*data_flags(tiny_data), *as_flags(tiny_model), "--output-dir", previous]

    result = run_cli("train", *flags)
    assert_one_line_error(result, str(previous), "--force")
    assert snapshot(previous) == before

    result = run_cli("train", *flags, "--force")
    assert result.code == 0, result.err
    config = json.loads((previous / "config.json").read_text())
    assert config["data"]["metadata_column"] == "age"
    assert (previous / "checkpoints" / "best.pt").read_bytes() != PREVIOUS_RUN[
        "checkpoints/best.pt"
    ]
    events = list((previous / "tensorboard").iterdir())
    assert events and all(e.name != "events.out.tfevents.1.host" for e in events)
    frame = (previous / "val_predictions.tsv").read_text().splitlines()
    assert len(frame) == 1 + len((previous / "val_samples.txt").read_text().split())


#: A command that logs like AAM and like a library AAM imports (JAX, probing for a TPU, logs such a
#: line at INFO on a GPU machine), in the console script's own process.
_CHATTER = """
import logging, sys
from aam_core.cli import cli, main

@cli.command("chatter")
def chatter():
    logging.getLogger("some.library").info("library info")
    logging.getLogger("some.library").warning("library warning")
    logging.getLogger("aam").info("aam info")
    logging.getLogger("aam_core.unifrac.api").info("aam_core info")
    logging.getLogger("aam.my-plugin").info("plugin info")

main(sys.argv[1:])
"""


@pytest.mark.parametrize("quiet", [False, True], ids=["default", "quiet"])
def test_the_console_shows_aams_info_lines_but_not_other_libraries(quiet):
    args = ["-q", "chatter"] if quiet else ["chatter"]
    done = subprocess.run([sys.executable, "-c", _CHATTER, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "library info" not in lines and "library warning" in lines, lines
    ours = ["aam info", "aam_core info", "plugin info"]
    assert [line for line in lines if line in ours] == ([] if quiet else ours), lines
