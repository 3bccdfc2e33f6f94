"""Multi-dimensional and decimal-weight 0/1 knapsack: dynamic program and MILP fallback."""

import itertools
import pickle

import numpy as np
import pytest
from sklearn.base import clone

from sk_perturbed.datasets import make_knapsack
from sk_perturbed.perturbed import PerturbedOptimizer
from sk_perturbed.solvers import Knapsack
from sk_perturbed.solvers._knapsack import (
    KNAPSACK_ID,
    MULTI_KNAPSACK_ID,
    _multi_knapsack_batch,
)


def _brute_force(values, weights, capacity):
    """Tie rule: the lexicographically largest optimal set of positive items."""
    weights = np.atleast_2d(weights)
    best_value, best = -np.inf, None
    # Indicators in decreasing lexicographic order: the first optimum found is
    # the lexicographically largest.
    for y in itertools.product((1.0, 0.0), repeat=len(values)):
        y = np.array(y)
        if (y * (values <= 0)).any() or (weights @ y > capacity).any():
            continue
        if y @ values > best_value:
            best_value, best = y @ values, y
    return best


def _objective(theta, y):
    return np.einsum("nd,nd->n", theta, y)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_dynamic_program_equals_brute_force_with_its_tie_rule(k):
    rng = np.random.default_rng(k)
    for _ in range(60):
        d = int(rng.integers(1, 9))
        weights = rng.integers(0, 6, (k, d))
        capacity = rng.integers(0, 12, k)
        # Small integer values: many ties, which the rule must break.
        values = rng.integers(-1, 4, d).astype(float)
        solver = Knapsack(weights=weights, capacity=capacity, method="dp")
        np.testing.assert_array_equal(
            solver(values), _brute_force(values, weights, capacity),
            err_msg=f"weights={weights.tolist()}, capacity={capacity.tolist()}, {values}",
        )


def test_tie_rule_prefers_lower_index_items():
    # Items 0+1 and item 2 have the same value and both fit: 0 and 1 are taken.
    solver = Knapsack(weights=[[2, 2, 4], [1, 1, 2]], capacity=[4, 2], method="dp")
    np.testing.assert_array_equal(solver([[1.0, 1.0, 2.0]]), [[1.0, 1.0, 0.0]])
    # Item 0 (value 0) is never taken; items 1 and 2 tie and do not fit together.
    np.testing.assert_array_equal(solver([[0.0, 1.0, 1.0]]), [[0.0, 1.0, 0.0]])


def test_multi_kernel_row_function_directly():
    solver = Knapsack(weights=[[3, 4, 2, 5], [2, 1, 3, 1]], capacity=[7, 3])
    spec = solver._multi_knapsack_spec()
    assert spec[0] == MULTI_KNAPSACK_ID == 8
    values = np.array([[4.0, 5.0, 3.0, 7.0], [1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(
        _multi_knapsack_batch(values, spec[1], spec[2]),
        [_brute_force(v, solver.weights, solver.capacity) for v in values],
    )


@pytest.mark.parametrize("k", [2, 3])
def test_dynamic_program_equals_milp(k):
    rng = np.random.default_rng(10 + k)
    weights = rng.integers(1, 10, (k, 14))
    capacity = rng.integers(10, 30, k)
    theta = rng.uniform(-1.0, 5.0, (25, 14))
    dp = Knapsack(weights=weights, capacity=capacity, method="dp")
    milp = Knapsack(weights=weights, capacity=capacity, method="milp")
    y_dp, y_milp = dp(theta), milp(theta)
    np.testing.assert_allclose(_objective(theta, y_dp), _objective(theta, y_milp), atol=1e-9)
    np.testing.assert_array_equal(y_dp, y_milp)  # continuous values: unique optima
    assert ((y_milp @ weights.T) <= capacity).all()


def test_pyepo_like_instance():
    # PyEPO's knapsack: 32 items, 2 dimensions, weights 3.00-7.99, capacity 20.
    _X, costs, weights, capacity = make_knapsack(3, n_items=32, dim=2, deg=4, noise_width=0.5)
    auto = Knapsack(weights=weights, capacity=capacity)
    assert auto._plan()[0] == "bnb"  # a 2001 x 2001 table: the branch and bound is faster
    dp = clone(auto).set_params(method="dp")
    assert dp._plan()[0] == "dpk"
    y_auto, y_dp = auto(costs), dp(costs)
    # Integer values tie often; the optimal values agree.
    np.testing.assert_allclose(_objective(costs, y_auto), _objective(costs, y_dp), atol=1e-9)
    for y in (y_auto, y_dp):
        assert ((y @ weights.T) <= capacity + 1e-12).all()
    # Continuous values: unique optima, the same sets.
    theta = costs + np.random.default_rng(0).uniform(0, 0.1, costs.shape)
    np.testing.assert_array_equal(auto(theta), dp(theta))


# --------------------------------------------------------------------------
# Decimal weights, plans
# --------------------------------------------------------------------------


def test_decimal_weights_are_scaled_to_integers():
    rng = np.random.default_rng(20)
    int_weights = rng.integers(1, 80, (2, 10))
    theta = rng.uniform(0, 3, (20, 10))
    decimal = Knapsack(weights=int_weights / 10, capacity=[12.5, 13.0])
    integer = Knapsack(weights=int_weights, capacity=[125, 130])
    assert decimal._plan()[0] == "dpk"
    np.testing.assert_array_equal(decimal(theta), integer(theta))
    # A capacity between units is floored: the loads are multiples of 0.1.
    np.testing.assert_array_equal(clone(decimal).set_params(capacity=[12.57, 13.0])(theta),
                                  integer(theta))
    # 1-D decimals go through the fused 1-D kernel.
    one_d = Knapsack(weights=[0.5, 1.25, 0.75], capacity=1.5)
    assert one_d._numba_spec()[0] == KNAPSACK_ID
    np.testing.assert_array_equal(one_d([[1.0, 2.0, 1.5]]), [[1.0, 0.0, 1.0]])


def test_non_decimal_weights_use_the_branch_and_bound():
    weights = np.array([[1 / 3, 2 / 3, 1.0], [1.0, 1.0, 1.0]])
    solver = Knapsack(weights=weights, capacity=[1.0, 2.0])
    assert solver._plan()[0] == "bnb" and solver._numba_spec() is None
    np.testing.assert_array_equal(solver([[1.0, 1.5, 2.0]]), [[1.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="method='dp' needs weights that are multiples"):
        clone(solver).set_params(method="dp")([[1.0, 1.5, 2.0]])


def test_plans_and_the_one_dimensional_spec():
    # k = 1: the existing spec (gcd-reduced weights, capacity capped at the total).
    spec = Knapsack(weights=[4, 6, 2], capacity=30)._numba_spec()
    assert spec[0] == KNAPSACK_ID
    np.testing.assert_array_equal(spec[2], [6, 2, 3, 1])
    # A constraint that every set satisfies is dropped: the 1-D kernel remains.
    two = Knapsack(weights=[[4, 6, 2], [1, 1, 1]], capacity=[5, 3])
    assert two._plan()[0] == "dp1"
    values = np.array([2.0, 3.0, 1.5])
    np.testing.assert_array_equal(two(values), _brute_force(values, two.weights, [5, 3]))
    # No binding constraint: every positive item is taken.
    loose = Knapsack(weights=[[1, 1], [2, 2]], capacity=[5, 5])
    np.testing.assert_array_equal(loose([[1.0, -1.0]]), [[1.0, 0.0]])
    # A table beyond the budget: the branch and bound in 'auto', an error with 'dp'.
    huge = Knapsack(weights=[[10**6, 1, 10**6 - 7], [10**6, 3, 5]], capacity=[10**6, 10**6])
    assert huge._plan()[0] == "bnb"
    np.testing.assert_array_equal(huge([[1.0, 1.0, 1.0]]), [[0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="dynamic program needs"):
        clone(huge).set_params(method="dp")([[1.0, 1.0, 1.0]])
    # The branch and bound solves it in exact integer loads; HiGHS, within its
    # tolerances, answers over capacity by 1 in 10**12, which is caught exactly
    # and refused.
    big_1d = Knapsack(weights=[10**12, 1, 10**12 - 7], capacity=10**12)
    assert big_1d._numba_spec() is None
    np.testing.assert_array_equal(big_1d([[1.0, 1.0, 1.0]]), [[0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="over capacity for row 0"):
        clone(big_1d).set_params(method="milp")([[1.0, 1.0, 1.0]])


def test_milp_never_takes_non_positive_items():
    solver = Knapsack(weights=[[1, 1, 1], [1, 2, 3]], capacity=[3, 6], method="milp")
    np.testing.assert_array_equal(solver([[0.0, -1.0, 2.0], [1.0, 0.0, 0.0]]),
                                  [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


# --------------------------------------------------------------------------
# Validation, targets, pickling, perturbed optimizer
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, match",
    [
        ({"weights": [[1, 2]], "capacity": 3}, "weights must be a 1-D array for a scalar capacity"),
        ({"weights": [[1, 2], [3, 4]], "capacity": [3]}, r"capacity of shape \(k,\) = \(2,\)"),
        ({"weights": [1, 2], "capacity": [3, 4]}, "capacity must be a scalar with 1-D weights"),
        ({"weights": np.ones((2, 2, 2)), "capacity": [1, 1]}, "2-D array"),
        ({"weights": [[1, -2], [1, 1]], "capacity": [3, 3]}, "weights must be >= 0"),
        ({"weights": [[1, 2], [1, 1]], "capacity": [3, -1]}, "capacity must be >= 0"),
        ({"weights": [[1, np.nan]], "capacity": [3]}, "weights must be finite"),
        ({"weights": [1, 2], "capacity": np.inf}, "capacity must be finite"),
        ({"weights": [["a", "b"]], "capacity": [3]}, "weights must contain integers or decimal"),
        ({"weights": np.ones((0, 3)), "capacity": np.ones(0)}, "at least one constraint"),
        ({"weights": [1, 2], "capacity": 3, "method": "greedy"}, "method must be 'auto', 'dp'"),
        ({"weights": [1, 2], "capacity": 3, "n_jobs": 0}, "n_jobs must be None or a non-zero"),
    ],
    ids=repr,
)
def test_invalid_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        Knapsack(**params)(np.ones((1, 2)))


def test_dimension_and_target_rule():
    solver = Knapsack(weights=[[3, 4, 2], [1, 1, 5]], capacity=[7, 5])
    assert solver.dimension() == 3
    solver._check_targets(np.array([[1.0, 1.0, 0.0], [0.5, 0.5, 0.5]]))
    with pytest.raises(ValueError, match="Y row 1 .* weights @ y <= capacity in every dimension"):
        solver._check_targets(np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))  # 6 > 5 in dim 2
    with pytest.raises(ValueError, match="Knapsack expects θ with 3 columns"):
        solver(np.ones((1, 4)))


def test_pickle_clone_and_thread_fallback():
    rng = np.random.default_rng(30)
    weights = rng.integers(300, 800, (2, 12)) / 100
    theta = rng.uniform(0, 5, (10, 12))
    solver = Knapsack(weights=weights, capacity=[15, 15], method="milp")
    y = solver(theta)
    assert "_milp_cache" in solver.__dict__ and "_milp_cache" not in solver.__getstate__()
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(solver))(theta), y)
    np.testing.assert_array_equal(clone(solver).set_params(n_jobs=2)(theta), y)
    # set_params drops the cached MILP.
    tighter = clone(solver).set_params(capacity=[5, 5])
    solver.set_params(capacity=[5, 5])
    np.testing.assert_array_equal(solver(theta), tighter(theta))


def test_perturbed_optimizer_on_a_multi_dimensional_knapsack():
    rng = np.random.default_rng(40)
    solver = Knapsack(weights=rng.integers(1, 6, (2, 8)), capacity=[10, 10])
    theta = rng.uniform(0, 2, (3, 8))
    po = PerturbedOptimizer(solver, n_samples=5, random_state=0)
    y_eps = po(theta)
    assert y_eps.shape == (3, 8) and ((0 <= y_eps) & (y_eps <= 1)).all()
    milp = PerturbedOptimizer(clone(solver).set_params(method="milp"), n_samples=5,
                              random_state=0)
    np.testing.assert_allclose(milp(theta), y_eps, atol=1e-12)  # same noise, same optima
