"""Grid search: sequential vs two Dask workers.

GridSearchCV over 8 candidates (2 values of ε × 4 values of M, 3-fold CV, 24
fits) of PerturbedRankingRegressor on the perfect-ranks problem, run

* sequentially in this process (``n_jobs=None``: one fit at a time, each using
  the automatic numba thread budget of the process), and
* on a ``dask.distributed.LocalCluster`` of 2 worker processes with 1 thread
  each (``joblib.parallel_config(backend='dask')``; the estimators keep
  ``n_jobs=None``, which is 1 thread per worker since the nanny sets
  ``OMP_NUM_THREADS=1``).

Both runs are warm (kernels loaded from numba's cache beforehand); the timings
are medians of ``--repeats`` runs, sequential and Dask alternating so that
both see the same background load. Prints both wall times (and CPU seconds),
the ratio dask / sequential, the machine's load average, and checks that the
two searches agree exactly.

Usage::

    python benchmarks/bench_grid_search.py            # full size (~20-40 s sequential)
    python benchmarks/bench_grid_search.py --quick    # smoke run
"""

import argparse
import logging
import os
import statistics
import time
import warnings

import joblib
import numpy as np
from sklearn.model_selection import GridSearchCV

from sk_perturbed import PerturbedRankingRegressor
from sk_perturbed._threads import resolve_n_threads
from sk_perturbed.datasets import make_perfect_ranks

GRID = {"epsilon": [0.5, 2.0], "n_samples": [1, 5, 10, 20]}


def _estimator(max_iter):
    # tol=0 and a long patience: every fit runs exactly max_iter epochs.
    return PerturbedRankingRegressor(
        model="mlp", max_iter=max_iter, batch_size=50, tol=0.0, n_iter_no_change=10_000,
        random_state=0,
    )


def _search(X, Y, max_iter, n_jobs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GridSearchCV(_estimator(max_iter), GRID, cv=3, n_jobs=n_jobs).fit(X, Y)


def _warm_worker():
    import warnings

    from sk_perturbed import PerturbedRankingRegressor
    from sk_perturbed.datasets import make_perfect_ranks

    X, Y = make_perfect_ranks(n_samples=50, n_features=3, n_labels=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        PerturbedRankingRegressor(max_iter=1, random_state=0).fit(X, Y).score(X, Y)
    return os.getpid()


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=4500)
    parser.add_argument("--max-iter", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.n_samples, args.max_iter, args.repeats = 300, 2, 1

    from distributed import Client, LocalCluster

    X, Y = make_perfect_ranks(
        n_samples=args.n_samples, n_features=20, n_labels=10, noise=0.1, random_state=0
    )
    print(f"cpus: {os.cpu_count()}  numba threads (n_jobs=None, this process): "
          f"{resolve_n_threads(None)}")
    print(f"data: {X.shape[0]} x {X.shape[1]}, {Y.shape[1]} items; grid: {GRID} "
          f"(8 candidates x 3 folds), max_iter={args.max_iter}, repeats={args.repeats}")
    print(f"load average before: {os.getloadavg()}")

    _warm_worker()
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as cluster, Client(cluster) as client:
        client.run(_warm_worker)
        budgets = client.run(resolve_n_threads, None)
        print(f"dask workers: 2 x 1 thread; numba threads per worker (n_jobs=None): "
              f"{sorted(budgets.values())}")

        def on_dask():
            with joblib.parallel_config(backend="dask"):
                return _search(X, Y, args.max_iter, -1)

        # Sequential and Dask runs alternate, so that both see the same
        # background load on a shared machine.
        # CPU seconds (all threads) are reported too: unlike wall times they
        # hardly depend on what else runs on the machine.
        def worker_cpu():
            return np.array([t for _, t in sorted(client.run(time.process_time).items())])

        seq_times, dask_times, loads = [], [], []
        for _ in range(args.repeats):
            cpu = time.process_time()
            t_seq, seq = _timed(lambda: _search(X, Y, args.max_iter, None))
            cpu_seq = time.process_time() - cpu
            cpu = worker_cpu()
            t_dask, dsk = _timed(on_dask)
            cpu_workers = worker_cpu() - cpu
            cpu_dask = cpu_workers.sum()
            seq_times.append(t_seq)
            dask_times.append(t_dask)
            loads.append(os.getloadavg()[0])
            print(f"  run: sequential {t_seq:7.2f} s ({cpu_seq:6.2f} CPU s)   "
                  f"dask {t_dask:7.2f} s ({cpu_dask:6.2f} CPU s in workers: "
                  f"{' + '.join(f'{c:.2f}' for c in cpu_workers)})   "
                  f"ratio {t_dask / t_seq:.3f}   load(1 min) {loads[-1]:.2f}", flush=True)
    seq_median, dask_median = statistics.median(seq_times), statistics.median(dask_times)
    print(f"sequential : median {seq_median:7.2f} s  runs {[round(t, 2) for t in seq_times]}")
    print(f"dask 2x1   : median {dask_median:7.2f} s  runs {[round(t, 2) for t in dask_times]}")
    ratio = dask_median / seq_median
    print(f"ratio dask / sequential (medians): {ratio:.3f}  (target <= 0.65)")
    print(f"load average after: {os.getloadavg()}")
    same = seq.best_params_ == dsk.best_params_ and np.array_equal(
        seq.cv_results_["mean_test_score"], dsk.cv_results_["mean_test_score"]
    )
    print(f"same best_params_ and mean scores: {same}  (best: {seq.best_params_})")


if __name__ == "__main__":
    main()
