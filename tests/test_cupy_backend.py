"""The optional CuPy backend.

Without CuPy (CPU CI) these tests check the backend selection, the error
messages, and run the backend's array code with ``xp = numpy`` (a "NumPy
device") against the NumPy/numba backends. ``tests/_fake_cupy.py`` stands in
for CuPy itself: installed as ``cupy``, it runs the real ``cupy_device()``
(the CUDA source compiled as C++, every thread of each launch, the kernels'
arguments checked against their C parameters) with CuPy's host/device rules,
so the GPU path runs end to end on the CPU. The whole CUDA source is also
compiled with NVRTC (no GPU needed) to check it builds and that the kernels'
parameters match the arguments the backend passes. Tests that need a GPU are
skipped unless CuPy and a device are present.
"""

import ctypes
import ctypes.util
import importlib.util
import re
import subprocess
import sys
import tracemalloc
import types
import warnings
from pathlib import Path

import _fake_cupy
import numpy as np
import pytest

from sk_perturbed import PerturbedRankingRegressor, PerturbedStructuredClassifier, _engine
from sk_perturbed import _cupy_backend as cb
from sk_perturbed._engine import EstimationSpec
from sk_perturbed._noise import sample_noise
from sk_perturbed.perturbed import (
    PerturbedOptimizer,
    blackbox_loss,
    exact_marginals,
    fenchel_young_loss,
    perturbed_squared_loss,
    squared_loss,
)
from sk_perturbed.solvers import (
    Argmax,
    Assignment,
    DAGShortestPath,
    GridShortestPath,
    Ranking,
    TopK,
)

OUTPUTS = ("y_eps", "expected_max", "expected_max_grad", "vjp")


class FakeCupyArray:
    """Stands in for a cupy.ndarray in the backend-selection rule."""

    __module__ = "cupy._core.core"




@pytest.fixture
def numpy_device(monkeypatch):
    """Route backend='cupy' to the backend's code running on NumPy."""
    monkeypatch.setattr(cb, "get_device", cb.numpy_device)
    monkeypatch.setattr(_engine, "_require_cupy", lambda: None)
    monkeypatch.setattr(cb, "_WARNED", set())


@pytest.fixture
def fake_cupy(monkeypatch):
    """``tests/_fake_cupy.py`` installed as ``cupy``: arrays with CuPy's host/device rules."""
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy)
    monkeypatch.setattr(cb, "_CUPY_DEVICE", None)  # built anew on the fake
    monkeypatch.setattr(cb, "_WARNED", set())
    _fake_cupy.reset()
    return _fake_cupy


@pytest.fixture
def fake_gpu(fake_cupy):
    """:func:`fake_cupy` with its kernels, which need a C++ compiler."""
    if _fake_cupy.CXX is None:
        pytest.skip("no C++ compiler to compile the CUDA source on the CPU")
    return fake_cupy


def _load_gpu_check():
    """``benchmarks/gpu_check.py`` as a module (the GPU checks share its parity rule)."""
    path = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fake_cupy_refuses_what_cupy_refuses(fake_cupy):
    cp = fake_cupy
    a = cp.asarray(np.ones((2, 3)))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones((2, 3))
    with pytest.raises(TypeError, match="Unsupported type"):
        cp.maximum(a, np.ones(3))
    with cp.cuda.Device(1), pytest.raises(ValueError, match="current device"):
        a * 2
    assert isinstance(np.exp(a), cp.ndarray) and isinstance(a.sum(), cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(a * 2.0 + np.float64(1)), np.full((2, 3), 3.0))


# ------------------------------------------------------------ selection
def test_missing_cupy_raises_import_error_naming_gpu_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    po = PerturbedOptimizer(Ranking(), n_samples=3, random_state=0, backend="cupy")
    with pytest.raises(ImportError, match=r"sk-perturbed\[gpu\]"):
        po(np.ones((2, 3)))
    with pytest.raises(ImportError, match="gpu"):
        PerturbedOptimizer(Ranking(), backend="auto")._resolve_backend(FakeCupyArray())
    with pytest.raises(ImportError, match=r"sk-perturbed\[gpu\]"):
        PerturbedRankingRegressor(backend="cupy").fit(np.ones((4, 2)), np.ones((4, 3)))


def test_auto_rule(monkeypatch):
    from sk_perturbed.solvers import CallableSolver

    po = PerturbedOptimizer(Ranking(), backend="auto")
    assert po._resolve_backend(np.ones((2, 3))) == "numba"
    py = PerturbedOptimizer(CallableSolver(lambda t: (t == t.max(1, keepdims=True)) * 1.0))
    assert py._resolve_backend(np.ones((2, 3))) == "numpy"
    monkeypatch.setitem(sys.modules, "cupy", types.ModuleType("cupy"))
    assert po._resolve_backend(FakeCupyArray()) == "cupy"
    assert PerturbedOptimizer(Ranking(), backend="cupy")._resolve_backend(np.ones((2, 3))) == "cupy"
    # An explicit CPU backend is never overridden by the input type.
    assert PerturbedOptimizer(Ranking(), backend="numpy")._resolve_backend(FakeCupyArray()) == "numpy"


def test_import_is_lazy():
    code = "import sk_perturbed, sk_perturbed.perturbed, sys; assert 'cupy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------ array solvers (xp=numpy)
@pytest.mark.parametrize("ties", [False, True])
def test_array_solvers_equal_numba_solvers(ties):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 9))
    if ties:
        x = np.round(x)
    np.testing.assert_array_equal(cb.argmax_xp(np, x), Argmax()(x))
    np.testing.assert_array_equal(cb.ranking_xp(np, x), Ranking()(x))
    for k in (1, 4, 9):
        np.testing.assert_array_equal(cb.topk_xp(np, x, k), TopK(k=k)(x))


@pytest.mark.parametrize("grid", [(2, 2), (1, 5), (5, 1), (4, 6), (12, 12)])
@pytest.mark.parametrize("ties", [False, True])
def test_array_dag_shortest_path_equals_numba(grid, ties):
    solver = DAGShortestPath(grid=grid)
    rng = np.random.default_rng(1)
    costs = rng.normal(size=(200, solver.dimension()))
    if ties:
        costs = np.round(costs)
    np.testing.assert_array_equal(cb.dag_shortest_path_xp(np, costs, *grid), solver(costs))


# ------------------------------------------ CUDA device code on the CPU
@pytest.mark.parametrize("noise", ["gaussian", "gumbel"])
@pytest.mark.parametrize("antithetic", [False, True])
def test_cuda_noise_source_matches_keyed_cpu_noise(fake_gpu, noise, antithetic):
    # The real cupy_device() on the fake: its RawModule, argument builder and
    # launch geometry (5 x 13 problems in one block of 128: the bounds guard runs).
    cp = fake_gpu
    keys = np.array([0, 5, 2**40, 7, 123456789], dtype=np.int64)
    m, d, seed = 13, 301, 0xDEADBEEF12345
    out = cb.cupy_device().sample_noise(seed, cp.asarray(keys), m, d, noise, antithetic)
    # Same 64-bit stream, same ziggurat; the host libm serves both here.
    np.testing.assert_array_equal(cp.asnumpy(out), sample_noise(seed, keys, m, d, noise, antithetic))


@pytest.mark.parametrize("grid", [(2, 2), (1, 4), (4, 1), (5, 5), (12, 12)])
@pytest.mark.parametrize("ties", [False, True])
def test_cuda_dag_source_matches_numba_solver(fake_gpu, grid, ties):
    cp = fake_gpu
    solver = DAGShortestPath(grid=grid)
    x = np.random.default_rng(2).normal(size=(50, solver.dimension()))
    if ties:
        x = np.round(x)
    out = cb.cupy_device().dag_solve(cp.asarray(x), *grid)
    np.testing.assert_array_equal(cp.asnumpy(out), solver(x))


def test_ziggurat_tables_follow_the_current_cuda_device(fake_gpu):
    # A kernel given memory of another device faults on a real GPU (the fake
    # raises): the tables must be those of the device the call runs on.
    cp = fake_gpu
    keys = np.arange(4)
    expected = sample_noise(5, keys, 3, 7, "gaussian", False)
    device = cb.cupy_device()
    for device_id in (0, 1, 0):
        with cp.cuda.Device(device_id):
            z = device.sample_noise(5, cp.asarray(keys), 3, 7, "gaussian", False)
            assert z.device.id == device_id
            np.testing.assert_array_equal(cp.asnumpy(z), expected)
    theta = np.random.default_rng(0).normal(size=(6, 5))
    po = PerturbedOptimizer(Ranking(), n_samples=4, random_state=0)
    with cp.cuda.Device(1):
        got = po.estimate(cp.asarray(theta), cp.asarray(theta))
    ref = PerturbedOptimizer(Ranking(), n_samples=4, random_state=0, backend="numpy")
    for a, b in zip(got, ref.estimate(theta, theta)):
        assert a.device.id == 1
        np.testing.assert_allclose(cp.asnumpy(a), b, rtol=1e-12, atol=1e-12)


# -------------------------------------- the CUDA source through NVRTC
@pytest.fixture(scope="module")
def nvrtc():
    """NVIDIA's runtime CUDA compiler (the one CuPy compiles RawModule with).

    It runs without a GPU; the test extra installs it on Linux x86-64
    (``nvidia-cuda-nvrtc``), elsewhere these tests skip unless a CUDA
    toolkit's ``libnvrtc`` is on the library path.
    """
    candidates = []
    try:
        import nvidia

        for root in nvidia.__path__:
            candidates += sorted(Path(root).glob("*/lib/libnvrtc.so*"))
    except ImportError:
        pass
    candidates = [c for c in candidates if "builtins" not in c.name and ".alt." not in c.name]
    candidates.append(ctypes.util.find_library("nvrtc"))
    for path in candidates:
        if path is None:
            continue
        try:
            return ctypes.CDLL(str(path))
        except OSError:
            continue
    pytest.skip("NVRTC is not installed (pip install nvidia-cuda-nvrtc)")


def _nvrtc_ptx(lib, source, options):
    """PTX of ``source``; fails with NVRTC's log when it does not compile."""
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(
        ctypes.byref(prog), source.encode(), b"sk_perturbed.cu", 0, None, None
    ) == 0
    try:
        encoded = [o.encode() for o in options]
        status = lib.nvrtcCompileProgram(
            prog, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded)
        )
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        assert status == 0, f"NVRTC failed ({options}):\n{log.value.decode()}"
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        assert lib.nvrtcGetPTX(prog, ptx) == 0
        return ptx.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _ptx_parameters(ptx):
    """``{kernel name: [PTX type of each parameter]}`` of the visible entries."""
    entries = re.findall(r"\.visible \.entry (\w+)\((.*?)\)", ptx, flags=re.S)
    return {name: re.findall(r"\.param \.(\w+)", params) for name, params in entries}


def _ptx_type_fits(arg, ptx_type):
    """Whether CuPy's encoding of ``arg`` has the width and kind of the PTX parameter."""
    if isinstance(arg, np.ndarray):
        return ptx_type in ("u64", "b64")  # a device pointer
    kind = "f" if isinstance(arg, np.floating) else "int"
    width = np.dtype(type(arg)).itemsize * 8
    if kind == "f":
        return ptx_type == f"f{width}"
    return ptx_type in (f"u{width}", f"s{width}", f"b{width}")


@pytest.mark.parametrize("arch", ["compute_75", "compute_90"])
def test_cuda_source_compiles_with_nvrtc_and_arguments_match(nvrtc, arch):
    options = [f"--gpu-architecture={arch}", *cb.NVRTC_OPTIONS]
    ptx = _nvrtc_ptx(nvrtc, cb.DEVICE_SOURCE + cb.KERNEL_SOURCE, options)
    params = _ptx_parameters(ptx)
    assert set(params) == {"skp_noise_kernel", "skp_dag_kernel"}  # the names cupy_device gets
    a = np.zeros((3, 4))
    calls = {
        "skp_noise_kernel": cb.noise_kernel_args(
            np.zeros(3, np.int64), 2, 4, 2**64 - 1, "gaussian", True, a, a, a
        ),
        "skp_dag_kernel": cb.dag_kernel_args(a, 2, 2, a, a),
    }
    for name, args in calls.items():
        assert len(args) == len(params[name]), name
        for i, (arg, ptx_type) in enumerate(zip(args, params[name])):
            assert _ptx_type_fits(arg, ptx_type), (name, i, type(arg), ptx_type)


# ------------------------------------- the whole path on a NumPy device
CASES = [
    (Argmax(), {}),
    (Argmax(), {"noise": "gumbel"}),
    (TopK(k=2), {"antithetic": True}),
    (Ranking(), {}),
    (Ranking(), {"control_variate": False}),
    (Ranking(), {"perturbation": "multiplicative"}),
    (DAGShortestPath(grid=(3, 4)), {}),
    (DAGShortestPath(grid=(3, 4)), {"perturbation": "multiplicative"}),
]


@pytest.mark.parametrize("solver, params", CASES)
def test_cupy_path_on_numpy_device_matches_numpy_backend(numpy_device, solver, params):
    rng = np.random.default_rng(3)
    d = solver.dimension() or 6
    theta = rng.uniform(0.5, 2.0, size=(11, d))
    v = rng.normal(size=theta.shape)
    keys = rng.integers(0, 1000, size=11)
    kwargs = dict(epsilon=0.7, n_samples=8, random_state=4, **params)
    ref = PerturbedOptimizer(solver, backend="numpy", **kwargs).estimate(theta, v, row_keys=keys)
    got = PerturbedOptimizer(solver, backend="cupy", **kwargs).estimate(theta, v, row_keys=keys)
    for name in OUTPUTS:
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-12, atol=1e-12)
    assert PerturbedOptimizer(solver, backend="cupy", **kwargs).estimate(theta).vjp is None


def test_chunks_give_the_same_rows(numpy_device):
    rng = np.random.default_rng(4)
    theta, v = rng.normal(size=(2, 23, 5))
    spec = EstimationSpec(Ranking(), n_samples=6, epsilon=1.0, noise="gaussian",
                          multiplicative=False, antithetic=False, control_variate=True)
    args = (theta, np.arange(23), 9, v)
    whole = cb.estimate_on(cb.numpy_device(), spec, *args)
    parts = cb.estimate_on(cb.numpy_device(), spec, *args, max_elements=70)
    for a, b in zip(whole, parts):
        np.testing.assert_array_equal(a, b)


def test_solver_without_gpu_form_falls_back_to_cpu_and_warns_once(numpy_device):
    solver = GridShortestPath(shape=(3, 3))
    theta = np.random.default_rng(5).uniform(1, 2, size=(4, 9))
    kwargs = dict(n_samples=5, random_state=0, perturbation="multiplicative")
    ref = PerturbedOptimizer(solver, backend="numpy", **kwargs)(theta)
    with pytest.warns(UserWarning, match="GridShortestPath has no GPU form"):
        got = PerturbedOptimizer(solver, backend="cupy", **kwargs)(theta)
    np.testing.assert_array_equal(got, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PerturbedOptimizer(solver, backend="cupy", **kwargs)(theta)
    with pytest.warns(UserWarning, match="Assignment has no GPU form"):
        PerturbedOptimizer(Assignment(n=2), backend="cupy", n_samples=2, random_state=0)(
            np.ones((1, 4))
        )


def test_cupy_path_validates_like_the_cpu_backends(numpy_device):
    po = PerturbedOptimizer(Ranking(), backend="cupy", n_samples=3, random_state=0)
    with pytest.raises(ValueError, match="NaN"):
        po(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="shape of theta"):
        po.vjp(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="row_keys"):
        po(np.ones((2, 3)), row_keys=[0])
    with pytest.raises(ValueError, match="expects θ with 10 columns"):
        PerturbedOptimizer(DAGShortestPath(grid=(2, 4)), backend="cupy")(np.ones((1, 3)))
    mult = PerturbedOptimizer(Ranking(), backend="cupy", perturbation="multiplicative")
    with pytest.raises(ValueError, match="theta == 0"):
        mult.vjp(np.array([[0.0, 1.0]]), np.ones((1, 2)))


def test_float32_and_reproducibility_on_numpy_device(numpy_device):
    theta = np.random.default_rng(6).normal(size=(5, 4)).astype(np.float32)
    po = PerturbedOptimizer(Ranking(), backend="cupy", n_samples=4, random_state=1)
    est = po.estimate(theta, theta)
    assert all(getattr(est, k).dtype == np.float32 for k in OUTPUTS)
    np.testing.assert_array_equal(po(theta), po(theta))
    loss, grad = fenchel_young_loss(theta, Ranking()(theta), po)
    assert loss.shape == (5,) and grad.shape == (5, 4)


@pytest.mark.parametrize("loss", ["fenchel_young", "perturbed_squared"])
def test_estimators_with_cupy_backend_on_numpy_device(numpy_device, loss):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 3))
    Y = X @ rng.normal(size=(3, 4))
    kwargs = dict(loss=loss, max_iter=3, n_samples=4, random_state=0, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = PerturbedRankingRegressor(backend="numpy", **kwargs).fit(X, Y)
        got = PerturbedRankingRegressor(backend="cupy", **kwargs).fit(X, Y)
    for a, b in zip(ref.coefs_ + ref.intercepts_, got.coefs_ + got.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.predict_marginals(X), ref.predict_marginals(X), atol=1e-12)


def test_classifier_with_cupy_backend_on_numpy_device(numpy_device):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = PerturbedStructuredClassifier(backend="cupy", max_iter=5, random_state=0).fit(X, y)
    assert clf.predict(X).shape == (60,)


# ------------------------------------------- training on the device
def _assert_host_state(est):
    """Fitted attributes and optimizer state are plain NumPy, shared as on the CPU path."""
    params = est.coefs_ + est.intercepts_
    assert all(type(p) is np.ndarray for p in params)
    assert all(a is b for a, b in zip(est._optimizer.params, params))
    for name in est._optimizer._state_arrays:
        assert all(type(a) is np.ndarray for a in getattr(est._optimizer, name))


def _assert_same_fit(got, ref, rtol=1e-9, atol=1e-12):
    for a, b in zip(got.coefs_ + got.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    np.testing.assert_allclose(got.loss_curve_, ref.loss_curve_, rtol=rtol)


TRAINING_CASES = [
    (PerturbedRankingRegressor, dict(loss="fenchel_young")),
    (PerturbedRankingRegressor, dict(loss="perturbed_squared", activation="tanh")),
    (PerturbedRankingRegressor, dict(loss="squared", optimizer="sgd")),
    (PerturbedRankingRegressor, dict(loss="blackbox", activation="logistic", model="linear")),
    (PerturbedRankingRegressor, dict(early_stopping=True, validation_fraction=0.25)),
    (PerturbedStructuredClassifier, dict(noise="gumbel")),
    (PerturbedStructuredClassifier, dict(solver=TopK(k=2), perturbation="multiplicative")),
]


def _training_problem(Estimator, params):
    """Data and estimator parameters of one of TRAINING_CASES."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(60, 4))
    scores = X @ rng.normal(size=(4, 5))
    if Estimator is PerturbedRankingRegressor:
        y = scores
    else:
        y = TopK(k=2)(scores) if "solver" in params else np.argmax(scores, axis=1)
    kwargs = dict(max_iter=4, n_samples=4, random_state=0, tol=0.0, hidden_layer_sizes=(7,),
                  batch_size=16, **params)
    return X, y, kwargs


@pytest.mark.parametrize("Estimator, params", TRAINING_CASES,
                         ids=[f"{E.__name__}-{sorted(p)}" for E, p in TRAINING_CASES])
def test_training_on_the_device_matches_the_host(fake_gpu, Estimator, params):
    cp = fake_gpu
    X, y, kwargs = _training_problem(Estimator, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = Estimator(backend="numpy", **kwargs).fit(X, y)
        got = Estimator(backend="auto", **kwargs).fit(cp.asarray(X), cp.asarray(y))
    _assert_host_state(got)
    _assert_same_fit(got, ref)
    np.testing.assert_array_equal(got.predict(cp.asarray(X)), ref.predict(X))
    if params.get("early_stopping"):
        assert got.validation_scores_ == ref.validation_scores_


def test_device_training_with_dag_paths_and_sample_weights(fake_gpu):
    # Softplus output link (positive costs), per-sample weights, float32 model.
    from sk_perturbed.datasets import make_shortest_path

    X, _, paths = make_shortest_path(50, n_features=3, grid=(3, 3), random_state=0)
    X = X.astype(np.float32)
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=50)
    kwargs = dict(solver=DAGShortestPath(grid=(3, 3)), max_iter=3, n_samples=3,
                  random_state=0, tol=0.0, batch_size=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = PerturbedStructuredClassifier(backend="numpy", **kwargs).fit(X, paths, w)
        got = PerturbedStructuredClassifier(backend="cupy", **kwargs).fit(X, paths, w)
    assert got.coefs_[0].dtype == np.float32
    _assert_host_state(got)
    # The CPU path rounds the Monte Carlo estimates to float32, the device path later.
    _assert_same_fit(got, ref, rtol=1e-4, atol=1e-6)


def test_partial_fit_and_warm_start_on_the_device(fake_gpu):
    rng = np.random.default_rng(12)
    X = rng.normal(size=(40, 3))
    Y = X @ rng.normal(size=(3, 4))
    kwargs = dict(n_samples=3, random_state=0, hidden_layer_sizes=(5,), batch_size=8)
    ests = {}
    for backend in ("numpy", "cupy"):
        est = PerturbedRankingRegressor(backend=backend, **kwargs)
        for _ in range(3):
            est.partial_fit(X, Y)
        est.set_params(warm_start=True, max_iter=2, tol=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, Y)
        ests[backend] = est
    _assert_host_state(ests["cupy"])
    _assert_same_fit(ests["cupy"], ests["numpy"])
    assert ests["cupy"]._optimizer.t == ests["numpy"]._optimizer.t == 5 * 5


def test_fitted_on_the_device_pickles_to_numpy_and_predicts_anywhere(fake_gpu):
    import pickle

    rng = np.random.default_rng(13)
    X = rng.normal(size=(30, 3))
    Y = X @ rng.normal(size=(3, 4))
    est = PerturbedRankingRegressor(backend="cupy", max_iter=2, n_samples=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, Y)
    clone = pickle.loads(pickle.dumps(est))
    _assert_host_state(clone)
    np.testing.assert_array_equal(clone.predict(X), est.predict(X))
    np.testing.assert_array_equal(clone.predict_scores(X), est.predict_scores(X))


def _device_arrays_in(est):
    """Attributes of the estimator and of its optimizer that hold device arrays."""
    owners = [("", est)]
    if getattr(est, "_optimizer", None) is not None:
        owners.append(("_optimizer.", est._optimizer))
    found = []
    for prefix, owner in owners:
        for name, value in vars(owner).items():
            values = value if isinstance(value, (list, tuple)) else [value]
            if any(isinstance(v, _fake_cupy.ndarray) for v in values):
                found.append(prefix + name)
    return found


def test_divergence_on_the_device_raises_and_leaves_host_arrays(fake_gpu):
    rng = np.random.default_rng(14)
    X = rng.normal(size=(30, 3))
    Y = rng.normal(size=(30, 4))
    est = PerturbedRankingRegressor(backend="cupy", optimizer="sgd", learning_rate_init=1e6,
                                    momentum=0.99, max_iter=50, n_samples=2, random_state=0)
    with pytest.raises(ValueError, match="diverged"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X * 1e150, Y)
    assert not hasattr(est, "coefs_") and _device_arrays_in(est) == []  # unfitted, as before
    # A continued fit that diverges leaves the previous model, on the host.
    est.set_params(learning_rate_init=1e-3, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, Y)
    coefs = [W.copy() for W in est.coefs_]
    est.set_params(warm_start=True, learning_rate_init=1e300)
    with pytest.raises(ValueError, match="diverged"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, Y)
    _assert_host_state(est)
    assert _device_arrays_in(est) == []
    for W, W0 in zip(est.coefs_, coefs):
        np.testing.assert_array_equal(W, W0)


def test_cupy_input_with_a_cpu_backend_is_refused_by_name(monkeypatch):
    fake = FakeCupyArray()
    with pytest.raises(ValueError, match="X is a CuPy array but backend='numba'"):
        PerturbedRankingRegressor(backend="numba").fit(fake, np.ones((2, 3)))


def test_device_losses_match_the_host_losses(fake_gpu):
    # Each loss's device formula against its CPU path on the same batch.
    from sk_perturbed._loss import LOSSES

    rng = np.random.default_rng(15)
    theta = rng.normal(size=(9, 5))
    y = Ranking()(rng.normal(size=(9, 5)))
    keys = np.arange(9)
    device = cb.get_device()
    for name, solver, params in [
        ("fenchel_young", Ranking(), {}),
        ("fenchel_young", Argmax(), {"noise": "gumbel"}),
        ("perturbed_squared", Ranking(), {}),
        ("squared", Ranking(), {}),
        ("blackbox", Ranking(), {}),
    ]:
        po = PerturbedOptimizer(solver, n_samples=6, backend="numpy", **params)
        target = np.eye(5)[np.argmax(y, axis=1)] if isinstance(solver, Argmax) else y
        host = LOSSES[name](po).loss_gradient(theta, target, keys, 3)
        on_device = LOSSES[name](po, device=device).loss_gradient(
            device.to_device(theta), device.to_device(target), keys, 3
        )
        for a, b in zip(on_device, host):
            assert device.is_device_array(a)  # the device path stays on the device
            np.testing.assert_allclose(device.to_host(a), b, rtol=1e-12, atol=1e-12, err_msg=name)


#: (loss, solver, optimizer parameters) of the public losses' device tests.
PUBLIC_LOSSES = [
    ("fenchel_young", Ranking(), {}),
    ("fenchel_young", Argmax(), {"noise": "gumbel"}),  # the closed form
    ("fenchel_young", DAGShortestPath(grid=(2, 3)), {}),  # a minimizing solver
    ("perturbed_squared", Ranking(), {}),
    ("squared", Ranking(), {}),
    ("blackbox", Ranking(), {}),
    ("blackbox", DAGShortestPath(grid=(2, 3)), {}),
]


def _public_loss(name, theta, y, po):
    if name == "squared":
        return squared_loss(theta, y)
    if name == "blackbox":
        return blackbox_loss(theta, y, po.solver)
    loss = fenchel_young_loss if name == "fenchel_young" else perturbed_squared_loss
    return loss(theta, y, po, row_keys=np.arange(theta.shape[0]) + 3, seed=7)


@pytest.mark.parametrize("y_on_device", [True, False], ids=["cupy-y", "numpy-y"])
@pytest.mark.parametrize("name, solver, params", PUBLIC_LOSSES,
                         ids=[f"{n}-{type(s).__name__}" for n, s, _ in PUBLIC_LOSSES])
def test_public_losses_compute_on_the_device(fake_gpu, name, solver, params, y_on_device):
    cp = fake_gpu
    rng = np.random.default_rng(16)
    d = solver.dimension() or 5
    theta = rng.normal(size=(7, d))
    y = solver(rng.normal(size=(7, d)))
    kwargs = dict(n_samples=5, random_state=1, **params)
    host = _public_loss(name, theta, y, PerturbedOptimizer(solver, backend="numpy", **kwargs))
    got = _public_loss(name, cp.asarray(theta), cp.asarray(y) if y_on_device else y,
                       PerturbedOptimizer(solver, **kwargs))
    for a, b in zip(got, host):
        assert isinstance(a, cp.ndarray) and a.dtype == np.float64
        np.testing.assert_allclose(cp.asnumpy(a), b, rtol=1e-12, atol=1e-12)


def test_public_losses_validate_on_the_device(fake_gpu):
    cp = fake_gpu
    po = PerturbedOptimizer(Ranking(), n_samples=3, random_state=0)
    theta = np.random.default_rng(17).normal(size=(4, 3))
    y = Ranking()(theta)
    with pytest.raises(ValueError, match="Input theta contains NaN"):
        fenchel_young_loss(cp.asarray(np.where(theta > 1, np.nan, theta)), y, po)
    with pytest.raises(ValueError, match=r"y must have the shape of theta \(4, 3\)"):
        perturbed_squared_loss(cp.asarray(theta), cp.asarray(y[:, :2]), po)
    with pytest.raises(ValueError, match="Input y contains NaN"):
        squared_loss(cp.asarray(theta), np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="expects θ with 4 columns"):
        blackbox_loss(cp.asarray(theta), cp.asarray(y), DAGShortestPath(grid=(2, 2)))
    # A float32 θ: float64 losses, as on the CPU.
    loss, grad = fenchel_young_loss(cp.asarray(theta, dtype=np.float32), cp.asarray(y), po)
    assert loss.dtype == grad.dtype == np.float64


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_cupy_inputs_to_a_cpu_backend_are_refused_by_name(fake_cupy, backend):
    cp = fake_cupy
    theta = np.ones((2, 3))
    po = PerturbedOptimizer(Ranking(), backend=backend, n_samples=2, random_state=0)
    refused = f"is a CuPy array but backend='{backend}' runs on the CPU"
    with pytest.raises(ValueError, match=f"theta {refused}"):
        po(cp.asarray(theta))
    with pytest.raises(ValueError, match=f"v {refused}"):
        po.vjp(theta, cp.asarray(theta))
    with pytest.raises(ValueError, match=f"row_keys {refused}"):
        po(theta, row_keys=cp.asarray(np.arange(2)))
    for loss in (fenchel_young_loss, perturbed_squared_loss):
        with pytest.raises(ValueError, match=f"theta {refused}"):
            loss(cp.asarray(theta), theta, po)


def test_cupy_inputs_where_the_call_runs_on_the_cpu_are_refused(fake_cupy):
    cp = fake_cupy
    theta = np.ones((2, 3))
    with pytest.raises(ValueError, match="v is a CuPy array but backend='auto' with a NumPy theta"):
        PerturbedOptimizer(Ranking(), n_samples=2).vjp(theta, cp.asarray(theta))
    for noise in ("gaussian", "gumbel"):
        with pytest.raises(ValueError, match="theta is a CuPy array but exact_marginals runs"):
            exact_marginals(PerturbedOptimizer(Argmax(), noise=noise), cp.asarray(theta))


@pytest.mark.parametrize("on_device", [True, False], ids=["cupy-theta", "numpy-theta"])
def test_non_finite_gpu_estimates_raise_the_cpu_error(fake_gpu, on_device):
    cp = fake_gpu
    theta = np.array([[1.0, 2.0, 3.0], [1e308, -1e308, 0.0]])
    kwargs = dict(epsilon=1e10, n_samples=4, random_state=0)
    with pytest.raises(ValueError) as cpu:
        PerturbedOptimizer(Ranking(), backend="numba", **kwargs)(theta)
    assert "row 1 (row key 1) overflow float64" in str(cpu.value)
    backend = "auto" if on_device else "cupy"
    with pytest.raises(ValueError) as gpu:
        PerturbedOptimizer(Ranking(), backend=backend, **kwargs)(
            cp.asarray(theta) if on_device else theta
        )
    assert str(gpu.value) == str(cpu.value)


def test_gpu_estimates_wait_for_the_device_once_per_public_call(fake_gpu):
    cp = fake_gpu
    theta = cp.asarray(np.random.default_rng(18).normal(size=(5, 4)))
    po = PerturbedOptimizer(Ranking(), n_samples=3, random_state=0)
    po(theta)  # compiles the kernels
    cp.reset()
    po(theta)
    assert cp.SYNCS == 2  # the finiteness of θ, then that of the estimates
    cp.reset()
    cb.estimate_with(cb.get_device(), EstimationSpec.of(po), theta, np.arange(5), 3, v=theta)
    assert cp.SYNCS == 0  # the training loop checks once per epoch instead


def test_device_memory_of_one_chunk_fits_small_gpus():
    # The peak of one chunk, measured with xp = numpy, in units of one
    # (rows, M, d) float64 temporary; the worst case: Ranking's argsort,
    # a multiplicative perturbation and a VJP (see cb.MAX_ELEMENTS).
    max_elements, m, d = 1 << 16, 64, 16
    n = 3 * (max_elements // (m * d))
    rng = np.random.default_rng(19)
    theta, v = rng.uniform(0.5, 2.0, size=(2, n, d))
    spec = EstimationSpec(Ranking(), n_samples=m, epsilon=0.5, noise="gaussian",
                          multiplicative=True, antithetic=False, control_variate=True)

    def run():
        cb.estimate_on(cb.numpy_device(), spec, theta, np.arange(n), 1, v,
                       max_elements=max_elements)

    run()  # loads the numba noise kernel, whose allocations are not the chunk's
    tracemalloc.start()
    try:
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    per_temporary = peak / (max_elements * 8)
    assert per_temporary <= 7.5
    # With CuPy's sort buffers on top, the default stays well within 4-8 GB cards.
    assert per_temporary * cb.MAX_ELEMENTS * 8 <= 2**30


def test_gpu_extra_brings_nvrtc_and_cublas():
    # cupy-cuda12x alone finds neither on a driver-only machine; its [ctk]
    # extra, from CuPy 14 on, installs them from NVIDIA's wheels.
    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement

    root = Path(__file__).parents[1]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    (cupy,) = [Requirement(r) for r in pyproject["project"]["optional-dependencies"]["gpu"]]
    assert cupy.name == "cupy-cuda12x" and "ctk" in cupy.extras
    assert not cupy.specifier.contains("13.6.0")  # no ctk extra before 14.0
    for doc in ("docs/install.rst", "docs/user_guide/performance.rst"):
        assert "cupy-cuda12x[ctk]" in (root / doc).read_text(), doc


def test_parity_rule_sees_what_the_monte_carlo_bound_hid():
    gpu_check = _load_gpu_check()
    rng = np.random.default_rng(20)
    theta = rng.uniform(0.5, 2.0, size=(16, 6))
    v = rng.normal(size=theta.shape)
    kwargs = dict(epsilon=0.7, n_samples=200, backend="numba")
    cpu = PerturbedOptimizer(Ranking(), random_state=3, **kwargs).estimate(theta, v)
    other = PerturbedOptimizer(Ranking(), random_state=4, **kwargs).estimate(theta, v)
    assert gpu_check.estimate_parity(cpu, cpu, other)[0]
    # A keying bug (each row reads its neighbour's noise) stays within the
    # Monte Carlo error that the old check allowed, but not within rounding.
    po = PerturbedOptimizer(Ranking(), random_state=3, **kwargs)
    shifted = po.estimate(theta, v, row_keys=np.roll(np.arange(16), 1))
    assert np.abs(shifted.y_eps - cpu.y_eps).max() <= 5 * np.std(other.y_eps - cpu.y_eps)
    assert not gpu_check.estimate_parity(shifted, cpu, other)[0]
    # One row off by Monte Carlo error (a ziggurat test flipped on the GPU)
    # is allowed; two are not.
    for rows, ok in (([5], True), ([5, 9], False)):
        flipped = [a.copy() for a in cpu]
        for a, b in zip(flipped, shifted):
            a[rows] = b[rows]
        assert gpu_check.estimate_parity(type(cpu)(*flipped), cpu, other)[0] == ok


# ---------------------------------------------------------- on a GPU
def _gpu():
    cp = pytest.importorskip("cupy")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("CuPy is installed but no GPU is visible")
    except Exception as exc:  # noqa: BLE001 - no driver/runtime
        pytest.skip(f"CuPy cannot reach a GPU: {exc}")
    return cp


@pytest.mark.parametrize(
    "solver", [Argmax(), TopK(k=3), Ranking(), DAGShortestPath(grid=(5, 5))],
    ids=["argmax", "topk", "ranking", "dag"],
)
@pytest.mark.parametrize("ties", [False, True])
def test_gpu_solvers_equal_numba_solvers(solver, ties):
    cp = _gpu()
    x = np.random.default_rng(9).normal(size=(500, solver.dimension() or 10))
    if ties:
        x = np.round(x)
    solve, on_gpu = cb.gpu_solver(cb.cupy_device(), solver)
    assert on_gpu
    np.testing.assert_array_equal(cp.asnumpy(solve(cp.asarray(x))), solver(x))


@pytest.mark.parametrize("noise", ["gaussian", "gumbel"])
@pytest.mark.parametrize("antithetic", [False, True])
def test_gpu_noise_matches_cpu_stream(noise, antithetic):
    cp = _gpu()
    keys = np.array([0, 3, 2**40, 17], dtype=np.int64)
    got = cp.asnumpy(cb.cupy_device().sample_noise(11, cp.asarray(keys), 50, 100, noise, antithetic))
    expected = sample_noise(11, keys, 50, 100, noise, antithetic)
    # CUDA's log/exp may differ from the host libm in the last ulp.
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("solver, params", CASES)
def test_gpu_estimates_match_numba(solver, params):
    cp = _gpu()
    rng = np.random.default_rng(10)
    d = solver.dimension() or 6
    theta = rng.uniform(0.5, 2.0, size=(16, d))
    v = rng.normal(size=theta.shape)
    kwargs = dict(epsilon=0.7, n_samples=400, random_state=4, **params)
    cpu = PerturbedOptimizer(solver, backend="numba", **kwargs).estimate(theta, v)
    gpu = PerturbedOptimizer(solver, **kwargs).estimate(cp.asarray(theta), cp.asarray(v))
    assert isinstance(gpu.y_eps, cp.ndarray)
    # A different seed on the CPU: the Monte Carlo scale of the fallback.
    other = PerturbedOptimizer(solver, backend="numba", **{**kwargs, "random_state": 5})
    gpu_check = _load_gpu_check()
    ok, worst, rows = gpu_check.estimate_parity(
        gpu_check.on_host(cp, gpu), cpu, other.estimate(theta, v)
    )
    assert ok, f"max relative |gpu - cpu| {worst:.2e}, rows beyond rounding {rows}"


def test_gpu_numpy_input_gives_numpy_output():
    _gpu()
    theta = np.random.default_rng(11).normal(size=(4, 5)).astype(np.float32)
    est = PerturbedOptimizer(Ranking(), backend="cupy", n_samples=10, random_state=0).estimate(theta)
    assert isinstance(est.y_eps, np.ndarray) and est.y_eps.dtype == np.float32


@pytest.mark.parametrize("Estimator, params", TRAINING_CASES,
                         ids=[f"{E.__name__}-{sorted(p)}" for E, p in TRAINING_CASES])
def test_gpu_training_matches_the_cpu_fit(Estimator, params):
    # Same keyed noise on both sides: the GPU fit is the CPU fit up to rounding.
    import pickle

    cp = _gpu()
    X, y, kwargs = _training_problem(Estimator, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = Estimator(backend="numpy", **kwargs).fit(X, y)
        gpu = Estimator(backend="auto", **kwargs).fit(cp.asarray(X), cp.asarray(y))
    _assert_host_state(gpu)
    _assert_same_fit(gpu, cpu, rtol=1e-6, atol=1e-9)
    clone = pickle.loads(pickle.dumps(gpu))
    np.testing.assert_array_equal(clone.predict(cp.asarray(X)), cpu.predict(X))


# benchmarks/gpu_check.py runs only where a GPU is lent: its checks are
# dry-run here on the fake CuPy, so that a GPU session does not spend its
# time on a bug in the script.
def test_gpu_check_parity_section_runs_on_a_stand_in(fake_gpu):
    lines = []
    failures = _load_gpu_check().check_parity(fake_gpu, lines.append)
    assert failures == 0, lines
    estimates = [line for line in lines if line.startswith("estimate ")]
    assert len(estimates) == 5 and all(line.endswith("OK") for line in estimates), estimates


def test_gpu_check_training_section_runs_on_a_stand_in(fake_gpu):
    lines = []
    failures = _load_gpu_check().check_training(
        fake_gpu, lines.append, n_headline=2000, ms_headline=(2,)
    )
    assert failures == 0, lines
    assert sum(line.endswith("OK") for line in lines) == 5
    assert any(line.startswith("epoch ranking MLP(128,) n=2000") for line in lines)
