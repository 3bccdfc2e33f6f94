"""0/1 knapsack with integer weights, by dynamic programming over capacities."""

import math

import numba as nb
import numpy as np

from ._base import TARGET_TOL, BaseSolver, _outside_box
from ._utils import check_int, check_integer_array, pack_spec

KNAPSACK_ID = 6

#: Largest dynamic-programming table of one problem (bytes); one per thread.
MAX_TABLE_BYTES = 1 << 28


@nb.njit(cache=True)
def knapsack_row(x, float_params, int_params, out):
    capacity = int_params[0]
    weights = int_params[1:]
    d = x.shape[0]
    # best[c]: the best value of items j..d-1 within capacity c, updated in
    # place from the last item down (c descending, so best[c - w] still
    # excludes item j). take[j, c] records whether taking j is optimal there,
    # which lets the reconstruction walk the items in index order.
    best = np.zeros(capacity + 1)
    take = np.zeros((d, capacity + 1), dtype=np.bool_)
    for j in range(d - 1, -1, -1):
        if x[j] <= 0.0:
            continue  # never worth taking
        w = weights[j]
        for c in range(capacity, w - 1, -1):
            value = x[j] + best[c - w]
            # >=: taking wins ties, so lower-index items are preferred.
            if value >= best[c]:
                take[j, c] = True
                best[c] = value
    out[:] = 0.0
    c = capacity
    for j in range(d):
        if take[j, c]:
            out[j] = 1.0
            c -= weights[j]


class Knapsack(BaseSolver):
    """0/1 knapsack: the most valuable set of items within a weight capacity.

    ``y*(θ) = argmax {θ·y : y ∈ {0, 1}^d, Σ_j w_j y_j ≤ capacity}`` with θ the
    item values and integer weights. Solved by dynamic programming in
    O(d · capacity) time, with a table of d · (capacity + 1) bytes per
    problem being solved (weights and capacity are first divided by the gcd
    of the weights, and the capacity is capped at the total weight).

    Items of non-positive value are never taken. Ties: among optimal sets
    of positive-value items, the lexicographically largest indicator vector
    (lower-index items are preferred).

    Parameters
    ----------
    weights : array-like of int of shape (d,)
        Non-negative integer weight of each item (integral floats such as
        ``2.0`` are accepted).
    capacity : int
        Non-negative integer capacity.

    Attributes
    ----------
    sense : str
        ``'max'``: θ holds item values.

    Examples
    --------
    >>> from sk_perturbed.solvers import Knapsack
    >>> solver = Knapsack(weights=[3, 4, 2, 5], capacity=7)
    >>> solver([[4.0, 5.0, 3.0, 7.0]])
    array([[0., 0., 1., 1.]])
    """

    def __init__(self, weights, capacity):
        self.weights = weights
        self.capacity = capacity

    def _checked_params(self):
        name = type(self).__name__
        weights = check_integer_array(self.weights, "weights", name, min_value=0)
        if weights.size == 0:
            raise ValueError(f"{name}: weights must contain at least one item.")
        capacity = check_int(self.capacity, "capacity", name, min_value=0)
        return weights, capacity

    def _validate_params(self):
        self._checked_params()

    def _target_rule(self, Y):
        weights, capacity = self._checked_params()
        over = Y @ weights > capacity + TARGET_TOL * max(1.0, capacity)
        return _outside_box(Y) | over, f"entries in [0, 1] of total weight <= capacity = {capacity}"

    def dimension(self):
        """Number of items d = len(weights).

        Returns
        -------
        d : int
            Length of θ: one value per item.
        """
        return self._checked_params()[0].size

    def _numba_spec(self):
        weights, capacity = self._checked_params()
        # Common factors and capacity beyond the total weight only cost time.
        g = math.gcd(*weights.tolist()) or 1
        # The total in Python ints: a sum of large int64 weights can wrap around.
        weights, capacity = weights // g, min(capacity // g, sum(weights.tolist()) // g)
        # Checked here: a failed allocation inside numba's parallel loops
        # returns garbage instead of raising.
        table_bytes = (weights.size + 8) * (capacity + 1)
        if table_bytes > MAX_TABLE_BYTES:
            raise ValueError(
                f"Knapsack: the dynamic program needs (d + 8) x (capacity + 1) = "
                f"{table_bytes:.3g} bytes per problem (capacity {capacity} after dividing "
                f"the weights and capacity by their gcd {g}); at most {MAX_TABLE_BYTES:.3g} "
                "are allowed. Express the weights in coarser units."
            )
        return pack_spec(KNAPSACK_ID, int_params=np.concatenate([[capacity], weights]))
