"""Perturbed argmax classification vs logistic regression and MLPClassifier (10-fold CV).

digits, iris and wine from scikit-learn; every model is a
``make_pipeline(StandardScaler(), model)``; accuracy under stratified 10-fold
cross-validation (shuffled, fixed seed). Perturbed argmax =
PerturbedStructuredClassifier(solver='argmax') with Gaussian or Gumbel noise
(Gumbel + FY loss = the logistic loss), linear or MLP model.

Run: ``python benchmarks/classification.py`` (full) or ``--quick``.
"""

import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits, load_iris, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.neural_network import MLPClassifier
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

from sk_perturbed import PerturbedStructuredClassifier  # noqa: E402

DATASETS = {"iris": load_iris, "wine": load_wine, "digits": load_digits}
HIDDEN = (100,)


def models(seed, max_iter):
    common = dict(random_state=seed, max_iter=max_iter)
    out = {}
    for noise in ("gaussian", "gumbel"):
        out[f"perturbed {noise} linear"] = PerturbedStructuredClassifier(
            noise=noise, model="linear", **common)
        out[f"perturbed {noise} MLP"] = PerturbedStructuredClassifier(
            noise=noise, model="mlp", hidden_layer_sizes=HIDDEN, **common)
    out["LogisticRegression"] = LogisticRegression(max_iter=1000)
    out["MLPClassifier"] = MLPClassifier(hidden_layer_sizes=HIDDEN, **common)
    return out


def main(argv=None):
    args = parse_args(argv, __doc__.splitlines()[0])
    n_folds, max_iter = (3, 20) if args.quick else (10, 200)
    datasets = ("iris", "wine") if args.quick else tuple(DATASETS)
    cv = StratifiedKFold(n_folds, shuffle=True, random_state=args.seed)
    scores, times = {}, {}
    t_start = time.perf_counter()
    for name in datasets:
        X, y = DATASETS[name](return_X_y=True)
        for label, model in models(args.seed, max_iter).items():
            with quiet():
                res = cross_validate(make_pipeline(StandardScaler(), model), X, y, cv=cv)
            scores[name, label] = res["test_score"]
            times[name, label] = res["fit_time"].mean()
            print(f"{name} {label}: {res['test_score'].mean():.4f}", flush=True)
    labels = list(models(args.seed, max_iter))
    rows = [[label] + [mean_std(scores[d, label]) for d in datasets]
            + [" / ".join(f"{times[d, label]:.2f}" for d in datasets)] for label in labels]
    notes = [
        f"Stratified {n_folds}-fold CV, shuffle, random_state={args.seed}; accuracy mean ± std "
        "over folds; StandardScaler in every pipeline.",
        "Perturbed models: model set explicitly, other parameters at the library defaults "
        "of this run: " + describe(models(args.seed, max_iter)["perturbed gaussian MLP"],
                                   ("epsilon", "n_samples", "learning_rate", "learning_rate_init",
                                    "batch_size", "alpha", "n_iter_no_change"))
        + f", max_iter = {max_iter}, hidden layers {HIDDEN} for the MLPs; "
        f"MLPClassifier: sklearn defaults, hidden {HIDDEN}, max_iter = {max_iter}; "
        "LogisticRegression: sklearn defaults (lbfgs, C = 1), max_iter = 1000.",
        f"Total wall time {time.perf_counter() - t_start:.0f} s.",
    ]
    out_md = write_report(
        args.out / "classification.md", "Classification: perturbed argmax vs baselines",
        command_line("classification.py", args),
        [("Accuracy", ["model", *datasets, "fit s / fold (" + " / ".join(datasets) + ")"],
          rows)], notes)
    fig, axes = figure(len(datasets), width=4.2, height=3.4)
    for ax, d in zip(axes, datasets):
        ax.boxplot([scores[d, label] for label in labels], orientation="horizontal")
        ax.set_yticks(np.arange(1, len(labels) + 1), labels, fontsize=7)
        ax.set_title(d)
        ax.set_xlabel(f"accuracy ({n_folds}-fold CV)")
    out_png = save_figure(fig, args.out / "classification.png")
    print(out_md, out_png)
    return out_md, out_png


if __name__ == "__main__":
    main()
