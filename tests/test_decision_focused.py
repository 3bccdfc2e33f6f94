"""DecisionFocusedRegressor and the SPO+ loss."""

import itertools
import pickle

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_perturbed import DecisionFocusedRegressor
from sk_perturbed._decision import _decision_targets, _OnDecisions, _preferred_optima, _SPOPlusLoss
from sk_perturbed.datasets import make_knapsack, make_shortest_path
from sk_perturbed.metrics import normalized_regret
from sk_perturbed.perturbed import spo_plus_loss
from sk_perturbed.solvers import (
    CallableSolver,
    DAGShortestPath,
    GridShortestPath,
    Knapsack,
    LinearProgram,
)

# A small polytope given by its vertices: every 0/1 vector of length 4 with
# at most 2 ones. Brute force over them is the reference solver.
VERTICES = np.array([v for v in itertools.product([0, 1], repeat=4) if sum(v) <= 2], float)


def brute_min(C):
    return VERTICES[np.argmin(C @ VERTICES.T, axis=1)]


def brute_max(V):
    return VERTICES[np.argmax(V @ VERTICES.T, axis=1)]


MIN_SOLVER = CallableSolver(brute_min, batched=True, sense="min")
MAX_SOLVER = CallableSolver(brute_max, batched=True, sense="max")


def spo_plus_reference(c_hat, c):
    """SPO+ of Elmachtoub & Grigas for costs, from the formula, by enumeration."""
    y_true = brute_min(c[None])[0]
    z_true = c @ y_true
    return -np.min(VERTICES @ (2 * c_hat - c)) + 2 * c_hat @ y_true - z_true


# ------------------------------------------------------------------ SPO+ loss
def test_spo_plus_value_matches_the_formula_and_bounds_the_regret():
    rng = np.random.default_rng(0)
    c_hat, c = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    loss, _ = spo_plus_loss(c_hat, c, MIN_SOLVER)
    expected = [spo_plus_reference(a, b) for a, b in zip(c_hat, c)]
    np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-12)
    # A convex upper bound of the regret <c, y*(ĉ)> - z*(c), zero at ĉ = c.
    regret = np.einsum("ij,ij->i", c, brute_min(c_hat) - brute_min(c))
    assert np.all(loss >= regret - 1e-12)
    np.testing.assert_allclose(spo_plus_loss(c, c, MIN_SOLVER)[0], 0.0, atol=1e-12)


def test_spo_plus_gradient_is_a_subgradient():
    # Convexity: L(θ') >= L(θ) + <g, θ' - θ> for every θ'.
    rng = np.random.default_rng(1)
    c = rng.normal(size=(1, 4))
    theta = rng.normal(size=(1, 4))
    loss, grad = spo_plus_loss(theta, c, MIN_SOLVER)
    np.testing.assert_allclose(grad, 2 * (brute_min(c) - brute_min(2 * theta - c)))
    others = theta + rng.normal(size=(200, 4))
    other_loss, _ = spo_plus_loss(others, np.repeat(c, 200, axis=0), MIN_SOLVER)
    assert np.all(other_loss >= loss + (others - theta) @ grad[0] - 1e-12)


def test_spo_plus_of_a_maximizing_solver_is_that_of_the_negated_costs():
    rng = np.random.default_rng(2)
    v_hat, v = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    loss_max, grad_max = spo_plus_loss(v_hat, v, MAX_SOLVER)
    loss_min, grad_min = spo_plus_loss(-v_hat, -v, MIN_SOLVER)
    np.testing.assert_allclose(loss_max, loss_min, atol=1e-12)
    np.testing.assert_allclose(grad_max, -grad_min, atol=1e-12)  # chain rule of θ -> -θ
    y_true = brute_max(v)
    np.testing.assert_allclose(spo_plus_loss(v_hat, v, MAX_SOLVER, y_true=y_true)[0], loss_max)


def test_spo_plus_loss_bad_inputs():
    with pytest.raises(ValueError, match="c must have the shape"):
        spo_plus_loss(np.zeros((2, 4)), np.zeros((2, 3)), MIN_SOLVER)
    with pytest.raises(ValueError, match="NaN"):
        spo_plus_loss(np.zeros((2, 4)), np.full((2, 4), np.nan), MIN_SOLVER)
    with pytest.raises(ValueError, match="solver object"):
        spo_plus_loss(np.zeros((2, 4)), np.zeros((2, 4)), brute_min)


# ------------------------------------------------------------------ estimator
@pytest.fixture(scope="module")
def paths():
    X, C, _ = make_shortest_path(600, deg=4, noise_width=0.5, random_state=0)
    return X[:400], C[:400], X[400:], C[400:]


@pytest.mark.parametrize(
    "loss", ["spo_plus", "fenchel_young", "squared", "perturbed_squared", "blackbox"]
)
def test_every_loss_learns_better_decisions_than_the_initial_model(paths, loss):
    X, C, X_test, C_test = paths
    solver = DAGShortestPath(grid=(5, 5))
    kwargs = dict(loss=loss, random_state=0, max_iter=15)
    if loss == "blackbox":
        kwargs["blackbox_lambda"] = 1.0
    untrained = DecisionFocusedRegressor(solver, **{**kwargs, "max_iter": 1,
                                                    "learning_rate_init": 1e-6})
    model = DecisionFocusedRegressor(solver, **kwargs)
    with pytest.warns(Warning):  # ConvergenceWarning at max_iter
        untrained.fit(X, C)
        model.fit(X, C)
    assert model.score(X_test, C_test) > untrained.score(X_test, C_test) + 0.05
    paths_pred = model.predict(X_test)
    assert paths_pred.shape == C_test.shape
    np.testing.assert_array_equal(paths_pred, solver(model.predict_costs(X_test)))
    np.testing.assert_array_equal(paths_pred.sum(axis=1), 8.0)  # 4 right, 4 down
    assert model.score(X_test, C_test) == pytest.approx(
        -normalized_regret(C_test, paths_pred, solver=solver)
    )


def test_decision_focused_losses_beat_two_stage_when_misspecified(paths):
    # deg 4: a linear cost model is misspecified, and SPO+ (which judges the
    # decisions) has lower regret than regressing the costs (Elmachtoub &
    # Grigas; PyEPO's experiments).
    X, C, X_test, C_test = paths
    solver = DAGShortestPath(grid=(5, 5))
    scores = {
        loss: DecisionFocusedRegressor(solver, loss=loss, random_state=0, max_iter=30,
                                       n_iter_no_change=30)
        .fit(X, C).score(X_test, C_test)
        for loss in ("spo_plus", "squared")
    }
    assert scores["spo_plus"] > scores["squared"]


def test_optimal_decisions_are_solved_once_per_fit_in_one_batch(paths):
    X, C, _, _ = paths
    calls = []
    inner = DAGShortestPath(grid=(5, 5))

    def solve(theta):
        calls.append(theta.shape[0])
        return inner(theta)

    solver = CallableSolver(solve, batched=True, sense="min")
    model = DecisionFocusedRegressor(solver, loss="squared", max_iter=3, random_state=0)
    with pytest.warns(Warning):
        model.fit(X, C)
    assert calls == [len(X)]  # the two-stage loss never solves while training


# ------------------------------------------------- ties among optimal decisions
# Costs -1 on three items and 0 on the fourth: choosing 2 of the 3 is optimal,
# three tied decisions; the vertices' own order would always pick {0, 1}.
TIED = np.array([-1.0, -1.0, -1.0, 0.0])
TIED_OPTIMA = VERTICES[VERTICES @ TIED == -2.0]


def test_preferred_optima_is_the_tied_optimum_the_direction_ranks_best():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=(50, 4))
    c = np.tile(TIED, (50, 1))
    for solver, best in ((MIN_SOLVER, np.argmin), (MAX_SOLVER, np.argmax)):
        costs = c if solver.sense == "min" else -c
        first = solver(costs)
        chosen = _preferred_optima(direction, costs, first, solver, solver._sign)
        expected = TIED_OPTIMA[best(direction @ TIED_OPTIMA.T, axis=1)]
        np.testing.assert_array_equal(chosen, expected)


def test_preferred_optima_keeps_the_optimum_where_the_move_is_not_optimal():
    # Item 2 is worse than item 1 by 1e-8: no tie, though the move of the
    # costs along the direction prefers it. Rows without ties keep y.
    c = np.array([[-1.0, -1.0, -(1 - 1e-8), 0.0], [-3.0, -2.0, 1.0, 1.0]])
    y = brute_min(c)
    direction = np.array([[0.0, 1.0, -1.0, 0.0], [5.0, 1.0, -9.0, 2.0]])
    np.testing.assert_array_equal(_preferred_optima(direction, c, y, MIN_SOLVER, -1.0), y)


@pytest.mark.parametrize("solver", [MIN_SOLVER, MAX_SOLVER], ids=["min", "max"])
def test_decision_targets_flag_exactly_the_rows_with_several_optima(solver):
    C = np.random.default_rng(2).integers(-2, 3, size=(300, 4)).astype(float)
    targets = _decision_targets(solver, C)
    objective = C @ VERTICES.T
    best = objective.min(axis=1) if solver.sense == "min" else objective.max(axis=1)
    n_optima = (objective == best[:, None]).sum(axis=1)
    assert 30 < np.sum(n_optima > 1) < 270  # both kinds of rows are tested
    np.testing.assert_array_equal(targets[:, :, 0], C)
    np.testing.assert_array_equal(targets[:, :, 1], solver(C))
    np.testing.assert_array_equal(targets[:, :, 2], np.repeat((n_optima > 1)[:, None], 4, 1))
    no_search = _decision_targets(solver, C, find_ties=False)
    np.testing.assert_array_equal(no_search[:, :, :2], targets[:, :, :2])
    assert not no_search[:, :, 2].any()


def test_spo_plus_trains_towards_the_optimum_the_prediction_prefers():
    # Tied rows alternate with rows of one optimum (items 0 and 1), which stay.
    theta = np.random.default_rng(1).normal(size=(20, 4))
    c = np.tile([TIED, [-3.0, -2.0, 1.0, 1.0]], (10, 1))
    targets = _decision_targets(MIN_SOLVER, c)
    loss = _SPOPlusLoss(MIN_SOLVER)
    values, grad = loss.loss_gradient(theta, targets, np.arange(20), 0)
    preferred = TIED_OPTIMA[np.argmin(theta @ TIED_OPTIMA.T, axis=1)]
    preferred[1::2] = [1.0, 1.0, 0.0, 0.0]
    ref_values, ref_grad = spo_plus_loss(theta, c, MIN_SOLVER, y_true=preferred)
    np.testing.assert_allclose(values, ref_values)
    np.testing.assert_allclose(grad, ref_grad)
    # The tightest of the SPO+ bounds over the tied optima, never above the
    # bound of the solver's own choice.
    assert np.all(values <= spo_plus_loss(theta, c, MIN_SOLVER)[0] + 1e-12)


def test_losses_on_decisions_train_towards_a_random_optimum():
    # Fenchel-Young and the other decision losses: a fresh draw per row and
    # epoch seed, each tied optimum about as often (none favoured by the
    # solver's order), and the same draw for the same (seed, row).
    n = 600
    c = np.tile(TIED, (n, 1))
    targets = _decision_targets(MIN_SOLVER, c)
    loss = _OnDecisions(MIN_SOLVER, None)
    theta = np.zeros((n, 4))
    _, chosen = loss._targets(theta, targets, np.arange(n), 3)
    assert np.all(chosen @ TIED == -2.0)
    shares = (chosen[:, None, :] == TIED_OPTIMA[None]).all(axis=2).mean(axis=0)
    assert np.all(np.abs(shares - 1 / 3) < 0.07), shares
    np.testing.assert_array_equal(loss._targets(theta, targets, np.arange(n), 3)[1], chosen)
    assert not np.array_equal(loss._targets(theta, targets, np.arange(n), 4)[1], chosen)
    np.testing.assert_array_equal(  # a row's draw does not depend on its batch
        loss._targets(theta[:7], targets[7:14], np.arange(7, 14), 3)[1], chosen[7:14])


def test_maximizing_solver_knapsack():
    X, V, weights, capacity = make_knapsack(300, n_items=8, dim=1, deg=2, random_state=0)
    solver = Knapsack(weights=np.rint(weights[0]), capacity=12)
    model = DecisionFocusedRegressor(solver, random_state=0, max_iter=30)
    model.fit(X[:200], V[:200])
    selections = model.predict(X[200:])
    assert np.all(selections @ np.rint(weights[0]) <= 12)
    regret = -model.score(X[200:], V[200:])
    assert 0 <= regret < 0.1
    assert regret == pytest.approx(normalized_regret(V[200:], selections, solver=solver))


def _flow_lp():
    """The 5x5 grid shortest path as a flow LP over DAGShortestPath's arcs."""
    dag = DAGShortestPath(grid=(5, 5))
    d = dag.dimension()
    # Incidence matrix from the solver itself: the path of a one-hot cheap arc
    # is not enough, so build it from the arc order (right moves, then down).
    rows, cols = 5, 5
    arcs = []
    for i in range(rows):
        for j in range(cols - 1):
            arcs.append((i * cols + j, i * cols + j + 1))
        if i < rows - 1:
            for j in range(cols):
                arcs.append((i * cols + j, (i + 1) * cols + j))
    A = np.zeros((rows * cols, d))
    for k, (u, v) in enumerate(arcs):
        A[u, k] -= 1
        A[v, k] += 1
    b = np.zeros(rows * cols)
    b[0], b[-1] = -1, 1
    return LinearProgram(d, A_eq=A, b_eq=b, bounds=(0, 1)), dag


def test_linear_program_solver_gives_the_same_model_as_the_dedicated_solver(paths):
    X, C, X_test, C_test = paths
    lp, dag = _flow_lp()
    np.testing.assert_array_equal(lp(C[:20]), dag(C[:20]))
    kwargs = dict(loss="spo_plus", random_state=0, max_iter=3)
    with pytest.warns(Warning):
        a = DecisionFocusedRegressor(lp, **kwargs).fit(X[:100], C[:100])
        b = DecisionFocusedRegressor(dag, **kwargs).fit(X[:100], C[:100])
    np.testing.assert_allclose(a.predict_costs(X_test), b.predict_costs(X_test), rtol=1e-10)


def test_infeasible_and_unbounded_programs_raise_at_fit():
    X = np.random.default_rng(0).normal(size=(20, 3))
    C = np.abs(X[:, :2]) + 1
    infeasible = LinearProgram(2, A_ub=[[1.0, 1.0]], b_ub=[-1.0])  # x >= 0, x1 + x2 <= -1
    with pytest.raises(ValueError, match="infeasible"):
        DecisionFocusedRegressor(infeasible).fit(X, C)
    unbounded = LinearProgram(2, sense="max")  # max c.x over x >= 0 with c > 0
    with pytest.raises(ValueError, match="unbounded"):
        DecisionFocusedRegressor(unbounded).fit(X, C)


def test_bad_targets_raise(paths):
    X, C, _, _ = paths
    solver = DAGShortestPath(grid=(5, 5))
    C_nan = C.copy()
    C_nan[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        DecisionFocusedRegressor(solver).fit(X, C_nan)
    with pytest.raises(ValueError, match="C has 39 columns.*40"):
        DecisionFocusedRegressor(solver).fit(X, C[:, :39])
    with pytest.raises(ValueError, match="shape \\(n_samples, d\\)"):
        DecisionFocusedRegressor(solver).fit(X, C[:, 0])


class _NoSense(BaseEstimator):
    def __call__(self, theta):
        return brute_min(theta)


@pytest.mark.parametrize("solver", [None, brute_min, _NoSense()])
def test_solvers_without_a_sense_are_refused(paths, solver):
    X, C, _, _ = paths
    match = "needs a solver" if solver is None else "sense"
    with pytest.raises(ValueError, match=match):
        DecisionFocusedRegressor(solver).fit(X[:, :4], C[:, :4])


def test_spo_plus_refuses_solvers_that_need_positive_costs():
    X = np.random.default_rng(0).normal(size=(10, 2))
    C = np.ones((10, 9))
    with pytest.raises(ValueError, match="positive costs"):
        DecisionFocusedRegressor(GridShortestPath(shape=(3, 3))).fit(X, C)


def test_pipeline_grid_search_and_pickle(paths):
    X, C, X_test, C_test = paths
    pipe = make_pipeline(
        StandardScaler(), DecisionFocusedRegressor(DAGShortestPath(grid=(5, 5)), max_iter=5,
                                                   random_state=0)
    )
    search = GridSearchCV(
        pipe, {"decisionfocusedregressor__loss": ["spo_plus", "squared"]}, cv=2
    )
    with pytest.warns(Warning):
        search.fit(X, C)
    assert search.best_params_["decisionfocusedregressor__loss"] in ("spo_plus", "squared")
    assert search.score(X_test, C_test) <= 0
    restored = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(restored.predict(X_test), search.predict(X_test))


def test_n_item_features_shares_one_model_across_entries():
    rng = np.random.default_rng(0)
    n, d, f = 200, 6, 3
    X = rng.normal(size=(n, d * f))
    w = np.array([1.0, -2.0, 0.5])
    C = X.reshape(n, d, f) @ w + 0.1 * rng.normal(size=(n, d))
    solver = CallableSolver(lambda c: np.eye(d)[np.argmin(c, axis=1)], batched=True, sense="min")
    model = DecisionFocusedRegressor(solver, n_item_features=f, random_state=0, max_iter=50)
    model.fit(X, C)
    assert model.coefs_[0].shape == (f, 1)
    assert -model.score(X, C) < 0.2


def test_warm_start_follows_a_changed_solver(paths):
    X, C, _, _ = paths
    lp, dag = _flow_lp()
    model = DecisionFocusedRegressor(dag, max_iter=2, warm_start=True, random_state=0)
    with pytest.warns(Warning):
        model.fit(X[:50], C[:50])
        model.set_params(solver=lp)
        model.fit(X[:50], C[:50])
    assert isinstance(model.solver_, LinearProgram)
    assert model.n_iter_ == 4
