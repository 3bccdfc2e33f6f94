"""Learning to rank: PerturbedRanker vs LightGBM, XGBoost and a pointwise MLP.

Data sets (train on the training queries, NDCG@k on held-out queries):

* ``shipped``: the sample data of LightGBM's lambdarank example
  (:func:`sk_perturbed.datasets.load_learning_to_rank`, its train/test split:
  3005 / 768 documents, 300 features);
* ``synthetic 1e5`` and ``synthetic 1e6``: :func:`make_ranking_groups`
  (20 features, 5-50 documents per query, 5 grades), about 1e5 / 1e6
  training documents, 20 % more queries held out as the test split.

Methods, all fitted on the same arrays in one run:

* ``PerturbedRanker defaults`` (the MLP), with ``n_jobs=1`` and with the
  default threads (and, on the shipped data, ``n_jobs=1`` on the CSR form of
  X: every method gets the dense form); ``PerturbedRanker linear`` (``model='linear'``, otherwise
  default);
* ``LGBMRanker`` (lambdarank, 300 trees, otherwise default), ``n_jobs=1``
  and default threads;
* ``XGBRanker`` (``objective='rank:ndcg'``, 300 trees, ``n_jobs=1``);
* ``MLPRegressor`` (scikit-learn defaults): pointwise regression of the
  grades.

Fit time is wall-clock time of ``fit`` after a warm-up fit on a few queries
(numba compiles once per machine, cached). Peak memory is the growth of the
process's resident memory during ``fit`` (sampled every 2 ms, after
``malloc_trim``), which counts the C++ libraries' allocations as well.

A second part measures PerturbedRanker's scaling on synthetic data from 1e4
to 1e6 documents (3 epochs, default threads): seconds per epoch, the slope
of log(time) against log(documents), and the peak memory of the fit (input
X included) over the size of X plus the model.

Run: ``python benchmarks/learning_to_rank.py`` (full; results in
benchmarks/results/) or ``--quick`` (smoke run, written to
benchmarks/results/quick/ unless ``--out`` is given).
"""

import ctypes
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, describe, figure, parse_args, quiet, save_figure, write_report  # noqa: E402
from bench_core import peak_rss_growth  # noqa: E402

from sk_perturbed import PerturbedRanker  # noqa: E402
from sk_perturbed.datasets import load_learning_to_rank, make_ranking_groups  # noqa: E402
from sk_perturbed.metrics import ndcg_score  # noqa: E402

KS = (1, 5, 10)
N_TREES = 300
MEAN_GROUP = 27.5  # mean of the uniform 5..50 group sizes


# ------------------------------------------------------------------ memory
def _trim():
    # Hand freed heap back to the system, so that the growth measured next
    # is not hidden by memory an earlier fit left in the allocator.
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_fit(fit):
    """Run ``fit()``; return (seconds, peak growth of the resident memory in bytes)."""
    _trim()
    seconds = []

    def timed():
        t0 = time.perf_counter()
        with quiet():
            fit()
        seconds.append(time.perf_counter() - t0)

    # Sampled every 2 ms: a faster sampler would take CPU from the fit.
    growth = peak_rss_growth(timed, interval=2e-3)
    return seconds[0], growth


# -------------------------------------------------------------------- data
def shipped():
    # Dense for every method: the features are 32 % non-zero (the CSR form is
    # timed in an extra row).
    X, y, qid = load_learning_to_rank("train")
    Xt, yt, qidt = load_learning_to_rank("test")
    return X.toarray(), y, qid, Xt.toarray(), yt, qidt


def synthetic(n_documents, seed):
    """About ``n_documents`` training documents, and 20 % more queries to test on."""
    n_train = max(2, round(n_documents / MEAN_GROUP))
    n_test = max(2, round(0.25 * n_train))
    X, y, qid = make_ranking_groups(n_queries=n_train + n_test, n_features=20,
                                    random_state=seed)
    train = qid < n_train
    return X[train], y[train], qid[train], X[~train], y[~train], qid[~train]


# ----------------------------------------------------------------- methods
def _group_sizes(qid):
    # The data sets above keep the rows of a query contiguous and sorted.
    return np.bincount(np.unique(qid, return_inverse=True)[1])


class LightGBM:
    def __init__(self, n_jobs, n_trees, seed):
        import lightgbm

        self.model = lightgbm.LGBMRanker(n_estimators=n_trees, n_jobs=n_jobs, verbose=-1,
                                         random_state=seed)

    def fit(self, X, y, qid):
        self.model.fit(X, y, group=_group_sizes(qid))
        return self

    def predict(self, X):
        return self.model.predict(X)


class XGBoost:
    def __init__(self, n_jobs, n_trees, seed):
        import xgboost

        self.model = xgboost.XGBRanker(objective="rank:ndcg", n_estimators=n_trees,
                                       n_jobs=n_jobs, tree_method="hist", random_state=seed)

    def fit(self, X, y, qid):
        self.model.fit(X, y, qid=qid)
        return self

    def predict(self, X):
        return self.model.predict(X)


class Pointwise:
    """MLPRegressor on the grades (scikit-learn defaults)."""

    def __init__(self, seed, max_iter=200):
        from sklearn.neural_network import MLPRegressor

        self.model = MLPRegressor(random_state=seed, max_iter=max_iter)

    def fit(self, X, y, qid):
        self.model.fit(X, y)
        return self

    def predict(self, X):
        return self.model.predict(X)


class Ours:
    def __init__(self, csr=False, **params):
        self.model = PerturbedRanker(**params)
        self.csr = csr

    def fit(self, X, y, qid):
        self.model.fit(sparse.csr_matrix(X) if self.csr else X, y, qid=qid)
        return self

    def predict(self, X):
        return self.model.predict(X)


def methods(quick, seed):
    """``(name -> factory(seed) of a fresh model, peer libraries not installed)``."""
    trees = 20 if quick else N_TREES
    epochs = {"max_iter": 3} if quick else {}
    factories = {
        "PerturbedRanker defaults, n_jobs=1": lambda s: Ours(random_state=s, n_jobs=1, **epochs),
        "PerturbedRanker defaults, all threads": lambda s: Ours(random_state=s, **epochs),
        "PerturbedRanker defaults, n_jobs=1, CSR X": lambda s: Ours(
            csr=True, random_state=s, n_jobs=1, **epochs),
        "PerturbedRanker linear": lambda s: Ours(model="linear", random_state=s, **epochs),
        f"LGBMRanker {trees} trees, n_jobs=1": lambda s: LightGBM(1, trees, s),
        f"LGBMRanker {trees} trees, all threads": lambda s: LightGBM(None, trees, s),
        f"XGBRanker rank:ndcg {trees} trees, n_jobs=1": lambda s: XGBoost(1, trees, s),
        "MLPRegressor (pointwise)": lambda s: Pointwise(s, max_iter=5 if quick else 200),
        # At 1e6 documents 30 epochs are 150 000 Adam steps (the budget of the run).
        "MLPRegressor (pointwise), 30 epochs": lambda s: Pointwise(s, max_iter=5 if quick else 30),
    }
    # The peers are the `bench` extra; without them (the test extra) only ours
    # and scikit-learn's rows run, and the report lists what was missing.
    missing = [m for m in ("lightgbm", "xgboost") if importlib.util.find_spec(m) is None]
    prefixes = {"lightgbm": "LGBM", "xgboost": "XGB"}
    return {name: make for name, make in factories.items()
            if not any(name.startswith(prefixes[m]) for m in missing)}, missing


def runs_on(mname, dname):
    """Which methods run on which data (a shared 2-core machine sets the budget)."""
    large = dname.endswith("1e6")
    if "CSR" in mname:
        return dname.startswith("shipped")  # the synthetic features are dense
    if mname.startswith("LGBM") and "all threads" in mname:
        return dname.startswith("shipped")  # the must-show compares n_jobs=1 LightGBM
    if mname == "PerturbedRanker defaults, n_jobs=1":
        return not large  # the default threads row is kept at 1e6
    if mname.startswith("MLPRegressor"):
        return ("30 epochs" in mname) == large
    return True


def warm_up(factories, data):
    X, y, qid = data[:3]
    rows = np.flatnonzero(qid < np.unique(qid)[min(4, len(np.unique(qid)) - 1)])
    for make in factories.values():
        with quiet():
            make(0).fit(X[rows], y[rows], qid[rows])


def evaluate(name, make, data, seeds):
    X, y, qid, Xt, yt, qidt = data
    runs = []
    for s in seeds:
        model = make(s)
        seconds, memory = measure_fit(lambda: model.fit(X, y, qid))
        scores = model.predict(Xt)
        runs.append([ndcg_score(yt, scores, qidt, k=k) for k in KS] + [seconds, memory])
    return np.asarray(runs)


def compare(datasets, factories, seeds_for):
    results = {}
    for dname, data in datasets.items():
        warm_up(factories, data)
        for mname, make in factories.items():
            if not runs_on(mname, dname):
                continue
            seeds = seeds_for(dname, mname)
            runs = evaluate(mname, make, data, seeds)
            results[dname, mname] = runs
            print(f"{dname:>16} | {mname:<40} NDCG@10 {runs[:, 2].mean():.4f} "
                  f"fit {np.median(runs[:, 3]):.2f} s", flush=True)
    return results


# ----------------------------------------------------------------- scaling
def model_bytes(est):
    return sum(a.nbytes for a in est.coefs_ + est.intercepts_)


def scaling(sizes, seed, epochs):
    rows = []
    for n in sizes:
        X, y, qid = synthetic(n, seed)[:3]
        est = PerturbedRanker(max_iter=epochs, random_state=seed)
        with quiet():
            PerturbedRanker(max_iter=1, random_state=seed).fit(X[:500], y[:500], qid=qid[:500])
        seconds, memory = measure_fit(lambda: est.fit(X, y, qid=qid))
        ratio = (X.nbytes + memory) / (X.nbytes + model_bytes(est))
        rows.append((X.shape[0], seconds / est.n_iter_, memory, X.nbytes, ratio))
        print(f"scaling n={X.shape[0]}: {seconds / est.n_iter_:.3f} s/epoch, memory x{ratio:.2f}",
              flush=True)
    docs = np.array([r[0] for r in rows], dtype=float)
    times = np.array([r[1] for r in rows])
    slope = np.polyfit(np.log(docs), np.log(times), 1)[0] if len(rows) > 1 else float("nan")
    return rows, slope


# ------------------------------------------------------------------ report
def _cell(runs, column, fmt):
    values = runs[:, column]
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(values.mean())} ± {fmt.format(values.std())}"


def main(argv=None):
    args = parse_args(argv, __doc__.splitlines()[0])  # --quick writes to results/quick
    seed = args.seed
    factories, missing = methods(args.quick, seed)
    if args.quick:
        X, y, qid, Xt, yt, qidt = shipped()
        keep, keept = qid < 40, qidt < 10
        datasets = {"shipped (subset)": (X[keep], y[keep], qid[keep], Xt[keept], yt[keept],
                                         qidt[keept]),
                    "synthetic 2e3": synthetic(2000, seed)}
        sizes, epochs = [1000, 3000, 10000], 1
    else:
        datasets = {"shipped": shipped(), "synthetic 1e5": synthetic(100_000, seed),
                    "synthetic 1e6": synthetic(1_000_000, seed)}
        sizes, epochs = [10_000, 30_000, 100_000, 300_000, 1_000_000], 3

    def seeds_for(dname, mname):
        # Three seeds on the small shipped data (its scores vary most), one elsewhere.
        if dname == "shipped" and not mname.startswith(("LGBM", "XGB")):
            return [seed, seed + 1, seed + 2]
        return [seed]

    results = compare(datasets, factories, seeds_for)
    scale_rows, slope = scaling(sizes, seed, epochs)

    headers = ["method"] + [f"NDCG@{k}" for k in KS] + ["fit s", "peak MB"]
    sections = []
    for dname, data in datasets.items():
        rows = []
        for mname in factories:
            if (dname, mname) not in results:
                continue
            runs = results[dname, mname]
            rows.append([mname] + [_cell(runs, i, "{:.4f}") for i in range(len(KS))]
                        + [f"{np.median(runs[:, 3]):.2f}", f"{np.median(runs[:, 4]) / 2**20:.0f}"])
        n_train, n_test = data[0].shape[0], data[3].shape[0]
        sections.append((f"{dname}: {n_train} training / {n_test} test documents",
                         headers, rows))
    sections.append((
        f"PerturbedRanker scaling (defaults, {epochs} epochs): slope of log(epoch time) "
        f"vs log(documents) = {slope:.3f}",
        ["documents", "s / epoch", "fit memory growth MB", "X MB", "(X + growth) / (X + model)"],
        [[n, f"{t:.3f}", f"{m / 2**20:.1f}", f"{x / 2**20:.1f}", f"{r:.3f}"]
         for n, t, m, x, r in scale_rows],
    ))
    ours = PerturbedRanker()
    notes = [
        "PerturbedRanker defaults: " + describe(ours, ["model", "hidden_layer_sizes", "rank_weights",
                                                       "epsilon", "n_samples", "optimizer",
                                                       "learning_rate_init", "max_iter",
                                                       "batch_size", "early_stopping"]),
        "NDCG@k: exponential gain 2**rel - 1, queries without a relevant document skipped "
        "(sk_perturbed.metrics.ndcg_score); mean ± std over 3 seeds for the stochastic "
        "methods on the shipped data, one seed elsewhere.",
        "Fit time: median over the seeds, wall clock on a shared 2-core machine (noisy: "
        "compare rows of one run).",
        "Peak MB: growth of the resident memory during fit (X itself is loaded before).",
    ]
    if missing:
        notes.append(f"Not installed, so not run: {', '.join(missing)} (the `bench` extra).")
    md = write_report(args.out / "learning_to_rank.md", "Learning to rank",
                      command_line("learning_to_rank.py", args), sections, notes)

    fig, axes = figure(3, width=5.0, height=3.8)
    names = list(factories)
    width = 0.8 / len(datasets)
    for i, dname in enumerate(datasets):
        means = [results[dname, m][:, 2].mean() if (dname, m) in results else 0 for m in names]
        times = [np.median(results[dname, m][:, 3]) if (dname, m) in results else np.nan
                 for m in names]
        pos = np.arange(len(names)) + i * width
        axes[0].barh(pos, means, height=width, label=dname)
        axes[1].barh(pos, times, height=width, label=dname)
    for ax, title in ((axes[0], "test NDCG@10"), (axes[1], "fit seconds (log)")):
        ax.set_yticks(np.arange(len(names)) + 0.4 - width / 2)
        ax.set_yticklabels(names, fontsize=6)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    lows = [r[:, 2].mean() for r in results.values()]
    axes[0].set_xlim(max(0.0, min(lows) - 0.05), 1.0)
    axes[1].set_xscale("log")
    axes[0].legend(fontsize=6)
    docs = [r[0] for r in scale_rows]
    axes[2].loglog(docs, [r[1] for r in scale_rows], "o-")
    axes[2].set_title(f"PerturbedRanker s/epoch, slope {slope:.2f}", fontsize=9)
    axes[2].set_xlabel("training documents")
    axes[2].grid(alpha=0.3)
    png = save_figure(fig, args.out / "learning_to_rank.png")
    return md, png


if __name__ == "__main__":
    main()
