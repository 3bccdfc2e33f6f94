"""Synthetic and benchmark data sets for structured prediction."""

from ._ranking import LABEL_RANKING_DATASETS, load_label_ranking, make_perfect_ranks
from ._shortest_path import TERRAIN_COSTS, TERRAIN_TYPES, make_shortest_path, make_warcraft_like

__all__ = [
    "LABEL_RANKING_DATASETS",
    "load_label_ranking",
    "make_perfect_ranks",
    "make_shortest_path",
    "make_warcraft_like",
    "TERRAIN_TYPES",
    "TERRAIN_COSTS",
]
