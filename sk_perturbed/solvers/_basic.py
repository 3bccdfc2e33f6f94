"""Selection solvers: one-hot argmax, k-hot top-k and ranking (permutahedron).

Row kernels share the signature ``solve(x, float_params, int_params, out)``:
they read one score vector ``x`` and write its structure into ``out``.
"""

import numbers

import numba as nb
import numpy as np

from ._base import TARGET_TOL, BaseSolver, _outside_box, _wrong_sum

ARGMAX_ID = 0
TOPK_ID = 1
RANKING_ID = 2


@nb.njit(inline="always", cache=True)
def argmax_row(x, float_params, int_params, out):
    # np.argmax returns the first maximal index: ties go to the lowest index.
    out[:] = 0.0
    out[np.argmax(x)] = 1.0


@nb.njit(cache=True)
def stable_order(x, descending, scratch):
    """Indices that sort ``x`` stably: equal scores keep their index order.

    A bucket sort over the range of the scores, finished by an insertion sort,
    takes linear time for the spread-out scores of perturbed problems and
    allocates one array; when the buckets are too uneven (a few far outliers)
    it falls back to merge sort. ``scratch`` (float64, same length as ``x``,
    not ``x`` itself) is overwritten.
    """
    d = x.shape[0]
    sign = -1.0 if descending else 1.0
    lo = sign * x[0]
    hi = lo
    for j in range(1, d):
        value = sign * x[j]
        lo = min(lo, value)
        hi = max(hi, value)
    if not hi - lo < np.inf:
        # The range overflows float64 (e.g. -1e308 and 1e308) or holds an inf:
        # (score - lo) * scale would be inf * 0 = NaN, not a bucket index.
        return np.argsort(sign * x, kind="mergesort")
    # work[:d + 1]: bucket counts, then starts; work[d + 1:]: the order.
    work = np.zeros(2 * d + 1, dtype=np.int64)
    scale = d / (hi - lo) if hi > lo else 0.0
    if not scale < np.inf:  # subnormal range
        scale = 0.0
    for j in range(d):
        work[min(np.int64((sign * x[j] - lo) * scale), d - 1) + 1] += 1
    # The insertion sort costs about the sum of squared bucket sizes.
    cost = 0
    for b in range(d):
        cost += work[b + 1] * work[b + 1]
        work[b + 1] += work[b]
    if cost > 16 * d:
        return np.argsort(sign * x, kind="mergesort")
    order = work[d + 1 :]
    # Bucket index is monotone in the score, and each bucket is filled in
    # index order, so a stable insertion sort finishes the job.
    for j in range(d):
        value = sign * x[j]
        b = min(np.int64((value - lo) * scale), d - 1)
        p = work[b]
        work[b] = p + 1
        order[p] = j
        scratch[p] = value
    for p in range(1, d):
        value = scratch[p]
        if scratch[p - 1] <= value:
            continue
        j = order[p]
        q = p - 1
        while q >= 0 and scratch[q] > value:
            scratch[q + 1] = scratch[q]
            order[q + 1] = order[q]
            q -= 1
        scratch[q + 1] = value
        order[q + 1] = j
    return order


# Up to this many items, counting pairwise comparisons (branch-free, vectorized,
# no allocation) beats the bucket sort. One core, float64, ns per ranking,
# counting vs bucket sort: d = 20: 60 vs 138; d = 40: 142 vs 207; d = 64: 218 vs 312.
_SMALL_D = 64


@nb.njit(inline="always", cache=True)
def _count_before(x, descending, out):
    """``out[j]`` = how many scores come strictly before ``x[j]``; True when these are positions.

    They are the positions in the sorted order exactly when no two scores are
    equal (a tie, or a NaN, makes the counts sum to less than d(d-1)/2).
    """
    d = x.shape[0]
    total = 0
    for j in range(d):
        xj = x[j]
        count = 0
        # Integer sums of plain comparisons vectorize; the tie rule does not.
        if descending:
            for k in range(d):
                count += x[k] > xj
        else:
            for k in range(d):
                count += x[k] < xj
        out[j] = count
        total += count
    return 2 * total == d * (d - 1)


@nb.njit(inline="always", cache=True)
def _n_before(x, j, descending):
    """How many items come before item ``j`` in the stable (ascending or descending) order."""
    xj = -x[j] if descending else x[j]
    count = 0
    for k in range(x.shape[0]):
        xk = -x[k] if descending else x[k]
        count += (xk < xj) | ((xk == xj) & (k < j))
    return count


@nb.njit(inline="always", cache=True)
def _small_positions(x, descending, out):
    """Stable positions (0-based) of every item, for d <= _SMALL_D, without allocating."""
    if not _count_before(x, descending, out):
        # Ties: the lower index comes first (rare once scores are perturbed).
        for j in range(x.shape[0]):
            out[j] = _n_before(x, j, descending)


# Inlined like argmax_row: a call costs about 30 ns (array structs and
# reference counts), as much as ranking d = 10 items.
@nb.njit(inline="always", cache=True)
def topk_row(x, float_params, int_params, out):
    # Descending stable order: among equal scores the lowest indices come first.
    k = int_params[0]
    d = x.shape[0]
    if d <= _SMALL_D:
        _small_positions(x, True, out)
        for j in range(d):
            out[j] = 1.0 if out[j] < k else 0.0
        return
    order = stable_order(x, True, out)
    out[:] = 0.0
    for j in range(min(k, d)):
        out[order[j]] = 1.0


@nb.njit(inline="always", cache=True)
def ranking_row(x, float_params, int_params, out):
    # Rank d for the largest score; ties: the lower index gets the lower rank.
    d = x.shape[0]
    if d <= _SMALL_D:
        _small_positions(x, False, out)
        for j in range(d):
            out[j] += 1.0
        return
    order = stable_order(x, False, out)
    for j in range(d):
        out[order[j]] = j + 1.0


class Argmax(BaseSolver):
    """One-hot argmax: the vertices of the probability simplex.

    ``y*(θ) = e_j`` with ``j = argmax_j θ_j``. Ties go to the lowest index.
    With Gumbel noise the perturbed argmax is ``softmax(θ / ε)`` exactly.

    Examples
    --------
    >>> from sk_perturbed.solvers import Argmax
    >>> Argmax()([[0.1, 2.0, -1.0]])
    array([[0., 1., 0.]])
    """

    def _numba_spec(self):
        return ARGMAX_ID, np.zeros(0), np.zeros(0, dtype=np.int64)

    def _target_rule(self, Y):
        return _outside_box(Y) | _wrong_sum(Y.sum(axis=1), 1.0), "entries in [0, 1] summing to 1"


class TopK(BaseSolver):
    """K-hot selection of the ``k`` largest scores.

    The structure has ones at the ``k`` largest entries of θ; among equal
    scores the lowest indices are selected first.

    Parameters
    ----------
    k : int, default=1
        Number of selected items; must not exceed the dimension of θ.

    Examples
    --------
    >>> from sk_perturbed.solvers import TopK
    >>> TopK(k=2)([[0.1, 2.0, -1.0, 0.5]])
    array([[0., 1., 0., 1.]])
    """

    def __init__(self, k=1):
        self.k = k

    def _validate_params(self):
        if not isinstance(self.k, numbers.Integral) or isinstance(self.k, bool) or self.k < 1:
            raise ValueError(f"TopK: k must be an integer >= 1, got {self.k!r}.")

    def _check_dimension(self, d):
        super()._check_dimension(d)
        if self.k > d:
            raise ValueError(f"TopK: k={self.k} exceeds the number of items d={d}.")

    def _numba_spec(self):
        return TOPK_ID, np.zeros(0), np.array([self.k], dtype=np.int64)

    def _target_rule(self, Y):
        bad = _outside_box(Y) | _wrong_sum(Y.sum(axis=1), self.k)
        return bad, f"entries in [0, 1] summing to k = {self.k}"


class Ranking(BaseSolver):
    """Ranks 1..d: the vertices of the permutahedron.

    ``y*(θ)_j`` is the rank of ``θ_j`` in ascending order, so the largest score
    gets rank d (the convention of :func:`scipy.stats.rankdata`). Ties are
    broken by index: the lower index gets the lower rank. The perturbed
    ranking ``y_ε(θ)`` is a vector of soft ranks summing to d(d+1)/2.

    Examples
    --------
    >>> from sk_perturbed.solvers import Ranking
    >>> Ranking()([[0.3, -1.0, 2.0]])
    array([[2., 1., 3.]])
    """

    def _numba_spec(self):
        return RANKING_ID, np.zeros(0), np.zeros(0, dtype=np.int64)

    def _target_rule(self, Y):
        # The permutahedron: the j largest entries sum to at most those of
        # (d, d-1, ..., 1), with equality for all d entries (Rado's theorem).
        d = Y.shape[1]
        top_sums = np.cumsum(-np.sort(-Y, axis=1), axis=1)
        limits = np.cumsum(np.arange(d, 0, -1, dtype=np.float64))
        bad = (top_sums > limits + TARGET_TOL * limits).any(axis=1)
        bad |= _wrong_sum(top_sums[:, -1], limits[-1])
        return bad, (
            "the j largest entries to sum to at most d + (d-1) + ... + (d-j+1) for "
            f"every j, and all {d} of them to d(d+1)/2 = {limits[-1]:g} (ranks 1..{d})"
        )
