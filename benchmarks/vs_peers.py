"""sk_perturbed beside its peers: PyEPO (PyTorch + Gurobi) and plain PyTorch.

(a) PyEPO's perturbed Fenchel–Young loss on its shortest-path tutorial
    setting (5×5 grid, n = 1000 train + 1000 test, p = 5, deg = 4,
    noise_width = 0.5, linear model, 20 epochs, batch 32, Adam lr 0.01,
    M = 3, σ = ε = 1), both trained on the same data (``make_shortest_path``,
    which reproduces PyEPO's ``genData``): wall time of training and the
    normalized regret on the test set (our metric for both, PyEPO's own
    ``pyepo.metric.regret`` beside it for PyEPO).
(b) The perturbed ranking estimate of a plain PyTorch implementation
    (``torch.randn`` + ``argsort`` + ``scatter``, as the public PyTorch ports
    do: y_ε, F̂_ε and the VJP) against ours,
    ``PerturbedOptimizer(Ranking(), n_samples=100).estimate(theta, v)``, at
    n = 256, d = 100, M = 100: median times, interleaved.

A peer that is not installed is skipped with a message (``pip install
sk-perturbed[bench]``; see benchmarks/README_speed.md). The machine's load is
printed with each number.

Usage::

    python benchmarks/vs_peers.py [--only pyepo|torch] [--repeats R]
"""

import argparse
import os
import statistics
import time
import warnings

import numpy as np


def load():
    return "load %.2f" % os.getloadavg()[0]


# ------------------------------------------------------------------ PyEPO
def bench_pyepo(seed=135):
    try:
        import pyepo
        import torch
        from pyepo.model.grb import shortestPathModel
    except ImportError as exc:
        print(f"[skip] PyEPO comparison: {exc}. `pip install pyepo gurobipy` to run it.")
        return None
    try:
        optmodel = shortestPathModel(grid=(5, 5))
    except Exception as exc:  # no Gurobi licence / binary
        print(f"[skip] PyEPO comparison: Gurobi unavailable ({exc}).")
        return None

    from sk_perturbed import PerturbedStructuredClassifier
    from sk_perturbed.datasets import make_shortest_path
    from sk_perturbed.metrics import normalized_regret
    from sk_perturbed.solvers import DAGShortestPath

    X, costs, paths = make_shortest_path(2000, n_features=5, deg=4, noise_width=0.5,
                                         random_state=seed)
    Xtr, Xte = X[:1000], X[1000:]
    Ctr, Cte = costs[:1000], costs[1000:]
    Ptr, Pte = paths[:1000], paths[1000:]
    solver = DAGShortestPath(grid=(5, 5))
    epochs, batch, lr, m, eps = 20, 32, 0.01, 3, 1.0

    # ---- ours
    est = PerturbedStructuredClassifier(
        solver=solver, model="linear", n_samples=m, epsilon=eps, batch_size=batch,
        max_iter=epochs, tol=0.0, n_iter_no_change=10**9, optimizer="adam",
        learning_rate_init=lr, alpha=0.0, random_state=0,
    )
    est.set_params(max_iter=1).fit(Xtr[:64], Ptr[:64])  # compile / load kernels
    est.set_params(max_iter=epochs)
    start = time.perf_counter()
    est.fit(Xtr, Ptr)
    t_ours = time.perf_counter() - start
    regret_ours = normalized_regret(Cte, solver(est.predict_scores(Xte)), Y_true=Pte)

    # ---- PyEPO (its tutorial loop)
    from torch import nn
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    ds_train = pyepo.data.dataset.optDataset(optmodel, Xtr, Ctr)
    ds_test = pyepo.data.dataset.optDataset(optmodel, Xte, Cte)
    loader = DataLoader(ds_train, batch_size=batch, shuffle=True)
    loader_test = DataLoader(ds_test, batch_size=batch, shuffle=False)
    reg = nn.Linear(5, costs.shape[1])
    opt = torch.optim.Adam(reg.parameters(), lr=lr)
    pfyl = pyepo.func.perturbedFenchelYoung(optmodel, n_samples=m, sigma=eps, processes=1)
    start = time.perf_counter()
    for _ in range(epochs):
        for x, _c, w, _z in loader:
            loss = pfyl(reg(x), w)
            opt.zero_grad()
            loss.backward()
            opt.step()
    t_pyepo = time.perf_counter() - start
    with torch.no_grad():
        c_hat = reg(torch.as_tensor(Xte, dtype=torch.float32)).numpy().astype(np.float64)
    regret_pyepo = normalized_regret(Cte, solver(c_hat), Y_true=Pte)
    regret_pyepo_own = pyepo.metric.regret(reg, optmodel, loader_test)
    same_paths = float(np.mean(np.all(
        solver(c_hat) == solver(est.predict_scores(Xte)), axis=1)))

    print("(a) shortest path 5x5, PyEPO tutorial setting (1000 train / 1000 test, "
          "deg 4, noise 0.5, 20 epochs, batch 32, Adam 0.01, M 3, eps 1)")
    print(f"    sk_perturbed: train {t_ours:7.2f} s   test normalized regret {regret_ours:.6f}"
          f"   {load()}")
    print(f"    PyEPO PFYL:   train {t_pyepo:7.2f} s   test normalized regret {regret_pyepo:.6f}"
          f" (pyepo.metric.regret {regret_pyepo_own:.6f})   {load()}")
    print(f"    speed-up {t_pyepo / t_ours:.1f}x; the two models choose the same test path "
          f"on {same_paths:.1%} of the test problems")
    return dict(t_ours=t_ours, t_pyepo=t_pyepo, regret_ours=regret_ours,
                regret_pyepo=regret_pyepo, regret_pyepo_own=regret_pyepo_own)


# ----------------------------------------------------------------- PyTorch
def torch_perturbed_ranking(theta, v, n_samples, epsilon, generator=None):
    """y_ε, F̂_ε and vᵀJ of the perturbed ranking, the plain-PyTorch way."""
    import torch

    n, d = theta.shape
    z = torch.randn((n_samples, n, d), dtype=theta.dtype, generator=generator)
    perturbed = theta.unsqueeze(0) + epsilon * z
    order = torch.argsort(perturbed, dim=-1)
    ranks = torch.arange(1, d + 1, dtype=theta.dtype).expand(n_samples, n, d)
    y = torch.zeros_like(perturbed).scatter_(-1, order, ranks)  # ascending ranks 1..d
    y_eps = y.mean(0)
    f_hat = (y * perturbed).sum(-1).mean(0)
    scores = (y * v.unsqueeze(0)).sum(-1, keepdim=True)
    vjp = (scores * z).mean(0) / epsilon
    return y_eps, f_hat, vjp


def bench_torch(repeats):
    try:
        import torch
    except ImportError as exc:
        print(f"[skip] PyTorch comparison: {exc}. `pip install torch` to run it.")
        return None
    from sk_perturbed.perturbed import PerturbedOptimizer
    from sk_perturbed.solvers import Ranking

    n, d, m = 256, 100, 100
    rng = np.random.default_rng(0)
    theta = rng.standard_normal((n, d))
    v = rng.standard_normal((n, d))
    theta_t, v_t = torch.from_numpy(theta), torch.from_numpy(v)
    gen = torch.Generator().manual_seed(0)
    po = PerturbedOptimizer(Ranking(), n_samples=m, random_state=0)

    # Agreement check: both estimate the same y_ε (up to Monte Carlo error).
    y_ours = po.estimate(theta, v).y_eps
    y_torch = torch_perturbed_ranking(theta_t, v_t, m, 1.0, gen)[0].numpy()
    gap = float(np.abs(y_ours - y_torch).max())

    print(f"(b) perturbed ranking estimate (y_eps, F, VJP), n={n}, d={d}, M={m}, float64; "
          f"max |y_eps ours - torch| = {gap:.2f} (MC error)")
    out = {}
    for threads in (None, 1):
        torch_threads = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        po.n_jobs = threads
        t_ours, t_torch = [], []
        po.estimate(theta, v)
        torch_perturbed_ranking(theta_t, v_t, m, 1.0, gen)
        for _ in range(repeats):
            start = time.perf_counter()
            po.estimate(theta, v)
            t_ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            torch_perturbed_ranking(theta_t, v_t, m, 1.0, gen)
            t_torch.append(time.perf_counter() - start)
        torch.set_num_threads(torch_threads)
        a, b = statistics.median(t_ours), statistics.median(t_torch)
        label = "default threads" if threads is None else f"{threads} thread"
        print(f"    {label:<16} ours {a * 1e3:8.1f} ms   torch {b * 1e3:8.1f} ms   "
              f"speed-up {b / a:5.1f}x   {load()}", flush=True)
        out[label] = (a, b)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["pyepo", "torch"])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(f"{os.cpu_count()} cores, {load()}")
    if args.only in (None, "torch"):
        bench_torch(args.repeats)
    if args.only in (None, "pyepo"):
        bench_pyepo()


if __name__ == "__main__":
    main()
