"""Shortest-path data sets: PyEPO's generator and the Warcraft-like maps."""

import itertools

import networkx as nx
import numpy as np
import pytest

from sk_perturbed.datasets import (
    TERRAIN_COSTS,
    make_shortest_path,
    make_warcraft_like,
)
from sk_perturbed.solvers import DAGShortestPath


def _pyepo_gen_data(num_data, num_features, grid, deg=1, noise_width=0, seed=135):
    """PyEPO's ``shortestpath.genData``, written from its documented recipe.

    Kept deliberately literal (one sample at a time, as in PyEPO's original
    loop) so that it checks the vectorized generator independently.
    """
    rnd = np.random.RandomState(seed)
    n, p = num_data, num_features
    d = (grid[0] - 1) * grid[1] + (grid[1] - 1) * grid[0]
    B = rnd.binomial(1, 0.5, (d, p))
    x = rnd.normal(0, 1, (n, p))
    c = np.zeros((n, d))
    for i in range(n):
        ci = (np.dot(B, x[i].reshape(p, 1)).T / np.sqrt(p) + 3) ** deg + 1
        ci /= 3.5**deg
        ci *= rnd.uniform(1 - noise_width, 1 + noise_width, d)
        c[i, :] = ci
    return x, c


@pytest.mark.parametrize(
    "n, p, deg, noise_width, grid, seed",
    [
        (10, 5, 1, 0.0, (5, 5), 135),
        (7, 3, 2, 0.5, (5, 5), 0),
        (5, 8, 4, 0.25, (3, 4), 42),
        (3, 1, 6, 1.0, (2, 6), 7),
    ],
)
def test_make_shortest_path_reproduces_pyepo(n, p, deg, noise_width, grid, seed):
    X, costs, _ = make_shortest_path(
        n, n_features=p, deg=deg, noise_width=noise_width, grid=grid, random_state=seed
    )
    x_ref, c_ref = _pyepo_gen_data(n, p, grid, deg=deg, noise_width=noise_width, seed=seed)
    np.testing.assert_array_equal(X, x_ref)
    np.testing.assert_allclose(costs, c_ref, rtol=1e-13, atol=0)


def test_make_shortest_path_paths_are_optimal():
    X, costs, paths = make_shortest_path(20, deg=2, noise_width=0.5, random_state=0)
    arcs = DAGShortestPath(grid=(5, 5)).arcs()
    for c, y in zip(costs, paths):
        graph = nx.DiGraph()
        for k, (u, v) in enumerate(arcs):
            graph.add_edge(u, v, weight=c[k])
        assert y @ c == pytest.approx(nx.dijkstra_path_length(graph, 0, 24), rel=1e-12)
        assert y.sum() == 8
    np.testing.assert_array_equal(paths, DAGShortestPath()(costs))


def test_make_shortest_path_random_state():
    a = make_shortest_path(5, random_state=3)
    b = make_shortest_path(5, random_state=np.random.RandomState(3))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[1], make_shortest_path(5, random_state=4)[1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_samples=0), "n_samples"),
        (dict(n_samples=5, deg=0), "deg"),
        (dict(n_samples=5, deg=1.5), "deg"),
        (dict(n_samples=5, noise_width=-0.1), "noise_width"),
        (dict(n_samples=5, n_features=0), "n_features"),
        (dict(n_samples=5, grid=(1, 1)), "at least two cells"),
        (dict(n_samples=5, grid=(5, 0)), r"grid\[1\] must be >= 1"),
    ],
)
def test_make_shortest_path_invalid_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_shortest_path(**kwargs)


def _king_graph(rows, cols, costs):
    graph = nx.DiGraph()
    for r, c, dr, dc in itertools.product(range(rows), range(cols), (-1, 0, 1), (-1, 0, 1)):
        if (dr, dc) != (0, 0) and 0 <= r + dr < rows and 0 <= c + dc < cols:
            v = (r + dr) * cols + c + dc
            graph.add_edge(r * cols + c, v, weight=costs[v])
    return graph


def test_make_warcraft_like_shapes_costs_and_optimal_paths():
    X, costs, paths = make_warcraft_like(6, shape=(8, 10), random_state=0)
    assert X.shape == (6, 80, 16) and costs.shape == (6, 80) and paths.shape == (6, 80)
    assert np.isin(costs, TERRAIN_COSTS).all()
    for c, y in zip(costs, paths):
        length = nx.dijkstra_path_length(_king_graph(8, 10, c), 0, 79) + c[0]
        assert y @ c == pytest.approx(length)
        assert y[0] == y[-1] == 1


def test_make_warcraft_like_terrain_is_spatially_coherent():
    _, costs, _ = make_warcraft_like(50, random_state=1)
    maps = costs.reshape(50, 12, 12)
    same_as_right = (maps[:, :, 1:] == maps[:, :, :-1]).mean()
    frequencies = np.unique(costs, return_counts=True)[1] / costs.size
    assert same_as_right > 2 * (frequencies**2).sum()  # far above independent cells
    assert len(frequencies) == 5


def test_make_warcraft_like_features_encode_terrain():
    # A nearest-class-mean rule fitted on one seed recognises the terrain of
    # another: the colour embedding is fixed across draws, the noise is not.
    X_train, c_train, _ = make_warcraft_like(30, random_state=0)
    X_test, c_test, _ = make_warcraft_like(30, random_state=1)
    train = X_train.reshape(-1, 16)[:, :12]
    test = X_test.reshape(-1, 16)[:, :12]
    types_train, types_test = c_train.ravel(), c_test.ravel()
    means = np.array([train[types_train == c].mean(axis=0) for c in TERRAIN_COSTS])
    predicted = TERRAIN_COSTS[np.argmin(((test[:, None] - means) ** 2).sum(axis=2), axis=1)]
    accuracy = (predicted == types_test).mean()
    assert 0.9 < accuracy < 1.0  # informative but noisy
    # The nuisance features carry no terrain information.
    nuisance = X_test.reshape(-1, 16)[:, 12:]
    for j in range(nuisance.shape[1]):
        assert abs(np.corrcoef(nuisance[:, j], types_test)[0, 1]) < 0.1


def test_make_warcraft_like_random_state_and_validation():
    a = make_warcraft_like(2, shape=(5, 5), random_state=0)
    b = make_warcraft_like(2, shape=(5, 5), random_state=0)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="at least two cells"):
        make_warcraft_like(2, shape=(1, 1))
    with pytest.raises(ValueError, match="n_samples"):
        make_warcraft_like(0)
