"""Minimum-cost perfect matching (linear assignment) on a square cost matrix."""

import numba as nb
import numpy as np

from ._base import BaseSolver
from ._utils import check_int, pack_spec

ASSIGNMENT_ID = 5


@nb.njit(cache=True)
def assignment_row(x, float_params, int_params, out):
    # Shortest augmenting paths with dual potentials (Jonker–Volgenant /
    # Hungarian, O(n³)): rows enter one at a time; each entry runs a
    # Dijkstra over columns on reduced costs cost[i, j] - u[i] - v[j] >= 0
    # and flips the alternating path to the first free column it reaches.
    n = int_params[0]
    # Column n is a virtual start column holding the row being inserted.
    row_of = np.full(n + 1, -1, dtype=np.int64)
    u = np.zeros(n)
    v = np.zeros(n + 1)
    min_reduced = np.empty(n + 1)
    came_from = np.empty(n + 1, dtype=np.int64)
    visited = np.empty(n + 1, dtype=np.bool_)
    for i in range(n):
        row_of[n] = i
        col = n
        min_reduced[:] = np.inf
        visited[:] = False
        while True:
            visited[col] = True
            row = row_of[col]
            delta = np.inf
            next_col = -1
            for j in range(n):
                if not visited[j]:
                    reduced = x[row * n + j] - u[row] - v[j]
                    if reduced < min_reduced[j]:
                        min_reduced[j] = reduced
                        came_from[j] = col
                    # Strict <: the lowest column index wins ties.
                    if min_reduced[j] < delta:
                        delta = min_reduced[j]
                        next_col = j
            # Shift the potentials so the reached tree keeps zero reduced cost.
            for j in range(n + 1):
                if visited[j]:
                    u[row_of[j]] += delta
                    v[j] -= delta
                else:
                    min_reduced[j] -= delta
            col = next_col
            if row_of[col] < 0:
                break
        # Augment: shift the assignment along the path back to the start.
        while col != n:
            previous = came_from[col]
            row_of[col] = row_of[previous]
            col = previous
    out[:] = 0.0
    for j in range(n):
        out[row_of[j] * n + j] = 1.0


class Assignment(BaseSolver):
    """Minimum-cost perfect matching between n rows and n columns.

    θ is an n×n cost matrix flattened row-major (``d = n²``, ``θ[i * n + j]``
    is the cost of assigning row ``i`` to column ``j``); the structure is the
    flattened permutation matrix of a matching of minimal total cost. Solved
    by shortest augmenting paths (Jonker–Volgenant / Hungarian method) in
    O(n³); costs of any sign are allowed. The convex hull of the structures
    is the Birkhoff polytope of doubly stochastic matrices, so the perturbed
    solution ``y_ε(θ)`` is a doubly stochastic matrix.

    Ties: deterministic (the same θ always gives the same matching, in any
    batch and thread count); during each search the lowest column index wins
    among equal reduced costs, which is not a simple lexicographic rule on
    matchings.

    Parameters
    ----------
    n : int
        Number of rows (and columns) of the cost matrix, at least 1.

    Attributes
    ----------
    sense : str
        ``'min'``: θ is a cost vector.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.solvers import Assignment
    >>> costs = np.array([[4.0, 1.0, 3.0],
    ...                   [2.0, 0.0, 5.0],
    ...                   [3.0, 2.0, 2.0]])
    >>> Assignment(n=3)(costs.ravel()).reshape(3, 3)
    array([[0., 1., 0.],
           [1., 0., 0.],
           [0., 0., 1.]])
    """

    sense = "min"

    def __init__(self, n):
        self.n = n

    def _validate_params(self):
        check_int(self.n, "n", type(self).__name__, min_value=1)

    def dimension(self):
        """Number of entries d = n² of the cost matrix."""
        self._validate_params()
        return self.n * self.n

    def _numba_spec(self):
        self._validate_params()
        return pack_spec(ASSIGNMENT_ID, int_params=(self.n,))
