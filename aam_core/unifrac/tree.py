"""Trees for UniFrac: reading and checking a Newick file, and matching its tips to features."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from aam_core.data.paths import check_kind, input_file
from aam_core.errors import DataError
from aam_core.unifrac.newick import Tree, newick_error, parse_newick

__all__ = ["Tree", "check_tree", "match_tips", "parse_newick", "read_tree"]

logger = logging.getLogger(__name__)


def read_tree(path: str | Path) -> Tree:
    """Read and check a Newick file for UniFrac: rooted, every branch with a length ≥ 0.

    Rooted means the root has one or two children, as scikit-bio decides; a root with three or
    more (a basal trifurcation, how unrooted trees such as FastTree's are written) is refused
    rather than silently rooted there, which is what Striped UniFrac does.
    """
    path = input_file(path, "Tree file", "tree")
    check_kind(path, "tree")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise newick_error(str(path), type(exc).__name__) from None
    tree = parse_newick(text, str(path))
    check_tree(tree)
    return tree


def check_tree(tree: Tree) -> None:
    """UniFrac's demands on a tree, each a one-line :class:`DataError`."""
    n_root_children = int((tree.parent == tree.root).sum())
    if n_root_children > 2:
        raise DataError(
            f"{tree.path} is unrooted: its root has {n_root_children} children (a basal "
            "trifurcation). Root it first, e.g. at the midpoint with scikit-bio's "
            "TreeNode.root_at_midpoint() or with 'qiime phylogeny midpoint-root'."
        )
    branches = tree.length[:-1]
    bad = np.flatnonzero(~np.isfinite(branches) | (branches < 0))
    if len(bad):
        node = int(bad[0])
        what = "no length" if math.isnan(branches[node]) else f"length {branches[node]}"
        raise DataError(
            f"{tree.path}: {len(bad)} branches have no finite length ≥ 0 (e.g. the branch above "
            f"{_describe(tree, node)} has {what}); UniFrac needs branch lengths."
        )
    seen: set[str] = set()
    for node in np.flatnonzero(tree.is_tip):
        name = tree.names[node]
        if name is None:
            continue
        if name in seen:
            raise DataError(f"{tree.path}: tip name {name[:60]!r} appears more than once.")
        seen.add(name)


def _describe(tree: Tree, node: int) -> str:
    if tree.names[node] is not None:
        return repr(tree.names[node][:60])
    kind = "tip" if tree.is_tip[node] else "internal node"
    return f"an unlabelled {kind} (node {node + 1} in postorder)"


def match_tips(
    tree: Tree,
    feature_ids: list[str],
    sequences: list[str] | None,
    *,
    prune_missing: bool,
    table_label: str = "the table",
) -> np.ndarray:
    """The tree node of every feature, ``-1`` for a feature dropped by ``prune_missing``.

    A tip matches a feature when its name is the feature's ID or, failing that, its sequence
    (compared without regard to case): a tree may be labelled either way when a FASTA file
    resolves hashed IDs to sequences. Two features on one tip have their counts added.
    """
    tips: dict[str, int] = {}
    for node in np.flatnonzero(tree.is_tip):
        name = tree.names[node]
        if name is not None:
            tips[name] = int(node)
    by_sequence: dict[str, int] = {}
    if sequences is not None:
        for name, node in tips.items():
            by_sequence.setdefault(name.upper(), node)
    nodes = np.full(len(feature_ids), -1, dtype=np.int64)
    missing: list[str] = []
    for i, feature in enumerate(feature_ids):
        node = tips.get(feature)
        if node is None and sequences is not None:
            node = by_sequence.get(sequences[i].upper())
        if node is None:
            missing.append(feature)
        else:
            nodes[i] = node
    if len(missing) == len(feature_ids):
        hint = "" if sequences is not None else (
            "; if the tips are sequences, pass --sequences with the FASTA file of the feature IDs"
        )
        raise DataError(
            f"None of the {len(feature_ids)} features of {table_label} is a tip of {tree.path} "
            f"(e.g. '{missing[0][:40]}'); tips must be the feature IDs or their sequences{hint}."
        )
    if missing and not prune_missing:
        raise DataError(
            f"{len(missing)} of {len(feature_ids)} features of {table_label} are not tips of "
            f"{tree.path} (e.g. '{missing[0][:40]}'); pass --prune-missing (prune_missing=True) "
            "to drop them."
        )
    if missing:
        logger.warning(
            "Dropped %d of %d features of %s that are not tips of %s (e.g. '%s').",
            len(missing), len(feature_ids), table_label, tree.path, missing[0][:40],
        )
    return nodes
