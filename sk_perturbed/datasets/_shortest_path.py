"""Shortest-path data: PyEPO's synthetic grid costs and Warcraft-like terrain maps."""

from numbers import Integral, Real

import numpy as np
from scipy.ndimage import gaussian_filter
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

from ..solvers import DAGShortestPath, GridShortestPath
from ..solvers._utils import check_grid_shape

#: Terrain types of :func:`make_warcraft_like` and their traversal costs
#: (the five costs of the Warcraft shortest-path maps of Vlastelica et al.).
TERRAIN_TYPES = ("road", "grass", "forest", "mountain", "water")
TERRAIN_COSTS = np.array([0.8, 1.2, 5.3, 7.7, 9.2])

_N_COLOUR_FEATURES = 12
_N_NUISANCE_FEATURES = 4
# The colour of each terrain type is a property of the "sensor", not of one
# draw: it is fixed so that maps drawn with different seeds share it.
_TERRAIN_COLOURS = np.random.RandomState(2020).normal(size=(len(TERRAIN_TYPES), _N_COLOUR_FEATURES))
# Biases of the natural terrains (grass, forest, mountain, water) in the
# argmax of smooth random fields: grass is the most common.
_TERRAIN_BIAS = np.array([0.6, 0.2, -0.1, -0.2])


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "deg": [Interval(Integral, 1, None, closed="left")],
        "noise_width": [Interval(Real, 0, 1, closed="both")],
        "grid": [tuple, list],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_shortest_path(
    n_samples, n_features=5, deg=1, noise_width=0.0, grid=(5, 5), random_state=None
):
    """Generate PyEPO's synthetic shortest-path problem on a grid DAG.

    Reproduces ``pyepo.data.shortestpath.genData`` (Tang & Khalil, PyEPO):
    with ``rng = np.random.RandomState(seed)``, draw in this order

    1. ``B ~ Bernoulli(0.5)`` of shape (d, p), d arcs and p features;
    2. ``x_i ~ N(0, I_p)``, shape (n, p);
    3. the costs ``c_i = ((B x_i / √p + 3)^deg + 1) / 3.5^deg``;
    4. multiplicative noise ``c_ij *= U(1 − noise_width, 1 + noise_width)``.

    The arcs of the ``grid`` are ordered as in
    :class:`~sk_perturbed.solvers.DAGShortestPath` (PyEPO's order) and the
    targets are the shortest paths under the true costs.

    Parameters
    ----------
    n_samples : int
        Number of samples n.

    n_features : int, default=5
        Number of features p.

    deg : int, default=1
        Degree of the polynomial link from features to costs; higher
        degrees make a linear cost model more misspecified.

    noise_width : float, default=0.0
        Half-width of the multiplicative uniform noise, in [0, 1].

    grid : tuple of int, default=(5, 5)
        ``(rows, cols)`` of the grid; ``d = rows·(cols − 1) + (rows − 1)·cols``
        arcs (40 for 5×5).

    random_state : int, RandomState instance or None, default=None
        Seed of the draws. An int ``s`` gives the data of PyEPO's
        ``genData(..., seed=s)`` (PyEPO's default is 135).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Features.

    costs : ndarray of shape (n_samples, d)
        Arc costs, float64 (recent PyEPO releases cast them to float32).

    paths : ndarray of shape (n_samples, d)
        0/1 float64 indicators of the arcs on the shortest path of each
        sample under ``costs`` (from
        :class:`~sk_perturbed.solvers.DAGShortestPath`).

    References
    ----------
    B. Tang and E. B. Khalil, "PyEPO: A PyTorch-based end-to-end
    predict-then-optimize library for linear and integer programming",
    Mathematical Programming Computation, 2024.

    Examples
    --------
    >>> from sk_perturbed.datasets import make_shortest_path
    >>> X, costs, paths = make_shortest_path(4, n_features=5, deg=2, random_state=135)
    >>> X.shape, costs.shape, paths.shape
    ((4, 5), (4, 40), (4, 40))
    >>> paths.sum(axis=1)  # 4 moves right and 4 down on a 5×5 grid
    array([8., 8., 8., 8.])
    """
    solver = DAGShortestPath(grid=check_grid_shape(grid, "grid", "make_shortest_path"))
    n_arcs = solver.dimension()
    rng = check_random_state(random_state)
    B = rng.binomial(1, 0.5, (n_arcs, n_features))
    X = rng.normal(0, 1, (n_samples, n_features))
    costs = ((X @ B.T) / np.sqrt(n_features) + 3) ** deg + 1
    costs /= 3.5**deg
    costs *= rng.uniform(1 - noise_width, 1 + noise_width, (n_samples, n_arcs))
    return X, costs, solver(costs)


def _terrain_maps(n_samples, shape, rng):
    """Terrain type index of every cell, shape (n_samples, rows, cols)."""
    rows, cols = shape
    sigma = max(rows, cols) / 8
    # Thresholding smooth random fields (argmax over one field per natural
    # terrain) gives spatially coherent patches: meadows, woods, lakes.
    fields = rng.standard_normal((n_samples, len(_TERRAIN_BIAS), rows, cols))
    fields = gaussian_filter(fields, sigma=(0, 0, sigma, sigma), mode="reflect")
    fields /= fields.std(axis=(2, 3), keepdims=True) + 1e-12
    terrain = 1 + np.argmax(fields + _TERRAIN_BIAS[:, None, None], axis=1)
    # Roads: straight cheap corridors across the map.
    has_road = rng.uniform(size=(n_samples, 2)) < 0.7
    road_row = rng.randint(rows, size=n_samples)
    road_col = rng.randint(cols, size=n_samples)
    for i in range(n_samples):
        if has_road[i, 0]:
            terrain[i, road_row[i], :] = 0
        if has_road[i, 1]:
            terrain[i, :, road_col[i]] = 0
    return terrain


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "shape": [tuple, list],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_warcraft_like(n_samples, shape=(12, 12), random_state=None):
    """Generate synthetic terrain maps for vertex-weighted shortest paths.

    A stand-in for the Warcraft maps of Vlastelica et al. (2019) used by
    Berthet et al. (2020): each cell of a ``rows × cols`` map has a hidden
    terrain type with a traversal cost, and the task is to predict the
    costs from cell features so that the shortest path from the top-left to
    the bottom-right cell (8-neighbourhood, cell costs summed, both ends
    included) is right.

    * **Terrain**: one of ``TERRAIN_TYPES`` = road, grass, forest, mountain,
      water, with costs ``TERRAIN_COSTS`` = 0.8, 1.2, 5.3, 7.7, 9.2. Grass,
      forest, mountain and water come in spatially coherent patches (the
      argmax of smoothed Gaussian random fields); roads are straight rows or
      columns crossing the map (each present with probability 0.7).
    * **Features** (16 per cell): 12 "colour" features, a fixed embedding
      of the terrain type (the same for every seed) plus a per-map brightness
      offset and independent Gaussian noise of standard deviation 0.8; then
      4 nuisance features unrelated to the terrain (two smooth random
      fields, two white noises).

    Parameters
    ----------
    n_samples : int
        Number of maps.

    shape : tuple of int, default=(12, 12)
        ``(rows, cols)`` of each map.

    random_state : int, RandomState instance or None, default=None
        Seed of the maps and of the feature noise.

    Returns
    -------
    X : ndarray of shape (n_samples, n_cells, 16)
        Cell features, cells in row-major order (``n_cells = rows·cols``).
        For a model of the cost of one cell from its own features, use
        ``X.reshape(-1, X.shape[-1])`` (rows: every cell of every map) with
        targets ``costs.reshape(-1)``; reshape predictions back with
        ``.reshape(n_samples, n_cells)`` before solving.

    costs : ndarray of shape (n_samples, n_cells)
        True cell costs, row-major.

    paths : ndarray of shape (n_samples, n_cells)
        0/1 float64 masks of the cells on the shortest path of each map, from
        :class:`~sk_perturbed.solvers.GridShortestPath` with
        ``neighborhood=8``.

    References
    ----------
    M. Vlastelica, A. Paulus, V. Musil, G. Martius and M. Rolínek,
    "Differentiation of Blackbox Combinatorial Solvers", ICLR 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.datasets import make_warcraft_like
    >>> X, costs, paths = make_warcraft_like(3, shape=(12, 12), random_state=0)
    >>> X.shape, costs.shape, paths.shape
    ((3, 144, 16), (3, 144), (3, 144))
    >>> bool(np.isin(costs, [0.8, 1.2, 5.3, 7.7, 9.2]).all())
    True
    >>> X.reshape(-1, X.shape[-1]).shape  # one row per cell, for per-cell models
    (432, 16)
    """
    rows, cols = check_grid_shape(shape, "shape", "make_warcraft_like")
    rng = check_random_state(random_state)
    n_cells = rows * cols
    terrain = _terrain_maps(n_samples, (rows, cols), rng).reshape(n_samples, n_cells)
    brightness = rng.normal(0, 0.3, size=(n_samples, 1, 1))
    colour = (
        _TERRAIN_COLOURS[terrain]
        + brightness
        + rng.normal(0, 0.8, size=(n_samples, n_cells, _N_COLOUR_FEATURES))
    )
    smooth = rng.standard_normal((n_samples, 2, rows, cols))
    smooth = gaussian_filter(smooth, sigma=(0, 0, 2, 2), mode="reflect")
    smooth /= smooth.std(axis=(2, 3), keepdims=True) + 1e-12
    nuisance = np.concatenate(
        [
            smooth.reshape(n_samples, 2, n_cells).transpose(0, 2, 1),
            rng.standard_normal((n_samples, n_cells, _N_NUISANCE_FEATURES - 2)),
        ],
        axis=2,
    )
    X = np.concatenate([colour, nuisance], axis=2)
    costs = TERRAIN_COSTS[terrain]
    paths = GridShortestPath(shape=(rows, cols), neighborhood=8)(costs)
    return X, costs, paths
