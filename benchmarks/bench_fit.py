"""Speed and memory of ``fit`` at scale, beside scikit-learn's MLPs.

Every case fits our estimator and the scikit-learn MLP of the same
architecture (``MLPRegressor`` / ``MLPClassifier``; a linear model is the MLP
with ``hidden_layer_sizes=()``) with the same batch size (200) and 2 epochs
(``tol=0``, no early stop) on the same data, interleaved repeat by repeat, and
reports the median time per epoch of each and the median of the per-repeat
ratios. The machine's load (``os.getloadavg``) is printed with every row:
compare ratios, not absolute times, on a shared machine.

Peak memory: each case is fitted for one epoch in a fresh subprocess under
``tracemalloc`` (which sees NumPy's and numba's allocations: checked at start
by allocating 80 MB inside an ``@njit`` function), reported as the peak of
the allocations made by ``fit`` plus X and Y, over the bytes of X + Y + the
fitted model; the rise of the process's peak RSS (``VmHWM`` reset through
``/proc/self/clear_refs``) during the fit is printed beside it.

Usage::

    python benchmarks/bench_fit.py              # n = 100 000 (n = 10 000 for paths), long
    python benchmarks/bench_fit.py --quick      # n = 5 000, < 1 minute on 2 idle cores
    python benchmarks/bench_fit.py --scaling    # log-log slopes of fit time in n and in M
    python benchmarks/bench_fit.py --startup    # cold (empty numba cache) vs warm import + first fit
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

BATCH = 200
EPOCHS = 2


def load():
    return "load %.2f" % os.getloadavg()[0]


# ----------------------------------------------------------------- cases
def make_case(name, n):
    """Data, our estimator and the scikit-learn reference of one case."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    from sk_perturbed import PerturbedRankingRegressor, PerturbedStructuredClassifier
    from sk_perturbed.datasets import make_shortest_path
    from sk_perturbed.solvers import DAGShortestPath

    kind, model, m = name.split(":")
    m = int(m)
    rng = np.random.default_rng(0)
    common = dict(batch_size=BATCH, max_iter=EPOCHS, tol=0.0, n_iter_no_change=10**9,
                  random_state=0)
    hidden = (128,) if model == "mlp" else ()
    sk_common = dict(hidden_layer_sizes=hidden, **common)
    ours_common = dict(model=model, hidden_layer_sizes=(128,), n_samples=m, **common)
    if kind == "ranking":
        p, d = 50, 20
        X = rng.standard_normal((n, p))
        Y = X @ rng.standard_normal((p, d)) + 0.5 * rng.standard_normal((n, d))
        ours = PerturbedRankingRegressor(**ours_common)
        ref = MLPRegressor(**sk_common)
        return X, Y, Y, ours, ref
    if kind == "argmax":
        p, k = 64, 10
        X = rng.standard_normal((n, p))
        y = np.argmax(X @ rng.standard_normal((p, k)) + rng.standard_normal((n, k)), axis=1)
        ours = PerturbedStructuredClassifier(solver="argmax", **ours_common)
        ref = MLPClassifier(**sk_common)
        return X, y, y, ours, ref
    if kind == "paths":
        X, costs, paths = make_shortest_path(n, n_features=5, deg=4, noise_width=0.5,
                                             random_state=0)
        ours = PerturbedStructuredClassifier(solver=DAGShortestPath(), **ours_common)
        ref = MLPRegressor(**sk_common)  # the two-stage baseline: regress the costs
        return X, paths, costs, ours, ref
    raise ValueError(name)


def cases(quick):
    n = 5_000 if quick else 100_000
    n_paths = 5_000 if quick else 10_000
    out = [(f"ranking:{model}:{m}", n) for model in ("linear", "mlp") for m in (1, 10, 100)]
    out.append(("argmax:mlp:10", n))
    out += [(f"paths:linear:{m}", n_paths) for m in (1, 10)]
    return out


def warm_up():
    """Compile (or load from cache) every kernel the cases use, outside the timings."""
    for name in ("ranking:linear:2", "argmax:linear:2", "paths:linear:2"):
        X, Y, _, ours, _ = make_case(name, 300)
        ours.set_params(max_iter=1).fit(X, Y)


def time_fit(est, X, Y):
    start = time.perf_counter()
    est.fit(X, Y)
    return (time.perf_counter() - start) / EPOCHS


def run_speed(quick, repeats, only=None):
    warm_up()
    from threadpoolctl import threadpool_limits

    # sklearn is timed as it runs by default (BLAS on every core) and with
    # one BLAS thread, as our fits run their matrix products (see _threads.py).
    print(f"{'case':<20}{'n':>8}{'ours s/ep':>11}{'sklearn s/ep':>14}{'ratio':>8}"
          f"{'sk 1-BLAS s/ep':>16}{'ratio':>8}   load")
    results = {}
    selected = cases(quick)
    if only:
        wanted = only.split(",")
        unknown = sorted(set(wanted) - {name for name, _ in selected})
        if unknown:
            raise SystemExit(f"unknown case(s) {unknown}; known: {[c for c, _ in selected]}")
        selected = [(name, n) for name, n in selected if name in wanted]
    for name, n in selected:
        X, Y, Y_ref, ours, ref = make_case(name, n)
        t_ours, t_ref, t_ref1, ratios, ratios1, loads = [], [], [], [], [], []
        for _ in range(repeats):
            loads.append(os.getloadavg()[0])
            a = time_fit(ours, X, Y)
            b = time_fit(ref, X, Y_ref)
            with threadpool_limits(limits=1, user_api="blas"):
                c = time_fit(ref, X, Y_ref)
            t_ours.append(a)
            t_ref.append(b)
            t_ref1.append(c)
            ratios.append(a / b)
            ratios1.append(a / c)
        med = statistics.median
        row = dict(n=n, ours=med(t_ours), sklearn=med(t_ref), ratio=med(ratios),
                   sklearn_1blas=med(t_ref1), ratio_1blas=med(ratios1), load=med(loads))
        results[name] = row
        print(f"{name:<20}{n:>8}{row['ours']:>11.3f}{row['sklearn']:>14.3f}"
              f"{row['ratio']:>8.2f}{row['sklearn_1blas']:>16.3f}{row['ratio_1blas']:>8.2f}"
              f"   load {row['load']:.2f}", flush=True)
    return results


# ---------------------------------------------------------------- memory
def _vmhwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def _vmrss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def memory_child(name, n, mode):
    """One-epoch fit in this (fresh) process; prints a JSON line."""
    import gc
    import tracemalloc

    warm_up()
    X, Y, _, ours, _ = make_case(name, n)
    ours.set_params(max_iter=1)
    gc.collect()
    data = X.nbytes + np.asarray(Y).nbytes
    out = dict(data=data)
    if mode == "trace":
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        ours.fit(X, Y)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        out["fit_peak"] = peak
    else:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
            rss0 = _vmrss()
            ours.fit(X, Y)
            out["fit_peak"] = _vmhwm() - rss0
        except OSError:
            out["fit_peak"] = None
    out["model"] = sum(a.nbytes for a in ours.coefs_ + ours.intercepts_)
    print(json.dumps(out))


def run_memory(quick):
    # Check that tracemalloc sees numba's allocations.
    check = subprocess.run([sys.executable, "-c", (
        "import numba, numpy as np, tracemalloc\n"
        "f = numba.njit(lambda n: np.ones(n)); f(3)\n"
        "tracemalloc.start(); a = f(10_000_000)\n"
        "print(tracemalloc.get_traced_memory()[1])")], capture_output=True, text=True)
    seen = int(check.stdout.strip() or 0) >= 80_000_000
    print(f"tracemalloc sees numba allocations: {seen}")
    n = 5_000 if quick else 100_000
    print(f"{'case':<20}{'n':>8}{'X+Y MB':>9}{'model MB':>10}{'fit peak MB':>13}"
          f"{'RSS rise MB':>13}{'ratio':>8}   load")
    rows = {}
    names = ["ranking:linear:100"] if quick else ["ranking:linear:100", "ranking:mlp:100",
                                                  "argmax:mlp:10"]
    for name in names:
        res = {}
        for mode in ("trace", "rss"):
            proc = subprocess.run(
                [sys.executable, __file__, "--memory-child", name, str(n), mode],
                capture_output=True, text=True,
            )
            if proc.returncode:
                print(proc.stderr[-2000:])
                raise SystemExit(f"memory child {name} failed")
            res[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        t = res["trace"]
        rss = res["rss"]["fit_peak"]
        ratio = (t["data"] + t["fit_peak"]) / (t["data"] + t["model"])
        rows[name] = dict(ratio=ratio, **t, rss=rss)
        print(f"{name:<20}{n:>8}{t['data'] / 1e6:>9.1f}{t['model'] / 1e6:>10.2f}"
              f"{t['fit_peak'] / 1e6:>13.1f}{(rss or 0) / 1e6:>13.1f}{ratio:>8.2f}   {load()}",
              flush=True)
    return rows


# --------------------------------------------------------------- scaling
def run_scaling(quick, repeats):
    from sk_perturbed import PerturbedRankingRegressor

    warm_up()
    rng = np.random.default_rng(0)
    n0 = 2_500 if quick else 10_000
    p, d = 50, 20
    X = rng.standard_normal((16 * n0, p))
    Y = X @ rng.standard_normal((p, d)) + 0.5 * rng.standard_normal((16 * n0, d))

    import sk_perturbed._numba_backend as numba_backend

    kernel_seconds = [0.0]
    estimate = numba_backend.estimate_numba

    def timed_estimate(*args, **kwargs):
        # Wall time of every Monte Carlo kernel call (noise, solves, sums) in the fit.
        start = time.perf_counter()
        try:
            return estimate(*args, **kwargs)
        finally:
            kernel_seconds[0] += time.perf_counter() - start

    def fit_time(n, m):
        """Median (whole fit, Monte Carlo kernels within it) over the repeats."""
        # The headline case: ranking with an MLP (128,), batch 200, 2 epochs.
        est = PerturbedRankingRegressor(n_samples=m, model="mlp", hidden_layer_sizes=(128,),
                                        batch_size=BATCH, max_iter=EPOCHS, tol=0.0,
                                        n_iter_no_change=10**9, random_state=0)
        totals, kernels = [], []
        numba_backend.estimate_numba = timed_estimate
        try:
            for _ in range(repeats):
                kernel_seconds[0] = 0.0
                start = time.perf_counter()
                est.fit(X[:n], Y[:n])
                totals.append(time.perf_counter() - start)
                kernels.append(kernel_seconds[0])
        finally:
            numba_backend.estimate_numba = estimate
        return statistics.median(totals), statistics.median(kernels)

    def slope(xs, ts):
        return float(np.polyfit(np.log(xs), np.log(ts), 1)[0])

    out = {}
    # The fit is an M-independent part (model, optimizer, data, Python per
    # batch) plus the Monte Carlo kernels, timed inside the fit: slopes of both,
    # and the affine fit t = a + b·x of the whole fit time.
    grids = (("n", "M = 10", [(n0 * 2**k, 10) for k in range(5)]),
             ("M", f"n = {n0}", [(n0, 8 * 2**k) for k in range(5)]),
             ("M", f"n = {n0}", [(n0, 64 * 2**k) for k in range(5)]))
    for label, fixed, grid in grids:
        xs, totals, kernels = [], [], []
        for n, m in grid:
            total, kernel = fit_time(n, m)
            xs.append(n if label == "n" else m)
            totals.append(total)
            kernels.append(kernel)
            print(f"  {label} = {xs[-1]:>6}: fit {total:8.3f} s, Monte Carlo kernels {kernel:8.3f} s"
                  f"   {load()}", flush=True)
        key = f"{label} {xs[0]}-{xs[-1]}"
        out[key] = slope(xs, totals)
        out[key + " kernels"] = slope(xs, kernels)
        b, a = np.polyfit(xs, totals, 1)
        r2 = 1 - np.sum((np.polyval([b, a], xs) - totals) ** 2) / np.sum(
            (np.asarray(totals) - np.mean(totals)) ** 2)
        print(f"log-log slope in {label} = {xs[0]}..{xs[-1]} ({fixed}): whole fit {out[key]:.2f}, "
              f"Monte Carlo kernels {out[key + ' kernels']:.2f}; affine fit t = {a:.3f} s + "
              f"{b:.2e} s x {label}, R^2 = {r2:.4f}")
    return out


# --------------------------------------------------------------- startup
STARTUP_SCRIPT = """
import time
start = time.perf_counter()
import numpy as np
from sk_perturbed import PerturbedRankingRegressor
rng = np.random.default_rng(0)
X = rng.standard_normal((200, 5)); Y = rng.standard_normal((200, 4))
PerturbedRankingRegressor(max_iter=2, random_state=0).fit(X, Y)
print(time.perf_counter() - start)
"""


def run_startup():
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONWARNINGS="ignore")
        out = {}
        for label in ("cold", "warm", "warm"):
            proc = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT], env=env,
                                  capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-2000:])
                raise SystemExit("startup child failed")
            t = float(proc.stdout.strip().splitlines()[-1])
            out.setdefault(label, []).append(t)
            print(f"{label}: import + first fit {t:6.2f} s   {load()}", flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 5 000: under a minute")
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument("--startup", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--cases", default=None,
                        help="comma-separated case names to run, e.g. ranking:mlp:10,argmax:mlp:10")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.memory_child:
        name, n, mode = args.memory_child
        memory_child(name, int(n), mode)
        return
    repeats = args.repeats or (3 if args.quick else 1)
    print(f"{os.cpu_count()} cores, {load()}")
    if args.scaling:
        run_scaling(args.quick, repeats)
        return
    if args.startup:
        run_startup()
        return
    if not args.memory_only:
        run_speed(args.quick, repeats, args.cases)
    if not args.no_memory:
        run_memory(args.quick)


if __name__ == "__main__":
    main()
