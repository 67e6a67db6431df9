"""Exact UniFrac inside AAM: the whole distance matrix, or any batch's pairs on the fly.

Equal to scikit-bio's ``beta_diversity('unweighted_unifrac' | 'weighted_unifrac',
normalized=True)`` (to ~3e-15 on oral-age, where Striped UniFrac's ``ssu`` differs from it by
~3e-9 in float64 and ~3e-7 in its default float32 unweighted), and faster than ``ssu`` on a
2-core machine: ``python bench/unifrac.py`` measures both.

API
---
``aam_core.unifrac`` is this package, so at the top level the function that writes a matrix (what
``aam unifrac`` runs) is ``aam_core.compute_unifrac``; here it is also ``unifrac``
(``aam_core.unifrac.unifrac``). All four below are ``aam_core.<name>`` too.

``compute_unifrac(table, tree, output, metric='unweighted', *, sequences=None,
prune_missing=False, device='auto') -> Path``
    Writes the N×N matrix (``.tsv``, ``.h5`` as ``ssu`` writes it, ``.npy`` + ``.ids.txt``).
``unifrac_matrix(table, tree, metric=..., ...) -> Distances``
    The same in memory (``sample_ids``, ``matrix``).
``BatchUniFrac(counts, feature_ids, sequences, tree, metric)(rows) -> ndarray [B, B]``
    Exact distances of any samples of a table, for pretraining batches.
``read_distance_matrix(path, sample_ids) -> ndarray``
    A precomputed matrix in any of the three formats, in the order of ``sample_ids``.

Algorithm
---------
Every sample is first turned into its counts under every tree node (a sparse
``[samples, nodes]`` matrix: one sparse product of the table with the tips' ancestor matrix).
What does not depend on the pair is folded away: nodes no sample covers, zero-length branches
and the root drop out; a node whose reads are always those of its one covered child merges into
it (branch lengths add); for unweighted, nodes covered by every sample become a constant, nodes
covered by one sample only count in that sample's observed length, and nodes covering exactly
the same samples merge. Then:

- **Unweighted**: ``d = (L_u + L_v - 2 S_uv) / (L_u + L_v - S_uv)`` with ``L_u`` the branch
  length a sample covers and ``S_uv = Σ_n b_n c_un c_vn`` the length both cover. ``S`` is a
  matrix product: a dense float64 ``dgemm`` over the nodes many samples share (coverage ×
  √b), and a scipy sparse product over the rest, where a node covered by more than half the
  samples is replaced by its complement (``c_u c_v = 1 - c̄_u - c̄_v + c̄_u c̄_v``, the first three
  terms being per-sample constants) so both sides stay sparse. Exact float64 throughout: the
  coverage is 0/1 and the only rounding is in the sums, as in scikit-bio.
- **Weighted normalized**: with ``x_un = b_n · (reads of u under n) / (reads of u)``,
  ``d = Σ_n |x_un - x_vn| / (D_u + D_v)``. Nodes shared by many samples go to a tiled
  ``cdist(..., 'cityblock')`` (compiled, GIL-free, on row stripes in parallel threads); for the
  rest ``|a - b| = a + b - 2 min(a, b)``: the ``a + b`` part is a per-sample sum and only pairs
  that share a node pay for its ``min``, expanded with NumPy and summed by a sparse COO
  scatter. Measured against the alternatives: the "layer cake" that turns ``min`` into matrix
  products needs one column per distinct value of a node — 200,000 columns on oral-age against
  7,000 nodes, far slower than the direct sum. A hybrid (a node's lowest few values as layers in
  a ``dgemm``, only the samples above them sparse) was prototyped: it cut the stripes' CPU time
  by a quarter (2.5 → 1.9 s on oral-age) but sorting every shared node's values and building the
  layers took 0.5 s, so it is not used; a vectorised build is the next step for more speed.

Which nodes are "dense" follows a cost model (``profiles._DENSE_COST``/``_SPARSE_COST``,
measured): a dense column costs every pair, a sparse one only the pairs that share it. With a
CUDA device (``device='auto'`` finds one) the dense part runs in torch on the GPU (``matmul``;
``torch.cdist(p=1)``) and more nodes are made dense.

Memory
------
Linear in the number of samples N, never N²:

- the profiles: sparse node counts (12 bytes × the nodes each sample covers — about 1,400 on
  oral-age) and a dense float64 block of N × (nodes shared by a sizeable fraction of the
  samples; 1,000-1,400 columns on oral-age, bounded by the tree's depth over that fraction):
  ~25 kB per sample;
- the work: row stripes of the upper triangle (≤ 256 rows × N float64), at most two per thread
  in flight, plus bounded scratch (2^18 expanded pairs, 2^18 formatted numbers).

The N×N result goes straight into the output file as the stripes finish (an HDF5 dataset, or a
``.npy`` memory map; the ``.h5`` and ``.tsv`` writers read rows back from a temporary ``.npy``
map next to the output), so it occupies disk and the operating system's page cache, not the
process's own memory. On oral-age (2,537 samples) the UniFrac command peaks at 175-275 MB
resident, of which ~55 MB are the imported libraries and 51 MB the mapped matrix.

Trees
-----
Newick, read literally (no underscore-to-space), must be rooted — a root with one or two
children; a basal trifurcation, how unrooted trees are usually written, is refused (scikit-bio
refuses it too; ``ssu`` silently roots there) — and every non-root branch needs a length ≥ 0.
The root's own branch is ignored, as in scikit-bio and ``ssu``.

Samples without reads (on the tree) are at distance 0 from each other and 1 from any sample
with reads, for both metrics, as scikit-bio computes them; a pair whose reads all sit on
zero-length branches is at distance 0 (scikit-bio gives 0 for unweighted and NaN for weighted).
"""

from aam_core.unifrac.api import Distances, compute_unifrac, unifrac_matrix
from aam_core.unifrac.batch import BatchUniFrac
from aam_core.unifrac.engine import METRICS
from aam_core.unifrac.matrix_io import read_distance_matrix

unifrac = compute_unifrac  # the command's name, unambiguous inside this package

__all__ = [
    "METRICS",
    "BatchUniFrac",
    "Distances",
    "compute_unifrac",
    "read_distance_matrix",
    "unifrac",
    "unifrac_matrix",
]
