"""The built-in target transforms, registered through the same hook a third party uses."""

from __future__ import annotations

from aam_core import hookimpl
from aam_core.specs import TransformSpec
from aam_plugins.transforms.identity import IdentityTransform
from aam_plugins.transforms.log import LogMinMaxTransform, LogZScoreTransform
from aam_plugins.transforms.minmax import MinMaxTransform
from aam_plugins.transforms.zscore import ZScoreTransform
from aam_plugins.transforms.zscore_category import ZScoreCategoryTransform


@hookimpl
def aam_target_transforms():
    """none, minmax, zscore, zscore-category, log-minmax, log-zscore."""
    return [
        TransformSpec(
            name="none",
            factory=IdentityTransform,
            description="The target unchanged.",
        ),
        TransformSpec(
            name="minmax",
            factory=MinMaxTransform,
            description="Scale to [0, 1] over the training range.",
        ),
        TransformSpec(
            name="zscore",
            factory=ZScoreTransform,
            description="Subtract the training mean, divide by the training std.",
        ),
        TransformSpec(
            name="zscore-category",
            factory=ZScoreCategoryTransform,
            description="Z-score within each category of --normalize-by (unseen: global stats).",
        ),
        TransformSpec(
            name="log-minmax",
            factory=LogMinMaxTransform,
            description="log(y + 1), then scale to [0, 1] over the training range.",
        ),
        TransformSpec(
            name="log-zscore",
            factory=LogZScoreTransform,
            description="log(y + 1), then subtract the training mean and divide by the std.",
        ),
    ]
