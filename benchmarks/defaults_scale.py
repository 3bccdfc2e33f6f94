"""Default parameters from 2 000 to 100 000 rows: the step schedule, side by side.

make_classification (20 features, 10 informative, 5 classes, seed 0), a
stratified 80/20 hold-out, every model in ``make_pipeline(StandardScaler(),
model)``. PerturbedStructuredClassifier with its defaults (Adam,
``learning_rate='adaptive'``: the step is divided by 5 when the training
stalls, at most twice) and with ``learning_rate='constant'`` (the default
before: stop at the first stall), against LogisticRegression and
MLPClassifier(max_iter=1000). Accuracy, fit time and epochs.

Run: ``python benchmarks/defaults_scale.py`` (full) or ``--quick``.
"""

import sys
import time
from pathlib import Path

from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, figure, parse_args, quiet, save_figure, write_report  # noqa: E402

from sk_perturbed import PerturbedStructuredClassifier  # noqa: E402


def models(seed):
    return {
        "perturbed, defaults (adaptive)": PerturbedStructuredClassifier(random_state=seed),
        "perturbed, learning_rate='constant'": PerturbedStructuredClassifier(
            learning_rate="constant", random_state=seed),
        "LogisticRegression": LogisticRegression(max_iter=1000),
        "MLPClassifier": MLPClassifier(max_iter=1000, random_state=seed),
    }


def main(argv=None):
    args = parse_args(argv, __doc__.splitlines()[0])
    sizes = (500, 2000) if args.quick else (2000, 20000, 100000)
    labels = list(models(args.seed))
    accuracy, seconds, epochs = {}, {}, {}
    t_start = time.perf_counter()
    for n in sizes:
        X, y = make_classification(n_samples=n, n_features=20, n_informative=10, n_classes=5,
                                   random_state=args.seed)
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.2, stratify=y, random_state=args.seed)
        for label, model in models(args.seed).items():
            pipe = make_pipeline(StandardScaler(), model)
            start = time.perf_counter()
            with quiet():
                pipe.fit(X_train, y_train)
            seconds[n, label] = time.perf_counter() - start
            accuracy[n, label] = pipe.score(X_test, y_test)
            epochs[n, label] = getattr(pipe[-1], "n_iter_", None)
            print(f"n={n} {label}: {accuracy[n, label]:.4f} in {seconds[n, label]:.1f} s",
                  flush=True)

    def cell(n, label):
        n_iter = epochs[n, label]
        n_iter = "" if n_iter is None or not isinstance(n_iter, int) else f", {n_iter} epochs"
        return f"{accuracy[n, label]:.4f} ({seconds[n, label]:.1f} s{n_iter})"

    rows = [[label] + [cell(n, label) for n in sizes] for label in labels]
    notes = [
        f"make_classification(n_samples, n_features=20, n_informative=10, n_classes=5, "
        f"random_state={args.seed}); stratified 80/20 hold-out (random_state={args.seed}); "
        "StandardScaler in every pipeline; one fit per cell, wall times on this machine.",
        f"Total wall time {time.perf_counter() - t_start:.0f} s.",
    ]
    out_md = write_report(
        args.out / "defaults_scale.md", "Default parameters at scale: the step schedule",
        command_line("defaults_scale.py", args),
        [("Test accuracy (fit time, epochs)", ["model", *(f"n = {n}" for n in sizes)], rows)],
        notes)
    fig, axes = figure(1, width=5.0, height=3.4)
    for label in labels:
        axes[0].plot(sizes, [accuracy[n, label] for n in sizes], marker="o", label=label)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("rows")
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=7)
    out_png = save_figure(fig, args.out / "defaults_scale.png")
    print(out_md, out_png)
    return out_md, out_png


if __name__ == "__main__":
    main()
