"""The categorical-conditioning decision guide (``aam train --categorical-help``, README)."""

CATEGORICAL_GUIDE = """\
Choosing how metadata conditions the model (--fusion, with --categorical-columns):

  need                                         use
  -------------------------------------------  ----------------------------------------------
  simple metadata (a few study/site labels)    --fusion concat
  a per-category shift or scale of the output  --fusion concat --conditional-output-scaling COL
  adaptive weighting of metadata vs sequences  --fusion gmu          (gate values in TensorBoard)
  position-specific: metadata changes how      --fusion cross-attention [--cross-attn-heads 8]
    each ASV is read                             (attention per ASV and column in TensorBoard)
  many ASVs or many metadata tokens            --fusion perceiver [--perceiver-num-latents 16]
                                                 (cost linear in the number of ASVs)
  an additive offset per category              --fusion add

--categorical-lr sets a separate learning rate for embeddings, fusion and output scaling.
Run 'aam plugins --family fusion' for every installed fusion, third-party ones included.
"""
