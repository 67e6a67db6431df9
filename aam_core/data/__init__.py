"""Loading, tokenising, splitting and batching microbiome tables."""

from aam_core.data.dataset import Dataset, load_dataset
from aam_core.data.samples import read_sample_list

__all__ = ["Dataset", "load_dataset", "read_sample_list"]
