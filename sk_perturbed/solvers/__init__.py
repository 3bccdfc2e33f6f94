"""Combinatorial solvers (linear maximization or minimization oracles).

Every solver is callable on a batch: ``solver(theta)`` with θ of shape (n, d)
returns the (n, d) optimal structures; ``solver.sense`` says whether it
maximizes scores or minimizes costs.
"""

from ._base import BaseSolver
from ._basic import Argmax, Ranking, TopK
from ._callable import CallableSolver
from ._knapsack import Knapsack
from ._linear_program import LinearProgram
from ._matching import Assignment
from ._paths import DAGShortestPath, GridShortestPath
from ._spanning_tree import SpanningTree

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
