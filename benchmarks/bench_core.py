"""Speed and memory of one ``PerturbedOptimizer.estimate(theta, v)`` call.

Each case times the fused kernel (y_ε, F̂ and the VJP in one pass) against a
floor measured in the same run: what plain NumPy needs just to draw the n·M·d
standard normals, add θ, and sort (Ranking) or arg-max (Argmax) the n·M
perturbed rows, in one vectorized call. Times are medians of repeated calls
after a warm-up. Memory is the peak of the traced allocations during the call,
against the bytes of θ plus the returned arrays.

Usage::

    python benchmarks/bench_core.py            # full table (a few minutes)
    python benchmarks/bench_core.py --quick    # the target cases, < 1 minute
"""

import argparse
import os
import statistics
import threading
import time
import tracemalloc

import numba
import numpy as np

from sk_perturbed.perturbed import PerturbedOptimizer
from sk_perturbed.solvers import Argmax, Ranking

N_ROWS = 256
FULL_CASES = [
    *[("ranking", d, m) for d in (10, 100, 1000) for m in (1, 10, 100)],
    *[("argmax", d, m) for d in (10, 1000) for m in (1, 10, 100)],
    ("argmax", 10, 1000),
]
# The two speed targets, and one large-d case for memory.
QUICK_CASES = [("ranking", 100, 100), ("argmax", 10, 1000), ("ranking", 1000, 10)]
TARGETS = {("ranking", 100, 100): 0.5, ("argmax", 10, 1000): 0.5}
MEMORY_TARGET = 2.0


def median_times(funcs, repeats):
    """Median wall time of each function; calls alternate so drifts hit all alike."""
    for func in funcs:
        func()  # warm-up: compilation, caches, page faults of the first call
    times = [[] for _ in funcs]
    for _ in range(repeats):
        for func, record in zip(funcs, times):
            start = time.perf_counter()
            func()
            record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in times]


def numpy_floor(solver_name, theta, n_samples):
    """Draw the noise, perturb and solve every perturbed row with NumPy."""
    n, d = theta.shape
    z = np.random.default_rng().standard_normal((n, n_samples, d))
    z += theta[:, None, :]
    rows = z.reshape(n * n_samples, d)
    return np.argsort(rows, axis=1) if solver_name == "ranking" else np.argmax(rows, axis=1)


@numba.njit
def _numba_allocation(size):
    return np.empty(size)


def tracemalloc_sees_numba():
    """Whether allocations made inside numba code show up in tracemalloc."""
    _numba_allocation(1)
    tracemalloc.start()
    try:
        _numba_allocation(1 << 20)
        return tracemalloc.get_traced_memory()[1] >= 8 << 20
    finally:
        tracemalloc.stop()


def peak_traced_bytes(func):
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_growth(func, interval=1e-4):
    """Fallback: highest resident-set growth seen by a sampling thread."""
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(interval)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        func()
    finally:
        done.set()
        sampler.join()
    return max(peak[0], _rss_bytes()) - base


def run_case(solver_name, d, n_samples, repeats, peak_bytes):
    rng = np.random.default_rng(0)
    theta = rng.standard_normal((N_ROWS, d))
    v = rng.standard_normal((N_ROWS, d))
    solver = Ranking() if solver_name == "ranking" else Argmax()
    po = PerturbedOptimizer(solver, epsilon=1.0, n_samples=n_samples, random_state=0)
    ours, floor = median_times(
        [lambda: po.estimate(theta, v), lambda: numpy_floor(solver_name, theta, n_samples)],
        repeats,
    )
    est = po.estimate(theta, v)
    outputs = {id(a): a.nbytes for a in est if a is not None}  # y_eps may be the grad too
    budget = theta.nbytes + sum(outputs.values())
    peak = peak_bytes(lambda: po.estimate(theta, v))
    return ours, floor, peak / budget


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the target cases (< 1 min)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per case (>= 5)")
    args = parser.parse_args(argv)
    cases = QUICK_CASES if args.quick else FULL_CASES
    repeats = max(5, args.repeats or (5 if args.quick else 7))
    if tracemalloc_sees_numba():
        peak_bytes, memory_method = peak_traced_bytes, "tracemalloc (sees numba's allocations)"
    else:
        peak_bytes, memory_method = peak_rss_growth, "RSS growth (tracemalloc misses numba)"
    print(
        f"n={N_ROWS}, float64, numba threads={numba.get_num_threads()}, "
        f"median of {repeats} calls after a warm-up; memory: {memory_method}"
    )
    # Other processes on the cores slow the threaded kernel more than the
    # single-threaded floor: the ratios only mean something on an idle machine.
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    header = f"{'solver':8} {'d':>5} {'M':>5} {'ours ms':>9} {'floor ms':>9} {'ours/floor':>10} {'peak/(θ+out)':>13}"
    print(header)
    print("-" * len(header))
    failures = []
    for solver_name, d, n_samples in cases:
        ours, floor, memory = run_case(solver_name, d, n_samples, repeats, peak_bytes)
        ratio = ours / floor
        target = TARGETS.get((solver_name, d, n_samples))
        note = ""
        if target is not None:
            note = f"  target <= {target}: {'ok' if ratio <= target else 'MISSED'}"
            if ratio > target:
                failures.append((solver_name, d, n_samples, "time"))
        if memory > MEMORY_TARGET:
            failures.append((solver_name, d, n_samples, "memory"))
        print(
            f"{solver_name:8} {d:>5} {n_samples:>5} {ours * 1e3:>9.2f} {floor * 1e3:>9.2f} "
            f"{ratio:>10.2f} {memory:>13.2f}{note}"
        )
    print(f"memory target: peak <= {MEMORY_TARGET} x (θ + outputs)")
    if failures:
        print("missed:", ", ".join(f"{s} d={d} M={m} ({what})" for s, d, m, what in failures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
