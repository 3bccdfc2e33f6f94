"""Numerical and runtime reliability of the estimation engine (issue 16).

Each test here failed on the code before its fix: catastrophic cancellation
of the control variate at a tiny ε, ties from clipping before shifting,
an overflow reported as a solver failure, a Ctrl-C turned into a
``SystemError``, a forked child killed by the threading layer, and the
batch shapes the public functions accept.
"""

import multiprocessing
import signal
import threading
import time

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

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


def _interrupt_after(delay):
    """A started timer that sends SIGINT to the main thread after ``delay`` s."""
    main = threading.main_thread().ident
    timer = threading.Timer(delay, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    return timer


def _long_call_size():
    # About 2 s of single-thread Ranking work on a loaded 2-core machine,
    # spread over many kernel chunks.
    return np.random.default_rng(0).normal(size=(40_000, 50))


def test_ctrl_c_during_a_kernel_raises_keyboard_interrupt_promptly():
    po = _po(Ranking(), n_samples=30, n_jobs=1)
    po(np.zeros((2, 5)))  # compiled before timing
    theta = _long_call_size()
    start = time.perf_counter()
    po(theta[:4000])
    tenth = time.perf_counter() - start
    timer = _interrupt_after(0.2)
    start = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            po(theta)
            time.sleep(10 * tenth + 5)  # the signal still arrives, here at worst
    finally:
        timer.cancel()
        timer.join()
    # Interrupted at the end of a chunk (2**22 entries, 1/15 of this call),
    # not at the end of the call.
    assert time.perf_counter() - start < 0.2 + 0.5 * 10 * tenth


def test_kernel_chunks_give_the_rows_of_one_launch(monkeypatch):
    from sk_perturbed import _numba_backend

    theta = np.random.default_rng(2).normal(size=(37, 6))
    v = np.random.default_rng(3).normal(size=theta.shape)
    for perturbation in ("additive", "multiplicative"):
        po = _po(Ranking(), perturbation=perturbation)
        whole = po.estimate(theta, v)
        monkeypatch.setattr(_numba_backend, "CHUNK_ENTRIES", 5 * 20 * 6)  # 5 rows a chunk
        chunked = po.estimate(theta, v)
        monkeypatch.undo()
        for a, b in zip(whole, chunked):
            np.testing.assert_array_equal(a, b)


def test_ctrl_c_during_fit_keeps_the_epochs_done():
    from sk_perturbed import PerturbedRankingRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 10))
    Y = X @ rng.normal(size=(10, 20))
    model = PerturbedRankingRegressor(n_samples=50, max_iter=10_000, tol=0.0,
                                      n_iter_no_change=10_000, random_state=0, n_jobs=1)
    with pytest.warns(ConvergenceWarning):  # compiled before the timer
        model.set_params(max_iter=1).fit(X[:50], Y[:50])
    model.set_params(max_iter=10_000)
    timer = _interrupt_after(1.0)
    try:
        with pytest.warns(UserWarning, match="interrupted"):
            model.fit(X, Y)
    finally:
        timer.cancel()
        timer.join()
    assert 1 <= model.n_iter_ < 10_000
    assert len(model.loss_curve_) == model.n_iter_
    assert model.predict(X[:3]).shape == (3, 20)


def _estimate_in_child(queue, theta):
    po = _po(Ranking(), n_jobs=2)
    queue.put(po.estimate(theta, theta[::-1].copy()))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_after_a_parallel_kernel_runs_kernels():
    # GNU OpenMP terminated such a child at its first parallel region.
    theta = np.random.default_rng(4).normal(size=(300, 8))
    parent = _po(Ranking(), n_jobs=2).estimate(theta, theta[::-1].copy())
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_estimate_in_child, args=(queue, theta))
    child.start()
    try:
        # Read before joining: a child blocks until its queue is drained.
        result = queue.get(timeout=300)  # a serial compilation on first use
    finally:
        child.join(timeout=60)
    assert child.exitcode == 0
    for a, b in zip(parent, result):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(6,), (2, 3, 6), (1, 1, 6)])
def test_optimizer_and_losses_keep_any_batch_shape(shape):
    from sk_perturbed.perturbed import (
        blackbox_loss,
        fenchel_young_loss,
        perturbed_squared_loss,
        squared_loss,
    )

    rng = np.random.default_rng(5)
    theta = rng.normal(size=shape)
    v = rng.normal(size=shape)
    y = Ranking()(rng.normal(size=(int(np.prod(shape[:-1])), 6))).reshape(shape)
    po = _po(Ranking())
    rows = theta.reshape(-1, 6)
    lead = shape[:-1]
    keys = np.arange(rows.shape[0]).reshape(lead)

    flat = po.estimate(rows, v.reshape(-1, 6))
    batched = po.estimate(theta, v, row_keys=keys)
    for a, b in zip(flat, batched):
        assert b.shape == lead + a.shape[1:]
        np.testing.assert_array_equal(a.reshape(b.shape), b)
    assert po(theta).shape == shape
    assert np.shape(po.expected_max(theta)) == lead
    assert po.vjp(theta, v).shape == shape

    for loss, extra in [
        (fenchel_young_loss, (po,)), (perturbed_squared_loss, (po,)),
        (squared_loss, ()), (blackbox_loss, (Ranking(),)),
    ]:
        value, grad = loss(theta, y, *extra)
        flat_value, flat_grad = loss(rows, y.reshape(-1, 6), *extra)
        assert np.shape(value) == lead and grad.shape == shape
        np.testing.assert_array_equal(np.reshape(value, -1), flat_value)
        np.testing.assert_array_equal(grad.reshape(-1, 6), flat_grad)


def test_batch_shape_mismatches_are_named():
    po = _po(Ranking())
    with pytest.raises(ValueError, match=r"v must have the shape of theta \(2, 3, 4\)"):
        po.vjp(np.zeros((2, 3, 4)), np.zeros((6, 4)))
    with pytest.raises(ValueError, match=r"row_keys must have theta's batch shape \(2, 3\)"):
        po(np.zeros((2, 3, 4)), row_keys=np.arange(6))


def test_normal_is_an_alias_of_gaussian():
    theta = np.random.default_rng(6).normal(size=(4, 5))
    for params in ({}, {"antithetic": True}, {"perturbation": "multiplicative"}):
        gaussian = _po(Ranking(), noise="gaussian", **params).estimate(theta, theta)
        normal = _po(Ranking(), noise="normal", **params).estimate(theta, theta)
        for a, b in zip(gaussian, normal):
            np.testing.assert_array_equal(a, b)
    # The GPU path reads the same noise ids (here on NumPy via the numpy backend).
    np.testing.assert_array_equal(
        _po(Ranking(), noise="normal", backend="numpy")(theta),
        _po(Ranking(), noise="gaussian", backend="numpy")(theta),
    )


@pytest.mark.parametrize("epsilon", [0.5, 2.0])
def test_jacobian_of_gumbel_argmax_matches_finite_differences_of_the_softmax(epsilon):
    from sk_perturbed.perturbed import jacobian

    theta = np.array([[0.3, -0.5, 1.0, 0.0], [2.0, 2.0, -1.0, 0.5]])
    po = PerturbedOptimizer(Argmax(), epsilon=epsilon, noise="gumbel", n_samples=40_000,
                            random_state=0)
    J = jacobian(po, theta)
    assert J.shape == (2, 4, 4)
    h = 1e-6
    fd = np.empty_like(J)
    for b in range(4):
        step = np.zeros(4)
        step[b] = h
        fd[:, :, b] = (exact_marginals(po, theta + step) - exact_marginals(po, theta - step)) / (2 * h)
    # Monte Carlo error of a Jacobian entry at M = 40000: about 1/(ε √M).
    np.testing.assert_allclose(J, fd, atol=4.0 / (epsilon * np.sqrt(40_000)))
    # Same draws as the VJPs: row a of J is the VJP with e_a.
    e = np.zeros_like(theta)
    e[:, 2] = 1.0
    np.testing.assert_allclose(J[:, 2, :], po.vjp(theta, e), rtol=1e-12, atol=1e-12)
    # Batch shapes: one problem (d,) gives (d, d).
    np.testing.assert_array_equal(jacobian(po, theta[0]), J[0])
