"""GPU check of the CuPy backend: CPU/GPU parity and timings (a few minutes).

    python benchmarks/gpu_check.py

Checks that the GPU noise stream, the GPU solvers and the Monte Carlo
estimates agree with the numba backend, then times the ranking kernel
(n=4096, d=100, M=100), the argmax kernel (same size) and a short fit,
numba (all CPU threads) vs CuPy. Writes everything it prints to
``benchmarks/results/gpu_check.txt``. Without CuPy or a visible GPU it prints
why and exits with status 0, writing nothing.
"""

import os
import platform
import sys
import time
import warnings

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "gpu_check.txt")


def _gpu_or_exit():
    try:
        import cupy as cp
    except ImportError:
        print("gpu_check: CuPy is not installed (pip install sk-perturbed[gpu]); nothing to check.")
        sys.exit(0)
    try:
        n_devices = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - no driver / runtime
        print(f"gpu_check: CuPy cannot reach a GPU ({exc}); nothing to check.")
        sys.exit(0)
    if n_devices < 1:
        print("gpu_check: no GPU visible; nothing to check.")
        sys.exit(0)
    return cp


def _time(fn, sync, repeat=5):
    fn()  # warm-up: compilation, caches
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    cp = _gpu_or_exit()
    from sk_perturbed import PerturbedRankingRegressor
    from sk_perturbed import _cupy_backend as cb
    from sk_perturbed._noise import sample_noise
    from sk_perturbed.datasets import make_perfect_ranks
    from sk_perturbed.perturbed import PerturbedOptimizer
    from sk_perturbed.solvers import Argmax, DAGShortestPath, Ranking, TopK

    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    say(f"device: {name}; CuPy {cp.__version__}; CPU: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores")
    sync = cp.cuda.Device().synchronize
    rng = np.random.default_rng(0)
    failures = 0

    # ---- parity ---------------------------------------------------------
    say("\n== parity ==")
    keys = np.array([0, 1, 2**40, 12345], dtype=np.int64)
    for noise in ("gaussian", "gumbel"):
        for antithetic in (False, True):
            gpu = cp.asnumpy(cb.cupy_device().sample_noise(7, cp.asarray(keys), 200, 100, noise, antithetic))
            cpu = sample_noise(7, keys, 200, 100, noise, antithetic)
            exact = np.mean(gpu == cpu)
            diff = float(np.max(np.abs(gpu - cpu)))
            ok = diff <= 1e-13
            failures += not ok
            say(f"noise {noise:8s} antithetic={antithetic!s:5s}: {exact:.6f} of draws bit-equal, "
                f"max |diff| {diff:.2e} {'OK' if ok else 'FAIL'}")
    for solver in (Argmax(), TopK(k=5), Ranking(), DAGShortestPath(grid=(12, 12))):
        x = rng.normal(size=(2000, solver.dimension() or 100))
        for ties in (False, True):
            xx = np.round(x) if ties else x
            solve, _ = cb.gpu_solver(cb.cupy_device(), solver)
            ok = np.array_equal(cp.asnumpy(solve(cp.asarray(xx))), solver(xx))
            failures += not ok
            say(f"solver {type(solver).__name__:15s} ties={ties!s:5s}: {'exact' if ok else 'FAIL'}")
    for solver, params in [
        (Ranking(), {}), (Argmax(), {"noise": "gumbel"}), (TopK(k=3), {"antithetic": True}),
        (Ranking(), {"perturbation": "multiplicative"}), (DAGShortestPath(grid=(5, 5)), {}),
    ]:
        d = solver.dimension() or 20
        theta = rng.uniform(0.5, 2.0, size=(64, d))
        v = rng.normal(size=theta.shape)
        kw = dict(epsilon=0.7, n_samples=200, random_state=3, **params)
        cpu = PerturbedOptimizer(solver, backend="numba", **kw).estimate(theta, v)
        gpu = PerturbedOptimizer(solver, **kw).estimate(cp.asarray(theta), cp.asarray(v))
        other = PerturbedOptimizer(solver, backend="numba", **{**kw, "random_state": 4})
        mc = float(np.std(other.estimate(theta, v).y_eps - cpu.y_eps)) / np.sqrt(2)
        worst = max(float(np.max(np.abs(cp.asnumpy(getattr(gpu, k)) - getattr(cpu, k))))
                    for k in ("y_eps", "expected_max", "expected_max_grad", "vjp"))
        ok = worst <= 5 * mc + 1e-9
        failures += not ok
        say(f"estimate {type(solver).__name__:15s} {params!s:34s}: max |gpu - cpu| {worst:.2e} "
            f"(MC s.e. {mc:.2e}) {'OK' if ok else 'FAIL'}")

    # ---- timings --------------------------------------------------------
    say("\n== timings (median of 5, seconds) ==")
    n, d, m = 4096, 100, 100
    theta = rng.normal(size=(n, d))
    theta_gpu = cp.asarray(theta)
    for solver in (Ranking(), Argmax()):
        cpu_po = PerturbedOptimizer(solver, n_samples=m, random_state=0, backend="numba", n_jobs=-1)
        gpu_po = PerturbedOptimizer(solver, n_samples=m, random_state=0, backend="cupy")
        t_cpu = _time(lambda: cpu_po(theta), lambda: None)
        t_gpu = _time(lambda: gpu_po(theta_gpu), sync)
        t_gpu_host = _time(lambda: gpu_po(theta), sync)
        say(f"{type(solver).__name__:8s} y_eps n={n} d={d} M={m}: numba {t_cpu:.4f}  cupy {t_gpu:.4f} "
            f"(x{t_cpu / t_gpu:.1f})  cupy from/to host {t_gpu_host:.4f}")
        t_cpu = _time(lambda: cpu_po.estimate(theta, theta), lambda: None)
        t_gpu = _time(lambda: gpu_po.estimate(theta_gpu, theta_gpu), sync)
        say(f"{type(solver).__name__:8s} +vjp  n={n} d={d} M={m}: numba {t_cpu:.4f}  cupy {t_gpu:.4f} "
            f"(x{t_cpu / t_gpu:.1f})")
    X, Y = make_perfect_ranks(n_samples=4096, n_features=50, n_labels=100, random_state=0)
    for batch_size in (200, 4096):
        times = {}
        for backend in ("numba", "cupy"):
            est = PerturbedRankingRegressor(
                n_samples=100, max_iter=3, batch_size=batch_size, random_state=0, tol=0.0,
                backend=backend,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X[:256], Y[:256])  # warm-up
                start = time.perf_counter()
                est.fit(X, Y)
                sync()
            times[backend] = time.perf_counter() - start
            times[backend + "_score"] = est.score(X, Y)
        say(f"fit PerturbedRankingRegressor n=4096 d=100 M=100 3 epochs batch={batch_size}: "
            f"numba {times['numba']:.2f}s (rho {times['numba_score']:.3f})  cupy {times['cupy']:.2f}s "
            f"(rho {times['cupy_score']:.3f})  (model on CPU, Monte Carlo on GPU)")

    say(f"\n{'ALL PARITY CHECKS PASSED' if not failures else f'{failures} PARITY CHECK(S) FAILED'}")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"written to {RESULTS}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
