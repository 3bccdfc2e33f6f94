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
