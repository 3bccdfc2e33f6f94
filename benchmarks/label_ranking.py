"""Label ranking on the nine shipped data sets: PerturbedRankingRegressor vs baselines.

10-fold CV (KFold, shuffled, fixed seed) on each of
sk_perturbed.datasets.LABEL_RANKING_DATASETS; mean Kendall τ and Spearman ρ,
and fit time. Methods (all in a StandardScaler pipeline except the constant):

* ``PRR linear``: PerturbedRankingRegressor() with default parameters;
* ``PRR mlp``: PerturbedRankingRegressor(model='mlp'), otherwise default;
* ``ridge``: per-label Ridge(alpha=1) regression of the ranks, then ranking;
* ``kNN Borda``: the k = 10 nearest training neighbours (fixed k, Euclidean on
  standardized features), their rank vectors summed (Borda count), then ranked;
* ``constant``: the ranking of the mean training rank vector.

Run: ``python benchmarks/label_ranking.py`` (full) or ``--quick``.
"""

import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    command_line,
    describe,
    figure,
    mean_std,
    parse_args,
    quiet,
    save_figure,
    write_report,
)

from sk_perturbed import PerturbedRankingRegressor  # noqa: E402
from sk_perturbed.datasets import LABEL_RANKING_DATASETS, load_label_ranking  # noqa: E402
from sk_perturbed.metrics import kendall_tau_score, spearman_score  # noqa: E402

K_NEIGHBORS = 10
# cpu (8192 rows) and elevators (16599 rows) are subsampled to this many rows
# (fixed seed) so that the full run fits ~10 minutes on a shared 2-core machine.
MAX_ROWS = 2000


class RidgeRanker(BaseEstimator, RegressorMixin):
    def fit(self, X, Y):
        self.ridge_ = Ridge(alpha=1.0).fit(X, Y)
        return self

    def predict(self, X):
        return rankdata(self.ridge_.predict(X), axis=1)


class KNNBorda(BaseEstimator, RegressorMixin):
    def __init__(self, k=K_NEIGHBORS):
        self.k = k

    def fit(self, X, Y):
        self.nn_ = NearestNeighbors(n_neighbors=min(self.k, len(X))).fit(X)
        self.Y_ = np.asarray(Y, dtype=float)
        return self

    def predict(self, X):
        idx = self.nn_.kneighbors(X, return_distance=False)
        return rankdata(self.Y_[idx].sum(axis=1), axis=1)


class ConstantRanker(BaseEstimator, RegressorMixin):
    def fit(self, X, Y):
        self.mean_ = rankdata(np.asarray(Y, dtype=float).mean(axis=0))
        return self

    def predict(self, X):
        return np.tile(self.mean_, (len(X), 1))


def methods(seed, quick):
    extra = dict(max_iter=20) if quick else {}
    return {
        "PRR linear": make_pipeline(StandardScaler(), PerturbedRankingRegressor(
            model="linear", random_state=seed, **extra)),
        "PRR mlp": make_pipeline(StandardScaler(), PerturbedRankingRegressor(
            model="mlp", random_state=seed, **extra)),
        "ridge": make_pipeline(StandardScaler(), RidgeRanker()),
        "kNN Borda": make_pipeline(StandardScaler(), KNNBorda()),
        "constant": ConstantRanker(),
    }


def main(argv=None):
    args = parse_args(argv, __doc__.splitlines()[0])
    names = ("iris", "glass") if args.quick else LABEL_RANKING_DATASETS
    n_folds = 3 if args.quick else 10
    cv = KFold(n_folds, shuffle=True, random_state=args.seed)
    res = {}
    t_start = time.perf_counter()
    for name in names:
        X, Y = load_label_ranking(name)
        if len(X) > MAX_ROWS:
            keep = np.sort(np.random.RandomState(args.seed).choice(len(X), MAX_ROWS, False))
            X, Y = X[keep], Y[keep]
        for label in methods(args.seed, args.quick):
            taus, rhos, fit_s = [], [], []
            for tr, te in cv.split(X):
                model = methods(args.seed, args.quick)[label]
                t0 = time.perf_counter()
                with quiet():
                    model.fit(X[tr], Y[tr])
                fit_s.append(time.perf_counter() - t0)
                pred = model.predict(X[te])
                taus.append(kendall_tau_score(Y[te], pred))
                rhos.append(spearman_score(Y[te], pred))
            res[name, label] = (np.array(taus), np.array(rhos), np.mean(fit_s))
            print(f"{name} {label}: tau {np.mean(taus):.3f} ({np.mean(fit_s):.2f} s)", flush=True)
    labels = list(methods(args.seed, args.quick))
    tau_rows = [[n] + [mean_std(res[n, m][0]) for m in labels] for n in names]
    rho_rows = [[n] + [mean_std(res[n, m][1]) for m in labels] for n in names]
    time_rows = [[n] + [f"{res[n, m][2]:.2f}" for m in labels] for n in names]
    mean_row = ["**mean**"] + [f"{np.mean([res[n, m][0].mean() for n in names]):.3f}"
                               for m in labels]
    notes = [
        f"KFold({n_folds}, shuffle=True, random_state={args.seed}); mean ± std over folds.",
        "PRR = PerturbedRankingRegressor with default parameters except `model`, set "
        "explicitly to 'linear' or 'mlp'; defaults of this run: "
        + describe(PerturbedRankingRegressor(), ("model", "epsilon", "n_samples",
                   "learning_rate", "learning_rate_init", "batch_size", "alpha", "max_iter",
                   "n_iter_no_change", "hidden_layer_sizes"))
        + (" but max_iter = 20 (--quick)" if args.quick else "")
        + f", random_state={args.seed}.",
        f"Data sets with more than {MAX_ROWS} rows (cpu, elevators) are subsampled to "
        f"{MAX_ROWS} rows (RandomState({args.seed}), without replacement).",
        f"kNN Borda: fixed k = {K_NEIGHBORS} (not tuned); ridge: alpha = 1 (not tuned).",
        f"Total wall time {time.perf_counter() - t_start:.0f} s.",
    ]
    out_md = write_report(
        args.out / "label_ranking.md", "Label ranking: nine data sets, 10-fold CV",
        command_line("label_ranking.py", args),
        [("Kendall τ (higher is better)", ["data set", *labels], tau_rows + [mean_row]),
         ("Spearman ρ", ["data set", *labels], rho_rows),
         ("Mean fit time per fold (s)", ["data set", *labels], time_rows)], notes)
    fig, axes = figure(1, width=7.5, height=3.6)
    x = np.arange(len(names))
    width = 0.8 / len(labels)
    for k, m in enumerate(labels):
        axes[0].bar(x + (k - (len(labels) - 1) / 2) * width,
                    [res[n, m][0].mean() for n in names], width, label=m)
    axes[0].set_xticks(x, names, rotation=30, fontsize=8)
    axes[0].set_ylabel(f"Kendall τ ({n_folds}-fold CV)")
    axes[0].legend(fontsize=7)
    axes[0].grid(alpha=0.3, axis="y")
    out_png = save_figure(fig, args.out / "label_ranking.png")
    print(out_md, out_png)
    return out_md, out_png


if __name__ == "__main__":
    main()
