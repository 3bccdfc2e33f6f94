"""Closed forms of the perturbed argmax (one place for each).

* Gumbel noise, additive: ``y_ε(θ) = softmax(θ/ε)`` and
  ``F_ε(θ) = ε logsumexp(θ/ε) + εγ``, so the Fenchel–Young loss is the
  logistic loss (up to a per-target constant).
* Gaussian noise, additive: ``P(i wins) = E_z[Π_{j≠i} Φ((θ_i - θ_j)/ε + z)]``,
  a 1-D integral computed by Gauss–Hermite quadrature.
"""

import numpy as np
from scipy.special import log_ndtr, softmax

from ._noise import _array_namespace
from .solvers._basic import Argmax

#: Gauss–Hermite nodes of the Gaussian quadrature, and the largest d it is used for.
HERMITE_NODES = 80
MAX_EXACT_ARGMAX_D = 256


def is_gumbel_argmax(po):
    """Whether ``po`` is the Gumbel-perturbed argmax, whose estimates are exact."""
    return (
        type(po.solver) is Argmax and po.noise == "gumbel" and po.perturbation == "additive"
    )


def gumbel_argmax_fenchel_young(theta, y, epsilon):
    """Exact FY loss of Gumbel-perturbed argmax: F_ε(θ) = ε logsumexp(θ/ε) + εγ.

    Array code in θ's namespace (NumPy or CuPy).
    """
    xp = _array_namespace(theta)
    # ε logsumexp(θ/ε) = max θ + ε log Σ exp((θ - max θ)/ε): the shift comes
    # before the division, so a tiny ε cannot overflow θ/ε (inf - inf = NaN).
    top = theta.max(axis=1, keepdims=True)
    weights = xp.exp((theta - top) / epsilon)
    total = weights.sum(axis=1, keepdims=True)
    value = top[:, 0] + epsilon * xp.log(total)[:, 0] + epsilon * np.euler_gamma
    return value - (theta * y).sum(axis=1), weights / total - y


def argmax_marginals(theta, epsilon, noise):
    """Exact ``y_ε(θ)`` of the additively perturbed argmax (float64 (n, d)), or None.

    None for Gaussian noise with more than ``MAX_EXACT_ARGMAX_D`` classes.
    """
    # Shift by the row maximum first: θ - max θ cannot overflow where θ/ε
    # would (a tiny ε, a huge θ) and would clip distinct scores to one tie.
    # Then -1e300 already makes a gap decisive and keeps the differences of
    # two scaled scores finite.
    with np.errstate(over="ignore"):
        scaled = np.maximum((theta - theta.max(axis=1, keepdims=True)) / epsilon, -1e300)
    if noise == "gumbel":
        return softmax(scaled, axis=1)
    if theta.shape[1] > MAX_EXACT_ARGMAX_D:
        return None
    nodes, weights = np.polynomial.hermite.hermgauss(HERMITE_NODES)
    z = np.sqrt(2.0) * nodes  # E over z ~ N(0, 1)
    out = np.empty_like(theta)
    for i in range(theta.shape[1]):
        gaps = scaled[:, i : i + 1] - scaled  # (n, d); the j = i column is 0
        log_terms = log_ndtr(gaps[:, :, None] + z).sum(axis=1) - log_ndtr(z)
        out[:, i] = np.exp(log_terms) @ weights / np.sqrt(np.pi)
    return out / out.sum(axis=1, keepdims=True)
