"""Slow, obviously correct references for the perturbed core.

Everything here loops over rows and samples in plain Python and solves each
perturbed problem by sorting indices with a key that spells out the documented
tie rule. The noise tensor comes from :func:`sk_perturbed._noise.sample_noise`,
the same keyed noise the kernels draw, so the kernels must agree with these
references to rounding error, not just in distribution.
"""

import math

import numpy as np

from sk_perturbed._noise import sample_noise


def _descending(x):
    # Largest score first; among equal scores the lowest index first.
    return sorted(range(len(x)), key=lambda j: (-x[j], j))


def _ascending(x):
    # Smallest score first; among equal scores the lowest index first.
    return sorted(range(len(x)), key=lambda j: (x[j], j))


def argmax_row(x):
    """One-hot of the largest entry, ties to the lowest index."""
    y = np.zeros(len(x))
    y[_descending(x)[0]] = 1.0
    return y


def argmin_row(x):
    """One-hot of the smallest entry, ties to the lowest index."""
    y = np.zeros(len(x))
    y[_ascending(x)[0]] = 1.0
    return y


def topk_row(x, k):
    """Ones at the k largest entries, ties to the lowest indices."""
    y = np.zeros(len(x))
    for j in _descending(x)[:k]:
        y[j] = 1.0
    return y


def ranking_row(x):
    """Ascending ranks 1..d (d for the largest); ties: lower index, lower rank."""
    y = np.zeros(len(x))
    for rank, j in enumerate(_ascending(x), start=1):
        y[j] = rank
    return y


def solve_rows(solve_row, theta):
    """Apply a one-row reference solver to every row of ``theta``."""
    return np.array([solve_row(list(row)) for row in np.asarray(theta, dtype=float)])


def grad_nu(z, noise):
    """∇ν(z) coordinate by coordinate: z (Gaussian), 1 - exp(-z) (Gumbel)."""
    if noise == "gaussian":
        return np.array([zj for zj in z])
    return np.array([1.0 - math.exp(-zj) for zj in z])


def perturbed_reference(
    theta,
    solve_row,
    *,
    seed,
    epsilon=1.0,
    n_samples=10,
    noise="gaussian",
    perturbation="additive",
    antithetic=False,
    sense="max",
    v=None,
    control_variate=True,
    row_keys=None,
):
    """Monte Carlo estimates of the perturbed optimizer, one problem at a time.

    ``solve_row`` solves one problem in the solver's own sense (argmax of
    scores, or argmin of costs when ``sense='min'``). Additive noise perturbs
    ``u + s·ε·Z`` with ``s = -1`` for a minimizing solver; multiplicative noise
    ``u ⊙ exp(εZ - ε²/2)``.

    Returns
    -------
    dict with keys ``y_eps`` (n, d), ``expected_max`` (n,),
    ``expected_max_grad`` (n, d) and ``vjp`` (n, d) or None.
    """
    theta = np.asarray(theta, dtype=float)
    n, d = theta.shape
    if row_keys is None:
        row_keys = np.arange(n)
    z_all = sample_noise(seed, row_keys, n_samples, d, noise, antithetic)
    sign = 1.0 if sense == "max" else -1.0
    y_eps = np.zeros((n, d))
    expected_max = np.zeros(n)
    expected_max_grad = np.zeros((n, d))
    vjp = None if v is None else np.zeros((n, d))
    for i in range(n):
        structures, values, grads, scores, nus = [], [], [], [], []
        for m in range(n_samples):
            z = z_all[i, m]
            if perturbation == "multiplicative":
                scale = np.array([math.exp(epsilon * zj - epsilon**2 / 2) for zj in z])
                u = theta[i] * scale
            else:
                scale = np.ones(d)
                u = theta[i] + sign * epsilon * z
            y = np.asarray(solve_row(list(u)), dtype=float)
            structures.append(y)
            values.append(sum(y[j] * u[j] for j in range(d)))
            grads.append(y * scale)
            if v is not None:
                scores.append(sum(y[j] * v[i][j] for j in range(d)))
                nus.append(grad_nu(z, noise))
        y_eps[i] = sum(structures) / n_samples
        expected_max[i] = sum(values) / n_samples
        expected_max_grad[i] = sum(grads) / n_samples
        if v is None:
            continue
        if control_variate and not antithetic and n_samples > 1:
            # Leave-one-out baseline: the mean score of the other samples
            # (only valid when they are independent of this one).
            total = sum(scores)
            terms = [
                (scores[m] - (total - scores[m]) / (n_samples - 1)) * nus[m]
                for m in range(n_samples)
            ]
        else:
            terms = [scores[m] * nus[m] for m in range(n_samples)]
        row = sum(terms) / n_samples
        if perturbation == "multiplicative":
            # y depends on log|u|: d log|u| / du = 1 / u.
            vjp[i] = row / (epsilon * theta[i])
        else:
            vjp[i] = row * sign / epsilon
    return {
        "y_eps": y_eps,
        "expected_max": expected_max,
        "expected_max_grad": expected_max_grad,
        "vjp": vjp,
    }


# Learning to rank ------------------------------------------------------------
#
# One query at a time, in plain Python. Tied scores are resolved by listing
# every order of each tied block and averaging over them (the expected value
# under uniformly random tie breaking, the rule of sk_perturbed.metrics), so
# keep tied blocks small.


def _orders_breaking_ties(scores):
    """Every ranking (list of indices, best first) consistent with ``scores``."""
    from itertools import permutations, product  # local: this section is appended

    blocks = {}
    for j, s in enumerate(scores):
        blocks.setdefault(s, []).append(j)
    ordered_blocks = [blocks[s] for s in sorted(blocks, reverse=True)]
    for parts in product(*(permutations(b) for b in ordered_blocks)):
        yield [j for part in parts for j in part]


def _gain(rel, gain):
    return 2.0**rel - 1.0 if gain == "exponential" else float(rel)


def _dcg(gains_in_order, k):
    cut = len(gains_in_order) if k is None else min(k, len(gains_in_order))
    return sum(gains_in_order[i] / math.log2(i + 2) for i in range(cut))


def ndcg_per_query_naive(rel, scores, k=10, gain="exponential"):
    """NDCG@k of one query, averaged over tie orders; None if ideal DCG is 0."""
    gains = [_gain(r, gain) for r in rel]
    ideal = _dcg(sorted(gains, reverse=True), k)
    if ideal == 0:
        return None
    values = [_dcg([gains[j] for j in order], k) / ideal for order in _orders_breaking_ties(scores)]
    return sum(values) / len(values)


def average_precision_naive(rel, scores, k=None, threshold=0):
    """AP@k of one query, averaged over tie orders; None if nothing is relevant."""
    relevant = [r > threshold for r in rel]
    n_relevant = sum(relevant)
    if n_relevant == 0:
        return None
    cut = len(rel) if k is None else min(k, len(rel))
    values = []
    for order in _orders_breaking_ties(scores):
        hits, total = 0, 0.0
        for i in range(cut):
            if relevant[order[i]]:
                hits += 1
                total += hits / (i + 1)
        values.append(total / (n_relevant if k is None else min(n_relevant, k)))
    return sum(values) / len(values)


def reciprocal_rank_naive(rel, scores, threshold=0):
    """1 / position of the first relevant document, averaged over tie orders."""
    if not any(r > threshold for r in rel):
        return None
    values = []
    for order in _orders_breaking_ties(scores):
        first = next(i for i, j in enumerate(order) if rel[j] > threshold)
        values.append(1.0 / (first + 1))
    return sum(values) / len(values)


def query_mean_naive(per_query, y_true, y_score, qid, *, no_relevant="skip", weights=None):
    """Mean of ``per_query(rel, scores)`` over the queries (sorted qid order).

    ``weights`` maps a qid to its weight. ``per_query`` returns None for an
    undefined query, which ``no_relevant`` skips or counts as 1 or 0.
    """
    groups = {}
    for t, s, q in zip(y_true, y_score, qid):
        groups.setdefault(q, ([], []))
        groups[q][0].append(float(t))
        groups[q][1].append(float(s))
    num = den = 0.0
    for q in sorted(groups):
        value = per_query(*groups[q])
        if value is None:
            if no_relevant == "skip":
                continue
            value = 1.0 if no_relevant == "one" else 0.0
        w = 1.0 if weights is None else weights[q]
        num += w * value
        den += w
    return None if den == 0 else num / den


# Ragged query groups (PerturbedRanker) ----------------------------------------


def position_weights(n, rank_weights):
    """The weight vector w_1 >= ... >= w_n of a query of n documents."""
    if rank_weights == "ranks":
        return [float(n - p) for p in range(n)]
    return [1.0 / math.log2(p + 2) for p in range(n)]


def ranking_targets_naive(rel, rank_weights):
    """w ordered by decreasing relevance; tied grades share their positions' mean weight."""
    w = position_weights(len(rel), rank_weights)
    order = _descending(list(rel))
    target = [0.0] * len(rel)
    for j in order:
        tied = [t for t, i in enumerate(order) if rel[i] == rel[j]]
        target[j] = sum(w[t] for t in tied) / len(tied)
    return np.array(target)


def ragged_fenchel_young_naive(theta, y, qid, keys, *, seed, n_samples, epsilon,
                               noise="gaussian", rank_weights="dcg"):
    """Per-document FY values, gradient y_eps - y and y_eps, one query at a time.

    The perturbation of document j in sample m is the same keyed draw as the
    kernel's, ``sample_noise(seed, keys, M, 1)[j, m, 0]``; each perturbed
    query is solved by sorting (the p-th highest score gets w_p).
    """
    theta, y = np.asarray(theta, dtype=float), np.asarray(y, dtype=float)
    z = sample_noise(seed, keys, n_samples, 1, noise)[:, :, 0]
    values, grad, y_eps = np.zeros(len(theta)), np.zeros(len(theta)), np.zeros(len(theta))
    for q in sorted(set(qid)):
        rows = [i for i in range(len(theta)) if qid[i] == q]
        n = len(rows)
        w = position_weights(n, rank_weights)
        if n == 1:
            y_eps[rows[0]] = w[0]
            continue
        for m in range(n_samples):
            u = [theta[i] + epsilon * z[i, m] for i in rows]
            for p, j in enumerate(_descending(u)):
                y_eps[rows[j]] += w[p] / n_samples
                values[rows[j]] += w[p] * u[j] / n_samples
        for i in rows:
            grad[i] = y_eps[i] - y[i]
            values[i] -= theta[i] * y[i]
    return values, grad, y_eps
