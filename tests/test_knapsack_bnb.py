"""The branch and bound of Knapsack against brute force and HiGHS."""

import itertools

import numpy as np
import pytest

from sk_perturbed.datasets import make_knapsack
from sk_perturbed.solvers import Knapsack, _knapsack
from sk_perturbed.solvers._knapsack_bnb import knapsack_bnb_batch


def brute_force_values(theta, weights, capacity):
    """Best value of each row over every feasible 0/1 vector (small d only)."""
    d = weights.shape[1]
    sets = np.array(list(itertools.product([0, 1], repeat=d)), float)
    feasible = np.all(sets @ weights.T <= capacity + 1e-9, axis=1)
    return np.max(theta @ sets[feasible].T, axis=1)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("kind", ["integer", "decimal", "float"])
def test_branch_and_bound_is_optimal_and_feasible(k, kind):
    rng = np.random.default_rng(k)
    d = 11
    weights = {
        "integer": rng.integers(0, 9, size=(k, d)).astype(float),
        "decimal": rng.integers(300, 800, size=(k, d)) / 100,
        "float": rng.uniform(0.5, 5.0, size=(k, d)),
    }[kind]
    capacity = rng.uniform(5, 15, size=k)
    theta = rng.normal(size=(60, d))  # negative values too
    theta[:5] = np.abs(theta[:5])
    solver = Knapsack(weights=weights, capacity=capacity, method="bnb")
    y = solver(theta)
    assert set(np.unique(y)) <= {0.0, 1.0}
    assert np.all(y @ weights.T <= capacity + 1e-9)
    np.testing.assert_allclose((theta * y).sum(axis=1),
                               brute_force_values(theta, weights, capacity), rtol=1e-12)


def test_auto_uses_the_branch_and_bound_on_pyepo_knapsacks_and_agrees_with_highs():
    _, values, weights, capacity, solver = make_knapsack(
        80, deg=4, noise_width=0.5, random_state=3, return_solver=True)
    assert solver._plan()[0] == "bnb"
    y = solver(values)
    y_milp = Knapsack(weights=weights, capacity=capacity, method="milp")(values)
    np.testing.assert_array_equal((values * y).sum(axis=1), (values * y_milp).sum(axis=1))
    assert np.all(y @ weights.T <= capacity + 1e-12)


def test_searches_over_the_node_limit_are_handed_to_the_milp(monkeypatch):
    _, values, weights, capacity, solver = make_knapsack(
        20, deg=4, noise_width=0.5, random_state=4, return_solver=True)
    _, solved = knapsack_bnb_batch(
        values, np.rint(weights * 100), np.rint(capacity * 100), np.zeros(2), 5)
    assert not solved.any()  # 5 nodes are too few for any of them
    monkeypatch.setattr(_knapsack, "NODE_LIMIT", 5)
    y = solver(values)
    y_milp = Knapsack(weights=weights, capacity=capacity, method="milp")(values)
    np.testing.assert_array_equal((values * y).sum(axis=1), (values * y_milp).sum(axis=1))


def test_weightless_and_oversized_items():
    weights = np.array([[0.0, 2.5, 9.0, 1.5], [0.0, 1.0, 1.0, 3.0]])
    solver = Knapsack(weights=weights, capacity=[4.0, 3.5], method="bnb")
    # Item 0 weighs nothing (always taken if valuable), item 2 never fits.
    np.testing.assert_array_equal(solver([[1.0, 2.0, 100.0, 1.0]]), [[1.0, 1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(solver([[-1.0, -2.0, 5.0, -1.0]]), [[0.0, 0.0, 0.0, 0.0]])
