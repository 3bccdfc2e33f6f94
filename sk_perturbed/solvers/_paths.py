"""Shortest paths on grids: arc-weighted (DAG) and cell-weighted (Dijkstra).

Both solvers minimize costs and share one tie rule: the path is traced back
from the target, stepping at each node to the lowest-index neighbour that
lies on a shortest path. Among equal-cost paths the one returned is
therefore the one whose node sequence, read from the target backwards, is
lexicographically smallest (for Dijkstra this holds when costs are
positive; zero-cost cells still give a deterministic answer). Costs are
compared as computed in floating point, along the dynamic program: when
rounding makes two path costs equal that differ in exact arithmetic (costs
of very different magnitudes), the path returned is optimal in floating
point but may not follow this rule.
"""

import numba as nb
import numpy as np
from scipy.sparse import csr_array

from ._base import TARGET_TOL, BaseSolver, _outside_box
from ._utils import (
    check_grid_shape,
    check_int,
    component_labels,
    first_failure_rule,
    first_outside_box,
    pack_spec,
    zero_one_rows,
)

DAG_SHORTEST_PATH_ID = 3
GRID_SHORTEST_PATH_ID = 4

OVERFLOW_COST_MESSAGE = (
    "GridShortestPath: the sums of the cell costs overflow float64, so no path has a "
    "finite cost; rescale the costs (or the model's scores)."
)

NEGATIVE_COST_MESSAGE = (
    "GridShortestPath: Dijkstra needs non-negative cell costs, got a negative cost. "
    "Additive noise makes costs negative: use PerturbedOptimizer(..., "
    "perturbation='multiplicative'), which keeps positive costs positive."
)


def _grid_n_arcs(rows, cols):
    return rows * (cols - 1) + (rows - 1) * cols


@nb.njit(inline="always", cache=True)
def _right_arc(r, c, cols):
    # Each grid row owns cols - 1 horizontal arcs followed by cols vertical ones.
    return r * (2 * cols - 1) + c


@nb.njit(inline="always", cache=True)
def _down_arc(r, c, cols):
    return r * (2 * cols - 1) + cols - 1 + c


@nb.njit(cache=True)
def dag_shortest_path_row(x, float_params, int_params, out):
    rows, cols = int_params[0], int_params[1]
    n = rows * cols
    # Row-major order is topological since arcs only go right or down.
    dist = np.empty(n)
    dist[0] = 0.0
    for v in range(1, n):
        r, c = v // cols, v % cols
        best = np.inf
        if r > 0:
            best = dist[v - cols] + x[_down_arc(r - 1, c, cols)]
        if c > 0:
            best = min(best, dist[v - 1] + x[_right_arc(r, c - 1, cols)])
        dist[v] = best
    out[:] = 0.0
    v = n - 1
    while v > 0:
        r, c = v // cols, v % cols
        # The node above has the lower index: take it whenever it is on a
        # shortest path. dist[v] is one of these very sums, so == is exact.
        if r > 0 and (c == 0 or dist[v - cols] + x[_down_arc(r - 1, c, cols)] == dist[v]):
            out[_down_arc(r - 1, c, cols)] = 1.0
            v -= cols
        else:
            out[_right_arc(r, c - 1, cols)] = 1.0
            v -= 1


@nb.njit(inline="always", cache=True)
def _heap_less(dist, a, b):
    # Order by (distance, cell index) so pops are deterministic on ties.
    return dist[a] < dist[b] or (dist[a] == dist[b] and a < b)


@nb.njit(cache=True)
def _sift_up(heap, position, dist, i):
    node = heap[i]
    while i > 0:
        parent = (i - 1) // 2
        if not _heap_less(dist, node, heap[parent]):
            break
        heap[i] = heap[parent]
        position[heap[i]] = i
        i = parent
    heap[i] = node
    position[node] = i


@nb.njit(cache=True)
def _sift_down(heap, position, dist, i, size):
    node = heap[i]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and _heap_less(dist, heap[child + 1], heap[child]):
            child += 1
        if not _heap_less(dist, heap[child], node):
            break
        heap[i] = heap[child]
        position[heap[i]] = i
        i = child
    heap[i] = node
    position[node] = i


@nb.njit(inline="always", cache=True)
def _is_neighbour_step(dr, dc, diagonal):
    return (dr != 0 or dc != 0) and (diagonal or dr == 0 or dc == 0)


@nb.njit(cache=True)
def grid_shortest_path_row(x, float_params, int_params, out):
    rows, cols, diagonal = int_params[0], int_params[1], int_params[2] == 8
    n = rows * cols
    for j in range(n):
        if x[j] < 0.0:
            # Exceptions raised inside numba's parallel loops can be lost or
            # garbled, so an invalid row is flagged with NaN for the caller.
            out[:] = np.nan
            return
    dist = np.full(n, np.inf)
    # Rank in which each cell was settled (-1: not yet); it orders the
    # shortest-path predecessors so that the trace back cannot cycle
    # through zero-cost cells.
    settled = np.full(n, -1, dtype=np.int64)
    # Indexed binary heap of the reached cells, keyed by dist: a decrease
    # of dist sifts the cell up in place, so the heap never exceeds n.
    heap = np.empty(n, dtype=np.int64)
    position = np.full(n, -1, dtype=np.int64)
    dist[0] = x[0]
    heap[0], position[0], size = 0, 0, 1
    # The grid is connected, so the target is settled before the heap empties
    # unless path sums overflow to inf (inf < inf never relaxes a cell).
    for rank in range(n):
        if size == 0:
            break
        u = heap[0]
        size -= 1
        if size > 0:
            heap[0] = heap[size]
            _sift_down(heap, position, dist, 0, size)
        settled[u] = rank
        if u == n - 1:
            break
        ur, uc = u // cols, u % cols
        for dr in range(-1, 2):
            for dc in range(-1, 2):
                r, c = ur + dr, uc + dc
                if 0 <= r < rows and 0 <= c < cols and _is_neighbour_step(dr, dc, diagonal):
                    v = r * cols + c
                    candidate = dist[u] + x[v]
                    if settled[v] < 0 and candidate < dist[v]:
                        dist[v] = candidate
                        if position[v] < 0:
                            heap[size] = v
                            position[v] = size
                            size += 1
                        _sift_up(heap, position, dist, position[v])
    if settled[n - 1] < 0:
        out[:] = np.nan  # reported by the caller (see _invalid_output_hint)
        return
    out[:] = 0.0
    v = n - 1
    out[v] = 1.0
    while v != 0:
        vr, vc = v // cols, v % cols
        previous = -1
        # Neighbours in increasing index order; the first on a shortest path wins.
        for dr in range(-1, 2):
            for dc in range(-1, 2):
                r, c = vr + dr, vc + dc
                if (
                    previous < 0
                    and 0 <= r < rows
                    and 0 <= c < cols
                    and _is_neighbour_step(dr, dc, diagonal)
                ):
                    u = r * cols + c
                    if 0 <= settled[u] < settled[v] and dist[u] + x[v] == dist[v]:
                        previous = u
        if previous < 0:  # cannot happen for finite costs; never loop on it
            out[:] = np.nan
            return
        v = previous
        out[v] = 1.0


class DAGShortestPath(BaseSolver):
    """Shortest path on a grid graph whose arcs go right or down.

    Nodes are the cells of a ``rows × cols`` grid, numbered row-major; each
    node has an arc to its right and to its lower neighbour. The path runs
    from the top-left node to the bottom-right node, θ holds the arc costs
    and the structure is the 0/1 indicator of the arcs on the path (it has
    ``rows + cols - 2`` ones). Solved by dynamic programming in topological
    order in O(d), so costs of any sign are allowed.

    Arcs are ordered as in PyEPO's shortest-path model: for each grid row,
    its horizontal arcs from left to right, then (except for the last row)
    its vertical arcs from left to right. A 5×5 grid has 40 arcs;
    :meth:`arcs` lists them.

    Ties: among paths of equal cost, the one whose node sequence read from
    the target backwards is lexicographically smallest, i.e. tracing back
    from the target, step up whenever the node above is on a shortest path.
    With all costs equal the path runs right along the top row, then down.

    As a target of the estimators a row must be a path or a mean of paths:
    a unit flow from the first to the last node, which ``fit`` checks
    exactly (this is the convex hull of the paths).

    Parameters
    ----------
    grid : tuple of int, default=(5, 5)
        ``(rows, cols)`` of the grid, at least two nodes.

    Attributes
    ----------
    sense : str
        ``'min'``: θ is a cost vector.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.solvers import DAGShortestPath
    >>> solver = DAGShortestPath(grid=(2, 3))
    >>> solver.arcs()
    array([[0, 1],
           [1, 2],
           [0, 3],
           [1, 4],
           [2, 5],
           [3, 4],
           [4, 5]])
    >>> solver([[1.0, 1.0, 5.0, 0.5, 5.0, 9.0, 1.0]])
    array([[1., 0., 0., 1., 0., 0., 1.]])
    """

    sense = "min"

    def __init__(self, grid=(5, 5)):
        self.grid = grid

    def _validate_params(self):
        check_grid_shape(self.grid, "grid", type(self).__name__)

    def dimension(self):
        """Number of arcs d = rows·(cols − 1) + (rows − 1)·cols.

        Returns
        -------
        d : int
            Length of θ: one cost per arc.
        """
        return _grid_n_arcs(*check_grid_shape(self.grid, "grid", type(self).__name__))

    def arcs(self):
        """Return the arcs of the grid, in the order of the entries of θ.

        Returns
        -------
        arcs : ndarray of int64 of shape (d, 2)
            ``(tail, head)`` node indices of each arc; node ``(r, c)`` has
            index ``r * cols + c``.
        """
        rows, cols = check_grid_shape(self.grid, "grid", type(self).__name__)
        arcs = np.empty((_grid_n_arcs(rows, cols), 2), dtype=np.int64)
        # The kernel's own index functions: one definition of the order.
        for r in range(rows):
            for c in range(cols):
                v = r * cols + c
                if c < cols - 1:
                    arcs[_right_arc(r, c, cols)] = v, v + 1
                if r < rows - 1:
                    arcs[_down_arc(r, c, cols)] = v, v + cols
        return arcs

    def _numba_spec(self):
        rows, cols = check_grid_shape(self.grid, "grid", type(self).__name__)
        return pack_spec(DAG_SHORTEST_PATH_ID, int_params=(rows, cols))

    def _target_rule(self, Y):
        # The convex hull of the paths is the unit-flow polytope of the DAG
        # (its constraint matrix is totally unimodular): this check is exact,
        # for paths and for their means alike.
        rows, cols = check_grid_shape(self.grid, "grid", type(self).__name__)
        arcs = self.arcs()
        n_nodes, d = rows * cols, len(arcs)
        incidence = csr_array(
            (np.r_[np.ones(d), -np.ones(d)], (arcs[:, ::-1].T.ravel(), np.r_[np.arange(d), np.arange(d)])),
            shape=(n_nodes, d),
        )
        net_inflow = (incidence @ Y.T).T
        expected = np.zeros(n_nodes)
        expected[0], expected[-1] = -1.0, 1.0
        broken = np.abs(net_inflow - expected) > TARGET_TOL

        def describe_box(i):
            j = first_outside_box(Y[i])
            return f"arc {j} {tuple(arcs[j].tolist())} carries {Y[i, j]:g}, outside [0, 1]"

        def describe_flow(i):
            v = int(np.flatnonzero(broken[i])[0])
            return (
                f"inflow - outflow at node {v} (row {v // cols}, column {v % cols}) is "
                f"{net_inflow[i, v]:g} instead of {expected[v]:g}"
            )

        return first_failure_rule(
            f"the 0/1 arcs of one path from node 0 (top left) to node {n_nodes - 1} (bottom "
            "right), or a mean of such paths: a unit flow, i.e. entries in [0, 1] and inflow - "
            f"outflow = -1 at node 0, +1 at node {n_nodes - 1} and 0 at every other node",
            [(_outside_box(Y), describe_box), (broken.any(axis=1), describe_flow)],
        )


class GridShortestPath(BaseSolver):
    """Shortest path over the cells of a grid map (vertex costs), by Dijkstra.

    The path moves between neighbouring cells (4 or 8 neighbourhood) from
    the top-left cell to the bottom-right cell; its cost is the sum of the
    costs of the cells it visits, both endpoints included. θ holds the cell
    costs in row-major order and the structure is the 0/1 mask of the
    visited cells. This is the Warcraft shortest-path task of Vlastelica et
    al. (2019) used by Berthet et al. (2020) on 12×12 maps.

    Dijkstra's algorithm (indexed binary heap, stops at the target)
    needs **non-negative costs**: a negative cost raises ``ValueError``.
    Beware that additive Gaussian perturbations ``θ + εZ`` make costs
    negative; inside :class:`~sk_perturbed.perturbed.PerturbedOptimizer` use
    ``perturbation='multiplicative'`` (``θ ⊙ exp(εZ − ε²/2)``), which keeps
    positive costs positive. Inside the fused numba kernels, where raising
    is unreliable, a row with a negative cost yields a structure of NaN.

    Ties: among paths of equal cost, the trace back from the target steps
    to the lowest-index neighbour on a shortest path. With positive costs
    this returns the path whose cell sequence read backwards is
    lexicographically smallest.

    As a target of the estimators a 0/1 row must be such a path whose every
    cell touches (among its neighbours) only its predecessor and successor,
    as every shortest path for positive costs does; a fractional row must
    meet conditions every mean of paths meets (1 at both corners, the
    corners' neighbours summing to 1, each cell's neighbours summing to at
    least twice its value). ``fit`` names the first row that does not.

    Parameters
    ----------
    shape : tuple of int, default=(12, 12)
        ``(rows, cols)`` of the map, at least two cells.
    neighborhood : {4, 8}, default=8
        4: moves up, down, left, right; 8: diagonal moves too.

    Attributes
    ----------
    sense : str
        ``'min'``: θ is a cost vector.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.solvers import GridShortestPath
    >>> costs = np.array([[1.0, 9.0, 9.0],
    ...                   [9.0, 1.0, 9.0],
    ...                   [9.0, 9.0, 1.0]])
    >>> GridShortestPath(shape=(3, 3))(costs.ravel()).reshape(3, 3)
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    >>> GridShortestPath(shape=(3, 3), neighborhood=4)(costs.ravel()).reshape(3, 3)
    array([[1., 1., 0.],
           [0., 1., 1.],
           [0., 0., 1.]])
    """

    sense = "min"
    requires_positive = True

    def __init__(self, shape=(12, 12), neighborhood=8):
        self.shape = shape
        self.neighborhood = neighborhood

    def _validate_params(self):
        name = type(self).__name__
        check_grid_shape(self.shape, "shape", name)
        if check_int(self.neighborhood, "neighborhood", name) not in (4, 8):
            raise ValueError(f"{name}: neighborhood must be 4 or 8, got {self.neighborhood!r}.")

    def dimension(self):
        """Number of cells d = rows·cols.

        Returns
        -------
        d : int
            Length of θ: one cost per cell.
        """
        rows, cols = check_grid_shape(self.shape, "shape", type(self).__name__)
        return rows * cols

    def _solve_batch(self, theta):
        if np.any(theta < 0):
            raise ValueError(NEGATIVE_COST_MESSAGE)
        return super()._solve_batch(theta)

    def _invalid_output_hint(self, theta_row):
        if np.isfinite(np.abs(theta_row).sum() * 1e3):
            return NEGATIVE_COST_MESSAGE  # costs this small only fail when negative
        return OVERFLOW_COST_MESSAGE

    def _numba_spec(self):
        self._validate_params()
        rows, cols = self.shape
        return pack_spec(GRID_SHORTEST_PATH_ID, int_params=(rows, cols, self.neighborhood))

    def _target_rule(self, Y):
        # Exact for 0/1 rows; for means, linear conditions that every path
        # meets, hence every mean of paths.
        self._validate_params()
        (rows, cols), diagonal = self.shape, self.neighborhood == 8
        n, n_cells = Y.shape
        neighbours = _neighbour_sums(Y.reshape(n, rows, cols), diagonal).reshape(n, n_cells)
        corners = Y[:, [0, -1]]
        corner_neighbours = neighbours[:, [0, -1]]
        interior, interior_neighbours = Y[:, 1:-1], neighbours[:, 1:-1]
        box = _outside_box(Y)
        missing_corner = (np.abs(corners - 1.0) > TARGET_TOL).any(axis=1)
        corner_degree = (np.abs(corner_neighbours - 1.0) > TARGET_TOL).any(axis=1)
        dead_end = (interior_neighbours < 2.0 * interior - TARGET_TOL).any(axis=1)
        zero_one = zero_one_rows(Y)
        shortcut = zero_one & (interior_neighbours * np.rint(interior) > 2.0 + TARGET_TOL).any(axis=1)
        # With those degrees, a 0/1 row is the path from corner to corner plus
        # possibly cycles apart from it: cells off the first cell's component.
        detached = np.zeros(n, dtype=bool)
        candidates = np.flatnonzero(zero_one & ~(box | missing_corner | corner_degree | dead_end | shortcut))
        off_path = np.zeros((n, n_cells), dtype=bool)
        if candidates.size:
            cells = np.rint(Y[candidates]).astype(bool)
            labels = component_labels(len(candidates), n_cells, *_grid_path_edges(cells, rows, cols, diagonal))
            off_path[candidates] = cells & (labels != labels[:, :1])
            detached = off_path.any(axis=1)

        def cell(j):
            return f"cell {j} (row {j // cols}, column {j % cols})"

        def describe_box(i):
            j = first_outside_box(Y[i])
            return f"{cell(j)} is {Y[i, j]:g}, outside [0, 1]"

        def describe_corner(i):
            j = 0 if abs(Y[i, 0] - 1.0) > TARGET_TOL else n_cells - 1
            return f"{cell(j)}, an end of every path, is {Y[i, j]:g} instead of 1"

        def describe_corner_degree(i):
            j = 0 if abs(neighbours[i, 0] - 1.0) > TARGET_TOL else n_cells - 1
            return (
                f"the {self.neighborhood} neighbours of {cell(j)}, an end of every path, "
                f"sum to {neighbours[i, j]:g} instead of 1"
            )

        def describe_dead_end(i):
            j = 1 + int(np.flatnonzero(interior_neighbours[i] < 2.0 * interior[i] - TARGET_TOL)[0])
            return (
                f"the {self.neighborhood} neighbours of {cell(j)} sum to {neighbours[i, j]:g}, "
                f"less than twice its value {Y[i, j]:g}: a path enters and leaves each of its cells"
            )

        def describe_shortcut(i):
            j = 1 + int(np.flatnonzero(interior_neighbours[i] * np.rint(interior[i]) > 2.0 + TARGET_TOL)[0])
            return (
                f"{cell(j)} touches {neighbours[i, j]:g} cells of the path instead of 2 (a path "
                "with a shortcut is never a shortest path for positive costs)"
            )

        def describe_detached(i):
            j = int(np.flatnonzero(off_path[i])[0])
            return f"{cell(j)} is not connected to the path that starts at cell 0"

        return first_failure_rule(
            f"the 0/1 cells of a path of {self.neighborhood}-neighbours from cell 0 (top left) "
            f"to cell {n_cells - 1} (bottom right) whose every cell touches only its "
            "predecessor and successor on the path (as every shortest path for positive "
            "costs), or a mean of such paths",
            [
                (box, describe_box),
                (missing_corner, describe_corner),
                (corner_degree, describe_corner_degree),
                (dead_end, describe_dead_end),
                (shortcut, describe_shortcut),
                (detached, describe_detached),
            ],
        )


def _neighbour_steps(diagonal):
    """The moves ``(dr, dc)`` between neighbouring cells, as the kernel's rule."""
    return [
        (dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if _is_neighbour_step(dr, dc, diagonal)
    ]


def _neighbour_sums(cells, diagonal):
    """For each cell of ``cells`` (n, rows, cols), the sum of its neighbours' values."""
    _, rows, cols = cells.shape
    padded = np.pad(cells, ((0, 0), (1, 1), (1, 1)))
    total = np.zeros_like(cells)
    for dr, dc in _neighbour_steps(diagonal):
        total += padded[:, 1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols]
    return total


def _grid_path_edges(cells, rows, cols, diagonal):
    """``(row, u, v)`` of the edges between selected neighbouring cells of ``cells`` (m, d)."""
    grids = cells.reshape(-1, rows, cols)
    index = np.arange(rows * cols).reshape(rows, cols)
    parts = []
    for dr, dc in _neighbour_steps(diagonal):
        if (dr, dc) <= (0, 0):
            continue  # each undirected edge once: the steps that go forward
        r0, r1 = 0, rows - dr
        c0, c1 = max(0, -dc), cols - max(0, dc)
        both = grids[:, r0:r1, c0:c1] & grids[:, r0 + dr : r1 + dr, c0 + dc : c1 + dc]
        k, r, c = np.nonzero(both)
        parts.append((k, index[r + r0, c + c0], index[r + r0 + dr, c + c0 + dc]))
    return tuple(np.concatenate(column) for column in zip(*parts))
