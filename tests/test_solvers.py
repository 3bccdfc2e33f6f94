"""Solvers against independent references (numpy, scipy, networkx, brute force)."""

import itertools
import threading

import networkx as nx
import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata
from sklearn.base import clone

from sk_perturbed.perturbed import PerturbedOptimizer
from sk_perturbed.solvers import (
    Argmax,
    Assignment,
    CallableSolver,
    DAGShortestPath,
    GridShortestPath,
    Knapsack,
    Ranking,
    SpanningTree,
    TopK,
)
from sk_perturbed.solvers._basic import _SMALL_D
from sk_perturbed.solvers._registry import _solve_batch_kernel, numba_solver_arg

SETTINGS = settings(max_examples=40, deadline=None)
finite_floats = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


def _small_ints(shape, low=0, high=3):
    return arrays(np.float64, shape, elements=st.integers(low, high).map(float))


# --------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------


def _grid_graph(shape, neighborhood):
    rows, cols = shape
    graph = nx.DiGraph()
    for r, c in itertools.product(range(rows), range(cols)):
        for dr, dc in itertools.product((-1, 0, 1), repeat=2):
            diagonal = dr != 0 and dc != 0
            if (dr, dc) == (0, 0) or (diagonal and neighborhood == 4):
                continue
            if 0 <= r + dr < rows and 0 <= c + dc < cols:
                graph.add_edge(r * cols + c, (r + dr) * cols + c + dc)
    return graph


def _set_vertex_costs(graph, costs):
    # Entering a cell pays its cost; the source cell is added separately.
    for u, v in graph.edges:
        graph.edges[u, v]["weight"] = costs[v]
    return graph


def _monotone_paths(grid):
    """All right/down node sequences from the top-left to the bottom-right."""
    rows, cols = grid
    for downs in itertools.combinations(range(rows + cols - 2), rows - 1):
        node, path = 0, [0]
        for step in range(rows + cols - 2):
            node += cols if step in downs else 1
            path.append(node)
        yield path


def _arc_mask(path, arcs):
    index = {tuple(a): k for k, a in enumerate(arcs)}
    mask = np.zeros(len(arcs))
    for u, v in zip(path[:-1], path[1:]):
        mask[index[u, v]] = 1.0
    return mask


def _tie_rule_choice(paths, cost):
    """Optimal path whose node sequence read backwards is lexicographically smallest."""
    best = min(cost(p) for p in paths)
    return min((p for p in paths if cost(p) == best), key=lambda p: p[::-1])


def _is_spanning_tree(n_nodes, edges):
    graph = nx.Graph()
    graph.add_nodes_from(range(n_nodes))
    graph.add_edges_from(map(tuple, edges))
    return len(edges) == n_nodes - 1 and nx.is_connected(graph)


def _batch_kernel(solver, theta):
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    return _solve_batch_kernel(theta, numba_solver_arg(solver))


# --------------------------------------------------------------------------
# Argmax, TopK, Ranking
# --------------------------------------------------------------------------


@pytest.mark.parametrize("d", [_SMALL_D - 1, _SMALL_D, _SMALL_D + 1, 3 * _SMALL_D])
def test_selection_tie_rules_on_both_sides_of_the_counting_threshold(d):
    # Small d counts pairwise comparisons, larger d bucket-sorts: same tie rule.
    rng = np.random.default_rng(d)
    theta = rng.integers(-3, 4, size=(20, d)).astype(np.float64)
    theta[:5] = rng.normal(size=(5, d))
    np.testing.assert_array_equal(Ranking()(theta), rankdata(theta, axis=1, method="ordinal"))
    for k in (1, d // 2, d):
        expected = np.zeros_like(theta)
        for i, row in enumerate(theta):
            expected[i, np.argsort(-row, kind="stable")[:k]] = 1.0
        np.testing.assert_array_equal(TopK(k=k)(theta), expected)


@SETTINGS
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 8)), elements=finite_floats))
def test_argmax_matches_numpy(theta):
    expected = np.eye(theta.shape[1])[np.argmax(theta, axis=1)]
    np.testing.assert_array_equal(Argmax()(theta), expected)


@SETTINGS
@given(_small_ints((3, 7), -2, 2), st.integers(1, 7))
def test_topk_matches_numpy(theta, k):
    expected = np.zeros_like(theta)
    for i, row in enumerate(theta):
        # Stable sort on -θ: ties keep the lowest indices.
        expected[i, np.argsort(-row, kind="stable")[:k]] = 1.0
    np.testing.assert_array_equal(TopK(k=k)(theta), expected)


@SETTINGS
@given(_small_ints((3, 6), -2, 2))
def test_ranking_matches_scipy_ordinal_ranks(theta):
    # 'ordinal' ranks ties in order of appearance: the lower index ranks lower.
    np.testing.assert_array_equal(Ranking()(theta), rankdata(theta, axis=1, method="ordinal"))


# --------------------------------------------------------------------------
# DAGShortestPath
# --------------------------------------------------------------------------


def test_dag_arcs_follow_pyepo_order():
    rows, cols = 5, 5
    expected = []
    for r in range(rows):
        expected += [(r * cols + c, r * cols + c + 1) for c in range(cols - 1)]
        if r < rows - 1:
            expected += [(r * cols + c, (r + 1) * cols + c) for c in range(cols)]
    solver = DAGShortestPath()
    assert solver.dimension() == 40
    np.testing.assert_array_equal(solver.arcs(), expected)


@SETTINGS
@given(
    st.tuples(st.integers(1, 5), st.integers(1, 5)).filter(lambda g: g[0] * g[1] > 1),
    st.data(),
)
def test_dag_shortest_path_matches_networkx(grid, data):
    solver = DAGShortestPath(grid=grid)
    d = solver.dimension()
    costs = data.draw(arrays(np.float64, (3, d), elements=finite_floats))  # any sign
    arcs = solver.arcs()
    paths = solver(costs)
    for c, y in zip(costs, paths):
        graph = nx.DiGraph()
        for k, (u, v) in enumerate(arcs):
            graph.add_edge(u, v, weight=c[k])
        target = grid[0] * grid[1] - 1
        reference = nx.bellman_ford_path_length(graph, 0, target)
        assert y @ c == pytest.approx(reference, abs=1e-9)
        # y is a source-to-target path: unit flow out of 0, into the target.
        flow = np.zeros(target + 1)
        np.add.at(flow, arcs[:, 0], -y)
        np.add.at(flow, arcs[:, 1], y)
        expected = np.zeros(target + 1)
        expected[0], expected[target] = -1.0, 1.0
        np.testing.assert_array_equal(flow, expected)


@SETTINGS
@given(st.sampled_from([(2, 2), (3, 3), (3, 4), (4, 3)]), st.data())
def test_dag_shortest_path_tie_rule_on_integer_costs(grid, data):
    solver = DAGShortestPath(grid=grid)
    costs = data.draw(_small_ints((solver.dimension(),), -1, 2))
    arcs = solver.arcs()
    paths = list(_monotone_paths(grid))
    chosen = _tie_rule_choice(paths, lambda p: _arc_mask(p, arcs) @ costs)
    np.testing.assert_array_equal(solver(costs), _arc_mask(chosen, arcs))


def test_dag_shortest_path_all_equal_costs_goes_right_then_down():
    solver = DAGShortestPath(grid=(3, 3))
    arcs = solver.arcs()
    np.testing.assert_array_equal(solver(np.ones(12)), _arc_mask([0, 1, 2, 5, 8], arcs))


# --------------------------------------------------------------------------
# GridShortestPath
# --------------------------------------------------------------------------


@SETTINGS
@given(
    st.tuples(st.integers(1, 6), st.integers(1, 6)).filter(lambda g: g[0] * g[1] > 1),
    st.sampled_from([4, 8]),
    st.data(),
)
def test_grid_shortest_path_matches_networkx_dijkstra(shape, neighborhood, data):
    n = shape[0] * shape[1]
    costs = data.draw(
        arrays(np.float64, (2, n), elements=st.floats(0, 10, allow_nan=False))
    )
    paths = GridShortestPath(shape=shape, neighborhood=neighborhood)(costs)
    graph = _grid_graph(shape, neighborhood)
    for c, y in zip(costs, paths):
        length = nx.dijkstra_path_length(_set_vertex_costs(graph, c), 0, n - 1) + c[0]
        assert y @ c == pytest.approx(length, abs=1e-9)
        assert y[0] == y[-1] == 1.0
        # The mask is a connected chain of cells from source to target.
        cells = np.flatnonzero(y)
        assert nx.has_path(graph.subgraph(cells), 0, n - 1)


@SETTINGS
@given(st.sampled_from([(2, 3), (3, 3)]), st.sampled_from([4, 8]), st.data())
def test_grid_shortest_path_tie_rule_brute_force(shape, neighborhood, data):
    n = shape[0] * shape[1]
    costs = data.draw(_small_ints((n,), 1, 2))  # positive: the documented rule is exact
    graph = _grid_graph(shape, neighborhood)
    paths = list(nx.all_simple_paths(graph, 0, n - 1))
    chosen = _tie_rule_choice(paths, lambda p: costs[p].sum())
    expected = np.zeros(n)
    expected[chosen] = 1.0
    np.testing.assert_array_equal(GridShortestPath(shape, neighborhood)(costs), expected)


def test_grid_shortest_path_monotone_paths_bound_on_4_neighbourhood():
    # With 4 neighbours every right/down path is feasible: the optimum is at
    # most the best monotone path, and equals it on this map.
    rng = np.random.RandomState(0)
    shape = (4, 4)
    costs = rng.uniform(1, 2, size=16)
    best_monotone = min(costs[p].sum() for p in _monotone_paths(shape))
    y = GridShortestPath(shape, neighborhood=4)(costs)
    assert y @ costs == pytest.approx(best_monotone)


def test_grid_shortest_path_zero_costs_terminates():
    y = GridShortestPath(shape=(4, 4))(np.zeros(16))
    assert y[0] == y[-1] == 1.0 and np.isin(y, (0.0, 1.0)).all()


def test_grid_shortest_path_rejects_negative_costs():
    costs = np.ones((2, 9))
    costs[1, 4] = -0.5
    with pytest.raises(ValueError, match="non-negative .*perturbation='multiplicative'"):
        GridShortestPath(shape=(3, 3))(costs)


def test_grid_shortest_path_kernel_flags_negative_rows_with_nan():
    costs = np.ones((3, 9))
    costs[1, 4] = -0.5
    y = _batch_kernel(GridShortestPath(shape=(3, 3)), costs)
    assert np.isnan(y[1]).all() and np.isfinite(y[[0, 2]]).all()


# --------------------------------------------------------------------------
# Assignment
# --------------------------------------------------------------------------


def _check_assignment(costs, n):
    y = Assignment(n=n)(costs.reshape(1, -1))[0].reshape(n, n)
    # A permutation matrix ...
    np.testing.assert_array_equal(y.sum(axis=0), np.ones(n))
    np.testing.assert_array_equal(y.sum(axis=1), np.ones(n))
    assert np.isin(y, (0.0, 1.0)).all()
    # ... of minimal total cost.
    rows, cols = linear_sum_assignment(costs)
    assert (y * costs).sum() == pytest.approx(costs[rows, cols].sum(), abs=1e-9)
    return y


@SETTINGS
@given(st.integers(1, 7).flatmap(lambda n: arrays(np.float64, (n, n), elements=finite_floats)))
def test_assignment_matches_scipy(costs):
    _check_assignment(costs, costs.shape[0])


@SETTINGS
@given(st.integers(2, 6).flatmap(lambda n: _small_ints((n, n), 0, 2)))
def test_assignment_ties_are_optimal_and_deterministic(costs):
    n = costs.shape[0]
    y = _check_assignment(costs, n)
    batch = np.tile(costs.ravel(), (5, 1))
    np.testing.assert_array_equal(Assignment(n)(batch), np.tile(y.ravel(), (5, 1)))


def test_assignment_larger_instances():
    rng = np.random.RandomState(0)
    for n in (20, 50):
        _check_assignment(rng.normal(size=(n, n)), n)
        _check_assignment(rng.randint(0, 3, size=(n, n)).astype(float), n)


# --------------------------------------------------------------------------
# Knapsack
# --------------------------------------------------------------------------


def _knapsack_brute_force(values, weights, capacity):
    """Tie rule: the lexicographically largest optimal set of positive items."""
    d = len(values)
    best_value, best = -np.inf, None
    # product((1, 0)) enumerates indicators in decreasing lexicographic order,
    # so the first optimum found is the lexicographically largest.
    for y in itertools.product((1.0, 0.0), repeat=d):
        y = np.array(y)
        if (y * (values <= 0)).any() or y @ weights > capacity:
            continue
        if y @ values > best_value:
            best_value, best = y @ values, y
    return best


@SETTINGS
@given(st.integers(1, 9).flatmap(
    lambda d: st.tuples(
        _small_ints((d,), -1, 3),
        arrays(np.int64, (d,), elements=st.integers(0, 5)),
        st.integers(0, 15),
    )
))
def test_knapsack_tie_rule_brute_force(args):
    values, weights, capacity = args
    y = Knapsack(weights=weights, capacity=capacity)(values)
    np.testing.assert_array_equal(y, _knapsack_brute_force(values, weights, capacity))


@SETTINGS
@given(st.integers(1, 9).flatmap(
    lambda d: st.tuples(
        arrays(np.float64, (d,), elements=finite_floats),
        arrays(np.int64, (d,), elements=st.integers(0, 6).map(lambda w: 2 * w)),
        st.integers(0, 25),
    )
))
def test_knapsack_optimal_value_brute_force(args):
    # Even weights and odd capacities exercise the gcd reduction.
    values, weights, capacity = args
    y = Knapsack(weights=weights, capacity=capacity)(values)
    assert y @ weights <= capacity
    expected = _knapsack_brute_force(values, weights, capacity)
    assert y @ values == pytest.approx(expected @ values, abs=1e-9)


def test_knapsack_never_takes_non_positive_items():
    y = Knapsack(weights=[1, 1, 1], capacity=3)([[0.0, -1.0, 2.0]])
    np.testing.assert_array_equal(y, [[0.0, 0.0, 1.0]])


# --------------------------------------------------------------------------
# SpanningTree
# --------------------------------------------------------------------------


def _random_connected_graph(rng, n_nodes, n_extra):
    # A random spanning path plus extra edges (parallel edges allowed).
    order = rng.permutation(n_nodes)
    edges = [(order[i], order[i + 1]) for i in range(n_nodes - 1)]
    while len(edges) < n_nodes - 1 + n_extra:
        u, v = rng.randint(n_nodes, size=2)
        if u != v:
            edges.append((u, v))
    return np.array(edges)[rng.permutation(len(edges))]


@SETTINGS
@given(st.integers(2, 8), st.integers(0, 10), st.integers(0, 2**31 - 1))
def test_spanning_tree_matches_networkx(n_nodes, n_extra, seed):
    rng = np.random.RandomState(seed)
    edges = _random_connected_graph(rng, n_nodes, n_extra)
    weights = rng.normal(size=(2, len(edges)))
    for w, y in zip(weights, SpanningTree(n_nodes, edges)(weights)):
        assert _is_spanning_tree(n_nodes, edges[y == 1])
        graph = nx.MultiGraph()
        graph.add_nodes_from(range(n_nodes))
        for (u, v), weight in zip(edges, w):
            graph.add_edge(u, v, weight=weight)
        tree = nx.maximum_spanning_tree(graph)
        assert y @ w == pytest.approx(tree.size(weight="weight"), abs=1e-9)


@SETTINGS
@given(st.integers(0, 2**31 - 1))
def test_spanning_tree_tie_rule_brute_force(seed):
    rng = np.random.RandomState(seed)
    n_nodes = 5
    edges = _random_connected_graph(rng, n_nodes, 4)
    weights = rng.randint(-1, 2, size=len(edges)).astype(float)
    trees = [
        np.array(subset)
        for subset in itertools.combinations(range(len(edges)), n_nodes - 1)
        if _is_spanning_tree(n_nodes, edges[list(subset)])
    ]
    best = max(weights[t].sum() for t in trees)
    # Documented rule: sorted (-weight, index) pairs lexicographically smallest.
    chosen = min(
        (t for t in trees if weights[t].sum() == best),
        key=lambda t: sorted(zip(-weights[t], t)),
    )
    expected = np.zeros(len(edges))
    expected[chosen] = 1.0
    np.testing.assert_array_equal(SpanningTree(n_nodes, edges)(weights), expected)


# --------------------------------------------------------------------------
# Inside PerturbedOptimizer: numba backend == numpy backend
# --------------------------------------------------------------------------

_rng = np.random.RandomState(42)
_EDGES = _random_connected_graph(_rng, 6, 5)
BUILTIN_CASES = [
    (Argmax(), "additive"),
    (TopK(k=2), "additive"),
    (Ranking(), "additive"),
    (DAGShortestPath(grid=(3, 4)), "additive"),
    (GridShortestPath(shape=(4, 4)), "multiplicative"),
    (GridShortestPath(shape=(3, 5), neighborhood=4), "multiplicative"),
    (Assignment(n=4), "additive"),
    (Knapsack(weights=[3, 1, 4, 1, 5, 9], capacity=10), "additive"),
    (SpanningTree(n_nodes=6, edges=_EDGES), "additive"),
]


def _theta_for(solver, n_rows, rng):
    d = solver.dimension() if not isinstance(solver, (Argmax, TopK, Ranking)) else 5
    return rng.uniform(0.5, 2.0, size=(n_rows, d))


@pytest.mark.parametrize("solver, perturbation", BUILTIN_CASES, ids=lambda p: repr(p))
def test_perturbed_numba_matches_numpy_backend(solver, perturbation):
    rng = np.random.RandomState(0)
    theta = _theta_for(solver, 4, rng)
    v = rng.normal(size=theta.shape)
    estimates = {}
    for backend in ("numba", "numpy"):
        po = PerturbedOptimizer(
            solver, epsilon=0.3, n_samples=20, perturbation=perturbation,
            random_state=7, backend=backend,
        )
        estimates[backend] = po.estimate(theta, v)
    for numba_value, numpy_value in zip(estimates["numba"], estimates["numpy"]):
        np.testing.assert_allclose(numba_value, numpy_value, rtol=0, atol=1e-10)
    # Noise flips at least some structures at this ε: y_ε is not y*.
    assert not np.array_equal(estimates["numba"].y_eps, solver(theta))


@pytest.mark.parametrize("solver, perturbation", BUILTIN_CASES, ids=lambda p: repr(p))
def test_structures_and_their_means_are_valid_targets_and_scaled_ones_are_not(
    solver, perturbation
):
    rng = np.random.RandomState(1)
    theta = _theta_for(solver, 6, rng)
    structures = solver(theta)
    solver._check_targets(structures)
    means = PerturbedOptimizer(
        solver, epsilon=0.5, n_samples=30, perturbation=perturbation, random_state=0
    )(theta)
    solver._check_targets(means)  # points of the convex hull
    outside = structures.copy()
    outside[2] *= 3.0
    with pytest.raises(ValueError, match=f"Y row 2 is neither a structure of {type(solver).__name__}"):
        solver._check_targets(outside)


def test_ranking_targets_must_lie_in_the_permutahedron():
    solver = Ranking()
    solver._check_targets(np.array([[2.5, 2.5, 1.0], [2.0, 2.0, 2.0], [3.0, 1.0, 2.0]]))
    # Right total (6) but the largest entry exceeds d = 3: not a mean of rankings.
    with pytest.raises(ValueError, match=r"Y row 1 .*d\(d\+1\)/2 = 6"):
        solver._check_targets(np.array([[1.0, 2.0, 3.0], [3.5, 2.5, 0.0]]))


def test_perturbed_grid_shortest_path_additive_noise_raises_with_numpy_backend():
    po = PerturbedOptimizer(
        GridShortestPath(shape=(3, 3)), epsilon=1.0, n_samples=50, random_state=0,
        backend="numpy",
    )
    with pytest.raises(ValueError, match="perturbation='multiplicative'"):
        po(np.ones((2, 9)))


def test_perturbed_grid_shortest_path_additive_noise_raises_with_numba_backend():
    po = PerturbedOptimizer(
        GridShortestPath(shape=(3, 3)), epsilon=1.0, n_samples=50, random_state=0,
        backend="numba",
    )
    with pytest.raises(ValueError, match="non-negative"):
        po(np.ones((2, 9)))


# --------------------------------------------------------------------------
# Parameter and input validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("solver, perturbation", BUILTIN_CASES[3:], ids=lambda p: repr(p))
def test_wrong_theta_length(solver, perturbation):
    theta = np.ones((2, solver.dimension() + 1))
    with pytest.raises(ValueError, match=f"{type(solver).__name__} expects θ with"):
        solver(theta)
    with pytest.raises(ValueError, match="expects θ with"):
        PerturbedOptimizer(solver, random_state=0)(theta)


@pytest.mark.parametrize(
    "solver, match",
    [
        (DAGShortestPath(grid=(1, 1)), "at least two cells"),
        (DAGShortestPath(grid=(0, 3)), r"grid\[0\] must be >= 1"),
        (DAGShortestPath(grid=5), "pair"),
        (GridShortestPath(shape=(2.5, 3)), "must be an integer"),
        (GridShortestPath(neighborhood=6), "neighborhood must be 4 or 8"),
        (Assignment(n=0), "n must be >= 1"),
        (Assignment(n=2.0), "n must be an integer"),
        (Knapsack(weights=[1, -2], capacity=3), "weights must be >= 0"),
        (Knapsack(weights=[[1, 2]], capacity=3), "weights must be a 1-D array"),
        (Knapsack(weights=[], capacity=3), "at least one item"),
        (Knapsack(weights=["a", "b"], capacity=3), "weights must contain integers"),
        (Knapsack(weights=[1, 2], capacity=-1), "capacity must be >= 0"),
        (SpanningTree(n_nodes=4, edges=[(0, 1), (2, 3)]), "disconnected"),
        (SpanningTree(n_nodes=3, edges=[(0, 1), (1, 3)]), "nodes are 0..2"),
        (SpanningTree(n_nodes=3, edges=[(0, 1), (1, 1), (1, 2)]), "self-loop"),
        (SpanningTree(n_nodes=3, edges=[(0, 1, 2)]), r"\(u, v\) pairs"),
        (SpanningTree(n_nodes=1, edges=[(0, 0)]), "n_nodes must be >= 2"),
        (CallableSolver(func=3), "func must be callable"),
        (CallableSolver(np.sign, sense="maximize"), "sense must be 'max' or 'min'"),
        (CallableSolver(np.sign, n_jobs=0), "n_jobs must be None or a non-zero integer"),
        (CallableSolver(np.sign, d=0), "d must be >= 1"),
        (CallableSolver(np.sign, batched="yes"), "batched must be a bool"),
    ],
    ids=repr,
)
def test_invalid_parameters(solver, match):
    with pytest.raises(ValueError, match=match):
        solver(np.ones((1, 4)))


def test_knapsack_wrong_number_of_weights():
    with pytest.raises(ValueError, match="Knapsack expects θ with 3 columns"):
        Knapsack(weights=[1, 2, 3], capacity=4)(np.ones((2, 4)))


def test_solvers_clone_and_get_params():
    for solver, _ in BUILTIN_CASES:
        cloned = clone(solver)
        assert cloned.get_params().keys() == solver.get_params().keys()
    assert clone(Knapsack(weights=[1, 2], capacity=2)).set_params(capacity=3).capacity == 3


# --------------------------------------------------------------------------
# CallableSolver
# --------------------------------------------------------------------------


def _argmax_python(theta):
    y = np.zeros_like(theta)
    y[np.argmax(theta)] = 1.0
    return y


def _argmax_batched(theta):
    return np.eye(theta.shape[1])[np.argmax(theta, axis=1)]


@numba.njit
def _argmax_jitted(theta):
    y = np.zeros_like(theta)
    y[np.argmax(theta)] = 1.0
    return y


@pytest.mark.parametrize("n_jobs", [None, 1, 2, -1])
@pytest.mark.parametrize("func, batched", [(_argmax_python, False), (_argmax_batched, True)])
def test_callable_solver_matches_builtin(func, batched, n_jobs):
    theta = np.random.RandomState(0).normal(size=(37, 5))
    solver = CallableSolver(func, batched=batched, n_jobs=n_jobs)
    np.testing.assert_array_equal(solver(theta), Argmax()(theta))


@pytest.mark.parametrize("func", [_argmax_python, _argmax_jitted])
def test_callable_solver_inside_perturbed_optimizer(func):
    theta = np.random.RandomState(0).normal(size=(6, 4))
    reference = PerturbedOptimizer(Argmax(), n_samples=30, random_state=3).estimate(theta)
    po = PerturbedOptimizer(CallableSolver(func, n_jobs=2), n_samples=30, random_state=3)
    for got, expected in zip(po.estimate(theta), reference):
        if expected is not None:
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


def test_callable_solver_jitted_function_runs_in_the_numba_kernel():
    solver = CallableSolver(_argmax_jitted)
    assert solver._numba_function() is _argmax_jitted
    assert numba_solver_arg(solver) is _argmax_jitted
    assert CallableSolver(_argmax_jitted, batched=True)._numba_function() is None
    assert CallableSolver(_argmax_python)._numba_function() is None


def test_callable_solver_min_sense():
    solver = CallableSolver(lambda c: _argmax_python(-c), sense="min")
    theta = np.array([[3.0, 1.0, 2.0]])
    np.testing.assert_array_equal(solver(theta), [[0.0, 1.0, 0.0]])
    po = PerturbedOptimizer(solver, epsilon=1e-6, n_samples=3, random_state=0)
    np.testing.assert_allclose(po(theta), [[0.0, 1.0, 0.0]])


def test_callable_solver_params_and_clone():
    solver = CallableSolver(_argmax_python, batched=False, sense="max", n_jobs=2, d=5)
    assert solver.get_params() == {
        "func": _argmax_python, "batched": False, "sense": "max", "n_jobs": 2, "d": 5,
    }
    cloned = clone(solver)
    assert cloned.func is _argmax_python and cloned.d == 5 == cloned.dimension()
    with pytest.raises(ValueError, match=r"CallableSolver\(_argmax_python\) expects θ with 5"):
        cloned(np.ones((1, 4)))


def _raises(theta):
    raise KeyError("boom")


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_callable_solver_reraises_with_function_name(n_jobs):
    with pytest.raises(RuntimeError, match="'_raises' raised KeyError: 'boom'") as info:
        CallableSolver(_raises, n_jobs=n_jobs)(np.ones((8, 3)))
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize(
    "func, batched, match",
    [
        (lambda t: np.ones(len(t) + 1), False, r"shape \(4,\) for θ of shape \(3,\)"),
        (lambda t: np.ones((len(t), 2)), True, r"shape \(5, 2\) for θ of shape \(5, 3\)"),
        (lambda t: np.full(len(t), np.nan), False, "NaN or infinite"),
        (lambda t: np.array(["a", "b", "c"]), False, "dtype <U1; a solver must return numbers"),
        (lambda t: None, False, "dtype object"),
        (lambda t: [[1.0], [1.0, 2.0], 3], False, "not an array"),
    ],
)
def test_callable_solver_rejects_garbage(func, batched, match):
    with pytest.raises(ValueError, match=match):
        CallableSolver(func, batched=batched)(np.ones((5, 3)))


def test_callable_solver_jitted_wrong_length_is_caught_before_the_kernel():
    @numba.njit
    def too_long(theta):
        return np.ones(theta.shape[0] + 1)

    with pytest.raises(ValueError, match=r"too_long\) returned an array of shape \(4,\)"):
        CallableSolver(too_long)(np.ones((3, 3)))
    # Inside the perturbed kernels too: the error names the shape, not only "non-finite".
    po = PerturbedOptimizer(CallableSolver(too_long), n_samples=2, random_state=0)
    with pytest.raises(ValueError, match=r"too_long\) returned an array of shape \(4,\)"):
        po(np.ones((2, 3)))

    @numba.njit
    def nan_when_perturbed(theta):
        return np.full(theta.shape[0], np.nan) if theta[0] != 1.0 else np.ones(theta.shape[0])

    po = PerturbedOptimizer(CallableSolver(nan_when_perturbed), n_samples=2, random_state=0)
    with pytest.raises(ValueError, match=r"nan_when_perturbed\) returned NaN or infinite"):
        po(np.ones((2, 3)))


def test_callable_solver_function_cannot_modify_its_input():
    def in_place(theta):
        theta -= theta.max()
        return _argmax_python(theta)

    theta = np.ones((2, 3))
    with pytest.raises(RuntimeError, match="in_place"):
        CallableSolver(in_place)(theta)
    np.testing.assert_array_equal(theta, 1.0)


def test_callable_solver_thread_pool_uses_several_threads():
    seen = set()

    def record(theta):
        seen.add(threading.get_ident())
        return _argmax_python(theta)

    CallableSolver(record, n_jobs=2)(np.random.RandomState(0).normal(size=(64, 3)))
    assert len(seen) >= 1  # ran on pool threads, not on the caller only
    assert threading.get_ident() not in seen


def test_callable_solver_garbage_inside_perturbed_optimizer():
    po = PerturbedOptimizer(CallableSolver(lambda t: np.full(len(t), np.nan)), random_state=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        po(np.ones((2, 3)))
    po = PerturbedOptimizer(CallableSolver(_raises, n_jobs=2), random_state=0)
    with pytest.raises(RuntimeError, match="_raises"):
        po(np.ones((2, 3)))


# --------------------------------------------------------------------------
# Extreme magnitudes: right answers or errors that say why, never garbage
# --------------------------------------------------------------------------
@pytest.mark.parametrize("d", [_SMALL_D + 1, 200])
def test_selection_solvers_when_the_score_range_overflows(d):
    # max - min = inf: the bucket sort's scale would be 0 and inf * 0 = NaN.
    x = np.where(np.arange(d) % 2 == 0, 1e308, -1e308)
    np.testing.assert_array_equal(Ranking()(x), rankdata(x, method="ordinal"))
    np.testing.assert_array_equal(np.flatnonzero(TopK(k=10)(x)), np.arange(0, 20, 2))


def test_grid_shortest_path_with_overflowing_sums_raises_instead_of_looping():
    with pytest.raises(ValueError, match="overflow float64"):
        GridShortestPath(shape=(1, 2))(np.array([1e308, 1e308]))
    po = PerturbedOptimizer(GridShortestPath(shape=(3, 3), neighborhood=4),
                            perturbation="multiplicative", n_samples=4, random_state=0)
    with pytest.raises(ValueError, match="overflow float64"):
        po(np.full((1, 9), 3e307))


def test_knapsack_with_huge_weights():
    # The total weight 2**63 + 3 does not fit in int64.
    solver = Knapsack(weights=[2**62, 2**62, 3], capacity=5)
    np.testing.assert_array_equal(solver(np.ones(3)), [0.0, 0.0, 1.0])
    # A table of 1e12 capacities per problem is refused before numba allocates
    # it ('dp'); 'auto' solves such problems by branch and bound.
    with pytest.raises(ValueError, match="dynamic program needs"):
        Knapsack(weights=[10**12, 1, 10**12 - 7], capacity=10**12, method="dp")(np.ones(3))
    np.testing.assert_array_equal(
        Knapsack(weights=[10**12, 1, 10**12 - 7], capacity=10**12)(np.ones(3)), [0.0, 1.0, 1.0]
    )
    with pytest.raises(ValueError, match="must fit in 64-bit integers"):
        Knapsack(weights=[2.0**64, 1], capacity=1)(np.ones(2))
    np.testing.assert_array_equal(  # the largest int64 weight is a valid weight
        Knapsack(weights=[np.iinfo(np.int64).max, 1], capacity=1)(np.ones(2)), [0.0, 1.0]
    )
