"""Selection solvers: one-hot argmax, k-hot top-k and ranking (permutahedron).

Row kernels share the signature ``solve(x, float_params, int_params, out)``:
they read one score vector ``x`` and write its structure into ``out``.
"""

import numbers

import numba as nb
import numpy as np

from ._base import BaseSolver

ARGMAX_ID = 0
TOPK_ID = 1
RANKING_ID = 2


@nb.njit(cache=True)
def argmax_row(x, float_params, int_params, out):
    # np.argmax returns the first maximal index: ties go to the lowest index.
    out[:] = 0.0
    out[np.argmax(x)] = 1.0


@nb.njit(cache=True)
def topk_row(x, float_params, int_params, out):
    k = int_params[0]
    d = x.shape[0]
    # Stable ascending sort: among equal scores the higher index sorts later,
    # so negating keeps the lowest indices first among ties.
    order = np.argsort(-x, kind="mergesort")
    out[:] = 0.0
    for j in range(min(k, d)):
        out[order[j]] = 1.0


@nb.njit(cache=True)
def ranking_row(x, float_params, int_params, out):
    # Rank d for the largest score; ties: the lower index gets the lower rank.
    order = np.argsort(x, kind="mergesort")
    for j in range(x.shape[0]):
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


class TopK(BaseSolver):
    """k-hot selection of the ``k`` largest scores.

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
