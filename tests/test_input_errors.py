"""Bad inputs that used to be accepted silently or failed with an unclear error.

Each test names the problem it guards against; the exception type and the
words of its message are both asserted.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from sk_perturbed import PerturbedStructuredClassifier
from sk_perturbed.datasets import make_shortest_path, make_warcraft_like
from sk_perturbed.perturbed import PerturbedOptimizer
from sk_perturbed.solvers import CallableSolver, DAGShortestPath, GridShortestPath, SpanningTree, TopK


def _fit(solver, X, Y, **params):
    params = {**dict(model="linear", n_samples=2, max_iter=2, random_state=0), **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return PerturbedStructuredClassifier(solver=solver, **params).fit(X, Y)


# ---------------------------------------------------------------------------
# Targets that are not structures of the solver (nor means of structures)
# ---------------------------------------------------------------------------
def _dag_paths():
    X, costs, paths = make_shortest_path(40, grid=(3, 4), random_state=0)
    return X, costs, paths


def test_dag_target_that_is_not_a_path_is_rejected_at_fit():
    X, _, paths = _dag_paths()
    Y = paths.copy()
    Y[3] = 0.0  # no arc at all: inside [0, 1], so the old box rule let it through
    with pytest.raises(ValueError, match=r"Y row 3 .*DAGShortestPath.*inflow - outflow at node 0"):
        _fit(DAGShortestPath(grid=(3, 4)), X, Y)


def test_dag_target_with_a_broken_path_names_the_node():
    solver = DAGShortestPath(grid=(3, 4))
    _, _, paths = _dag_paths()
    Y = paths[:4].copy()
    arcs = solver.arcs()
    on_path = np.flatnonzero(Y[2])
    Y[2, on_path[1]] = 0.0  # remove one arc: the flow stops at its tail
    tail = arcs[on_path[1], 0]
    with pytest.raises(ValueError, match=rf"Y row 2 .*node {tail} \(row {tail // 4}, column {tail % 4}\)"):
        solver._check_targets(Y)


def test_dag_targets_accept_paths_and_their_means():
    solver = DAGShortestPath(grid=(3, 4))
    _, costs, paths = _dag_paths()
    solver._check_targets(paths)
    means = PerturbedOptimizer(solver, n_samples=30, random_state=0)(costs)
    assert not np.all((means == 0) | (means == 1))
    solver._check_targets(means)  # the flow polytope is the convex hull: exact
    # A fractional row that conserves nothing is outside it.
    with pytest.raises(ValueError, match="Y row 1 .*unit flow"):
        solver._check_targets(np.vstack([means[0], np.full(paths.shape[1], 0.5)]))


@pytest.mark.parametrize("neighborhood", [4, 8])
def test_grid_target_that_is_not_a_path_is_rejected_at_fit(neighborhood):
    X, _, paths = make_warcraft_like(30, shape=(5, 5), random_state=0)
    solver = GridShortestPath(shape=(5, 5), neighborhood=neighborhood)
    paths = solver(make_warcraft_like(30, shape=(5, 5), random_state=0)[1])
    Y = paths.copy()
    Y[4] = 0.0
    with pytest.raises(ValueError, match=r"Y row 4 .*GridShortestPath.*cell 0 .*instead of 1"):
        _fit(solver, X.reshape(len(X), -1), Y, perturbation="multiplicative")


def _grid(cells, shape=(6, 6)):
    y = np.zeros(shape)
    for r, c in cells:
        y[r, c] = 1.0
    return y.ravel()


_TOP_THEN_RIGHT = [(0, c) for c in range(6)] + [(r, 5) for r in range(1, 6)]
# With diagonal moves the corner (0, 5) is a detour: cut it.
_TOP_THEN_RIGHT_8 = [(0, c) for c in range(5)] + [(r, 5) for r in range(1, 6)]
_GOOD_PATH = {4: _TOP_THEN_RIGHT, 8: _TOP_THEN_RIGHT_8}


@pytest.mark.parametrize(
    "neighborhood, cells, problem",
    [
        # A gap: cell (0, 3) missing, so (0, 2) is a dead end.
        (4, [rc for rc in _TOP_THEN_RIGHT if rc != (0, 3)], r"cell 2 \(row 0, column 2\) sum to 1"),
        # A diagonal step is not a 4-neighbour move.
        (4, [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5)], r"neighbours of cell 0 .*sum to 0"),
        # An L corner in the 8-neighbourhood: (0, 0) and (1, 1) touch, a shortcut.
        (8, [(0, 0), (0, 1), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5)], r"neighbours of cell 0 .*sum to 2"),
        (8, _TOP_THEN_RIGHT, r"cell 4 \(row 0, column 4\) touches 3 cells"),
        (8, _TOP_THEN_RIGHT_8 + [(1, 4)], r"cell 3 \(row 0, column 3\) touches 3 cells"),
        # The path plus a separate cycle: every degree is right, but it is not one path.
        (4, _TOP_THEN_RIGHT + [(3, 1), (3, 2), (4, 1), (4, 2)], r"cell 19 .* not connected"),
        (8, _TOP_THEN_RIGHT_8 + [(3, 1), (2, 2), (3, 3), (4, 2)], r"cell 14 .* not connected"),
    ],
)
def test_grid_target_rule_on_zero_one_rows_is_exact(neighborhood, cells, problem):
    solver = GridShortestPath(shape=(6, 6), neighborhood=neighborhood)
    good = _grid(_GOOD_PATH[neighborhood])
    solver._check_targets(good[None, :])
    with pytest.raises(ValueError, match=f"Y row 1 .*{problem}"):
        solver._check_targets(np.vstack([good, _grid(cells)]))


@pytest.mark.parametrize("neighborhood", [4, 8])
def test_grid_targets_accept_paths_and_their_means(neighborhood):
    solver = GridShortestPath(shape=(6, 6), neighborhood=neighborhood)
    costs = np.random.RandomState(0).uniform(0.1, 3.0, size=(300, 36))
    solver._check_targets(solver(costs))
    means = PerturbedOptimizer(solver, n_samples=20, perturbation="multiplicative",
                               random_state=0)(costs)
    solver._check_targets(means)


_TREE_EDGES = [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3), (0, 3)]


@pytest.mark.parametrize(
    "row, problem",
    [
        ([0, 0, 0, 0, 0, 0, 0], "sum to 0 instead of n_nodes - 1 = 5"),
        ([1, 1, 1, 1, 0, 0, 1], "the edges at node 5 sum to 0"),
        # Five edges that touch every node but hold the cycle 0-1-2: not a tree.
        ([1, 1, 1, 1, 1, 0, 0], "contain a cycle and leave node 3 unconnected"),
        ([1, 1, 0, 1, 1, 0, 1.5], r"edge 6 \(0, 3\) is 1.5, outside \[0, 1\]"),
    ],
)
@pytest.mark.parametrize("sense_of_data", ["max", "min"])
def test_spanning_tree_target_that_is_not_a_tree_is_rejected_at_fit(row, problem, sense_of_data):
    solver = SpanningTree(n_nodes=6, edges=_TREE_EDGES)
    rng = np.random.RandomState(0)
    weights = rng.randn(30, 7)
    # Trees of maximal weight, or of minimal weight (maximal for -weights): both are trees.
    Y = solver(weights if sense_of_data == "max" else -weights)
    Y[7] = row
    with pytest.raises(ValueError, match=f"Y row 7 .*SpanningTree.*{problem}"):
        _fit(solver, rng.randn(30, 3), Y)


def test_spanning_tree_targets_accept_trees_and_their_means():
    solver = SpanningTree(n_nodes=6, edges=_TREE_EDGES)
    weights = np.random.RandomState(0).randn(50, 7)
    solver._check_targets(np.vstack([solver(weights), solver(-weights)]))
    solver._check_targets(PerturbedOptimizer(solver, n_samples=20, random_state=0)(weights))


# ---------------------------------------------------------------------------
# A plain callable as solver=: its sense is inferred, or the fit asks for it
# ---------------------------------------------------------------------------
def _dag_path_function(costs):
    # A plain function that minimizes costs (it was read as a maximizer before).
    return DAGShortestPath(grid=(3, 4))(costs)


def test_plain_minimizing_callable_is_read_as_a_minimizer():
    X, costs, paths = make_shortest_path(40, n_features=5, grid=(3, 4), random_state=0)
    plain = _fit(_dag_path_function, X, paths, max_iter=3)
    assert plain.solver_.sense == "min"
    declared = _fit(CallableSolver(_dag_path_function, sense="min"), X, paths, max_iter=3)
    np.testing.assert_array_equal(plain.predict(X), declared.predict(X))
    np.testing.assert_allclose(plain.predict_scores(X), declared.predict_scores(X))


def test_plain_maximizing_callable_is_read_as_a_maximizer():
    X, _, _ = make_shortest_path(60, grid=(3, 4), random_state=0)
    Y = TopK(k=2)(np.random.RandomState(0).randn(60, 5))
    model = _fit(lambda theta: TopK(k=2)(theta), X, Y)
    assert model.solver_.sense == "max"


@pytest.mark.parametrize(
    "func, found",
    [
        (lambda theta: np.eye(theta.size)[0], "do not change with the scores"),
        # Argmax on the first half of the items, argmin on the second.
        (
            lambda theta: np.where(
                theta[:3].max() - 1.5 > 1.5 - theta[3:].min(),
                np.eye(6)[np.argmax(np.r_[theta[:3], np.full(3, -np.inf)])],
                np.eye(6)[np.argmin(np.r_[np.full(3, np.inf), theta[3:]])],
            ),
            "maximizer on some and as a minimizer on others",
        ),
    ],
)
def test_plain_callable_of_unknown_sense_asks_for_callable_solver(func, found):
    X = np.random.RandomState(0).randn(20, 3)
    Y = np.eye(6)[np.arange(20) % 6]
    with pytest.raises(ValueError, match=rf"Cannot tell .*{found}.*CallableSolver\(.*sense='max'"):
        _fit(func, X, Y)


# ---------------------------------------------------------------------------
# Parameters that cannot apply: nested solver parameters of a name, and
# n_item_features changed after fit
# ---------------------------------------------------------------------------
def test_nested_solver_parameter_of_a_solver_name_asks_for_a_solver_object():
    model = PerturbedStructuredClassifier(solver="topk")
    with pytest.raises(ValueError, match=r"solver__k: solver='topk' has no parameters.*solver=TopK\(k=\.\.\.\)"):
        model.set_params(solver__k=2)
    assert model.solver == "topk"
    with pytest.raises(ValueError, match=r"solver=CallableSolver\(func, sense=\.\.\.\)"):
        PerturbedStructuredClassifier(solver=_dag_path_function).set_params(solver__sense="min")
    # With a solver object, in the same call or before, the nested parameter applies.
    assert model.set_params(solver=TopK(), solver__k=2).solver.k == 2
    assert model.set_params(solver__k=3).solver.k == 3


def test_nested_solver_parameter_in_a_grid_search_over_a_name_is_named():
    from sklearn.model_selection import GridSearchCV

    X = np.random.RandomState(0).randn(30, 4)
    Y = TopK(k=2)(X)
    search = GridSearchCV(PerturbedStructuredClassifier(solver="topk", max_iter=1),
                          {"solver__k": [2]}, cv=2, error_score="raise")
    with pytest.raises(ValueError, match=r"solver=TopK\(k=\.\.\.\)"):
        search.fit(X, Y)


@pytest.mark.parametrize("estimator", ["ranker", "classifier"])
@pytest.mark.parametrize("fitted_with, set_to", [(3, 2), (3, 4), (3, None), (None, 3)])
def test_n_item_features_changed_after_fit_is_named_at_predict(estimator, fitted_with, set_to):
    from sk_perturbed import PerturbedRankingRegressor

    rng = np.random.RandomState(0)
    X, scores = rng.randn(40, 12), rng.randn(40, 4)
    if estimator == "ranker":
        model = PerturbedRankingRegressor(n_item_features=fitted_with, max_iter=1, model="linear")
        Y = scores
    else:
        model = PerturbedStructuredClassifier(solver=TopK(k=2), n_item_features=fitted_with,
                                              max_iter=1, model="linear")
        Y = TopK(k=2)(scores)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, Y)
    expected = model.predict(X)
    model.set_params(n_item_features=set_to)
    message = (rf"n_item_features={set_to!r} was set after fitting, but the model was fitted "
               rf"with n_item_features={fitted_with!r}")
    for method in (model.predict, model.predict_scores, model.predict_marginals):
        with pytest.raises(ValueError, match=message):
            method(X)
    model.set_params(n_item_features=fitted_with)
    np.testing.assert_array_equal(model.predict(X), expected)


# ---------------------------------------------------------------------------
# A huge n_samples with a Python solver: named before allocating
# ---------------------------------------------------------------------------
def _batched_top2(theta):
    return TopK(k=2)(theta)


@pytest.mark.parametrize("batched", [True, False])
def test_huge_n_samples_with_a_python_solver_names_n_samples(batched):
    solver = CallableSolver(_batched_top2 if batched else lambda t: TopK(k=2)(t[None])[0],
                            batched=batched)
    theta = np.random.RandomState(0).randn(3, 5)
    po = PerturbedOptimizer(solver, n_samples=10**12, random_state=0)
    # 4 arrays x 8 bytes x 3 rows x 1e12 samples x 5 = 4.8e14 bytes.
    with pytest.raises(MemoryError, match=r"n_samples=1000000000000 .*need about 4.47e\+05 GiB"
                                          r".*Lower n_samples"):
        po(theta)
    X = np.random.RandomState(1).randn(20, 3)
    model = PerturbedStructuredClassifier(solver=solver, n_samples=10**12, max_iter=1)
    with pytest.raises(MemoryError, match=r"n_samples=1000000000000 .*batch_size"):
        model.fit(X, TopK(k=2)(np.random.RandomState(2).randn(20, 5)))


def test_memory_check_compares_with_the_available_bytes():
    from sk_perturbed._memory import check_perturbed_batch_memory

    check_perturbed_batch_memory(10, 100, 5, available=4 * 8 * 10 * 100 * 5)  # just fits
    with pytest.raises(MemoryError, match=r"n_samples=100 perturbations of 10 rows of dimension 5"):
        check_perturbed_batch_memory(10, 100, 5, available=4 * 8 * 10 * 100 * 5 - 1)


# ---------------------------------------------------------------------------
# A solver that returns a non-integer structure at predict
# ---------------------------------------------------------------------------
def _half_top2(theta):
    return 0.5 * TopK(k=2)(theta[None])[0]  # a fractional "structure"


def test_predict_refuses_to_round_a_fractional_structure():
    rng = np.random.RandomState(0)
    X = rng.randn(30, 3)
    Y = 0.5 * TopK(k=2)(rng.randn(30, 5))
    model = _fit(CallableSolver(_half_top2, sense="max"), X, Y)
    with pytest.raises(ValueError, match=r"non-integer entries for sample 0 .*rounding would"):
        model.predict(X)
    np.testing.assert_allclose(model.solver_(model.predict_scores(X)).sum(axis=1), 1.0)
