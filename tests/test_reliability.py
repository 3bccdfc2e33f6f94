"""Numerical and runtime reliability of the estimation engine (issue 16).

Each test here failed on the code before its fix: catastrophic cancellation
of the control variate at a tiny ε, ties from clipping before shifting,
an overflow reported as a solver failure, a Ctrl-C turned into a
``SystemError``, a forked child killed by the threading layer, and the
batch shapes the public functions accept.
"""

import numpy as np
import pytest

from sk_perturbed.perturbed import PerturbedOptimizer, exact_marginals
from sk_perturbed.solvers import Argmax, Ranking


def _po(solver, **params):
    return PerturbedOptimizer(solver, **{"n_samples": 20, "random_state": 0, **params})


@pytest.mark.parametrize("solver", [Argmax(), Ranking()])
@pytest.mark.parametrize("epsilon", [1e-12, 1e-9])
def test_vjp_is_exactly_zero_when_no_perturbation_changes_the_structure(solver, epsilon):
    # A gap of 1 against noise of scale 1e-9: every sample solves to y*(θ),
    # the scores <y*, v> are all equal and the centred VJP is exactly 0 (the
    # kernel used to leave ~1e-5 from cancelling large sums divided by ε).
    theta = np.array([[0.0, 1.0, 2.0, 3.0], [3.0, -1.0, 1.0, 0.0]])
    v = np.random.default_rng(0).normal(size=theta.shape)
    for backend in ("numba", "numpy"):
        vjp = _po(solver, epsilon=epsilon, backend=backend).vjp(theta, v)
        np.testing.assert_array_equal(vjp, 0.0)


@pytest.mark.parametrize("solver", [Argmax(), Ranking()])
def test_vjp_at_tiny_epsilon_matches_the_numpy_backend(solver):
    # Tied scores: the structure flips from sample to sample, so the VJP is
    # of order 1/ε and the relative round-off must stay small.
    theta = np.array([[1.0, 1.0, 0.0, -1.0], [2.0, 2.0, 2.0, 2.0]])
    v = np.random.default_rng(1).normal(size=theta.shape)
    fast = _po(solver, epsilon=1e-12, backend="numba").vjp(theta, v)
    reference = _po(solver, epsilon=1e-12, backend="numpy").vjp(theta, v)
    assert np.abs(reference).max() > 1e10
    np.testing.assert_allclose(fast, reference, rtol=1e-9, atol=1e-9 * np.abs(reference).max())


@pytest.mark.parametrize("noise", ["gumbel", "gaussian"])
@pytest.mark.parametrize(
    "theta, epsilon",
    [([[10.0, 5.0, 0.0]], 1e-300), ([[1e308, 5e307, 0.0]], 1.0), ([[1e308, -1e308, 0.0]], 1.0)],
)
def test_exact_marginals_keep_a_decisive_gap_decisive(noise, theta, epsilon):
    y = exact_marginals(PerturbedOptimizer(Argmax(), epsilon=epsilon, noise=noise), theta)
    np.testing.assert_array_equal(y, [[1.0, 0.0, 0.0]])


@pytest.mark.parametrize("perturbation", ["additive", "multiplicative"])
@pytest.mark.parametrize(
    "solver, theta",
    [
        (Ranking(), [[1e307, 2e307, 3e307, 5e307]]),  # <y*, θ̃> overflows, θ̃ does not
        (Argmax(), [[1e307, -1e307, 1e308]]),  # the sum over the M samples overflows
        (Argmax(), [[1.79e308, 1.79e308, 0.0]]),  # θ̃ ⊙ exp(εZ) overflows
    ],
)
def test_huge_theta_is_an_overflow_not_a_solver_failure(solver, theta, perturbation):
    po = _po(solver, perturbation=perturbation, n_samples=5)
    with pytest.raises(ValueError, match=r"overflow float64.*divide theta"):
        po(np.array(theta))
    # The advice works: y_ε is invariant to dividing θ and ε by one constant.
    c = 1e10
    scaled = _po(solver, perturbation=perturbation, n_samples=5,
                 epsilon=1.0 if perturbation == "multiplicative" else 1.0 / c)
    assert np.isfinite(scaled(np.array(theta) / c)).all()
