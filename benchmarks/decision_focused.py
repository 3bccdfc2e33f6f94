"""Decision-focused learning: DecisionFocusedRegressor against PyEPO on PyEPO's problems.

Problems (PyEPO's generators, reproduced bit for bit by sk_perturbed.datasets):

* ``shortest_path``: 5×5 grid, 40 arcs, p = 5 features, deg 4, noise 0.5
  (``make_shortest_path``), solver DAGShortestPath; PyEPO: shortestPathModel.
* ``knapsack``: 32 items, 2 constraints, capacity 20 each, p = 5, deg 4, noise
  0.5 (``make_knapsack``, PyEPO's tutorial setting), solver Knapsack (branch
  and bound); PyEPO: knapsackModel (Gurobi).

Each seed s draws n_train training and n_test test problems from one draw
(``random_state = 135 + s``). Methods, all with a linear model of x:

* ours: ``DecisionFocusedRegressor`` with its defaults and ``loss`` in
  {'spo_plus', 'fenchel_young', 'squared' (two-stage)};
* PyEPO (when ``import pyepo`` works, with Gurobi): ``SPOPlus`` and
  ``perturbedFenchelYoung`` (PFYL), torch ``nn.Linear``, Adam lr 0.01, batch
  32 (PyEPO's tutorial settings), ``processes=1``, PFYL n_samples=3 and
  sigma=1, for as many epochs as our default ``max_iter`` (100).

Metric: normalized regret on the test problems
(:func:`sk_perturbed.metrics.normalized_regret`, PyEPO's formula), and the
wall time of the fit (for PyEPO: its ``optDataset``, which solves the training
problems, plus the epochs). A second table times our SPO+ fit with
``n_jobs=1`` against the default ``n_jobs=None``.

Run: ``python benchmarks/decision_focused.py`` (full; PyEPO in the same run
when installed, e.g. in a separate venv with ``pip install pyepo gurobipy
torch``) or ``--quick`` (small n, 1 seed, writes to results/quick/ unless
``--out`` is given).
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_OUT, command_line, describe, figure, mean_std, parse_args, quiet, save_figure, write_report  # noqa: E402

from sk_perturbed import DecisionFocusedRegressor  # noqa: E402
from sk_perturbed.datasets import make_knapsack, make_shortest_path  # noqa: E402
from sk_perturbed.metrics import normalized_regret  # noqa: E402
from sk_perturbed.solvers import DAGShortestPath  # noqa: E402

PROBLEMS = ("shortest_path", "knapsack")
OURS = {"ours SPO+": "spo_plus", "ours FY": "fenchel_young", "ours two-stage": "squared"}
PYEPO = ("PyEPO SPO+", "PyEPO PFYL")
N_FEATURES, DEG, NOISE, CAPACITY = 5, 4, 0.5, 20
PYEPO_LR, PYEPO_BATCH, PYEPO_PFYL_SAMPLES, PYEPO_SIGMA = 0.01, 32, 3, 1.0
DATA_SEED = 135  # PyEPO's default seed; seed s uses DATA_SEED + s


def config(quick):
    if quick:
        return dict(n_train=100, n_test=100, n_seeds=1, max_iter=3, pyepo_epochs=1,
                    pyepo_seeds=1)
    # PyEPO trains as many epochs as our default max_iter (100): the same budget.
    return dict(n_train=1000, n_test=1000, n_seeds=3, max_iter=None, pyepo_epochs=100,
                pyepo_seeds=2)


def make_problem(name, n, seed):
    """Features, true costs (values for the knapsack), our solver, PyEPO's model factory."""
    if name == "shortest_path":
        X, C, _ = make_shortest_path(n, n_features=N_FEATURES, deg=DEG, noise_width=NOISE,
                                     random_state=seed)

        def pyepo_model():
            import pyepo

            return pyepo.model.grb.shortestPathModel(grid=(5, 5))

        return X, C, DAGShortestPath(grid=(5, 5)), pyepo_model
    X, C, weights, capacity, solver = make_knapsack(
        n, n_features=N_FEATURES, n_items=32, dim=2, deg=DEG, noise_width=NOISE,
        capacity=CAPACITY, random_state=seed, return_solver=True)

    def pyepo_model():
        import pyepo

        return pyepo.model.grb.knapsackModel(weights=weights, capacity=capacity)

    return X, C, solver, pyepo_model


def fit_ours(loss, X, C, solver, seed, max_iter, n_jobs=None, **params):
    if max_iter is not None:
        params["max_iter"] = max_iter
    model = DecisionFocusedRegressor(solver, loss=loss, random_state=seed, n_jobs=n_jobs,
                                     **params)
    start = time.perf_counter()
    with quiet():
        model.fit(X, C)
    return model, time.perf_counter() - start


def pyepo_available():
    try:
        import gurobipy  # noqa: F401
        import pyepo  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def fit_pyepo(method, X, C, make_model, seed, epochs):
    """PyEPO's training loop of its tutorials; returns predicted test costs' function and time."""
    import pyepo
    import torch
    from torch.utils.data import DataLoader

    torch.manual_seed(seed)
    start = time.perf_counter()
    optmodel = make_model()
    with quiet():
        dataset = pyepo.data.dataset.optDataset(optmodel, X, C)  # solves every problem
    loader = DataLoader(dataset, batch_size=PYEPO_BATCH, shuffle=True)
    model = torch.nn.Linear(X.shape[1], C.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=PYEPO_LR)
    if method == "PyEPO SPO+":
        loss_fn = pyepo.func.SPOPlus(optmodel, processes=1)
    else:
        loss_fn = pyepo.func.perturbedFenchelYoung(
            optmodel, n_samples=PYEPO_PFYL_SAMPLES, sigma=PYEPO_SIGMA, processes=1, seed=seed)
    for _ in range(epochs):
        for x, c, w, z in loader:
            cp = model(x)
            loss = loss_fn(cp, c, w, z) if method == "PyEPO SPO+" else loss_fn(cp, w)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    elapsed = time.perf_counter() - start

    def predict_costs(X_new):
        with torch.no_grad():
            return model(torch.as_tensor(X_new, dtype=torch.float32)).numpy().astype(np.float64)

    return predict_costs, elapsed


def regret(C_test, costs_pred, solver):
    return normalized_regret(C_test, solver(costs_pred), solver=solver)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--quick" in argv and "--out" not in argv:
        argv += ["--out", str(DEFAULT_OUT / "quick")]  # never the committed results
    args = parse_args(argv, __doc__.splitlines()[0])
    cfg = config(args.quick)
    with_pyepo = pyepo_available()
    t_start = time.perf_counter()
    results = {}  # (problem, method) -> list of (regret, seconds)
    timing_rows = []
    defaults = DecisionFocusedRegressor()
    for problem in PROBLEMS:
        for s in range(cfg["n_seeds"]):
            seed = args.seed + s
            X, C, solver, pyepo_model = make_problem(problem, cfg["n_train"] + cfg["n_test"],
                                                     DATA_SEED + seed)
            n = cfg["n_train"]
            X_tr, C_tr, X_te, C_te = X[:n], C[:n], X[n:], C[n:]
            for label, loss in OURS.items():
                model, seconds = fit_ours(loss, X_tr, C_tr, solver, seed, cfg["max_iter"])
                results.setdefault((problem, label), []).append(
                    (regret(C_te, model.predict_costs(X_te), solver), seconds))
                print(problem, seed, label, results[(problem, label)][-1], flush=True)
            if with_pyepo and s < cfg["pyepo_seeds"]:
                for label in PYEPO:
                    predict_costs, seconds = fit_pyepo(label, X_tr, C_tr, pyepo_model, seed,
                                                       cfg["pyepo_epochs"])
                    results.setdefault((problem, label), []).append(
                        (regret(C_te, predict_costs(X_te), solver), seconds))
                    print(problem, seed, label, results[(problem, label)][-1], flush=True)
        # Threads: our SPO+ fit on one thread against the default budget (seed 0 data).
        X, C, solver, _ = make_problem(problem, cfg["n_train"], DATA_SEED + args.seed)
        times = {}
        for n_jobs in (1, None, 1, None, 1, None):  # interleaved, medians
            times.setdefault(n_jobs, []).append(
                fit_ours("spo_plus", X, C, solver, args.seed, cfg["max_iter"], n_jobs)[1])
        t1, tn = np.median(times[1]), np.median(times[None])
        timing_rows.append([problem, f"{t1:.2f}", f"{tn:.2f}", f"{t1 / tn:.2f}"])

    rows, labels = [], list(OURS) + (list(PYEPO) if with_pyepo else [])
    for problem in PROBLEMS:
        for label in labels:
            values = results.get((problem, label))
            if not values:
                continue
            r, t = np.array(values).T
            rows.append([problem, label, len(values), mean_std(r, "{:.4f}"),
                         f"{np.median(t):.2f}"])
    ratio_rows = []
    if with_pyepo:
        k = cfg["pyepo_seeds"]  # PyEPO ran on the first k seeds: compare on those
        for problem in PROBLEMS:
            for our_label in ("ours SPO+", "ours FY"):
                ours = np.array(results[(problem, our_label)][:k]).T
                for label in PYEPO:
                    theirs = np.array(results[(problem, label)]).T
                    ratio_rows.append([
                        problem, f"{our_label} vs {label}", mean_std(ours[0], "{:.4f}"),
                        mean_std(theirs[0], "{:.4f}"),
                        f"{int(np.sum(ours[0] <= theirs[0]))} / {k}",
                        f"{np.median(theirs[1] / ours[1]):.1f}"])

    notes = [
        f"Data: PyEPO generators, p = {N_FEATURES}, deg = {DEG}, noise half-width {NOISE}; "
        f"n_train = {cfg['n_train']}, n_test = {cfg['n_test']}; seed s draws with "
        f"random_state = {DATA_SEED} + s. Knapsack: 32 items, 2 constraints, capacity "
        f"{CAPACITY} each.",
        "Ours: DecisionFocusedRegressor defaults ("
        + describe(defaults, ["model", "optimizer", "learning_rate_init", "batch_size",
                              "max_iter", "n_iter_no_change", "alpha", "epsilon",
                              "n_samples"])
        + (f"; max_iter={cfg['max_iter']} in --quick" if cfg["max_iter"] else "")
        + "), random_state = s; the time includes solving the training problems.",
        (f"PyEPO {__import__('pyepo').__version__ if with_pyepo else ''} (Gurobi): "
         f"nn.Linear, Adam lr {PYEPO_LR}, batch {PYEPO_BATCH}, processes=1, PFYL "
         f"n_samples={PYEPO_PFYL_SAMPLES}, sigma={PYEPO_SIGMA}; "
         f"{cfg['pyepo_epochs']} epochs (our default max_iter) and {cfg['pyepo_seeds']} "
         "seed(s) (the time budget); the time includes optDataset (solving the training "
         "problems).")
        if with_pyepo else "PyEPO not installed in this environment: its rows are absent.",
        "Regret: sk_perturbed.metrics.normalized_regret of the test decisions (PyEPO's "
        "normalized regret formula), decisions of both libraries solved by our solvers.",
        f"Total wall time {time.perf_counter() - t_start:.0f} s.",
    ]
    sections = [("Normalized test regret (mean ± std over seeds) and fit time",
                 ["problem", "method", "seeds", "normalized regret", "fit s (median)"], rows)]
    if ratio_rows:
        sections.append((f"Same data, the {cfg['pyepo_seeds']} seed(s) PyEPO ran: regret and "
                         "PyEPO time / our time",
                         ["problem", "comparison", "ours regret", "PyEPO regret",
                          "seeds ours <= PyEPO", "time ratio (median)"], ratio_rows))
    sections.append(("Threads: our SPO+ fit, n_jobs=1 vs the default (median of 3)",
                     ["problem", "n_jobs=1 s", "n_jobs=None s", "ratio"], timing_rows))
    md = write_report(args.out / "decision_focused.md",
                      "Decision-focused learning: ours vs PyEPO",
                      command_line("decision_focused.py", args), sections, notes)

    fig, axes = figure(2, width=5.0)
    for ax, problem in zip(axes, PROBLEMS):
        for label in labels:
            values = results.get((problem, label))
            if values:
                r, t = np.array(values).T
                ax.scatter(t, r, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("fit wall time (s, log)")
        ax.set_ylabel("normalized test regret")
        ax.set_title(problem, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    png = save_figure(fig, args.out / "decision_focused.png")
    print(md.read_text())
    return md, png


if __name__ == "__main__":
    main()
