"""Forward and backward passes of the score models, against finite differences."""

import numpy as np
import pytest

from sk_perturbed import _models


@pytest.mark.parametrize("activation", _models.ACTIVATIONS)
@pytest.mark.parametrize("out_activation", _models.OUT_ACTIVATIONS)
@pytest.mark.parametrize("hidden", [(), (5, 4)])
def test_backward_matches_finite_differences(activation, out_activation, hidden):
    rng = np.random.RandomState(0)
    X = rng.randn(7, 3)
    sizes = [3, *hidden, 2]
    coefs, intercepts = _models.init_params(sizes, activation, np.float64, rng)
    G = rng.randn(7, 2)  # d(loss)/dθ of the linear loss sum(G ⊙ θ)
    alpha, n_total = 0.3, 7.0

    def objective():
        theta = _models.forward(X, coefs, intercepts, activation, out_activation)[-1]
        l2 = 0.5 * alpha * sum(np.sum(W * W) for W in coefs)
        return (np.sum(G * theta) + l2) / n_total

    activations = _models.forward(X, coefs, intercepts, activation, out_activation)
    coef_grads, intercept_grads = _models.backward(
        activations, G, coefs, activation, alpha, n_total, out_activation
    )
    h = 1e-6
    for params, grads in [(coefs, coef_grads), (intercepts, intercept_grads)]:
        for P, dP in zip(params, grads):
            numeric = np.empty_like(P)
            for idx in np.ndindex(P.shape):
                old = P[idx]
                P[idx] = old + h
                up = objective()
                P[idx] = old - h
                down = objective()
                P[idx] = old
                numeric[idx] = (up - down) / (2 * h)
            # relu's kink is never hit by these random inputs.
            np.testing.assert_allclose(dP, numeric, rtol=1e-5, atol=1e-7)


def test_softplus_output_is_positive():
    rng = np.random.RandomState(0)
    coefs, intercepts = _models.init_params([4, 3], "relu", np.float64, rng)
    theta = _models.forward(rng.randn(50, 4) * 100, coefs, intercepts, "relu", "softplus")[-1]
    assert np.all(theta >= 0) and np.all(np.isfinite(theta))


def test_adam_adaptive_divides_the_step_by_five_at_most_twice():
    from sk_perturbed._optimizers import AdamOptimizer

    params = [np.zeros(3)]
    adam = AdamOptimizer(params, learning_rate_init=0.01, learning_rate="adaptive")
    assert [adam.on_plateau() for _ in range(3)] == [True, True, False]
    assert adam.lr == pytest.approx(0.01 / 25)
    # The step uses the current rate: the first bias-corrected Adam step has size lr.
    adam.step([np.ones(3)], 1)
    np.testing.assert_allclose(params[0], -0.01 / 25, rtol=1e-6)
    constant = AdamOptimizer([np.zeros(3)], learning_rate_init=0.01)
    assert not constant.on_plateau() and constant.lr == 0.01


def test_adaptive_default_keeps_training_after_the_first_stall():
    from sk_perturbed import PerturbedRankingRegressor
    from sk_perturbed.datasets import make_perfect_ranks

    X, Y = make_perfect_ranks(n_samples=300, n_features=5, n_labels=4, random_state=0)
    adaptive = PerturbedRankingRegressor(model="linear", random_state=0).fit(X, Y)
    constant = PerturbedRankingRegressor(model="linear", learning_rate="constant",
                                         random_state=0).fit(X, Y)
    assert adaptive._optimizer.n_decays == 2
    assert adaptive._optimizer.lr == pytest.approx(0.01 / 25)
    # Same epochs up to the first stall, then more epochs at smaller steps.
    assert adaptive.n_iter_ > constant.n_iter_
    np.testing.assert_array_equal(adaptive.loss_curve_[: constant.n_iter_ - 1],
                                  constant.loss_curve_[: constant.n_iter_ - 1])


def test_adam_pickled_before_the_schedule_existed_keeps_a_constant_step():
    import pickle

    from sk_perturbed._optimizers import AdamOptimizer

    adam = AdamOptimizer([np.zeros(2)], learning_rate_init=0.01, learning_rate="adaptive")
    state = adam.__getstate__()
    del state["schedule"], state["n_decays"]  # as pickled by earlier versions
    old = AdamOptimizer.__new__(AdamOptimizer)
    old.__setstate__(state)
    assert not old.on_plateau() and old.lr == 0.01
    assert pickle.loads(pickle.dumps(adam)).schedule == "adaptive"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_adam_step_rounds_as_the_numpy_sequence(dtype):
    from sk_perturbed._optimizers import AdamOptimizer

    rng = np.random.RandomState(0)
    values = [rng.randn(6, 4).astype(dtype), rng.randn(4).astype(dtype)]
    fused = AdamOptimizer([v.copy() for v in values], learning_rate_init=0.05)
    # Fortran-ordered weights are not C-contiguous: that optimizer takes the NumPy ufunc path.
    ufuncs = AdamOptimizer([np.asfortranarray(v) for v in values], learning_rate_init=0.05)
    assert not ufuncs.params[0].flags.c_contiguous
    for t in range(1, 6):
        grads = [rng.randn(*v.shape).astype(dtype) for v in values]
        fused.step(grads, t)
        ufuncs.step(grads, t)
    for a, b in zip(fused.params + fused.first + fused.second,
                    ufuncs.params + ufuncs.first + ufuncs.second):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
    # Moved: the parameters of the first step are not the starting values.
    assert not np.array_equal(fused.params[0], values[0])
