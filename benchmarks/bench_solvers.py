"""Solves per second of each built-in solver in the fused numba kernels.

For each solver, a batch of N random instances (the n·M perturbed problems
of one perturbed-optimizer call) is solved

* by the batch kernel ``_solve_batch_kernel`` (one ``prange`` over rows,
  every row through the cached solver switch), and
* inside ``PerturbedOptimizer.estimate`` (noise drawn in the kernel,
  n = N / M rows, M = 10 samples each),

beside the reference most users would call otherwise (SciPy, NetworkX or
NumPy), looped over instances in Python. The reference is timed on a
subset of the instances in five bursts of 0.2 s. Both sides report their
best repeat (the least disturbed by other load on the machine); "ratio" is
kernel solves/s over reference solves/s.

The references are single-threaded: ``--threads 1`` gives a per-core
comparison, and is also the stable choice on a machine shared with other
jobs (numba's OpenMP workers spin, and collapse when cores are
oversubscribed).

Usage::

    python benchmarks/bench_solvers.py                # N = 50000 instances
    python benchmarks/bench_solvers.py --quick        # N = 5000, < 1 minute
    python benchmarks/bench_solvers.py --threads 1    # numba threads
"""

import argparse
import contextlib
import os
import sys
import time

import networkx as nx
import numba
import numpy as np
from scipy.optimize import LinearConstraint, linear_sum_assignment, milp
from scipy.sparse import csr_array
from scipy.sparse.csgraph import dijkstra
from scipy.stats import rankdata

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
from sk_perturbed.solvers._registry import _solve_batch_kernel, numba_solver_arg

N_SAMPLES = 10  # M of the PerturbedOptimizer column


def best_time(func, repeats=5):
    """Fastest of ``repeats`` calls after a warm-up (least disturbed by other load)."""
    func()  # warm-up: compilation, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def reference_solves_per_second(reference, instances, n_bursts=5, burst=0.2):
    """Best rate over short bursts of the reference looped over the instances."""
    reference(instances[0])  # warm-up
    rates = []
    k = 0
    for _ in range(n_bursts):
        count, start = 0, time.perf_counter()
        while True:
            reference(instances[k % len(instances)])
            k += 1
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed > burst:
                break
        rates.append(count / elapsed)
    return max(rates)


@contextlib.contextmanager
def quiet_c_stdout():
    """Silence output written by C code (HiGHS prints debug lines on fd 1)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


# ---------------------------------------------------------------- references


def _path_mask(predecessors, target, arc_index, d):
    mask = np.zeros(d)
    v = target
    while predecessors[v] >= 0:
        mask[arc_index[predecessors[v], v]] = 1.0
        v = predecessors[v]
    return mask


def dag_reference(grid):
    arcs = DAGShortestPath(grid).arcs()
    n_nodes = grid[0] * grid[1]
    arc_index = {(u, v): k for k, (u, v) in enumerate(arcs)}

    def solve(costs):
        graph = csr_array((costs, (arcs[:, 0], arcs[:, 1])), shape=(n_nodes, n_nodes))
        _, pred = dijkstra(graph, indices=0, return_predecessors=True)
        return _path_mask(pred, n_nodes - 1, arc_index, len(arcs))

    return "scipy csgraph.dijkstra", solve


def grid_reference(shape):
    rows, cols = shape
    tails, heads = [], []
    for r, c, dr, dc in np.ndindex(rows, cols, 3, 3):
        r2, c2 = r + dr - 1, c + dc - 1
        if (dr, dc) != (1, 1) and 0 <= r2 < rows and 0 <= c2 < cols:
            tails.append(r * cols + c)
            heads.append(r2 * cols + c2)
    tails, heads = np.array(tails), np.array(heads)
    n = rows * cols

    def solve(costs):
        # Vertex costs become the cost of the arcs entering each cell.
        graph = csr_array((costs[heads], (tails, heads)), shape=(n, n))
        _, pred = dijkstra(graph, indices=0, return_predecessors=True)
        mask = np.zeros(n)
        v = n - 1
        while v >= 0:
            mask[v] = 1.0
            v = pred[v]
        return mask

    return "scipy csgraph.dijkstra", solve


def assignment_reference(n):
    def solve(costs):
        rows, cols = linear_sum_assignment(costs.reshape(n, n))
        y = np.zeros((n, n))
        y[rows, cols] = 1.0
        return y.ravel()

    return "scipy linear_sum_assignment", solve


def knapsack_reference(weights, capacity):
    constraint = LinearConstraint(weights[None, :], -np.inf, capacity)

    def solve(values):
        result = milp(-values, constraints=constraint, integrality=np.ones(len(values)),
                      bounds=(0, 1))
        return np.round(result.x)

    return "scipy milp (HiGHS)", solve


def spanning_tree_reference(n_nodes, edges):
    index = {(min(u, v), max(u, v)): k for k, (u, v) in enumerate(edges)}

    def solve(weights):
        graph = nx.Graph()
        for (u, v), w in zip(edges, weights):
            graph.add_edge(u, v, weight=w)
        y = np.zeros(len(edges))
        for u, v in nx.maximum_spanning_tree(graph).edges:
            y[index[min(u, v), max(u, v)]] = 1.0
        return y

    return "networkx maximum_spanning_tree", solve


def _one_hot_argmax(theta):
    y = np.zeros_like(theta)
    y[np.argmax(theta)] = 1.0
    return y


@numba.njit
def _jitted_argmax(theta):
    y = np.zeros_like(theta)
    y[np.argmax(theta)] = 1.0
    return y


def _random_connected_edges(rng, n_nodes, p):
    while True:
        graph = nx.gnp_random_graph(n_nodes, p, seed=int(rng.randint(2**31)))
        if nx.is_connected(graph):
            return np.array(sorted(graph.edges))


# --------------------------------------------------------------------- cases


def cases(rng):
    k = 5
    weights = rng.randint(1, 30, size=50)
    edges = _random_connected_edges(rng, 20, 0.3)
    positive = dict(low=0.5, high=2.0)
    return [
        ("Argmax", Argmax(), 20, {}, ("numpy argmax", _one_hot_argmax)),
        ("TopK(k=5)", TopK(k=k), 20, {}, (
            "numpy argsort",
            lambda t: np.isin(np.arange(len(t)), np.argsort(-t, kind="stable")[:k]) * 1.0,
        )),
        ("Ranking", Ranking(), 20, {}, (
            "scipy rankdata", lambda t: rankdata(t, method="ordinal").astype(float),
        )),
        ("DAGShortestPath 5x5", DAGShortestPath((5, 5)), None, positive, dag_reference((5, 5))),
        ("GridShortestPath 12x12", GridShortestPath((12, 12)), None, positive,
         grid_reference((12, 12))),
        ("Assignment n=10", Assignment(10), None, {}, assignment_reference(10)),
        ("Knapsack d=50", Knapsack(weights, int(weights.sum() // 2)), None, positive,
         knapsack_reference(weights, int(weights.sum() // 2))),
        (f"SpanningTree {len(edges)} edges", SpanningTree(20, edges), None, {},
         spanning_tree_reference(20, edges)),
        ("CallableSolver(@njit argmax)", CallableSolver(_jitted_argmax), 20, {},
         ("the same @njit, per row", _jitted_argmax)),
        ("CallableSolver(python)", CallableSolver(_one_hot_argmax), 20, {},
         ("the same function, per row", _one_hot_argmax)),
        ("CallableSolver(python, n_jobs=2)", CallableSolver(_one_hot_argmax, n_jobs=2), 20, {},
         ("the same function, per row", _one_hot_argmax)),
    ]


def run(n_instances, n_reference, seed=0):
    rng = np.random.RandomState(seed)
    rows = []
    for name, solver, d, theta_range, (ref_name, reference) in cases(rng):
        d = solver.dimension() if d is None else d
        if theta_range:
            theta = rng.uniform(theta_range["low"], theta_range["high"], size=(n_instances, d))
        else:
            theta = rng.normal(size=(n_instances, d))
        arg = numba_solver_arg(solver)
        if arg is not None:
            t_kernel = best_time(lambda: _solve_batch_kernel(theta, arg))
        else:
            t_kernel = best_time(lambda: solver._solve_batch(theta))
        perturbation = "multiplicative" if isinstance(solver, GridShortestPath) else "additive"
        po = PerturbedOptimizer(solver, n_samples=N_SAMPLES, epsilon=0.5,
                                perturbation=perturbation, random_state=0)
        base = theta[: n_instances // N_SAMPLES]
        t_perturbed = best_time(lambda: po.estimate(base))
        with quiet_c_stdout():
            check = theta[:20]
            # Same optimal values as the reference before timing anything.
            theirs = np.array([reference(row) for row in check])
            assert np.allclose((solver(check) * check).sum(1), (theirs * check).sum(1)), name
            reference_rate = reference_solves_per_second(reference, theta[:n_reference])
        kernel_rate = n_instances / t_kernel
        rows.append((name, d, kernel_rate, len(base) * N_SAMPLES / t_perturbed, ref_name,
                     reference_rate, kernel_rate / reference_rate))
    return rows


def print_table(rows, n_instances):
    print(f"{n_instances} instances per batch, {numba.get_num_threads()} numba threads; "
          f"PerturbedOptimizer: n = {n_instances // N_SAMPLES} rows x M = {N_SAMPLES}")
    header = ("solver", "d", "kernel/s", "perturbed/s", "reference (Python loop)", "ref/s",
              "ratio")
    widths = (32, 4, 11, 12, 31, 9, 8)
    print("  ".join(h.ljust(w) if i in (0, 4) else h.rjust(w)
                    for i, (h, w) in enumerate(zip(header, widths))))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for name, d, kernel, perturbed, ref_name, ref, ratio in rows:
        print(f"{name:<32}  {d:>4}  {kernel:>11,.0f}  {perturbed:>12,.0f}  {ref_name:<31}  "
              f"{ref:>9,.0f}  {ratio:>7,.0f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches (< 1 minute)")
    parser.add_argument("--threads", type=int, default=None, help="numba threads")
    args = parser.parse_args()
    if args.threads is not None:
        numba.set_num_threads(args.threads)
    n_instances, n_reference = (5000, 100) if args.quick else (50000, 1000)
    print_table(run(n_instances, n_reference), n_instances)


if __name__ == "__main__":
    main()
