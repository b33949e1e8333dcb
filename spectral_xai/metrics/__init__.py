"""Evaluation of explanations."""
from .inconsistency import inconsistency, scale_rank_correlation

__all__ = ["inconsistency", "scale_rank_correlation"]
