"""Fused parallel kernels over ragged query groups (learning to rank).

The documents of all queries lie in one flat array; ``offsets`` (length
``n_queries + 1``) cuts it into groups, ``offsets[q]:offsets[q + 1]`` for
query ``q``. Groups of any size go through one parallel call: one
``prange`` iteration owns one query, with buffers of that query's size
(nothing is padded to the largest group) and writes only that query's slice
of the outputs.

The polytope of a query of ``n`` documents is the permutahedron of a weight
vector ``w_1 >= ... >= w_n`` (position 1 is the top): the solver gives the
document with the p-th highest score the weight ``w_p``.

* ``'ranks'``: ``w_p = n + 1 - p`` (the highest score gets rank n, the
  convention of :class:`~sk_perturbed.solvers.Ranking`);
* ``'dcg'``: ``w_p = 1 / log2(1 + p)``, the DCG discounts, so that
  ``<y*(θ), gains>`` is the DCG of the ranking of θ.

Noise: the perturbation of document ``j`` in sample ``m`` is the first draw
of the stream keyed by ``(seed, key_j, m)``, i.e. exactly
``sample_noise(seed, keys, M, 1)[j, m, 0]``. It depends neither on the
threads, nor on the batch, nor on the position of the query or of the
document in its group.
"""

import math

import numba as nb
import numpy as np

from ._noise import NOISE_IDS, fill_noise
from ._numba_backend import kernel_threads
from ._threads import interruptible, numba_threads, parallel_kernel

#: Weight vectors of the ranking polytope, by name.
RANK_WEIGHTS = {"ranks": 0, "dcg": 1}


@nb.njit(inline="always", cache=True)
def _position_weight(p, n, kind):
    """Weight ``w_{p+1}`` of 0-based position ``p`` (0 = top) in a group of ``n``."""
    if kind == 0:
        return float(n - p)
    return 1.0 / math.log2(2.0 + p)


#: Groups up to this size are sorted by insertion into a reused buffer: no
#: allocation per sample, and fewer steps than a quicksort on small groups.
_INSERTION_SORT_MAX = 64


@nb.njit(inline="always", cache=True)
def _descending_order(values, order):
    """Write into ``order`` the indices of ``values`` by decreasing value."""
    n = values.shape[0]
    if n > _INSERTION_SORT_MAX:
        order[:] = np.argsort(-values)
        return
    for i in range(n):
        v = values[i]
        k = i
        while k > 0 and values[order[k - 1]] < v:
            order[k] = order[k - 1]
            k -= 1
        order[k] = i


@parallel_kernel
def _ranking_targets_kernel(relevance, offsets, kind):
    targets = np.empty(relevance.shape[0])
    for q in nb.prange(offsets.shape[0] - 1):
        start, stop = offsets[q], offsets[q + 1]
        n = stop - start
        rel = relevance[start:stop]
        # Stable: the same targets whatever the sort's internals.
        order = np.argsort(-rel, kind="mergesort")
        p = 0
        while p < n:
            # Tied grades share the mean weight of the positions they span.
            end = p + 1
            while end < n and rel[order[end]] == rel[order[p]]:
                end += 1
            total = 0.0
            for t in range(p, end):
                total += _position_weight(t, n, kind)
            mean = total / (end - p)
            for t in range(p, end):
                targets[start + order[t]] = mean
            p = end
    return targets


def ranking_targets(relevance, offsets, rank_weights):
    """Fenchel–Young targets: per query, the weight vector ordered by relevance.

    Parameters
    ----------
    relevance : ndarray of shape (n_documents,)
        Graded relevance (any reals, higher is better), in group order.
    offsets : ndarray of int of shape (n_queries + 1,)
        Group boundaries.
    rank_weights : {'dcg', 'ranks'}
        The weight vector.

    Returns
    -------
    targets : ndarray of shape (n_documents,)
        Tied grades get the mean of the weights of the positions they span,
        a point of the polytope (the centre of a face), so a valid target.
    """
    return _ranking_targets_kernel(
        np.ascontiguousarray(relevance, dtype=np.float64),
        np.ascontiguousarray(offsets, dtype=np.int64), RANK_WEIGHTS[rank_weights],
    )


@parallel_kernel
def ragged_fenchel_young_kernel(theta, targets, offsets, keys, seed, n_samples, epsilon,
                                noise_id, kind):
    """Perturbed ranking and Fenchel–Young loss of every query.

    Returns
    -------
    values : (n_documents,) per-document share of ``F̂_ε(θ_q) - <θ_q, y_q>``:
        ``mean_m y*_j(θ̃) θ̃_j - θ_j y_j``; a query's values sum to its loss
        (up to the constant εΩ(y_q)).
    grad : (n_documents,) ``y_ε(θ) - y``, the FY gradient.
    y_eps : (n_documents,) the Monte Carlo perturbed maximizer (soft weights).

    A group of one document has a single ranking: no signal, so its values,
    gradient are 0 and its soft weight is ``w_1``, exactly.
    """
    n_docs = theta.shape[0]
    values = np.zeros(n_docs)
    grad = np.zeros(n_docs)
    y_eps = np.zeros(n_docs)
    inv_m = 1.0 / n_samples
    for q in nb.prange(offsets.shape[0] - 1):
        start, stop = offsets[q], offsets[q + 1]
        n = stop - start
        if n == 1:
            y_eps[start] = _position_weight(0, 1, kind)
            continue
        weights = np.empty(n)
        for p in range(n):
            weights[p] = _position_weight(p, n, kind)
        perturbed = np.empty(n)
        order = np.empty(n, np.int64)
        z = np.empty(1)
        sum_y = np.zeros(n)
        sum_value = np.zeros(n)
        for m in range(n_samples):
            for j in range(n):
                fill_noise(seed, keys[start + j], m, noise_id, False, z)
                perturbed[j] = theta[start + j] + epsilon * z[0]
            _descending_order(perturbed, order)
            for p in range(n):
                j = order[p]
                sum_y[j] += weights[p]
                sum_value[j] += weights[p] * perturbed[j]
        for j in range(n):
            i = start + j
            y_eps[i] = sum_y[j] * inv_m
            grad[i] = y_eps[i] - targets[i]
            values[i] = sum_value[j] * inv_m - theta[i] * targets[i]
    return values, grad, y_eps


def ragged_fenchel_young(theta, targets, offsets, keys, *, seed, n_samples, epsilon,
                         noise="gaussian", rank_weights="dcg"):
    """Validating-free wrapper of :func:`ragged_fenchel_young_kernel` (callers check inputs).

    ``theta``, ``targets`` and ``keys`` are per-document arrays in group order;
    returns ``(values, grad, y_eps)``, each of shape (n_documents,).
    """
    # Small batches run on one thread: a parallel region costs far more than
    # their work on a loaded machine (the rule of the other kernels).
    with numba_threads(kernel_threads(None, len(theta), n_samples, 1)), interruptible():
        return ragged_fenchel_young_kernel(
            np.ascontiguousarray(theta, dtype=np.float64),
            np.ascontiguousarray(targets, dtype=np.float64),
            np.ascontiguousarray(offsets, dtype=np.int64),
            np.ascontiguousarray(keys, dtype=np.int64),
            np.uint64(seed), int(n_samples), float(epsilon), NOISE_IDS[noise],
            RANK_WEIGHTS[rank_weights],
        )
