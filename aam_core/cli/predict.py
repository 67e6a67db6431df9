"""``aam predict``: a checkpoint and a table → predictions in original units."""

from __future__ import annotations

import click


@click.command("predict")
@click.option("--model", "model_path", required=True, type=click.Path(), help="Checkpoint (checkpoints/best.pt).")
@click.option("--table", required=True, type=click.Path(), help="BIOM table of the samples to predict.")
@click.option("--metadata", type=click.Path(), help="Categorical inputs of the new samples (adds 'actual' when it has the target).")
@click.option("--sequences", type=click.Path(), help="FASTA for hashed feature IDs.")
@click.option("--output", required=True, type=click.Path(), help="TSV to write: sample_id, [actual,] predicted.")
@click.option("--batch-size", type=int, default=None, help="Samples per batch [default: the training batch size].")
@click.option("--device", default=None, help="cpu, cuda... [default: CUDA if available].")
def command(model_path, table, metadata, sequences, output, batch_size, device) -> None:
    """Predict the trained target for every sample of a table."""
    from aam_core.api import load_model, predict

    loaded = load_model(model_path, device=device)
    frame = predict(loaded, table, metadata=metadata, sequences=sequences, output=output, batch_size=batch_size)
    click.echo(f"Wrote {len(frame)} predictions to {output}")
