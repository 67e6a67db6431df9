"""Attribution for ``aam explain``: which ASVs drive a prediction, and how far to trust the answer.

For every explained sample and every ASV the model reads in it, a value in the target's original
units ("this ASV moved the predicted age by +2.1 years"; for a classifier, the predicted class's
probability), a global importance per ASV, and figures. Three methods, one module each:

- ``integrated-gradients`` (default, :mod:`.gradients`): integrated gradients of each ASV's
  vector and count from a zero reference; the attributions of a sample add up to prediction
  minus the reference's prediction, and its ranking was the more faithful on oral-age's
  deletion curves. Implemented here rather than through Captum (reasons there).
- ``occlusion`` (:mod:`.occlusion`): prediction minus the prediction without the ASV, the
  ASV's reads kept in the sample's total. Exact in original units for any transform, no
  reference input, no gradients; one extra sample-encoder row per ASV; does not add up.
- ``attention`` (:mod:`.attention`): the attention-pooling weights — attention, not attribution,
  and written under other file names; the perceiver fusion has no pooling and so none.

How far to trust them is measured, not asserted: :mod:`.faithfulness` draws deletion curves
(removing the top-k ASVs against k random ones) and :mod:`.agreement` gives rank correlations
with the random forest's importances and between methods. Global importance is defined in
:mod:`.results`; the files in :mod:`.outputs`.
"""

from aam_core.attribution.api import ExplainResult, compute, explain
from aam_core.attribution.methods import DEFAULT_METHOD, METHODS, get_method

__all__ = ["DEFAULT_METHOD", "METHODS", "ExplainResult", "compute", "explain", "get_method"]
