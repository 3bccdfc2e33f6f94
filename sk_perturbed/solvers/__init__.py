"""Combinatorial solvers (linear maximization or minimization oracles).

Every solver is callable on a batch: ``solver(theta)`` with θ of shape (n, d)
returns the (n, d) optimal structures; ``solver.sense`` says whether it
maximizes scores or minimizes costs.
"""

from . import _basic, _knapsack, _matching, _paths, _spanning_tree
from ._base import BaseSolver
from ._basic import Argmax, Ranking, TopK
from ._callable import CallableSolver
from ._knapsack import Knapsack
from ._linear_program import LinearProgram
from ._matching import Assignment
from ._paths import DAGShortestPath, GridShortestPath
from ._registry import register_row_solvers
from ._spanning_tree import SpanningTree

register_row_solvers({
    _basic.ARGMAX_ID: _basic.argmax_row,
    _basic.TOPK_ID: _basic.topk_row,
    _basic.RANKING_ID: _basic.ranking_row,
    _paths.DAG_SHORTEST_PATH_ID: _paths.dag_shortest_path_row,
    _paths.GRID_SHORTEST_PATH_ID: _paths.grid_shortest_path_row,
    _matching.ASSIGNMENT_ID: _matching.assignment_row,
    _knapsack.KNAPSACK_ID: _knapsack.knapsack_row,
    _spanning_tree.SPANNING_TREE_ID: _spanning_tree.spanning_tree_row,
})

__all__ = [
    "BaseSolver",
    "Argmax",
    "TopK",
    "Ranking",
    "DAGShortestPath",
    "GridShortestPath",
    "Assignment",
    "Knapsack",
    "SpanningTree",
    "CallableSolver",
    "LinearProgram",
]
