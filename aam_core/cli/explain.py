"""``aam explain``: which ASVs drive each sample's prediction, in the target's units."""

from __future__ import annotations

import click

METHOD_CHOICES = ("occlusion", "integrated-gradients", "attention")


@click.command("explain", short_help="Per-sample, per-ASV attributions and global importance.")
@click.option("--model", "model_path", required=True, type=click.Path(), help="Checkpoint of a trained model (checkpoints/best.pt).")
@click.option("--table", required=True, type=click.Path(), help="BIOM table of the samples to explain.")
@click.option("--metadata", type=click.Path(), help="The model's categorical inputs (and 'actual' in samples.tsv).")
@click.option("--sequences", type=click.Path(), help="FASTA for hashed feature IDs.")
@click.option("--output-dir", required=True, type=click.Path(), help="Folder for the tables and figures.")
@click.option(
    "--method",
    default="integrated-gradients",
    help="integrated-gradients (default): attributions add up to prediction minus a zero-vector "
    "reference, and rank ASVs more faithfully than occlusion on oral-age's deletion curves. "
    "occlusion: prediction minus the prediction without the ASV, exact in original units "
    "for one removal, no gradients. attention: attention-pooling weights — attention, NOT "
    "attribution (no perceiver).",
)
@click.option("--samples", type=click.Path(), help="File of sample IDs to explain, one per line [default: every sample].")
@click.option("--top", type=int, default=20, help="ASVs in the importance figure and summary.")
@click.option("--sample", "waterfall_sample", default=None, help="Sample of the waterfall figure [default: the first explained].")
@click.option("--faithfulness", is_flag=True, help="Also write deletion curves (faithfulness.json): top-k vs random ASVs removed.")
@click.option("--steps", type=int, default=32, help="Integrated-gradients quadrature points.")
@click.option("--batch-size", type=int, default=None, help="Samples per batch [default: the training batch size].")
@click.option("--device", default=None, help="cpu, cuda... [default: CUDA if available].")
@click.option("--force", is_flag=True, help="Write into a folder that holds other files (replaces only files of the same names).")
def command(
    model_path, table, metadata, sequences, output_dir, method, samples, top, waterfall_sample,
    faithfulness, steps, batch_size, device, force,
) -> None:  # fmt: skip
    """Explain a trained model's predictions ASV by ASV.

    Writes attributions.tsv (sample_id, feature_id, sequence, taxonomy, abundance, attribution)
    and attributions.biom in the target's original units (a classifier: the predicted class's
    probability), importance.tsv in QIIME 2's FeatureData[Importance] layout (mean |attribution|
    over the samples), features.tsv, samples.tsv, summary.json and figures/.

    \b
    aam explain --model run/checkpoints/best.pt --table table.biom --metadata md.tsv \\
        --output-dir explain --faithfulness
    """
    from aam_core.attribution.api import explain
    from aam_core.cli.predict import _checkpoint

    result = explain(
        _checkpoint(model_path),  # a run directory is named as one, not "not found"
        table,
        output_dir=output_dir,
        metadata=metadata,
        sequences=sequences,
        method=method,
        samples=samples,
        top=top,
        sample=waterfall_sample,
        faithfulness=faithfulness,
        steps=steps,
        batch_size=batch_size,
        device=device,
        force=force,
    )
    explanation = result.explanation
    click.echo(
        f"Explained {len(explanation)} samples with {explanation.method} in {result.seconds:.1f} s; "
        f"wrote {output_dir}"
    )
    if result.faithfulness is not None:
        click.echo(f"Deletion curves: area between top-k and random {result.faithfulness['area_between']:.4g} ({explanation.units})")
