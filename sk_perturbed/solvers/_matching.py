"""Minimum-cost perfect matching (linear assignment) on a square cost matrix."""

import numba as nb
import numpy as np

from ._base import BaseSolver, _outside_box, _wrong_sum
from ._utils import check_int, pack_spec

ASSIGNMENT_ID = 5


@nb.njit(cache=True)
def assignment_row(x, float_params, int_params, out):
    # Shortest augmenting paths with dual potentials (Jonker–Volgenant /
    # Hungarian, O(n³)): rows enter one at a time; each entry runs a
    # Dijkstra over columns on the reduced costs x[i, j] - u[i] - v[j] >= 0
    # up to the first free column, then flips the alternating path.
    n = int_params[0]
    u = np.zeros(n)
    v = np.zeros(n)
    col_of = np.full(n, -1, dtype=np.int64)
    row_of = np.full(n, -1, dtype=np.int64)
    distance = np.empty(n)  # shortest reduced path cost to each column
    came_from = np.empty(n, dtype=np.int64)  # row from which a column is reached
    remaining = np.empty(n, dtype=np.int64)  # columns not yet reached, unordered
    row_seen = np.empty(n, dtype=np.bool_)
    col_seen = np.empty(n, dtype=np.bool_)
    for start in range(n):
        distance[:] = np.inf
        row_seen[:] = False
        col_seen[:] = False
        for j in range(n):
            remaining[j] = j
        n_remaining = n
        reached = 0.0
        i = start
        sink = -1
        while sink < 0:
            row_seen[i] = True
            best, best_k = np.inf, -1
            for k in range(n_remaining):
                j = remaining[k]
                cost = reached + x[i * n + j] - u[i] - v[j]
                if cost < distance[j]:
                    distance[j] = cost
                    came_from[j] = i
                # Among equal costs a free column ends the search sooner.
                if distance[j] < best or (distance[j] == best and row_of[j] < 0):
                    best, best_k = distance[j], k
            reached = best
            j = remaining[best_k]
            col_seen[j] = True
            n_remaining -= 1
            remaining[best_k] = remaining[n_remaining]
            if row_of[j] < 0:
                sink = j
            else:
                i = row_of[j]
        # Potentials: keep reduced costs >= 0 and 0 on the matched pairs.
        u[start] += reached
        for i in range(n):
            if row_seen[i] and i != start:
                u[i] += reached - distance[col_of[i]]
        for j in range(n):
            if col_seen[j]:
                v[j] -= reached - distance[j]
        # Augment along the path back to the entering row.
        j = sink
        while True:
            i = came_from[j]
            row_of[j] = i
            j, col_of[i] = col_of[i], j
            if i == start:
                break
    out[:] = 0.0
    for i in range(n):
        out[i * n + col_of[i]] = 1.0


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
    batch and thread count), but not a simple lexicographic rule on
    matchings: each augmenting search scans columns in a fixed order and
    prefers free columns among equal reduced costs.

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

    def _target_rule(self, Y):
        # The Birkhoff polytope: doubly stochastic n x n matrices.
        matrices = Y.reshape(Y.shape[0], self.n, self.n)
        bad = _outside_box(Y)
        bad |= _wrong_sum(matrices.sum(axis=2), 1.0).any(axis=1)
        bad |= _wrong_sum(matrices.sum(axis=1), 1.0).any(axis=1)
        return bad, (
            "a doubly stochastic n x n matrix: entries in [0, 1], every row and column "
            "summing to 1"
        )

    def dimension(self):
        """Number of entries d = n² of the cost matrix.

        Returns
        -------
        d : int
            Length of θ: the flattened n×n cost matrix.
        """
        self._validate_params()
        return self.n * self.n

    def _numba_spec(self):
        self._validate_params()
        return pack_spec(ASSIGNMENT_ID, int_params=(self.n,))
