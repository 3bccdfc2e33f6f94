"""Maximum-weight spanning tree of an undirected graph (Kruskal)."""

import numba as nb
import numpy as np
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from ._base import BaseSolver, zero_one_target_rule
from ._utils import check_int, check_integer_array, pack_spec

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

    _target_rule = zero_one_target_rule

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
