"""Depth-first branch and bound for 0/1 knapsacks with several constraints.

For knapsacks whose dynamic-programming table is too large (PyEPO's 32 items
with weights 3.00-7.99 and capacity 20 in 2 dimensions scale to a 2001 x 2001
table) and that are small enough for a search: items are branched on in
decreasing order of value per unit of (capacity-normalized) weight, taking
first, and a node is pruned by the smallest of the fractional-knapsack
(Dantzig) bounds of its constraints taken one at a time, over the items that
still fit. A search that visits more than ``node_limit`` nodes gives up and
reports it, so the caller can solve that problem another way.
"""

import numba as nb
import numpy as np

#: Nodes one search may visit before it gives up (about 10-30 ms at 32 items).
NODE_LIMIT = 200_000

#: Sets are coded as bit masks of the candidate items.
MAX_ITEMS = 64

#: A node is pruned when its bound exceeds the best value by at most this
#: (relative): solutions are optimal to that relative tolerance.
_PRUNE_RTOL = 1e-12


@nb.njit(cache=True)
def _bound(t, value, remaining, v, W, orders, tol):
    """Smallest Dantzig bound over the constraints, items t.. that still fit."""
    k, m = W.shape
    best = np.inf
    for i in range(k):
        cap = remaining[i]
        bound = value
        for q in range(m):
            p = orders[i, q]
            if p < t:
                continue
            fits = True
            for r in range(k):
                if W[r, p] > remaining[r] + tol[r]:
                    fits = False
                    break
            if not fits:
                continue
            w = W[i, p]
            if w <= cap:
                cap -= w
                bound += v[p]
            else:
                bound += v[p] * cap / w
                break
        if bound < best:
            best = bound
    return best


@nb.njit(cache=True)
def knapsack_bnb_row(x, weights, capacity, tol, node_limit, out):
    """Solve ``max x·y, weights @ y <= capacity, y in {0,1}^d``; False if over the node limit."""
    k, d = weights.shape
    out[:] = 0.0
    # Candidates: positive value, fit alone. Weightless ones are always taken.
    cand = np.empty(d, dtype=np.int64)
    m = 0
    for j in range(d):
        if x[j] <= 0.0:
            continue
        fits, weightless = True, True
        for i in range(k):
            if weights[i, j] > capacity[i] + tol[i]:
                fits = False
            if weights[i, j] != 0.0:
                weightless = False
        if not fits:
            continue
        if weightless:
            out[j] = 1.0
        else:
            cand[m] = j
            m += 1
    if m == 0:
        return True
    if m > MAX_ITEMS:
        return False
    # Branching order: value per unit of summed normalized weight, decreasing.
    ratio = np.empty(m)
    for p in range(m):
        s = 0.0
        for i in range(k):
            s += weights[i, cand[p]] / max(capacity[i], 1e-300)
        ratio[p] = -x[cand[p]] / s
    order = np.argsort(ratio, kind="mergesort")
    items = cand[:m][order]
    v = np.empty(m)
    W = np.empty((k, m))
    for p in range(m):
        v[p] = x[items[p]]
        for i in range(k):
            W[i, p] = weights[i, items[p]]
    # Per constraint, the positions by value per unit of that constraint's weight.
    orders = np.empty((k, m), dtype=np.int64)
    key = np.empty(m)
    for i in range(k):
        for p in range(m):
            key[p] = -np.inf if W[i, p] == 0.0 else -v[p] / W[i, p]
        orders[i] = np.argsort(key, kind="mergesort")
    # Explicit DFS stack: at most one pending sibling per depth.
    stack_t = np.empty(m + 2, dtype=np.int64)
    stack_value = np.empty(m + 2)
    stack_remaining = np.empty((m + 2, k))
    stack_mask = np.empty(m + 2, dtype=np.uint64)
    sp = 0
    stack_t[0], stack_value[0], stack_mask[0] = 0, 0.0, np.uint64(0)
    stack_remaining[0] = capacity
    sp = 1
    best_value, best_mask = 0.0, np.uint64(0)
    nodes = 0
    one = np.uint64(1)
    while sp > 0:
        sp -= 1
        t, value, mask = stack_t[sp], stack_value[sp], stack_mask[sp]
        remaining = stack_remaining[sp].copy()
        nodes += 1
        if nodes > node_limit:
            return False
        if value > best_value:
            best_value, best_mask = value, mask
        if t == m:
            continue
        bound = _bound(t, value, remaining, v, W, orders, tol)
        if bound <= best_value + _PRUNE_RTOL * abs(best_value):
            continue
        # Skip item t (explored second), then take it (explored first).
        stack_t[sp], stack_value[sp], stack_mask[sp] = t + 1, value, mask
        stack_remaining[sp] = remaining
        sp += 1
        fits = True
        for i in range(k):
            if W[i, t] > remaining[i] + tol[i]:
                fits = False
                break
        if fits:
            for i in range(k):
                remaining[i] -= W[i, t]
            stack_t[sp], stack_value[sp] = t + 1, value + v[t]
            stack_mask[sp] = mask | (one << np.uint64(t))
            stack_remaining[sp] = remaining
            sp += 1
    for p in range(m):
        if (best_mask >> np.uint64(p)) & one:
            out[items[p]] = 1.0
    return True


#: Batches of fewer rows are solved on the calling thread: 32 rows take about
#: 1 ms there, less than waking numba's threads costs on busy cores.
MIN_PARALLEL_ROWS = 64


def _batch(theta, weights, capacity, tol, node_limit):
    n, d = theta.shape
    out = np.empty((n, d))
    solved = np.empty(n, dtype=np.bool_)
    for i in nb.prange(n):
        solved[i] = knapsack_bnb_row(theta[i], weights, capacity, tol, node_limit, out[i])
    return out, solved


_serial_batch = nb.njit(cache=True)(_batch)
_parallel_batch = nb.njit(cache=True, parallel=True)(_batch)


def knapsack_bnb_batch(theta, weights, capacity, tol, node_limit):
    """Every row of ``theta``; ``solved[i]`` is False where row i hit the node limit."""
    batch = _serial_batch if theta.shape[0] < MIN_PARALLEL_ROWS else _parallel_batch
    return batch(theta, weights, capacity, tol, node_limit)
