"""``aam explain`` from the command line: the files it writes read back in the tools people use
(BIOM, QIIME 2's importance layout, pandas), the figures say what they show, and bad input is
one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import biom
import numpy as np
import pandas as pd
import pytest
from conftest import TINY_MODEL, write_tiny_data

import aam_core
from aam_core.attribution import explain
from aam_core.attribution.figures import feature_label, importance_figure, waterfall_figure

TAXA = [
    ["k__Bacteria", "p__Firmicutes", "c__Bacilli", "o__Lactobacillales", "f__Streptococcaceae", "g__Streptococcus", "s__"],
    ["k__Bacteria", "p__Bacteroidetes", "c__Bacteroidia", "o__Bacteroidales", "f__Prevotellaceae", "g__Prevotella", "s__melaninogenica"],
    ["k__Bacteria", "p__Proteobacteria", "c__", "o__", "f__", "g__", "s__"],
]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Tiny data whose BIOM carries taxonomy, a one-epoch model, and its checkpoint."""
    folder = tmp_path_factory.mktemp("explain-cli")
    data = write_tiny_data(folder / "data")
    table = biom.load_table(str(data.table))
    table.add_metadata(
        {fid: {"taxonomy": TAXA[i % 3]} for i, fid in enumerate(data.sequences)}, axis="observation"
    )
    import h5py

    with h5py.File(data.table, "w") as handle:
        table.to_hdf5(handle, "tiny with taxonomy")
    aam_core.train(
        table=data.table,
        metadata=data.metadata,
        metadata_column="age",
        output_dir=folder / "run",
        **TINY_MODEL,
    )
    return data, folder / "run" / "checkpoints" / "best.pt"


def explain_flags(data, checkpoint, out) -> list[object]:
    return [
        "explain",
        "--model",
        checkpoint,
        "--table",
        data.table,
        "--metadata",
        data.metadata,
        "--output-dir",
        out,
    ]


def assert_one_line_error(result, *needles: str) -> None:
    assert result.code == 2, (result.code, result.err)
    assert result.err.startswith("aam: error: "), result.err
    assert result.err.count("\n") == 1, result.err
    for needle in needles:
        assert needle in result.err, (needle, result.err)


def test_cli_writes_tables_that_round_trip(run, run_cli, tmp_path):
    data, checkpoint = run
    out = tmp_path / "explain"
    result = run_cli(*explain_flags(data, checkpoint, out), "--faithfulness", "--top", "5")
    assert result.code == 0, result.err
    assert "Explained 30 samples with integrated-gradients" in result.out
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == {
        "attributions.tsv", "attributions.biom", "importance.tsv", "features.tsv", "samples.tsv",
        "summary.json", "faithfulness.json", "figures/top_features.png", "figures/waterfall.png",
    }  # fmt: skip

    long = pd.read_csv(out / "attributions.tsv", sep="\t")
    assert list(long.columns) == [
        "sample_id",
        "feature_id",
        "sequence",
        "taxonomy",
        "abundance",
        "attribution",
    ]
    assert len(long) == int((data.counts > 0).sum())  # one row per present ASV
    first = long.iloc[0]
    sample = data.sample_ids.index(first["sample_id"])
    feature = data.sequences.index(first["feature_id"])
    assert first["abundance"] == pytest.approx(
        data.counts[sample, feature] / data.counts[sample].sum()
    )
    assert first["taxonomy"] == "; ".join(TAXA[feature % 3])

    table = biom.load_table(str(out / "attributions.biom"))
    assert set(table.ids(axis="sample")) == set(data.sample_ids)
    for row in long.sample(20, random_state=0).itertuples():
        assert table.get_value_by_ids(row.feature_id, row.sample_id) == pytest.approx(
            row.attribution, rel=1e-12, abs=1e-15
        )
    assert np.abs(table.matrix_data).sum() == pytest.approx(long["attribution"].abs().sum())
    assert (
        table.metadata(long.iloc[0]["feature_id"], axis="observation")["taxonomy"]
        == TAXA[feature % 3]
    )

    importance = pd.read_csv(out / "importance.tsv", sep="\t", index_col=0)
    assert importance.index.name == "feature"
    assert list(importance.columns) == ["importance"]
    assert importance["importance"].is_monotonic_decreasing
    expected = long.groupby("feature_id")["attribution"].apply(lambda v: v.abs().sum()) / 30
    assert importance["importance"].to_numpy() == pytest.approx(
        expected[importance.index].to_numpy()
    )

    samples = pd.read_csv(out / "samples.tsv", sep="\t")
    assert list(samples["sample_id"]) == data.sample_ids
    assert samples["actual"].to_numpy() == pytest.approx(data.age)
    sums = long.groupby("sample_id")["attribution"].sum()[samples["sample_id"]].to_numpy()
    left = (samples["prediction"] - samples["baseline"]).to_numpy() - sums
    assert left == pytest.approx(samples["residual"].to_numpy(), abs=1e-9)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "integrated-gradients" and summary["samples"] == 30
    assert len(summary["top"]) == 5 and summary["waterfall_sample"] == data.sample_ids[0]
    assert [t["feature"] for t in summary["top"]] == list(importance.index[:5])
    assert summary["top"][0]["taxonomy"] == "; ".join(
        TAXA[data.sequences.index(importance.index[0]) % 3]
    )
    curves = json.loads((out / "faithfulness.json").read_text())
    assert len(curves["top_k_change"]) == len(curves["random_k_change"]) == 20


def test_samples_file_picks_and_orders_the_samples(run, run_cli, tmp_path):
    data, checkpoint = run
    chosen = [data.sample_ids[7], data.sample_ids[2]]
    listing = tmp_path / "samples.txt"
    listing.write_text("\n".join(chosen) + "\n")
    out = tmp_path / "explain"
    result = run_cli(
        *explain_flags(data, checkpoint, out),
        "--samples",
        listing,
        "--method",
        "integrated-gradients",
        "--sample",
        chosen[1],
    )
    assert result.code == 0, result.err
    assert list(pd.read_csv(out / "samples.tsv", sep="\t")["sample_id"]) == chosen
    assert set(pd.read_csv(out / "attributions.tsv", sep="\t")["sample_id"]) == set(chosen)
    assert json.loads((out / "summary.json").read_text())["waterfall_sample"] == chosen[1]


def test_attention_is_written_under_its_own_name(run, run_cli, tmp_path):
    data, checkpoint = run
    out = tmp_path / "explain"
    assert run_cli(*explain_flags(data, checkpoint, out), "--method", "attention").code == 0
    assert (out / "attention.tsv").is_file() and (out / "attention.biom").is_file()
    assert (
        not (out / "attributions.tsv").exists() and not (out / "figures" / "waterfall.png").exists()
    )
    long = pd.read_csv(out / "attention.tsv", sep="\t")
    assert "attention" in long.columns and "attribution" not in long.columns
    assert (
        "attention, not attribution" in json.loads((out / "summary.json").read_text())["importance"]
    )


def _pretrain_checkpoint(folder: Path, data) -> Path:
    aam_core.pretrain(
        table=data.table, unifrac_penalty=0, output_dir=folder, epochs=1, batch_size=8,
        embedding_dim=16, attention_heads=2, attention_layers=1, max_bp=40,
    )  # fmt: skip
    return folder / "checkpoints" / "best.pt"


@pytest.mark.parametrize(
    "case, needles",
    [
        ("not-a-checkpoint", ["not-a-checkpoint.pt", "not an AAM checkpoint"]),
        ("pretrain-checkpoint", ["'pretrain' checkpoint"]),
        ("samples-not-in-table", ["2 of the 3 samples", "'NOPE1'"]),
        (
            "unknown-method",
            ["Unknown explain method 'shap'", "attention, integrated-gradients, occlusion"],
        ),
        ("waterfall-sample-not-explained", ["--sample 'NOPE'"]),
        ("occupied-output-dir", ["already holds files", "--force"]),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(run, run_cli, tmp_path, case, needles):
    data, checkpoint = run
    out = tmp_path / "explain"
    flags: list[object] = []
    if case == "not-a-checkpoint":
        checkpoint = tmp_path / "not-a-checkpoint.pt"
        checkpoint.write_text("hello\n")
    elif case == "pretrain-checkpoint":
        checkpoint = _pretrain_checkpoint(tmp_path / "pre", data)
    elif case == "samples-not-in-table":
        listing = tmp_path / "samples.txt"
        listing.write_text(f"{data.sample_ids[0]}\nNOPE1\nNOPE2\n")
        flags = ["--samples", listing]
    elif case == "unknown-method":
        flags = ["--method", "shap"]
    elif case == "waterfall-sample-not-explained":
        flags = ["--sample", "NOPE"]
    elif case == "occupied-output-dir":
        out.mkdir()
        (out / "notes.txt").write_text("mine\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = run_cli(*explain_flags(data, checkpoint, out), *flags)
    assert_one_line_error(result, *needles)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    if case == "occupied-output-dir":
        assert (out / "notes.txt").read_text() == "mine\n"


def test_force_writes_beside_other_files_and_keeps_them(run, run_cli, tmp_path):
    data, checkpoint = run
    out = tmp_path / "explain"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    assert run_cli(*explain_flags(data, checkpoint, out), "--force").code == 0
    assert (out / "notes.txt").read_text() == "mine\n" and (out / "importance.tsv").is_file()


def test_importance_figure_says_what_it_shows(run):
    data, checkpoint = run
    result = explain(
        checkpoint, data.table, metadata=data.metadata, method="occlusion", progress=False
    )
    fig = importance_figure(result.explanation, top=7)
    ax = fig.axes[0]
    assert len(ax.patches) == 7
    assert ax.get_title() == "Top 7 ASVs by importance (occlusion, 30 samples)"
    assert ax.get_xlabel() == "mean effect on the predicted age (original units)"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    top = result.importance.index[0]
    highest = labels[int(np.argmax(ax.get_yticks()))]  # the most important sits at the top
    assert highest == feature_label(
        result.explanation.taxonomy[list(result.explanation.feature_ids).index(top)], top
    )
    widths = [p.get_width() for p in ax.patches]
    assert widths[0] == pytest.approx(result.explanation.mean_effect()[top])


def test_waterfall_walks_from_baseline_to_prediction(run):
    data, checkpoint = run
    e = explain(
        checkpoint, data.table, metadata=data.metadata, method="occlusion", progress=False
    ).explanation
    i = int(np.argmax(np.diff(e.offsets)))  # the sample with the most ASVs
    sample = str(e.sample_ids[i])
    n_asvs = len(e.features[e.entries(i)])
    assert n_asvs > 3
    fig = waterfall_figure(e, sample, top=3)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "baseline" and labels[-1] == "prediction"
    assert labels[4] == f"other {n_asvs - 3} ASVs"
    assert labels[5] == "interactions (not additive)"
    assert len(ax.patches) == 3 + 1 + 1 + 2
    assert ax.get_title().startswith(f"{sample}: ")
    assert ax.get_xlabel() == "predicted age (original units)"
    steps = ax.patches[1:-1]
    end = steps[-1].get_x() + steps[-1].get_width()
    assert end == pytest.approx(e.prediction[i])
    final = ax.patches[-1]
    assert final.get_x() + final.get_width() == pytest.approx(e.prediction[i])
    first = ax.patches[0]
    assert first.get_x() + first.get_width() == pytest.approx(e.baseline[i])
    assert steps[0].get_x() == pytest.approx(e.baseline[i])
    # Integrated gradients add up: no step for what the attributions leave out.
    ig = explain(checkpoint, data.table, metadata=data.metadata, progress=False).explanation
    labels = [t.get_text() for t in waterfall_figure(ig, sample, top=3).axes[0].get_yticklabels()]
    assert labels[-2] == f"other {n_asvs - 3} ASVs" and len(labels) == 3 + 1 + 2


def test_feature_labels_name_the_most_specific_rank():
    seq = "ACGT" * 10
    assert feature_label("; ".join(TAXA[1]), seq).startswith("Prevotella melaninogenica · ")
    assert feature_label("; ".join(TAXA[0]), seq).startswith("Streptococcus · ")
    assert feature_label("; ".join(TAXA[2]), seq).startswith("p__Proteobacteria · ")
    assert feature_label("", seq).startswith("ASV ")
    assert feature_label("", seq) != feature_label("", "T" + seq)


def test_a_failure_while_writing_leaves_nothing(run, tmp_path, monkeypatch):
    from aam_core.attribution import figures

    def broken(explanation, sample_id, top=10):  # noqa: ARG001 - waterfall_figure signature
        raise RuntimeError("disk full")

    monkeypatch.setattr(figures, "waterfall_figure", broken)
    data, checkpoint = run
    for out in (tmp_path / "new", tmp_path / "existing"):
        if out.name == "existing":
            out.mkdir()
        with pytest.raises(RuntimeError, match="disk full"):
            explain(checkpoint, data.table, metadata=data.metadata, output_dir=out, progress=False)
        assert not out.exists() if out.name == "new" else list(out.iterdir()) == []
