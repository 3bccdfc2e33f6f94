"""GPU check of the CuPy backend: CPU/GPU parity and timings (a few minutes).

    python benchmarks/gpu_check.py              # on a machine with CuPy and a GPU
    python benchmarks/gpu_check.py --cpu-only   # the CPU side of the kernel timings

Checks that the GPU noise stream, the GPU solvers and the Monte Carlo
estimates agree with the numba backend (to rounding: both draw the same keyed
noise, see :func:`estimate_parity`), that training on the GPU gives the fit
of the CPU (same keyed noise; fitted attributes NumPy, pickling), then times
the ranking and argmax kernels (n=4096, d=100, M=100), short fits, and epochs
of the speed benchmark's ranking case, numba (all CPU threads of that
machine) vs CuPy. Writes everything it prints to
``benchmarks/results/gpu_check.txt``. Without CuPy or a visible GPU it prints
why and exits with status 0, writing nothing.

``--cpu-only`` times the same two kernels with numba on this machine and
writes ``benchmarks/results/gpu_check_cpu.txt``: the baseline of the GPU
speed-up on the project's own (2-core) machine.
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


#: CPU and GPU draw the same keyed noise and run exact solvers, so their
#: estimates agree to rounding (summation order, CUDA's last-ulp exp/log).
PARITY_RTOL = 1e-9
#: Rows allowed beyond rounding, and then only within 5 Monte Carlo standard
#: errors: a ziggurat acceptance test within an ulp of its threshold can flip
#: on the GPU and shift the rest of that row's noise stream (module docstring
#: of sk_perturbed/_cupy_backend.py). It is rare enough that one row suffices.
MAX_FLIPPED_ROWS = 1

OUTPUTS = ("y_eps", "expected_max", "expected_max_grad", "vjp")


def on_host(cp, estimate):
    """A PerturbedEstimate of CuPy arrays copied to NumPy."""
    return type(estimate)(*(None if a is None else cp.asnumpy(a) for a in estimate))


def estimate_parity(gpu, cpu, other):
    """Whether the host copies of GPU estimates ``gpu`` match the CPU's ``cpu``.

    Each output must agree with the CPU's to ``PARITY_RTOL``, relative to the
    entry and to the output's largest magnitude, except at most
    ``MAX_FLIPPED_ROWS`` rows, which must then be within 5 Monte Carlo standard
    errors; ``other``, the CPU estimate with another seed, gives that scale
    (the spread of ``other - cpu`` is √2 standard errors).

    Returns ``(ok, worst relative difference, indices of the rows beyond rounding)``.
    """
    worst, off_rows, within_mc = 0.0, set(), True
    for name in OUTPUTS:
        got, ref, alt = getattr(gpu, name), getattr(cpu, name), getattr(other, name)
        if ref is None:
            continue
        scale = max(float(np.abs(ref).max()), 1e-300)
        diff = np.abs(got - ref).reshape(len(ref), -1)
        worst = max(worst, float(diff.max()) / scale)
        bad = (diff > PARITY_RTOL * (np.abs(ref).reshape(diff.shape) + scale)).any(axis=1)
        if bad.any():
            off_rows |= set(np.flatnonzero(bad).tolist())
            within_mc &= float(diff[bad].max()) <= 5 * float(np.std(alt - ref))
    ok = len(off_rows) <= MAX_FLIPPED_ROWS and within_mc
    return ok, worst, sorted(off_rows)


def check_kernels(cp, say):
    """Parity with the numba backend, then kernel and fit timings."""
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    say(f"device: {name}; CuPy {cp.__version__}; CPU: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores")
    failures = check_parity(cp, say)
    time_kernels(cp, say)
    return failures


def check_parity(cp, say):
    """Noise, solvers and estimates against the numba backend; the number of failures."""
    from sk_perturbed import _cupy_backend as cb
    from sk_perturbed._noise import sample_noise
    from sk_perturbed.perturbed import PerturbedOptimizer
    from sk_perturbed.solvers import Argmax, DAGShortestPath, Ranking, TopK

    rng = np.random.default_rng(0)
    failures = 0
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
        ok, worst, rows = estimate_parity(on_host(cp, gpu), cpu, other.estimate(theta, v))
        failures += not ok
        say(f"estimate {type(solver).__name__:15s} {params!s:34s}: max relative |gpu - cpu| "
            f"{worst:.1e}, rows beyond rtol {PARITY_RTOL:g}: {len(rows)} of {len(theta)} "
            f"(at most {MAX_FLIPPED_ROWS}, within 5 MC s.e.) {'OK' if ok else 'FAIL'}")
    return failures


def time_kernels(cp, say):
    """Kernels (y_eps, +VJP) and short fits, numba against CuPy."""
    from sk_perturbed import PerturbedRankingRegressor
    from sk_perturbed.datasets import make_perfect_ranks
    from sk_perturbed.perturbed import PerturbedOptimizer
    from sk_perturbed.solvers import Argmax, Ranking

    sync = cp.cuda.Device().synchronize
    rng = np.random.default_rng(0)
    say("\n== timings (median of 5, seconds) ==")
    n, d, m = KERNEL_SIZE
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
            data = (cp.asarray(X), cp.asarray(Y)) if backend == "cupy" else (X, Y)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(data[0][:256], data[1][:256])  # warm-up
                start = time.perf_counter()
                est.fit(*data)
                sync()
            times[backend] = time.perf_counter() - start
            times[backend + "_score"] = est.score(X, Y)
        say(f"fit PerturbedRankingRegressor n=4096 d=100 M=100 3 epochs batch={batch_size}: "
            f"numba {times['numba']:.2f}s (rho {times['numba_score']:.3f})  cupy {times['cupy']:.2f}s "
            f"(rho {times['cupy_score']:.3f})  (whole training on the GPU)")


def check_training(cp, say, n_headline=100_000, ms_headline=(10, 100)):
    """GPU training against the same fit on the CPU (backend='numpy': the same keyed noise)."""
    import pickle

    from sk_perturbed import PerturbedRankingRegressor, PerturbedStructuredClassifier
    from sk_perturbed.datasets import make_shortest_path
    from sk_perturbed.solvers import DAGShortestPath

    say("\n== training on the GPU vs the same fit on the CPU ==")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 8))
    scores = X @ rng.normal(size=(8, 6))
    Xp, _, paths = make_shortest_path(600, n_features=5, random_state=0)
    cases = [
        ("ranking FY relu", PerturbedRankingRegressor, {}, X, scores),
        ("ranking perturbed_squared tanh", PerturbedRankingRegressor,
         dict(loss="perturbed_squared", activation="tanh"), X, scores),
        ("ranking blackbox logistic sgd", PerturbedRankingRegressor,
         dict(loss="blackbox", activation="logistic", optimizer="sgd"), X, scores),
        ("argmax gumbel (closed form)", PerturbedStructuredClassifier, dict(noise="gumbel"), X,
         np.argmax(scores, axis=1)),
        ("DAG paths softplus float32", PerturbedStructuredClassifier,
         dict(solver=DAGShortestPath(), model="linear"), Xp.astype(np.float32), paths),
    ]
    failures = 0
    for name, Estimator, params, Xc, yc in cases:
        kwargs = dict(max_iter=5, n_samples=8, random_state=0, tol=0.0, batch_size=50, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cpu = Estimator(backend="numpy", **kwargs).fit(Xc, yc)
            gpu = Estimator(backend="cupy", **kwargs).fit(cp.asarray(Xc), cp.asarray(yc))
        worst = max(
            float(np.max(np.abs(a - b)) / max(1e-12, float(np.max(np.abs(b)))))
            for a, b in zip(gpu.coefs_ + gpu.intercepts_, cpu.coefs_ + cpu.intercepts_)
        )
        numpy_attrs = all(type(p) is np.ndarray for p in gpu.coefs_ + gpu.intercepts_)
        clone = pickle.loads(pickle.dumps(gpu))
        same_pred = float(np.mean(np.all(clone.predict(Xc) == cpu.predict(Xc), axis=-1)
                                  if np.ndim(cpu.predict(Xc)) > 1
                                  else clone.predict(Xc) == cpu.predict(Xc)))
        tol = 1e-3 if Xc.dtype == np.float32 else 1e-6
        ok = worst <= tol and numpy_attrs and same_pred >= 0.99
        failures += not ok
        say(f"{name:34s}: max relative |w_gpu - w_cpu| {worst:.1e}, same predictions "
            f"{same_pred:.3f}, fitted attributes NumPy {numpy_attrs} {'OK' if ok else 'FAIL'}")

    # The speed issue's headline case on the GPU: ranking, n = 100 000, p = 50, d = 20.
    n, p, d = n_headline, 50, 20
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, d)) + 0.5 * rng.standard_normal((n, d))
    X_gpu, Y_gpu = cp.asarray(X), cp.asarray(Y)
    for m in ms_headline:
        times = {}
        for backend, data in (("numba", (X, Y)), ("cupy", (X_gpu, Y_gpu))):
            est = PerturbedRankingRegressor(n_samples=m, hidden_layer_sizes=(128,), max_iter=2,
                                            batch_size=200, tol=0.0, random_state=0,
                                            backend=backend)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(data[0][:1000], data[1][:1000])  # warm-up
                start = time.perf_counter()
                est.fit(*data)
                cp.cuda.Device().synchronize()
            times[backend] = (time.perf_counter() - start) / 2
        say(f"epoch ranking MLP(128,) n={n} p={p} d={d} M={m} batch=200: numba "
            f"{times['numba']:.3f}s  cupy {times['cupy']:.3f}s (x{times['numba'] / times['cupy']:.1f})")
    return failures


KERNEL_SIZE = (4096, 100, 100)  # n, d, M


def time_cpu_kernels(say):
    """numba kernels (y_eps, and with a VJP) at KERNEL_SIZE, every thread of this machine."""
    from sk_perturbed.perturbed import PerturbedOptimizer
    from sk_perturbed.solvers import Argmax, Ranking

    n, d, m = KERNEL_SIZE
    theta = np.random.default_rng(0).normal(size=(n, d))
    say(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}")
    out = {}
    for solver in (Ranking(), Argmax()):
        po = PerturbedOptimizer(solver, n_samples=m, random_state=0, backend="numba", n_jobs=-1)
        t = _time(lambda: po(theta), lambda: None)
        t_vjp = _time(lambda: po.estimate(theta, theta), lambda: None)
        out[type(solver).__name__] = t
        say(f"{type(solver).__name__:8s} n={n} d={d} M={m}: numba y_eps {t:.4f} s, "
            f"+vjp {t_vjp:.4f} s (median of 5)")
    return out


def main():
    if "--cpu-only" in sys.argv[1:]:
        lines = []

        def say(text=""):
            print(text, flush=True)
            lines.append(text)

        time_cpu_kernels(say)
        path = RESULTS.replace(".txt", "_cpu.txt")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"written to {path}")
        return 0
    cp = _gpu_or_exit()
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    failures = check_kernels(cp, say)
    failures += check_training(cp, say)
    say(f"\n{'ALL PARITY CHECKS PASSED' if not failures else f'{failures} PARITY CHECK(S) FAILED'}")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"written to {RESULTS}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
