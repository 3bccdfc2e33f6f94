"""make_knapsack against PyEPO's knapsack genData (formulas re-implemented, and PyEPO itself)."""

import numpy as np
import pytest

from sk_perturbed.datasets import make_knapsack
from sk_perturbed.solvers import Knapsack

CASES = [
    # n, p, m, dim, deg, noise_width, seed
    (40, 5, 32, 2, 1, 0.0, 135),
    (25, 3, 10, 1, 4, 0.5, 7),
    (10, 8, 48, 3, 6, 1.5, 0),
]


def _pyepo_formulas(num_data, num_features, num_items, dim, deg, noise_width, seed):
    """PyEPO 2.2.7's pyepo.data.knapsack.genData, step by step."""
    rnd = np.random.RandomState(seed)
    weights = rnd.choice(range(300, 800), size=(dim, num_items)) / 100
    B = rnd.binomial(1, 0.5, (num_items, num_features))
    x = rnd.normal(0, 1, (num_data, num_features))
    c = (x @ B.T / np.sqrt(num_features) + 3) ** deg + 1
    c *= 5
    c /= 3.5**deg
    epsilon = rnd.uniform(1 - noise_width, 1 + noise_width, (num_data, num_items))
    c *= epsilon
    c = np.ceil(c).astype(np.float32)
    return weights, x, c


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_bitwise_equal_to_the_pyepo_formulas(case):
    n, p, m, dim, deg, noise_width, seed = case
    weights, x, c = _pyepo_formulas(*case)
    X, costs, W, capacity = make_knapsack(n, p, m, dim, deg, noise_width, random_state=seed)
    assert X.dtype == W.dtype == costs.dtype == np.float64
    np.testing.assert_array_equal(X, x)
    np.testing.assert_array_equal(W, weights)
    assert costs.astype(np.float32).tobytes() == c.tobytes()  # bit for bit
    np.testing.assert_array_equal(costs, c.astype(np.float64))
    np.testing.assert_array_equal(capacity, np.full(dim, 20.0))


def test_equal_to_pyepo_itself():
    pyepo = pytest.importorskip("pyepo")
    for n, p, m, dim, deg, noise_width, seed in CASES:
        weights, x, c = pyepo.data.knapsack.genData(
            n, p, m, dim=dim, deg=deg, noise_width=noise_width, seed=seed
        )
        X, costs, W, _ = make_knapsack(n, p, m, dim, deg, noise_width, random_state=seed)
        np.testing.assert_array_equal(X, x)
        np.testing.assert_array_equal(W, weights)
        assert costs.astype(np.float32).tobytes() == np.asarray(c).tobytes()


def test_defaults_solver_and_capacity():
    X, costs, weights, capacity, solver = make_knapsack(4, return_solver=True)
    assert X.shape == (4, 5) and costs.shape == (4, 32) and weights.shape == (2, 32)
    assert isinstance(solver, Knapsack)
    np.testing.assert_array_equal(solver.weights, weights)
    np.testing.assert_array_equal(solver.capacity, capacity)
    # The default seed is PyEPO's 135.
    np.testing.assert_array_equal(X, _pyepo_formulas(4, 5, 32, 2, 1, 0.0, 135)[1])
    y = solver(costs)
    assert ((y @ weights.T) <= capacity).all() and ((y == 0) | (y == 1)).all()
    assert (costs >= 1).all() and (costs == np.round(costs)).all()
    # The capacity does not change the draws.
    X2, costs2, _, capacity2 = make_knapsack(4, capacity=[15, 25.5])
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(costs2, costs)
    np.testing.assert_array_equal(capacity2, [15.0, 25.5])
    rng = np.random.RandomState(135)
    np.testing.assert_array_equal(make_knapsack(4, random_state=rng)[0], X)


def test_invalid_parameters():
    with pytest.raises(ValueError, match="one per dimension"):
        make_knapsack(3, dim=2, capacity=[1, 2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        make_knapsack(3, dim=1, capacity=[-1])
    with pytest.raises(ValueError, match="n_items"):
        make_knapsack(3, n_items=0)
    with pytest.raises(ValueError, match="noise_width"):
        make_knapsack(3, noise_width=-0.1)
