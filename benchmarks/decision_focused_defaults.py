"""How DecisionFocusedRegressor's defaults were chosen: validation regret over a grid.

A tuning draw that no evaluated run uses (``random_state = 10000``) of both
problems of ``decision_focused.py`` (5×5 shortest path; PyEPO's 32-item, 2-D
knapsack; deg 4, noise 0.5): 1000 training and 1000 validation problems. For
the SPO+ and Fenchel–Young losses, every ``learning_rate_init`` × ``max_iter``
of the grid is fitted (other parameters at their defaults) and scored by the
normalized regret on the validation problems. The test sets of
``decision_focused.py`` are never seen.

Run: ``python benchmarks/decision_focused_defaults.py`` or ``--quick``.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_OUT, command_line, figure, parse_args, save_figure, write_report  # noqa: E402
from decision_focused import PROBLEMS, fit_ours, make_problem, regret  # noqa: E402

TUNING_SEED = 10_000
LOSSES = ("spo_plus", "fenchel_young")


#: Step schedule and stopping rule, compared at the default learning rate and max_iter.
VARIANTS = {
    "learning_rate='adaptive' (default)": {},
    "learning_rate='constant'": {"learning_rate": "constant"},
    "early_stopping=True": {"early_stopping": True},
}


def config(quick):
    if quick:
        return dict(n=100, lrs=(0.01, 0.1), max_iters=(2, 4), fit_seeds=(0,))
    return dict(n=1000, lrs=(0.003, 0.01, 0.03, 0.1), max_iters=(25, 50, 100, 200),
                fit_seeds=(0, 1))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--quick" in argv and "--out" not in argv:
        argv += ["--out", str(DEFAULT_OUT / "quick")]
    args = parse_args(argv, __doc__.splitlines()[0])
    cfg = config(args.quick)
    start = time.perf_counter()
    scores = {}  # (problem, loss, lr, max_iter) -> (regret, seconds)
    for problem in PROBLEMS:
        X, C, solver, _ = make_problem(problem, 2 * cfg["n"], TUNING_SEED + args.seed)
        n = cfg["n"]
        for loss in LOSSES:
            for lr in cfg["lrs"]:
                for max_iter in cfg["max_iters"]:
                    model, seconds = fit_ours(loss, X[:n], C[:n], solver, 0, max_iter,
                                              learning_rate_init=lr)
                    scores[(problem, loss, lr, max_iter)] = (
                        regret(C[n:], model.predict_costs(X[n:]), solver), seconds)
                    print(problem, loss, lr, max_iter, scores[(problem, loss, lr, max_iter)],
                          flush=True)
    variant_rows = []
    for loss in LOSSES:
        for name, params in VARIANTS.items():
            per_problem = []
            for problem in PROBLEMS:
                X, C, solver, _ = make_problem(problem, 2 * n, TUNING_SEED + args.seed)
                regrets = []
                for fit_seed in cfg["fit_seeds"]:
                    model, _ = fit_ours(loss, X[:n], C[:n], solver, fit_seed,
                                        cfg["max_iters"][-1] if args.quick else None, **params)
                    regrets.append(regret(C[n:], model.predict_costs(X[n:]), solver))
                per_problem.append(np.mean(regrets))
            variant_rows.append([loss, name, *(f"{r:.4f}" for r in per_problem),
                                 f"{np.mean(per_problem):.4f}"])
            print(variant_rows[-1], flush=True)
    rows = []
    for loss in LOSSES:
        for lr in cfg["lrs"]:
            for max_iter in cfg["max_iters"]:
                per_problem = [scores[(p, loss, lr, max_iter)] for p in PROBLEMS]
                mean = np.mean([r for r, _ in per_problem])
                rows.append([loss, lr, max_iter]
                            + [f"{r:.4f} ({t:.1f} s)" for r, t in per_problem]
                            + [f"{mean:.4f}"])
    best = {loss: min((r for r in rows if r[0] == loss), key=lambda r: float(r[-1]))
            for loss in LOSSES}
    notes = [f"Tuning draw random_state = {TUNING_SEED + args.seed}: {cfg['n']} training and "
             f"{cfg['n']} validation problems per problem; fit random_state = 0.",
             "Lowest mean validation regret: " + "; ".join(
                 f"{loss}: learning_rate_init={r[1]}, max_iter={r[2]} ({r[-1]})"
                 for loss, r in best.items()),
             f"Total wall time {time.perf_counter() - start:.0f} s."]
    md = write_report(args.out / "decision_focused_defaults.md",
                      "DecisionFocusedRegressor defaults: validation regret",
                      command_line("decision_focused_defaults.py", args),
                      [("Validation regret (fit time), other parameters at their defaults",
                        ["loss", "learning_rate_init", "max_iter", *PROBLEMS, "mean"], rows),
                       (f"Schedule and stopping at the defaults, mean over fit seeds "
                        f"{cfg['fit_seeds']}",
                        ["loss", "variant", *PROBLEMS, "mean"], variant_rows)],
                      notes)
    fig, axes = figure(len(PROBLEMS), width=4.5)
    for ax, problem in zip(axes, PROBLEMS):
        for loss in LOSSES:
            for lr in cfg["lrs"]:
                ax.plot(cfg["max_iters"],
                        [scores[(problem, loss, lr, it)][0] for it in cfg["max_iters"]],
                        marker="o", label=f"{loss} lr={lr}")
        ax.set_xscale("log")
        ax.set_xlabel("max_iter (epochs)")
        ax.set_ylabel("validation regret")
        ax.set_title(problem, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    png = save_figure(fig, args.out / "decision_focused_defaults.png")
    print(md.read_text())
    return md, png


if __name__ == "__main__":
    main()
