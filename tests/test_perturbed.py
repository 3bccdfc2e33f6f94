"""The functional core: kernels against the naive references, and the math.

Statistical checks compare a Monte Carlo estimate with its exact value within
5 standard errors; every seed is fixed, so the outcomes are deterministic.
"""

import functools
import math

import naive
import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp, softmax
from scipy.stats import norm

from sk_perturbed.perturbed import (
    PerturbedOptimizer,
    blackbox_loss,
    exact_marginals,
    fenchel_young_loss,
    perturbed_squared_loss,
    squared_loss,
)
from sk_perturbed.solvers import Argmax, DAGShortestPath, Ranking, TopK
from sk_perturbed.solvers._base import BaseSolver

OUTPUTS = ("y_eps", "expected_max", "expected_max_grad", "vjp")


class MinArgmax(BaseSolver):
    """One-hot argmin of costs, solved in NumPy: the smallest minimizing solver."""

    sense = "min"

    def _solve_batch(self, theta):
        y = np.zeros_like(theta)
        y[np.arange(theta.shape[0]), np.argmin(theta, axis=1)] = 1.0
        return y


@numba.njit
def _argmin_row(x):
    y = np.zeros_like(x)
    y[np.argmin(x)] = 1.0
    return y


class FourItems(Argmax):
    """An argmax over exactly four items, to test the dimension check."""

    def dimension(self):
        return 4


class NumbaMinArgmax(MinArgmax):
    """The same argmin, also given to the fused kernels as an ``@njit`` row solver."""

    def _numba_function(self):
        return _argmin_row


SOLVERS = {
    "argmax": (Argmax(), naive.argmax_row),
    "topk": (TopK(k=2), functools.partial(naive.topk_row, k=2)),
    "ranking": (Ranking(), naive.ranking_row),
}

NOISES = [("gaussian", False), ("gaussian", True), ("gumbel", False)]
# Every (noise, antithetic, perturbation) the optimizer accepts: the
# multiplicative perturbation is for Gaussian noise only.
NOISE_PERTURBATIONS = [
    (noise, antithetic, perturbation)
    for noise, antithetic in NOISES
    for perturbation in ("additive", "multiplicative")
    if perturbation == "additive" or noise == "gaussian"
]
NOISE_PERTURBATION_PAIRS = sorted({(noise, p) for noise, _, p in NOISE_PERTURBATIONS})


def assert_matches(actual, expected, rtol=1e-12):
    """Equal up to rounding: relative to the largest entry of the reference."""
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def estimates_match(est, ref):
    for name in OUTPUTS:
        if ref[name] is None:
            assert getattr(est, name) is None
        else:
            assert_matches(getattr(est, name), ref[name])


def replicate(theta, n_copies):
    """``n_copies`` of each row of θ; distinct default row keys make them independent."""
    return np.repeat(np.atleast_2d(theta), n_copies, axis=0)


def mean_and_se(estimates, n_copies):
    """Mean and standard error over independent copies (axis 0 grouped by copies)."""
    grouped = estimates.reshape(-1, n_copies, *estimates.shape[1:])
    return grouped.mean(axis=1), grouped.std(axis=1, ddof=1) / math.sqrt(n_copies)


def softmax_vjp(theta, v, epsilon):
    """vᵀ J of softmax(θ/ε): J = (diag p - p pᵀ) / ε (symmetric)."""
    p = softmax(theta / epsilon, axis=1)
    return (p * v - p * np.sum(p * v, axis=1, keepdims=True)) / epsilon


# --------------------------------------------------------------------------
# Kernels against the naive references
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("control_variate", [True, False])
@pytest.mark.parametrize("noise, antithetic, perturbation", NOISE_PERTURBATIONS)
@pytest.mark.parametrize("solver_name", list(SOLVERS))
def test_estimate_matches_naive(
    solver_name, noise, antithetic, perturbation, control_variate, backend
):
    solver, solve_row = SOLVERS[solver_name]
    rng = np.random.default_rng(0)
    theta = rng.standard_normal((4, 5))
    v = rng.standard_normal((4, 5))
    params = dict(
        epsilon=0.7, n_samples=6, noise=noise, perturbation=perturbation, antithetic=antithetic
    )
    po = PerturbedOptimizer(
        solver, random_state=3, control_variate=control_variate, backend=backend, **params
    )
    ref = naive.perturbed_reference(
        theta, solve_row, seed=3, v=v, control_variate=control_variate, **params
    )
    estimates_match(po.estimate(theta, v), ref)
    # Without v, the same first three outputs and no VJP.
    ref["vjp"] = None
    estimates_match(po.estimate(theta), ref)


@pytest.mark.parametrize("solver", [MinArgmax(), NumbaMinArgmax()], ids=["numpy", "numba"])
@pytest.mark.parametrize("noise, perturbation", NOISE_PERTURBATION_PAIRS)
def test_minimizing_solver_matches_naive(solver, perturbation, noise):
    rng = np.random.default_rng(1)
    costs = rng.uniform(0.5, 2.0, size=(3, 4))
    v = rng.standard_normal((3, 4))
    params = dict(epsilon=0.5, n_samples=7, noise=noise, perturbation=perturbation)
    po = PerturbedOptimizer(solver, random_state=5, **params)
    ref = naive.perturbed_reference(
        costs, naive.argmin_row, seed=5, v=v, sense="min", **params
    )
    estimates_match(po.estimate(costs, v), ref)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("solver_name", list(SOLVERS))
def test_ties_follow_the_documented_rule(solver_name, backend):
    # ε so small that θ + εZ == θ (no zero entries): every perturbed problem
    # keeps θ's ties.
    solver, solve_row = SOLVERS[solver_name]
    theta = np.array([[1.0, 3.0, 3.0, -2.0, 3.0], [2.0, 2.0, 2.0, 2.0, 2.0], [4.0, 1.0, 4.0, 1.0, 4.0]])
    po = PerturbedOptimizer(solver, epsilon=1e-300, n_samples=3, random_state=0, backend=backend)
    expected = naive.solve_rows(solve_row, theta)
    assert np.array_equal(po(theta), expected)
    assert np.array_equal(solver(theta), expected)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    # Both code paths of the sorting solvers: pairwise counts (d <= 16) and sort.
    d=st.sampled_from([2, 6, 17, 40]),
    solver_name=st.sampled_from(list(SOLVERS)),
)
def test_solvers_match_naive_on_ties(data, d, solver_name):
    # Small integer scores: ties everywhere, including -0.0 against 0.0.
    rows = st.lists(st.integers(-2, 2), min_size=d, max_size=d)
    theta = np.array(data.draw(st.lists(rows, min_size=1, max_size=4)), dtype=float)
    if data.draw(st.booleans()):
        theta = np.where(theta == 0, -0.0, theta)
    solver, solve_row = SOLVERS[solver_name]
    assert np.array_equal(solver(theta), naive.solve_rows(solve_row, theta))


@pytest.mark.parametrize("d", [2, 9, 64, 300])
def test_ranking_matches_naive_across_sizes(d):
    rng = np.random.default_rng(d)
    theta = rng.standard_normal((20, d))
    theta[:5] = np.round(theta[:5], 1)  # many ties
    theta[5:8, : d // 2] *= 1e6  # a skewed spread of scores
    theta[8] = 0.0
    assert np.array_equal(Ranking()(theta), naive.solve_rows(naive.ranking_row, theta))
    assert np.array_equal(
        TopK(k=d // 2 + 1)(theta),
        naive.solve_rows(functools.partial(naive.topk_row, k=d // 2 + 1), theta),
    )


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 6),
    d=st.integers(2, 7),
    n_samples=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    solver_name=st.sampled_from(list(SOLVERS)),
    noise=st.sampled_from(["gaussian", "gumbel"]),
)
def test_backends_agree_for_any_shape_and_seed(n, d, n_samples, seed, solver_name, noise):
    solver = SOLVERS[solver_name][0]
    rng = np.random.default_rng(seed % 1000)
    theta, v = rng.standard_normal((2, n, d))
    kwargs = dict(n_samples=n_samples, noise=noise, random_state=seed)
    numba_est = PerturbedOptimizer(solver, backend="numba", **kwargs).estimate(theta, v)
    numpy_est = PerturbedOptimizer(solver, backend="numpy", **kwargs).estimate(theta, v)
    for name in OUTPUTS:
        assert_matches(getattr(numba_est, name), getattr(numpy_est, name))
    # Every sample is a structure, so the mean keeps the structure's sums.
    expected_sum = {"argmax": 1, "topk": 2, "ranking": d * (d + 1) / 2}[solver_name]
    np.testing.assert_allclose(numba_est.y_eps.sum(axis=1), expected_sum, rtol=1e-14)


# --------------------------------------------------------------------------
# Closed forms of the perturbed maximizer and its Jacobian
# --------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.5, 2.0])
def test_gumbel_argmax_is_softmax(epsilon):
    theta = np.random.default_rng(2).standard_normal((5, 4))
    n_samples = 20_000
    po = PerturbedOptimizer(Argmax(), epsilon=epsilon, n_samples=n_samples, noise="gumbel", random_state=0)
    p = softmax(theta / epsilon, axis=1)
    se = np.sqrt(p * (1 - p) / n_samples)
    assert np.all(np.abs(po(theta) - p) < 5 * se)


def _two_class_probability(theta, epsilon):
    """P(y* = e_1) for Gaussian noise and d = 2: Φ((θ₁ - θ₂) / (ε√2))."""
    return norm.cdf((theta[:, 0] - theta[:, 1]) / (epsilon * math.sqrt(2)))


@pytest.mark.parametrize("antithetic", [False, True])
def test_gaussian_argmax_two_classes_is_normal_cdf(antithetic):
    theta = np.column_stack([np.linspace(-1.5, 1.5, 7), np.zeros(7)])
    epsilon, n_samples = 0.7, 20_000
    po = PerturbedOptimizer(
        Argmax(), epsilon=epsilon, n_samples=n_samples, antithetic=antithetic, random_state=1
    )
    p = _two_class_probability(theta, epsilon)
    y = po(theta)
    assert np.all(np.abs(y[:, 0] - p) < 5 * np.sqrt(p * (1 - p) / n_samples))
    np.testing.assert_allclose(y.sum(axis=1), 1.0)


def test_multiplicative_and_minimizing_two_class_probabilities():
    costs = np.array([[0.5, 1.0], [1.0, 1.0], [2.0, 0.8]])
    epsilon, n_samples = 0.4, 20_000
    # log ũ = log u + εZ - ε²/2: a Gaussian comparison of log-costs.
    po = PerturbedOptimizer(Argmax(), epsilon=epsilon, n_samples=n_samples, perturbation="multiplicative", random_state=2)
    p = _two_class_probability(np.log(costs), epsilon)
    assert np.all(np.abs(po(costs)[:, 0] - p) < 5 * np.sqrt(p * (1 - p) / n_samples))
    # Minimizing: P(argmin = 1) = P(c₁ - εZ₁ < c₂ - εZ₂) = Φ((c₂ - c₁) / (ε√2)).
    po = PerturbedOptimizer(MinArgmax(), epsilon=epsilon, n_samples=n_samples, random_state=2)
    p = _two_class_probability(-costs, epsilon)
    assert np.all(np.abs(po(costs)[:, 0] - p) < 5 * np.sqrt(p * (1 - p) / n_samples))


N_COPIES = 200


@pytest.mark.parametrize("control_variate", [True, False])
@pytest.mark.parametrize("epsilon", [0.5, 1.5])
def test_vjp_is_the_softmax_jacobian_for_gumbel_argmax(epsilon, control_variate):
    rng = np.random.default_rng(3)
    theta, v = rng.standard_normal((2, 3, 4))
    po = PerturbedOptimizer(
        Argmax(), epsilon=epsilon, n_samples=500, noise="gumbel",
        control_variate=control_variate, random_state=4,
    )
    mean, se = mean_and_se(po.vjp(replicate(theta, N_COPIES), replicate(v, N_COPIES)), N_COPIES)
    assert np.all(np.abs(mean - softmax_vjp(theta, v, epsilon)) < 5 * se + 1e-12)


def _two_class_vjp(theta, v, epsilon, log=False):
    """vᵀJ for the Gaussian two-class argmax: ∂y₁/∂θ₁ = φ(·)/(ε√2) = -∂y₁/∂θ₂."""
    x = np.log(theta) if log else theta
    t = (x[:, 0] - x[:, 1]) / (epsilon * math.sqrt(2))
    slope = norm.pdf(t) / (epsilon * math.sqrt(2))
    out = np.column_stack([slope, -slope]) * (v[:, :1] - v[:, 1:])
    return out / theta if log else out


@pytest.mark.parametrize(
    "perturbation, antithetic, control_variate",
    [
        ("additive", False, True),
        ("additive", False, False),
        ("additive", True, True),
        ("multiplicative", False, True),
        ("multiplicative", True, False),
    ],
)
def test_vjp_is_the_exact_two_class_derivative(perturbation, antithetic, control_variate):
    theta = np.array([[0.3, 1.0], [1.2, 0.9], [2.0, 1.0]])
    v = np.array([[1.0, -0.5], [0.2, 0.7], [-1.0, 0.0]])
    epsilon = 0.6
    po = PerturbedOptimizer(
        Argmax(), epsilon=epsilon, n_samples=500, perturbation=perturbation,
        antithetic=antithetic, control_variate=control_variate, random_state=6,
    )
    mean, se = mean_and_se(po.vjp(replicate(theta, N_COPIES), replicate(v, N_COPIES)), N_COPIES)
    exact = _two_class_vjp(theta, v, epsilon, log=perturbation == "multiplicative")
    assert np.all(np.abs(mean - exact) < 5 * se + 1e-12)


def test_vjp_of_minimizing_solver_is_the_exact_derivative():
    costs = np.array([[0.3, 1.0], [1.2, 0.9]])
    v = np.array([[1.0, -0.5], [0.2, 0.7]])
    epsilon = 0.6
    po = PerturbedOptimizer(MinArgmax(), epsilon=epsilon, n_samples=500, random_state=7)
    mean, se = mean_and_se(po.vjp(replicate(costs, N_COPIES), replicate(v, N_COPIES)), N_COPIES)
    # y(c) = y_max(-c), so vᵀ J_c = -vᵀ J_θ at θ = -c.
    exact = -_two_class_vjp(-costs, v, epsilon)
    assert np.all(np.abs(mean - exact) < 5 * se + 1e-12)


@pytest.mark.parametrize(
    "solver, noise, perturbation",
    [
        (Ranking(), "gaussian", "additive"),
        (TopK(k=2), "gumbel", "additive"),
        (Ranking(), "gaussian", "multiplicative"),
    ],
    ids=["ranking-gaussian", "topk-gumbel", "ranking-multiplicative"],
)
def test_vjp_is_unbiased_against_finite_differences(solver, noise, perturbation):
    # No closed form here: compare with central differences of y_ε at large M.
    # Each copy k evaluates θ ± h·e_j under one row key (common random numbers),
    # so the difference counts only the samples whose structure flips.
    d, h, n_copies, n_samples = 4, 0.05, 40, 2000
    theta = np.array([1.0, 1.4, 0.7, 1.1])
    v = np.array([0.5, -1.0, 2.0, 0.3])
    po = PerturbedOptimizer(solver, epsilon=0.8, n_samples=n_samples, noise=noise, perturbation=perturbation, random_state=8)
    steps = np.vstack([np.eye(d), -np.eye(d)]) * h
    keys = np.repeat(np.arange(n_copies), 2 * d)
    y = po(np.tile(theta + steps, (n_copies, 1)), row_keys=keys) @ v
    y = y.reshape(n_copies, 2, d)
    fd = (y[:, 0] - y[:, 1]) / (2 * h)
    vjp = po.vjp(np.tile(theta, (n_copies, 1)), np.tile(v, (n_copies, 1)), row_keys=np.arange(n_copies))
    diff = vjp - fd
    se = diff.std(axis=0, ddof=1) / math.sqrt(n_copies)
    # The O(h²) bias of the central difference is ~1e-3 here.
    assert np.all(np.abs(diff.mean(axis=0)) < 5 * se + 5e-3)


# --------------------------------------------------------------------------
# Expected maximum and its gradient
# --------------------------------------------------------------------------


def _central_differences(f, theta, h=1e-6):
    grad = np.empty_like(theta)
    for j in range(theta.shape[1]):
        step = np.zeros_like(theta)
        step[:, j] = h
        grad[:, j] = (f(theta + step) - f(theta - step)) / (2 * h)
    return grad


@pytest.mark.parametrize("noise, perturbation", NOISE_PERTURBATION_PAIRS)
@pytest.mark.parametrize("solver_name", list(SOLVERS))
def test_expected_max_gradient_by_finite_differences(solver_name, noise, perturbation):
    # With an int seed the noise is fixed, F̂ is piecewise linear in θ and its
    # slope is exactly the Monte Carlo gradient.
    theta = np.random.default_rng(9).uniform(0.5, 2.0, size=(3, 5))
    po = PerturbedOptimizer(
        SOLVERS[solver_name][0], epsilon=0.5, n_samples=50, noise=noise,
        perturbation=perturbation, random_state=10,
    )
    fd = _central_differences(po.expected_max, theta)
    est = po.estimate(theta)
    np.testing.assert_allclose(fd, est.expected_max_grad, atol=1e-6)
    if perturbation == "additive":
        assert est.expected_max_grad is est.y_eps or np.array_equal(est.expected_max_grad, est.y_eps)


def test_gumbel_argmax_expected_max_closed_form():
    # F_ε(θ) = ε logsumexp(θ/ε) + εγ for Gumbel noise on the simplex.
    theta = np.random.default_rng(11).standard_normal((2, 5))
    epsilon, n_copies = 0.8, 200
    po = PerturbedOptimizer(Argmax(), epsilon=epsilon, n_samples=200, noise="gumbel", random_state=12)
    mean, se = mean_and_se(po.expected_max(replicate(theta, n_copies)), n_copies)
    exact = epsilon * logsumexp(theta / epsilon, axis=1) + epsilon * np.euler_gamma
    assert np.all(np.abs(mean - exact) < 5 * se)


# --------------------------------------------------------------------------
# Limits in ε, structure of the outputs
# --------------------------------------------------------------------------


@pytest.mark.parametrize("solver_name", list(SOLVERS))
@pytest.mark.parametrize("noise", ["gaussian", "gumbel"])
def test_small_epsilon_gives_the_solver(solver_name, noise):
    solver = SOLVERS[solver_name][0]
    theta = np.random.default_rng(13).standard_normal((6, 7))
    po = PerturbedOptimizer(solver, epsilon=1e-9, n_samples=5, noise=noise, random_state=0)
    est = po.estimate(theta)
    y_star = solver(theta)
    assert np.array_equal(est.y_eps, y_star)
    np.testing.assert_allclose(est.expected_max, np.sum(y_star * theta, axis=1), atol=1e-7)


@pytest.mark.parametrize(
    "solver, centre, var",
    [
        (Argmax(), 1 / 6, 1 / 6 * 5 / 6),
        (TopK(k=2), 2 / 6, 2 / 6 * 4 / 6),
        (Ranking(), 3.5, (6**2 - 1) / 12),  # rank of a uniform random permutation
    ],
    ids=["argmax", "topk", "ranking"],
)
@pytest.mark.parametrize("noise", ["gaussian", "gumbel"])
def test_large_epsilon_gives_the_centroid(solver, centre, var, noise):
    theta = np.random.default_rng(14).standard_normal((4, 6))
    n_samples = 4000
    po = PerturbedOptimizer(solver, epsilon=1e6, n_samples=n_samples, noise=noise, random_state=0)
    assert np.all(np.abs(po(theta) - centre) < 5 * math.sqrt(var / n_samples))


@pytest.mark.parametrize("n_samples", [1, 3, 64])
def test_soft_ranks_sum_and_permutations(n_samples):
    d = 9
    theta = np.random.default_rng(15).standard_normal((10, d))
    y = PerturbedOptimizer(Ranking(), n_samples=n_samples, random_state=0)(theta)
    total = d * (d + 1) / 2
    if n_samples & (n_samples - 1) == 0:
        # M a power of 2: sums of ranks scaled by 1/M are exact.
        assert np.all(y.sum(axis=1) == total)
    else:
        np.testing.assert_allclose(y.sum(axis=1), total, rtol=1e-15)
    if n_samples == 1:
        assert np.array_equal(np.sort(y, axis=1), np.tile(np.arange(1.0, d + 1), (10, 1)))
    assert np.all((y >= 1) & (y <= d))


# --------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------


def _assert_identical(a, b):
    for name in OUTPUTS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or np.array_equal(x, y)


@pytest.mark.parametrize("solver_name", list(SOLVERS))
@pytest.mark.parametrize("perturbation", ["additive", "multiplicative"])
def test_same_seed_identical_for_any_threads_and_batch_split(solver_name, perturbation):
    solver = SOLVERS[solver_name][0]
    rng = np.random.default_rng(16)
    theta, v = rng.standard_normal((2, 37, 8))
    kwargs = dict(n_samples=13, perturbation=perturbation, random_state=17)
    one = PerturbedOptimizer(solver, n_jobs=1, **kwargs).estimate(theta, v)
    two = PerturbedOptimizer(solver, n_jobs=2, **kwargs).estimate(theta, v)
    _assert_identical(one, two)
    po = PerturbedOptimizer(solver, **kwargs)
    _assert_identical(po.estimate(theta, v), one)  # call to call
    k = 15
    head = po.estimate(theta[:k], v[:k])
    tail = po.estimate(theta[k:], v[k:], row_keys=np.arange(k, 37))
    for name in OUTPUTS:
        joined = np.concatenate([getattr(head, name), getattr(tail, name)])
        assert np.array_equal(joined, getattr(one, name))
    # Any order of the rows, as long as each keeps its key.
    perm = rng.permutation(37)
    shuffled = po.estimate(theta[perm], v[perm], row_keys=perm)
    assert np.array_equal(shuffled.vjp, one.vjp[perm])


def test_random_state_semantics():
    theta = np.random.default_rng(18).standard_normal((3, 5))
    fresh = PerturbedOptimizer(Ranking(), n_samples=5, random_state=None)
    assert not np.array_equal(fresh(theta), fresh(theta))
    seeded = [PerturbedOptimizer(Ranking(), n_samples=5, random_state=np.random.RandomState(0)) for _ in range(2)]
    first, second = seeded[0](theta), seeded[0](theta)
    assert not np.array_equal(first, second)  # a RandomState advances
    assert np.array_equal(seeded[1](theta), first)  # but replays from its seed
    po = PerturbedOptimizer(Ranking(), n_samples=5, random_state=0)
    assert np.array_equal(po.estimate(theta, seed=0).y_eps, po(theta))
    assert not np.array_equal(po.estimate(theta, seed=1).y_eps, po(theta))


def test_methods_are_views_of_estimate():
    theta, v = np.random.default_rng(19).standard_normal((2, 4, 6))
    po = PerturbedOptimizer(TopK(k=3), n_samples=8, random_state=0)
    est = po.estimate(theta, v)
    assert np.array_equal(po(theta), est.y_eps)
    assert np.array_equal(po.expected_max(theta), est.expected_max)
    assert np.array_equal(po.vjp(theta, v), est.vjp)


# --------------------------------------------------------------------------
# Variance reduction
# --------------------------------------------------------------------------


def _vjp_variance(**kwargs):
    rng = np.random.default_rng(20)
    theta, v = rng.standard_normal((2, 1, 6))
    n_copies = 2000
    po = PerturbedOptimizer(Ranking(), n_samples=10, random_state=21, **kwargs)
    vjp = po.vjp(replicate(theta, n_copies), replicate(v, n_copies))
    return vjp.var(axis=0).sum()


@pytest.mark.parametrize(
    "reduction", [dict(control_variate=True), dict(antithetic=True, control_variate=False)]
)
def test_variance_reduction_of_the_vjp(reduction):
    # Ranks are far from zero-mean: without a baseline <y, v> carries a large
    # constant that only adds variance. The leave-one-out baseline removes it,
    # and so do antithetic pairs, since ∇ν(-Z) = -∇ν(Z).
    plain = _vjp_variance(control_variate=False)
    assert _vjp_variance(**reduction) < 0.5 * plain


@pytest.mark.parametrize("solver, theta, worse_than_plain", [
    (Ranking(), [0.1, 0.5, -0.3, 1.2, 0.8], False),
    (TopK(k=2), [0.3, -0.2, 0.9, 0.1, 0.5], True),
    (DAGShortestPath(grid=(3, 3)), np.random.default_rng(3).uniform(0.5, 1.5, 12), True),
])
def test_the_control_variate_beats_antithetic_pairs_on_the_vjp(solver, theta, worse_than_plain):
    # A pair keeps only the odd part of the score, from M/2 terms: the
    # leave-one-out baseline does better (what docs/user_guide/method.rst says).
    n_copies = 20_000
    theta = replicate(np.array([theta]), n_copies)
    v = replicate(np.random.default_rng(42).standard_normal((1, theta.shape[1])), n_copies)
    var = {
        name: PerturbedOptimizer(
            solver, epsilon=0.7, n_samples=10, random_state=1, **params
        ).vjp(theta, v).var(axis=0).sum()
        for name, params in [("antithetic", dict(antithetic=True)), ("control variate", {}),
                             ("plain", dict(control_variate=False))]
    }
    # measured 1.46 (Ranking), 1.37 (TopK), 1.29 (DAG)
    assert var["antithetic"] > 1.15 * var["control variate"]
    if worse_than_plain:  # measured 1.49 (TopK), 1.15 (DAG)
        assert var["antithetic"] > 1.05 * var["plain"]


def test_antithetic_pairs_reduce_the_variance_of_y_eps():
    theta = np.random.default_rng(34).standard_normal((1, 6))
    n_copies = 2000
    var = [
        PerturbedOptimizer(Ranking(), n_samples=10, antithetic=antithetic, random_state=35)(
            replicate(theta, n_copies)
        ).var(axis=0).sum()
        for antithetic in (True, False)
    ]
    assert var[0] < 0.8 * var[1]


def test_antithetic_vjp_is_unbiased_for_small_m():
    # A leave-one-out baseline that included the antithetic partner would
    # scale this VJP by M / (M - 1) = 2.
    theta = np.array([[0.3, 1.0]])
    v = np.array([[1.0, -0.5]])
    n_copies = 20_000
    po = PerturbedOptimizer(Argmax(), epsilon=0.6, n_samples=2, antithetic=True, random_state=36)
    mean, se = mean_and_se(po.vjp(replicate(theta, n_copies), replicate(v, n_copies)), n_copies)
    assert np.all(np.abs(mean - _two_class_vjp(theta, v, 0.6)) < 5 * se)
    # The pairs already cancel any baseline: the control variate is ignored.
    no_cv = PerturbedOptimizer(Argmax(), epsilon=0.6, n_samples=2, antithetic=True, control_variate=False, random_state=36)
    assert np.array_equal(no_cv.vjp(theta, v), po.vjp(theta, v))


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------


@pytest.mark.parametrize("solver_name", list(SOLVERS))
def test_fenchel_young_gradient_vanishes_at_y_eps(solver_name):
    solver = SOLVERS[solver_name][0]
    theta = np.random.default_rng(22).standard_normal((5, 6))
    po = PerturbedOptimizer(solver, n_samples=2000, random_state=23)
    y_eps = po(theta)
    # Common random numbers: the gradient is exactly zero ...
    _, grad = fenchel_young_loss(theta, y_eps, po)
    assert np.all(grad == 0)
    # ... and with fresh noise it is zero up to Monte Carlo error.
    _, grad = fenchel_young_loss(theta, y_eps, po, seed=24)
    scale = {"argmax": 1, "topk": 1, "ranking": 6}[solver_name]
    assert np.all(np.abs(grad) < 5 * scale / math.sqrt(2 * 2000))


def test_fenchel_young_loss_is_minimized_where_y_eps_hits_the_target():
    # Gradient descent on the convex FY loss moves y_ε(θ) onto the target.
    po = PerturbedOptimizer(Ranking(), epsilon=1.0, n_samples=200, random_state=25)
    target = PerturbedOptimizer(Ranking(), n_samples=20_000, random_state=26)(
        np.array([[0.0, 2.0, -1.0, 0.5]])
    )
    theta = np.zeros((1, 4))
    for step in range(100):
        _, grad = fenchel_young_loss(theta, target, po)
        theta -= 3.0 / math.sqrt(step + 1) * grad
    np.testing.assert_allclose(po(theta), target, atol=0.05)


def test_fenchel_young_closed_form_for_gumbel_argmax():
    rng = np.random.default_rng(27)
    theta = rng.standard_normal((3, 5))
    y = np.eye(5)[[0, 3, 4]]
    epsilon = 0.7
    po = PerturbedOptimizer(Argmax(), epsilon=epsilon, n_samples=200, noise="gumbel", random_state=28)
    loss, grad = fenchel_young_loss(theta, y, po)
    np.testing.assert_allclose(grad, softmax(theta / epsilon, axis=1) - y, rtol=1e-12, atol=1e-15)
    # For a one-hot target εΩ(y) = -εγ: the loss is the logistic loss plus εγ.
    log_loss = -epsilon * np.log(np.sum(softmax(theta / epsilon, axis=1) * y, axis=1))
    np.testing.assert_allclose(loss - epsilon * np.euler_gamma, log_loss, rtol=1e-12)
    # And the Monte Carlo value F̂ - <θ, y> agrees within its error.
    n_copies = 200
    mc = po.expected_max(replicate(theta, n_copies)) - np.sum(replicate(theta * y, n_copies), axis=1)
    mean, se = mean_and_se(mc, n_copies)
    assert np.all(np.abs(mean - loss) < 5 * se)


def test_perturbed_squared_loss_is_unbiased_for_gumbel_argmax():
    rng = np.random.default_rng(29)
    theta = rng.standard_normal((2, 4))
    y = np.eye(4)[[1, 2]]
    epsilon, n_samples, n_copies = 0.9, 2000, 100

    def exact_loss(t):
        return 0.5 * np.sum((y - softmax(t / epsilon, axis=1)) ** 2, axis=1)

    exact_grad = _central_differences(exact_loss, theta, h=1e-5)
    np.testing.assert_allclose(exact_grad, softmax_vjp(theta, softmax(theta / epsilon, axis=1) - y, epsilon), atol=1e-9)
    po = PerturbedOptimizer(Argmax(), epsilon=epsilon, n_samples=n_samples, noise="gumbel", random_state=30)
    loss, grad = perturbed_squared_loss(replicate(theta, n_copies), replicate(y, n_copies), po)
    loss_mean, loss_se = mean_and_se(loss, n_copies)
    grad_mean, grad_se = mean_and_se(grad, n_copies)
    # ȳ and the VJP share their noise: an O(1/M) bias on top of the MC error.
    assert np.all(np.abs(loss_mean - exact_loss(theta)) < 5 * loss_se + 1 / n_samples)
    assert np.all(np.abs(grad_mean - exact_grad) < 5 * grad_se + 1 / n_samples)


def test_squared_loss():
    theta = np.array([[1.0, 2.0], [0.0, -1.0]])
    y = np.array([[1.0, 0.0], [2.0, 1.0]])
    loss, grad = squared_loss(theta, y)
    np.testing.assert_array_equal(loss, [2.0, 4.0])
    np.testing.assert_array_equal(grad, theta - y)


def test_blackbox_loss_hand_example():
    theta = np.array([[1.0, 0.0, 0.0]])
    y = np.array([[0.0, 1.0, 0.0]])
    # y* = e₀, g = y* - y = (1, -1, 0); θ - λg = (-9, 10, 0) -> e₁.
    loss, grad = blackbox_loss(theta, y, Argmax(), lambda_=10.0)
    np.testing.assert_array_equal(loss, [1.0])
    np.testing.assert_allclose(grad, [[0.1, -0.1, 0.0]])
    # A step too short to change the solution (θ - λg = (0.5, 0.5, 0) -> e₀ by
    # the tie rule) gives a zero gradient.
    _, grad = blackbox_loss(theta, y, Argmax(), lambda_=0.5)
    np.testing.assert_array_equal(grad, [[0.0, 0.0, 0.0]])
    # At the target itself the loss and gradient vanish.
    loss, grad = blackbox_loss(theta, np.array([[1.0, 0.0, 0.0]]), Argmax())
    assert loss[0] == 0 and np.all(grad == 0)


def test_minimizing_solver_is_the_maximizer_of_negated_costs():
    # The sign path: argmin over costs c is argmax over θ = -c with the same noise.
    rng = np.random.default_rng(31)
    costs, v = rng.standard_normal((2, 4, 5))
    y = np.eye(5)[[0, 1, 2, 3]]
    kwargs = dict(epsilon=0.6, n_samples=9, random_state=32, backend="numpy")
    po_min = PerturbedOptimizer(MinArgmax(), **kwargs)
    po_max = PerturbedOptimizer(Argmax(), **kwargs)
    est_min, est_max = po_min.estimate(costs, v), po_max.estimate(-costs, v)
    assert np.array_equal(est_min.y_eps, est_max.y_eps)
    assert np.array_equal(est_min.expected_max, -est_max.expected_max)
    assert np.array_equal(est_min.vjp, -est_max.vjp)
    loss_min, grad_min = fenchel_young_loss(costs, y, po_min)
    loss_max, grad_max = fenchel_young_loss(-costs, y, po_max)
    np.testing.assert_allclose(loss_min, loss_max, rtol=1e-14)
    np.testing.assert_allclose(grad_min, -grad_max, rtol=1e-14)
    for lambda_ in [0.3, 3.0]:
        loss_min, grad_min = blackbox_loss(costs, y, MinArgmax(), lambda_=lambda_)
        loss_max, grad_max = blackbox_loss(-costs, y, Argmax(), lambda_=lambda_)
        assert np.array_equal(loss_min, loss_max)
        assert np.array_equal(grad_min, -grad_max)


# --------------------------------------------------------------------------
# Dtypes and bad input
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_float32_in_float32_out(backend):
    theta, v = np.random.default_rng(33).standard_normal((2, 3, 4))
    po = PerturbedOptimizer(Ranking(), n_samples=5, random_state=0, backend=backend)
    est32 = po.estimate(theta.astype(np.float32), v.astype(np.float32))
    est64 = po.estimate(theta.astype(np.float32).astype(np.float64), v.astype(np.float32))
    for name in OUTPUTS:
        assert getattr(est32, name).dtype == np.float32
        assert getattr(est64, name).dtype == np.float64
        np.testing.assert_array_equal(getattr(est32, name), getattr(est64, name).astype(np.float32))
    assert po(theta.astype(int)).dtype == np.float64


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(epsilon=0.0), "epsilon"),
        (dict(epsilon=-1.0), "epsilon"),
        (dict(n_samples=0), "n_samples"),
        (dict(noise="cauchy"), "noise"),
        (dict(perturbation="exp"), "perturbation"),
        (dict(noise="gumbel", antithetic=True), "antithetic=True needs symmetric noise"),
        (dict(noise="gumbel", perturbation="multiplicative"), "multiplicative' needs noise='gaussian'"),
        (dict(n_jobs=0), "n_jobs"),
    ],
)
def test_bad_parameters(params, match):
    po = PerturbedOptimizer(Argmax(), **params)
    with pytest.raises(ValueError, match=match):
        po(np.zeros((2, 3)))


def test_solver_must_be_a_solver_object():
    with pytest.raises(ValueError, match="solver must be a solver object"):
        PerturbedOptimizer(np.argmax)(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"solver must be a solver object.*got str"):
        blackbox_loss(np.zeros((2, 3)), np.zeros((2, 3)), "ranking")


@pytest.mark.parametrize(
    "theta, solver, match",
    [
        (np.array([np.nan, 1.0, 2.0]).reshape(1, 3), Argmax(), "NaN"),
        (np.array([[np.inf, 1.0, 2.0]]), Argmax(), "infinity"),
        (np.float64(1.0), Argmax(), r"shape \(n, d\), \(d,\) or \(\.\.\., d\), got a scalar"),
        (np.zeros((2, 3, 0)), Argmax(), "0 feature"),
        (np.zeros((0, 3)), Argmax(), "0 sample"),
        (np.zeros((2, 3)), FourItems(), "expects θ with 4 columns"),
        (np.zeros((2, 3)), TopK(k=4), "exceeds the number of items"),
        (np.zeros((2, 3)), TopK(k=0), "k must be an integer"),
    ],
)
def test_bad_theta(theta, solver, match):
    with pytest.raises(ValueError, match=match):
        PerturbedOptimizer(solver, n_samples=2)(theta)


def test_bad_cotangent_targets_and_keys():
    po = PerturbedOptimizer(Argmax(), n_samples=2, random_state=0)
    theta = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"v must have the shape of theta \(2, 3\)"):
        po.vjp(theta, np.ones((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        po.vjp(theta, np.array([[np.nan, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="y must have the shape of theta"):
        fenchel_young_loss(theta, np.ones((3, 3)), po)
    with pytest.raises(ValueError, match="y must have the shape of theta"):
        perturbed_squared_loss(theta, np.ones((2, 4)), po)
    with pytest.raises(ValueError, match="row_keys must be a 1-D array of length 2"):
        po(theta, row_keys=[0, 1, 2])
    with pytest.raises(ValueError, match="row_keys must be non-negative"):
        po(theta, row_keys=[0, -1])
    with pytest.raises(ValueError, match="row_keys must be integers"):
        po(theta, row_keys=[0.0, 1.0])
    with pytest.raises(ValueError, match="undefined where theta == 0"):
        PerturbedOptimizer(Argmax(), perturbation="multiplicative").vjp(np.zeros((1, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="lambda_"):
        blackbox_loss(theta, theta, Argmax(), lambda_=0.0)


def test_numba_backend_needs_a_numba_solver():
    with pytest.raises(ValueError, match="backend='numba' needs a solver with a numba kernel"):
        PerturbedOptimizer(MinArgmax(), backend="numba")(np.ones((1, 3)))


def test_thread_tuner_measures_both_counts_then_revises_its_choice():
    from sk_perturbed._engine import _ThreadTuner

    tuner = _ThreadTuner()
    assert tuner.choose("kind", 1) == (1, None)

    def run(seconds_per_entry):
        n_threads, record = tuner.choose("kind", 2)
        record.append(seconds_per_entry[n_threads])
        return n_threads

    busy = {1: 1.0, 2: 3.0}  # another process holds the second core
    warm_up = [run(busy) for _ in range(2 * tuner.WARMUP)]
    assert sorted(warm_up) == [1] * tuner.WARMUP + [2] * tuner.WARMUP
    picks = [run(busy) for _ in range(4 * tuner.PROBE_EVERY)]
    assert picks.count(2) == 4  # one probe of the other count per PROBE_EVERY calls
    idle = {1: 1.0, 2: 0.5}  # the core is free again: two threads now win
    picks = [run(idle) for _ in range(4 * tuner.PROBE_EVERY)]
    assert picks[-tuner.PROBE_EVERY:].count(2) == tuner.PROBE_EVERY - 1


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_overflowing_perturbations_are_named(backend):
    po = PerturbedOptimizer(Argmax(), epsilon=1e308, random_state=0, backend=backend)
    with pytest.raises(ValueError, match="overflow float64.*lower epsilon"):
        po(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="1/epsilon overflows"):
        PerturbedOptimizer(Argmax(), epsilon=5e-324).vjp(np.zeros((1, 3)), np.ones((1, 3)))


@pytest.mark.parametrize("noise", ["gumbel", "gaussian"])
def test_exact_marginals_when_theta_over_epsilon_overflows(noise):
    po = PerturbedOptimizer(Argmax(), epsilon=1e-3, noise=noise)
    marginals = exact_marginals(po, np.array([[1.7e308, -1.7e308], [1.0, 1.0]]))
    np.testing.assert_allclose(marginals, [[1.0, 0.0], [0.5, 0.5]])


def test_exact_marginals_validates_the_optimizer():
    # With epsilon < 0 the closed forms would rank the classes in reverse.
    theta = np.array([[0.0, 1.0]])
    with pytest.raises(ValueError, match="'epsilon' parameter"):
        exact_marginals(PerturbedOptimizer(Argmax(), epsilon=-1.0), theta)
    with pytest.raises(TypeError, match="po must be a PerturbedOptimizer"):
        exact_marginals(Argmax(), theta)


def test_gumbel_argmax_fenchel_young_when_theta_over_epsilon_overflows():
    # θ/ε = inf used to give inf - inf = NaN; the limit is the hinge at the max.
    po = PerturbedOptimizer(Argmax(), epsilon=1e-300, noise="gumbel")
    theta, y = np.array([[1e10, 0.0, -5.0]]), np.array([[0.0, 1.0, 0.0]])
    loss, grad = fenchel_young_loss(theta, y, po)
    np.testing.assert_allclose(loss, [1e10])
    np.testing.assert_array_equal(grad, [[1.0, -1.0, 0.0]])
    # Ordinary scales keep the closed form ε logsumexp(θ/ε) + εγ - <θ, y>.
    po = PerturbedOptimizer(Argmax(), epsilon=0.5, noise="gumbel")
    theta = np.array([[0.3, -1.2, 2.0]])
    expected = 0.5 * np.log(np.exp(theta / 0.5).sum()) + 0.5 * np.euler_gamma - theta[0, 1]
    np.testing.assert_allclose(fenchel_young_loss(theta, y, po)[0], [expected], rtol=1e-14)
