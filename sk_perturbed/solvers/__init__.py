"""Combinatorial solvers (linear maximization or minimization oracles).

Every solver is callable on a batch: ``solver(theta)`` with θ of shape (n, d)
returns the (n, d) optimal structures; ``solver.sense`` says whether it
maximizes scores or minimizes costs.
"""

from ._base import BaseSolver
from ._basic import Argmax, Ranking, TopK

__all__ = ["BaseSolver", "Argmax", "TopK", "Ranking"]
