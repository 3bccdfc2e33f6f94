"""Shared helpers of the benchmark scripts: CLI, tables, plots, per-epoch curves.

Every benchmark script exposes ``main(argv=None)`` and accepts ``--quick``
(a < 1 minute smoke run), ``--out DIR`` (default ``benchmarks/results``, or
``benchmarks/results/quick`` for ``--quick``, git-ignored, so that a smoke run
never overwrites the committed full results) and ``--seed`` (base seed; the
runs use ``seed, seed + 1, ...``).
"""

import argparse
import contextlib
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
#: Where ``--quick`` runs write by default: never over the committed full results.
QUICK_OUT = DEFAULT_OUT / "quick"


def parse_args(argv, description, seed=0):
    """Parse the common CLI: ``--quick``, ``--out DIR``, ``--seed INT``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke run (< 1 minute): small n, 1 seed, few epochs")
    parser.add_argument("--out", default=None,
                        help="output folder for the Markdown table and the PNG plot "
                             f"(default {DEFAULT_OUT}, or {QUICK_OUT} with --quick)")
    parser.add_argument("--seed", type=int, default=seed, help="base random seed")
    args = parser.parse_args(argv)
    args.out = Path(args.out) if args.out is not None else QUICK_OUT if args.quick else DEFAULT_OUT
    args.out.mkdir(parents=True, exist_ok=True)
    return args


@contextlib.contextmanager
def quiet():
    """Silence the convergence warnings of fixed-budget fits (the budget is the protocol)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def mean_std(values, fmt="{:.3f}"):
    """``'m ± s'`` of a list of numbers (population std; '± 0' for one value)."""
    values = np.asarray(values, dtype=float)
    return f"{fmt.format(values.mean())} ± {fmt.format(values.std())}"


def markdown_table(headers, rows):
    """Rows of cells (already strings or numbers) as a GitHub Markdown table."""
    def cell(x):
        if isinstance(x, (float, np.floating)):
            return f"{x:.4g}"
        return str(x)
    lines = ["| " + " | ".join(map(str, headers)) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(path, title, command, sections, notes=()):
    """Write a Markdown report: title, the command, settings notes and tables.

    ``sections`` is a list of ``(subtitle, headers, rows)``.
    """
    path = Path(path)
    out = [f"# {title}", "", f"Command: `{command}`", "",
           f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
           f"{platform.python_version()}; written {time.strftime('%Y-%m-%d %H:%M')}.", ""]
    out += [f"- {n}" for n in notes]
    if notes:
        out.append("")
    for subtitle, headers, rows in sections:
        if subtitle:
            out += [f"## {subtitle}", ""]
        out += [markdown_table(headers, rows), ""]
    path.write_text("\n".join(out))
    return path


def command_line(script, args):
    cmd = f"python benchmarks/{script}"
    if args.quick:
        cmd += " --quick"
    if args.seed != 0:
        cmd += f" --seed {args.seed}"
    return cmd


def describe(estimator, keys):
    """``'k=v, ...'`` of an estimator's parameters as actually used (defaults may move)."""
    params = estimator.get_params()
    return ", ".join(f"{k}={params[k]!r}" for k in keys)


def figure(n_panels, ncols=None, width=4.0, height=3.2):
    """``n_panels`` axes (flat array), ``ncols`` per row, Agg backend (no display)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ncols = ncols or n_panels
    nrows = -(-n_panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             squeeze=False)
    axes = axes.ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def save_figure(fig, path):
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def epoch_curves(estimator, X, Y, n_epochs, evaluate):
    """Train with ``partial_fit`` one epoch at a time; ``evaluate(est)`` after each.

    Returns a dict metric -> array of shape (n_epochs,), and the fit seconds
    (evaluation excluded).
    """
    history = {}
    fit_time = 0.0
    with quiet():
        for _ in range(n_epochs):
            t0 = time.perf_counter()
            estimator.partial_fit(X, Y)
            fit_time += time.perf_counter() - t0
            for key, value in evaluate(estimator).items():
                history.setdefault(key, []).append(value)
    return {k: np.asarray(v) for k, v in history.items()}, fit_time


def plot_curves(ax, curves, title, ylabel):
    """``curves``: label -> array (n_seeds, n_epochs); mean line and ±std band."""
    for label, values in curves.items():
        values = np.asarray(values, dtype=float)
        epochs = np.arange(1, values.shape[1] + 1)
        m, s = values.mean(axis=0), values.std(axis=0)
        ax.plot(epochs, m, label=label)
        ax.fill_between(epochs, m - s, m + s, alpha=0.2)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
