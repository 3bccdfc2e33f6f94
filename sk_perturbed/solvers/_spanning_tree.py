"""Maximum-weight spanning tree of an undirected graph (Kruskal)."""

import numba as nb
import numpy as np
from scipy.sparse import coo_array, csr_array
from scipy.sparse.csgraph import connected_components

from ._base import TARGET_TOL, BaseSolver, _outside_box, _wrong_sum
from ._utils import (
    check_int,
    check_integer_array,
    component_labels,
    first_failure_rule,
    first_outside_box,
    pack_spec,
    zero_one_rows,
)

SPANNING_TREE_ID = 7


@nb.njit(cache=True)
def _find(parent, a):
    # Path halving keeps the trees shallow without recursion.
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@nb.njit(cache=True)
def spanning_tree_row(x, float_params, int_params, out):
    n_nodes = int_params[0]
    edges = int_params[1:]
    # Stable sort of -x: heavier edges first, lower edge index first on ties.
    order = np.argsort(-x, kind="mergesort")
    parent = np.arange(n_nodes)
    size = np.ones(n_nodes, dtype=np.int64)
    out[:] = 0.0
    n_taken = 0
    for e in order:
        a = _find(parent, edges[2 * e])
        b = _find(parent, edges[2 * e + 1])
        if a == b:
            continue
        if size[a] < size[b]:
            a, b = b, a
        parent[b] = a
        size[a] += size[b]
        out[e] = 1.0
        n_taken += 1
        if n_taken == n_nodes - 1:
            break


class SpanningTree(BaseSolver):
    """Maximum-weight spanning tree of a connected undirected graph.

    θ holds one weight per edge, in the order of ``edges``; the structure is
    the 0/1 mask of the ``n_nodes - 1`` edges of a spanning tree of maximal
    total weight (weights of any sign). Solved by Kruskal's algorithm with a
    union–find forest, O(d log d).

    Ties: edges are scanned by decreasing weight, lower index first among
    equal weights. The tree returned is the maximum-weight tree whose
    edges, sorted that way, form the lexicographically smallest sequence of
    (−weight, index) pairs.

    As a target of the estimators a 0/1 row must be a spanning tree
    (``n_nodes - 1`` edges connecting every node), checked exactly; a
    fractional row must sum to ``n_nodes - 1`` with edges of total weight at
    least 1 at every node, as every mean of trees does.

    Parameters
    ----------
    n_nodes : int
        Number of nodes, at least 2; nodes are ``0 .. n_nodes - 1``.
    edges : array-like of int of shape (d, 2)
        Undirected edges ``(u, v)``; parallel edges are allowed, self-loops
        are not. The graph must be connected.

    Attributes
    ----------
    sense : str
        ``'max'``: θ holds edge weights.

    Examples
    --------
    >>> from sk_perturbed.solvers import SpanningTree
    >>> solver = SpanningTree(n_nodes=3, edges=[(0, 1), (1, 2), (0, 2)])
    >>> solver([[2.0, 1.0, 3.0]])
    array([[1., 0., 1.]])
    """

    def __init__(self, n_nodes, edges):
        self.n_nodes = n_nodes
        self.edges = edges

    def _checked_params(self):
        name = type(self).__name__
        n_nodes = check_int(self.n_nodes, "n_nodes", name, min_value=2)
        edges = check_integer_array(self.edges, "edges", name, ndim=2, min_value=0)
        if edges.shape[1] != 2 or edges.shape[0] == 0:
            raise ValueError(
                f"{name}: edges must be a non-empty sequence of (u, v) pairs, "
                f"got an array of shape {edges.shape}."
            )
        if edges.max() >= n_nodes:
            raise ValueError(
                f"{name}: edges refer to node {edges.max()}, but nodes are 0..{n_nodes - 1}."
            )
        loops = np.flatnonzero(edges[:, 0] == edges[:, 1])
        if loops.size:
            raise ValueError(f"{name}: edge {loops[0]} is a self-loop {tuple(edges[loops[0]].tolist())}.")
        adjacency = coo_array(
            (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_nodes, n_nodes)
        )
        n_components = connected_components(adjacency, directed=False, return_labels=False)
        if n_components > 1:
            raise ValueError(
                f"{name}: the graph is disconnected ({n_components} components), so it has "
                "no spanning tree."
            )
        return n_nodes, edges

    def _validate_params(self):
        self._checked_params()

    def dimension(self):
        """Number of edges d = len(edges).

        Returns
        -------
        d : int
            Length of θ: one weight per edge.
        """
        return self._checked_params()[1].shape[0]

    def _numba_spec(self):
        n_nodes, edges = self._checked_params()
        return pack_spec(SPANNING_TREE_ID, int_params=np.concatenate([[n_nodes], edges.ravel()]))

    def _target_rule(self, Y):
        # Exact for 0/1 rows (n_nodes - 1 edges that connect every node); for
        # means, linear conditions that every spanning tree meets.
        n_nodes, edges = self._checked_params()
        n, d = Y.shape
        incidence = csr_array(
            (np.ones(2 * d), (edges.T.ravel(), np.r_[np.arange(d), np.arange(d)])),
            shape=(n_nodes, d),
        )
        coverage = (incidence @ Y.T).T  # weight of the edges at each node
        box = _outside_box(Y)
        edge_count = _wrong_sum(Y.sum(axis=1), n_nodes - 1)
        uncovered = (coverage < 1.0 - TARGET_TOL).any(axis=1)
        disconnected = np.zeros(n, dtype=bool)
        candidates = np.flatnonzero(zero_one_rows(Y) & ~(box | edge_count | uncovered))
        labels = None
        if candidates.size:
            row, e = np.nonzero(np.rint(Y[candidates]))
            labels = component_labels(len(candidates), n_nodes, row, edges[e, 0], edges[e, 1])
            disconnected[candidates] = (labels != labels[:, :1]).any(axis=1)

        def describe_box(i):
            j = first_outside_box(Y[i])
            return f"edge {j} {tuple(edges[j].tolist())} is {Y[i, j]:g}, outside [0, 1]"

        def describe_count(i):
            return f"its entries sum to {Y[i].sum():g} instead of n_nodes - 1 = {n_nodes - 1}"

        def describe_uncovered(i):
            v = int(np.flatnonzero(coverage[i] < 1.0 - TARGET_TOL)[0])
            return f"the edges at node {v} sum to {coverage[i, v]:g}: a spanning tree reaches every node"

        def describe_disconnected(i):
            k = int(np.searchsorted(candidates, i))
            v = int(np.flatnonzero(labels[k] != labels[k, 0])[0])
            return (
                f"its {n_nodes - 1} edges contain a cycle and leave node {v} unconnected to node 0"
            )

        return first_failure_rule(
            f"the 0/1 mask of {n_nodes - 1} edges (n_nodes - 1) that connect all {n_nodes} "
            "nodes without a cycle, or a mean of such trees (entries in [0, 1] summing to "
            "n_nodes - 1, with edges of total weight >= 1 at every node)",
            [
                (box, describe_box),
                (edge_count, describe_count),
                (uncovered, describe_uncovered),
                (disconnected, describe_disconnected),
            ],
        )
