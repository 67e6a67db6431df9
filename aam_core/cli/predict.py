"""``aam predict``: a checkpoint and a table → predictions in original units."""

from __future__ import annotations

from pathlib import Path

import click

from aam_core.errors import CheckpointError


def _checkpoint(path: str) -> str:
    """A run directory given as ``--model`` (a common slip) names the checkpoint inside it."""
    folder = Path(path)
    if folder.is_dir():
        best = folder / "checkpoints" / "best.pt"
        hint = f"give {best}" if best.is_file() else "give a run's checkpoints/best.pt"
        raise CheckpointError(f"--model {folder} is a directory, not a checkpoint; {hint}.")
    return path


@click.command("predict")
@click.option("--model", "model_path", required=True, type=click.Path(), help="Checkpoint (checkpoints/best.pt).")
@click.option("--table", required=True, type=click.Path(), help="BIOM table of the samples to predict.")
@click.option("--metadata", type=click.Path(), help="Categorical inputs of the new samples (adds 'actual' when it has the target).")
@click.option("--sequences", type=click.Path(), help="FASTA for hashed feature IDs.")
@click.option("--output", required=True, type=click.Path(), help="TSV to write: sample_id, [actual,] predicted.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Samples per batch [default: the training batch size].")
@click.option("--device", default=None, help="cpu, cuda... [default: CUDA if available].")
def command(model_path, table, metadata, sequences, output, batch_size, device) -> None:
    """Predict the trained target for every sample of a table."""
    from aam_core.api import load_model, predict
    from aam_core.data.paths import output_file

    inputs = {"--model": model_path, "--table": table, "--metadata": metadata, "--sequences": sequences}
    output_file(output, "--output", inputs)
    loaded = load_model(_checkpoint(model_path), device=device)
    frame = predict(loaded, table, metadata=metadata, sequences=sequences, output=output, batch_size=batch_size)
    click.echo(f"Wrote {len(frame)} predictions to {output}")
