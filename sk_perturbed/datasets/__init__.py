"""Synthetic and benchmark data sets for structured prediction."""

from ._decision_focused import make_knapsack
from ._learning_to_rank import (
    load_learning_to_rank,
    load_svmlight_ranking,
    make_ranking_groups,
)
from ._ranking import LABEL_RANKING_DATASETS, load_label_ranking, make_perfect_ranks
from ._shortest_path import (
    TERRAIN_COSTS,
    TERRAIN_TYPES,
    make_shortest_path,
    make_warcraft_like,
)

__all__ = [
    "LABEL_RANKING_DATASETS",
    "TERRAIN_COSTS",
    "TERRAIN_TYPES",
    "load_label_ranking",
    "load_learning_to_rank",
    "load_svmlight_ranking",
    "make_knapsack",
    "make_perfect_ranks",
    "make_ranking_groups",
    "make_shortest_path",
    "make_warcraft_like",
]
