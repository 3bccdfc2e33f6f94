"""LinearProgram (HiGHS through SciPy) against the built-in numba solvers."""

import pickle

import numpy as np
import pytest
from scipy import sparse
from scipy.optimize import Bounds
from sklearn.base import clone

import sk_perturbed.solvers._linear_program as lp_module
from sk_perturbed.perturbed import PerturbedOptimizer
from sk_perturbed.solvers import (
    Argmax,
    Assignment,
    DAGShortestPath,
    Knapsack,
    LinearProgram,
)


def _flow_lp(grid, **kwargs):
    """Shortest path on the grid DAG as a unit flow from node 0 to the last node."""
    arcs = DAGShortestPath(grid=grid).arcs()
    n_nodes, n_arcs = grid[0] * grid[1], len(arcs)
    incidence = np.zeros((n_nodes, n_arcs))  # in-flow minus out-flow
    incidence[arcs[:, 0], np.arange(n_arcs)] = -1.0
    incidence[arcs[:, 1], np.arange(n_arcs)] = 1.0
    b = np.zeros(n_nodes)
    b[0], b[-1] = -1.0, 1.0
    return LinearProgram(n_arcs, A_eq=incidence, b_eq=b, bounds=(0, 1), **kwargs)


def _assignment_lp(n):
    """Doubly stochastic n x n matrices (the Birkhoff polytope), flattened row-major."""
    rows = np.kron(np.eye(n), np.ones(n))  # sum_j x_ij = 1
    cols = np.kron(np.ones(n), np.eye(n))  # sum_i x_ij = 1
    return LinearProgram((n, n), A_eq=np.vstack([rows, cols]), b_eq=np.ones(2 * n))


def _knapsack_milp(weights, capacity, **kwargs):
    weights = np.atleast_2d(weights)
    return LinearProgram(weights.shape[1], A_ub=weights, b_ub=np.atleast_1d(capacity),
                         bounds=(0, 1), integrality=1, sense="max", **kwargs)


def _objective(theta, y):
    return np.einsum("nd,nd->n", theta, y)


# --------------------------------------------------------------------------
# Equal to the dedicated solvers
# --------------------------------------------------------------------------


def test_flow_lp_equals_dag_shortest_path():
    rng = np.random.default_rng(0)
    theta = rng.uniform(0.1, 1.0, (60, 40))
    y_lp = _flow_lp((5, 5))(theta)
    y_dag = DAGShortestPath(grid=(5, 5))(theta)
    np.testing.assert_allclose(_objective(theta, y_lp), _objective(theta, y_dag), atol=1e-9)
    # Continuous random costs: the shortest path is unique, and the LP's
    # vertex is returned as an exact 0/1 path.
    np.testing.assert_array_equal(y_lp, y_dag)
    # Negative costs are fine too (a DAG has no negative cycles).
    theta = rng.normal(size=(20, 40))
    np.testing.assert_array_equal(_flow_lp((5, 5))(theta), DAGShortestPath(grid=(5, 5))(theta))


def test_milp_equals_knapsack_dynamic_program():
    rng = np.random.default_rng(1)
    weights = rng.integers(1, 10, 12)
    capacity = 25
    theta = rng.uniform(-1.0, 5.0, (40, 12))
    y_dp = Knapsack(weights=weights, capacity=capacity)(theta)
    y_lp = _knapsack_milp(weights, capacity)(theta)
    np.testing.assert_allclose(_objective(theta, y_lp), _objective(theta, y_dp), atol=1e-9)
    # Unique optima (continuous values); a negative item is never optimal.
    np.testing.assert_array_equal(y_lp, y_dp)


def test_birkhoff_lp_equals_assignment():
    rng = np.random.default_rng(2)
    n = 5
    theta = rng.normal(size=(30, n * n))
    y_lp = _assignment_lp(n)(theta)
    y_hungarian = Assignment(n=n)(theta)
    np.testing.assert_allclose(_objective(theta, y_lp), _objective(theta, y_hungarian), atol=1e-9)
    np.testing.assert_array_equal(y_lp, y_hungarian)


def test_simplex_lp_equals_argmax():
    rng = np.random.default_rng(3)
    theta = rng.normal(size=(50, 7))
    simplex = LinearProgram(7, A_eq=np.ones((1, 7)), b_eq=[1.0], sense="max")
    np.testing.assert_array_equal(simplex(theta), Argmax()(theta))


def test_solutions_are_exact_integers():
    rng = np.random.default_rng(4)
    y = _flow_lp((4, 6))(rng.uniform(0.1, 1.0, (20, 38)))
    assert np.array_equal(y, np.round(y)) and not np.signbit(y).any()
    y = _knapsack_milp([3, 4, 2, 5, 1], 7)(rng.uniform(0, 5, (20, 5)))
    assert np.array_equal(y, np.round(y)) and not np.signbit(y).any()


def test_public_milp_path_gives_the_same_answers(monkeypatch):
    rng = np.random.default_rng(5)
    theta_lp = rng.uniform(0.1, 1.0, (15, 24))
    theta_milp = rng.uniform(0.0, 5.0, (15, 8))
    weights = rng.integers(1, 6, (2, 8))
    fast = (_flow_lp((4, 4))(theta_lp), _knapsack_milp(weights, [8, 9])(theta_milp))
    monkeypatch.setattr(lp_module, "_USE_HIGHS_CORE", False)
    public = (_flow_lp((4, 4))(theta_lp), _knapsack_milp(weights, [8, 9])(theta_milp))
    np.testing.assert_array_equal(fast[0], public[0])
    np.testing.assert_allclose(_objective(theta_milp, fast[1]),
                               _objective(theta_milp, public[1]), atol=1e-9)


# --------------------------------------------------------------------------
# Parameters: formats, errors
# --------------------------------------------------------------------------


def test_sparse_matrices_bounds_formats_and_c_shape():
    rng = np.random.default_rng(6)
    theta = rng.normal(size=(10, 9))
    dense = _assignment_lp(3)
    reference = dense(theta)
    as_sparse = clone(dense).set_params(A_eq=sparse.csr_matrix(dense.A_eq))
    np.testing.assert_array_equal(as_sparse(theta), reference)
    for bounds in [(0, None), Bounds(np.zeros(9), np.full(9, np.inf)), [(0, None)] * 9, None]:
        np.testing.assert_array_equal(clone(dense).set_params(bounds=bounds)(theta), reference)
    assert dense.dimension() == 9 and LinearProgram(4).dimension() == 4
    # Per-variable bounds shift the answer: x_0 in [0.25, 0.5] of a unit simplex.
    lp = LinearProgram(2, A_eq=[[1, 1]], b_eq=[1], bounds=[(0.25, 0.5), (0, None)])
    np.testing.assert_array_equal(lp([[-1.0, 0.0], [1.0, 0.0]]), [[0.5, 0.5], [0.25, 0.75]])


def test_infeasible_model_fails_at_first_use():
    lp = LinearProgram(2, A_eq=[[1, 1]], b_eq=[-1])  # x >= 0 cannot sum to -1
    with pytest.raises(ValueError, match=r"problem is infeasible \(HiGHS status kInfeasible"):
        lp(np.ones((3, 2)))
    with pytest.raises(ValueError, match="infeasible"):
        _knapsack_milp([2, 2], 1).set_params(b_ub=[-1.0])(np.ones((1, 2)))


def test_unbounded_row_is_named():
    lp = LinearProgram(2, A_ub=[[1, -1]], b_ub=[1])  # x_1 can grow without bound
    with pytest.raises(ValueError, match="unbounded .* for row 1 of the batch.*Bound the"):
        lp([[1.0, 1.0], [1.0, -1.0]])


def test_time_limit_reached_is_an_error():
    weights = np.random.RandomState(0).randint(300, 800, (5, 60)) / 100
    lp = _knapsack_milp(weights, [30] * 5, time_limit=1e-9)
    with pytest.raises(ValueError, match="time_limit"):
        lp(np.ones((1, 60)))
    failure = lp_module._Failure("limit", "kTimeLimit", 4)
    assert "without a proven optimum (HiGHS status kTimeLimit) for row 4" in str(
        lp._failure_error(failure))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"c_shape": 0}, "c_shape must be >= 1"),
        ({"c_shape": "3"}, "c_shape must be a positive int"),
        ({"c_shape": 3, "A_ub": np.ones((2, 4)), "b_ub": [1, 1]}, r"A_ub must have d = 3 columns"),
        ({"c_shape": 3, "A_ub": np.ones((2, 3)), "b_ub": [1, 1, 1]}, r"b_ub must have shape \(2,\)"),
        ({"c_shape": 3, "A_ub": np.ones((2, 3))}, "A_ub is given without b_ub"),
        ({"c_shape": 3, "b_eq": [1]}, "b_eq is given without A_eq"),
        ({"c_shape": 3, "A_eq": np.ones((1, 3)), "b_eq": [np.inf]}, "b_eq contains NaN or infinite"),
        ({"c_shape": 3, "A_eq": [[1, np.nan, 0]], "b_eq": [1]}, "A_eq contains NaN"),
        ({"c_shape": 3, "A_ub": np.ones((2, 2, 3)), "b_ub": [1, 1]}, "A_ub must be a 2-D matrix"),
        ({"c_shape": 3, "bounds": (0, 1, 2)}, "bounds must be a pair"),
        ({"c_shape": 3, "bounds": (np.zeros(3), np.ones(3))}, "use scipy.optimize.Bounds"),
        ({"c_shape": 3, "bounds": [(0, 1)] * 2}, r"shape \(d, 2\)"),
        ({"c_shape": 3, "bounds": (2, 1)}, "bounds of variable 0 are empty"),
        ({"c_shape": 3, "bounds": Bounds(0, [1, 1])}, "a vector of length d = 3"),
        ({"c_shape": 3, "integrality": [1, 0]}, "integrality must be None, 0, 1 or a vector"),
        ({"c_shape": 3, "integrality": 2}, "semi-continuous"),
        ({"c_shape": 3, "sense": "maximize"}, "sense must be 'min' or 'max'"),
        ({"c_shape": 3, "pool": "fork"}, "pool must be 'thread' or 'process'"),
        ({"c_shape": 3, "n_jobs": 0}, "n_jobs must be None or a non-zero integer"),
        ({"c_shape": 3, "time_limit": -1}, "time_limit must be None or a positive"),
        ({"c_shape": 3, "options": {"no_such_option": 1}}, "HiGHS rejected the option"),
        ({"c_shape": 3, "options": {"time_limit": 1}}, "through the parameters"),
    ],
    ids=repr,
)
def test_invalid_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        LinearProgram(**params)(np.ones((1, 3)))


def test_wrong_number_of_columns():
    with pytest.raises(ValueError, match="LinearProgram expects θ with 4 columns"):
        LinearProgram((2, 2))(np.ones((1, 5)))


def test_target_rule_is_the_lp_relaxation():
    lp = _flow_lp((3, 3))
    paths = DAGShortestPath(grid=(3, 3))(np.random.default_rng(7).uniform(size=(4, 12)))
    lp._check_targets(np.vstack([paths, paths.mean(axis=0)]))  # structures and their mean
    broken = paths[:1].copy()
    broken[0, np.flatnonzero(broken[0])[0]] = 0.0  # breaks flow conservation
    with pytest.raises(ValueError, match="Y row 0 .* A_ub y <= b_ub, A_eq y = b_eq"):
        lp._check_targets(broken)
    knapsack = _knapsack_milp([3, 4], 5)
    knapsack._check_targets(np.array([[1.0, 0.5]]))  # 3 + 2 = 5: on the boundary
    with pytest.raises(ValueError, match="Y row 1"):
        knapsack._check_targets(np.array([[1.0, 0.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="Y row 0"):
        knapsack._check_targets(np.array([[1.5, 0.0]]))  # outside the bounds


# --------------------------------------------------------------------------
# Pools, pickling, the perturbed optimizer
# --------------------------------------------------------------------------


def test_thread_and_process_pools_give_identical_results():
    rng = np.random.default_rng(8)
    weights = rng.integers(300, 800, (2, 16)) / 100
    theta = np.round(rng.uniform(1, 10, (24, 16)))  # integer values: many ties
    serial = _knapsack_milp(weights, [12, 12])
    threads = clone(serial).set_params(n_jobs=2)
    processes = clone(serial).set_params(n_jobs=2, pool="process")
    y = serial(theta)
    np.testing.assert_array_equal(threads(theta), y)
    np.testing.assert_array_equal(processes(theta), y)
    # The answer of a row does not depend on the rows solved before it.
    np.testing.assert_array_equal(serial(theta[::-1]), y[::-1])
    theta = rng.uniform(0.1, 1.0, (30, 24))
    flow = _flow_lp((4, 4))
    np.testing.assert_array_equal(clone(flow).set_params(n_jobs=2, pool="process")(theta),
                                  flow(theta))


def test_process_pool_reports_errors_by_row():
    lp = LinearProgram(2, A_ub=[[1, -1]], b_ub=[1], n_jobs=2, pool="process")
    theta = np.ones((8, 2))
    theta[6, 1] = -1.0
    with pytest.raises(ValueError, match="unbounded .* for row 6 of the batch"):
        lp(theta)


def test_pickle_and_clone_round_trip():
    rng = np.random.default_rng(9)
    theta = rng.uniform(0.1, 1.0, (5, 24))
    lp = _flow_lp((4, 4))
    y = lp(theta)  # builds and caches the model
    assert "_model_cache" in lp.__dict__
    state = lp.__getstate__()
    assert "_model_cache" not in state
    restored = pickle.loads(pickle.dumps(lp))
    np.testing.assert_array_equal(restored(theta), y)
    cloned = clone(lp)
    assert cloned.get_params().keys() == lp.get_params().keys()
    np.testing.assert_array_equal(cloned(theta), y)
    # set_params rebuilds the model: a different sense gives the longest path.
    longest = clone(lp).set_params(sense="max")(theta)
    np.testing.assert_array_equal(longest, DAGShortestPath(grid=(4, 4))(-theta))


def test_perturbed_optimizer_matches_the_dag_solver():
    rng = np.random.default_rng(10)
    theta = rng.uniform(0.5, 1.5, (3, 40))
    po_lp = PerturbedOptimizer(_flow_lp((5, 5)), n_samples=5, random_state=0)
    po_dag = PerturbedOptimizer(DAGShortestPath(grid=(5, 5)), n_samples=5, random_state=0)
    np.testing.assert_allclose(po_lp(theta), po_dag(theta), atol=1e-12)
    np.testing.assert_allclose(po_lp.expected_max(theta), po_dag.expected_max(theta), atol=1e-12)
    v = rng.normal(size=theta.shape)
    np.testing.assert_allclose(po_lp.vjp(theta, v), po_dag.vjp(theta, v), atol=1e-10)
