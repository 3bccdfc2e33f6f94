"""Synthetic and benchmark data sets for structured prediction."""

from ._ranking import LABEL_RANKING_DATASETS, load_label_ranking, make_perfect_ranks

__all__ = [
    "LABEL_RANKING_DATASETS",
    "load_label_ranking",
    "make_perfect_ranks",
]
