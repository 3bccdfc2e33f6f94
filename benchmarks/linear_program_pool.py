"""LinearProgram on HiGHS: one worker, a thread pool or a process pool for a batch.

The batch is the problem of ``decision_focused.py``'s knapsack: PyEPO's 32
items, 2 constraints of capacity 20 (``make_knapsack``, deg 4, noise 0.5), as a
0/1 MILP and as its LP relaxation, one row of predicted values per problem.
Each configuration of ``LinearProgram(n_jobs=..., pool=...)`` solves the same
batch: the first call (for processes, it starts the workers) and the median of
``repeats`` later calls, interleaved configuration by configuration. Every
configuration must return the same solutions as ``n_jobs=1``.

Run: ``python benchmarks/linear_program_pool.py`` or ``--quick``.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, parse_args, write_report  # noqa: E402

from sk_perturbed.datasets import make_knapsack  # noqa: E402
from sk_perturbed.solvers import LinearProgram  # noqa: E402

CONFIGS = {"n_jobs=1": dict(n_jobs=1), "2 threads": dict(n_jobs=2, pool="thread"),
           "2 processes": dict(n_jobs=2, pool="process")}


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv, __doc__.splitlines()[0])
    n, repeats = (40, 2) if args.quick else (400, 5)
    _, V, weights, capacity = make_knapsack(n, n_items=32, dim=2, deg=4, noise_width=0.5,
                                            capacity=20, random_state=args.seed)
    start = time.perf_counter()
    rows = []
    for problem, integrality in (("knapsack MILP", 1), ("LP relaxation", 0)):
        solvers = {name: LinearProgram(32, A_ub=weights, b_ub=capacity, bounds=(0, 1),
                                       integrality=integrality, sense="max", **params)
                   for name, params in CONFIGS.items()}
        first, later, solutions = {}, {name: [] for name in CONFIGS}, {}
        for name, solver in solvers.items():
            t = time.perf_counter()
            solutions[name] = solver(V)
            first[name] = time.perf_counter() - t
        for _ in range(repeats):
            for name, solver in solvers.items():
                t = time.perf_counter()
                solver(V)
                later[name].append(time.perf_counter() - t)
        for name in CONFIGS:
            np.testing.assert_allclose(solutions[name], solutions["n_jobs=1"], atol=1e-9)
            median = np.median(later[name])
            rows.append([problem, name, f"{first[name]:.3f}", f"{median:.3f}",
                         f"{np.median(later['n_jobs=1']) / median:.2f}",
                         f"{1e3 * median / n:.2f}"])
            print(rows[-1], flush=True)
    notes = [f"{n} problems per batch (32 items, 2 constraints), random_state = {args.seed}; "
             f"median of {repeats} calls after the first, interleaved.",
             "Every configuration returned the same solutions as n_jobs=1.",
             f"Total wall time {time.perf_counter() - start:.0f} s."]
    md = write_report(args.out / "linear_program_pool.md",
                      "LinearProgram: thread pool vs process pool",
                      command_line("linear_program_pool.py", args),
                      [("Seconds per batch",
                        ["problem", "workers", "first call s", "later calls s (median)",
                         "speed-up over n_jobs=1", "ms per problem"], rows)], notes)
    print(md.read_text())
    return md


if __name__ == "__main__":
    main()
