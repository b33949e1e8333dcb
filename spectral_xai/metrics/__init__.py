"""Evaluation of explanations."""
from .faithfulness import blur_baseline, deletion_insertion, keep_masks
from .inconsistency import inconsistency, scale_rank_correlation

__all__ = ["blur_baseline", "deletion_insertion", "inconsistency", "keep_masks", "scale_rank_correlation"]
