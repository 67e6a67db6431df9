"""``aam unifrac``: exact UniFrac distances between the samples of a table."""

from __future__ import annotations

import click

METRIC_CHOICES = ("unweighted", "weighted-normalized")


@click.command("unifrac", short_help="Exact UniFrac distances from a table and a tree.")
@click.option("--table", required=True, type=click.Path(dir_okay=False), help="BIOM table (HDF5 or JSON).")
@click.option("--tree", required=True, type=click.Path(dir_okay=False), help="Rooted Newick tree with branch lengths; tips are feature IDs or sequences.")
@click.option("--output", required=True, type=click.Path(), help="Matrix to write: .tsv (scikit-bio), .h5 (as ssu writes it) or .npy (+ .ids.txt).")
@click.option("--metric", type=click.Choice(METRIC_CHOICES), default="unweighted", help="Which UniFrac.")
@click.option("--sequences", type=click.Path(dir_okay=False), help="FASTA for hashed feature IDs (dna-sequences.fasta), when the tree's tips are sequences.")
@click.option("--prune-missing", is_flag=True, help="Drop features the tree lacks (logged) instead of failing.")
@click.option("--device", default="auto", help="auto, cpu or cuda[:N] [default: a CUDA GPU when there is one].")
def command(table, tree, output, metric, sequences, prune_missing, device) -> None:
    """Write the N×N UniFrac distance matrix of a table's samples.

    \b
    aam unifrac --table table.biom --tree tree.nwk --output dm.tsv
    aam unifrac --table table.biom --tree tree.nwk --output dm.h5 --metric weighted-normalized
    """
    from aam_core.unifrac.api import compute_unifrac

    path = compute_unifrac(
        table, tree, output, metric, sequences=sequences, prune_missing=prune_missing, device=device
    )
    click.echo(f"Wrote {metric} UniFrac to {path}")
