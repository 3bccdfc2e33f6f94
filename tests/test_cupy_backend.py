"""The optional CuPy backend.

Without CuPy (CPU CI) these tests check the backend selection, the error
message, and run the backend's array code with ``xp = numpy`` (a "NumPy
device") against the NumPy/numba backends. The CUDA kernels' device code is
plain C: it is compiled with the host C++ compiler and checked against the
numba noise and solvers, and the whole CUDA source is compiled with NVRTC
(no GPU needed) to check it builds and that the kernels' parameters match the
arguments the backend passes. Tests that need a GPU are skipped unless CuPy and a
device are present.
"""

import ctypes
import ctypes.util
import re
import shutil
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

from sk_perturbed import PerturbedRankingRegressor, PerturbedStructuredClassifier
from sk_perturbed import _cupy_backend as cb
from sk_perturbed import perturbed
from sk_perturbed._noise import _ZIG_F, _ZIG_X, sample_noise
from sk_perturbed.perturbed import PerturbedOptimizer, fenchel_young_loss
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
    monkeypatch.setattr(perturbed, "_require_cupy", lambda: None)
    monkeypatch.setattr(cb, "_WARNED", set())


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
@pytest.fixture(scope="module")
def cuda_source_on_cpu(tmp_path_factory):
    """The kernels' source compiled as C++ with one CPU thread per GPU thread."""
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler to compile the CUDA device code on the CPU")
    shim = r"""
#include <math.h>
#define __device__ static inline
#define __global__
struct skp_dim3 { long long x; };
static skp_dim3 blockIdx = {0}, blockDim = {1}, threadIdx = {0};
"""
    driver = r"""
extern "C" void cpu_noise(long long threads, const long long* keys, long long n, long long m,
        long long d, u64 seed, int noise_id, int antithetic, const double* zx,
        const double* zf, double r, double* out) {
    for (long long t = 0; t < threads; t++) {
        blockIdx.x = t;
        skp_noise_kernel(keys, n, m, d, seed, noise_id, antithetic, zx, zf, r, out);
    }
}
extern "C" void cpu_dag(long long threads, const double* x, long long p, long long rows,
        long long cols, long long d, double* dist, double* out) {
    for (long long t = 0; t < threads; t++) {
        blockIdx.x = t;
        skp_dag_kernel(x, p, rows, cols, d, dist, out);
    }
}
"""
    folder = tmp_path_factory.mktemp("cuda_on_cpu")
    src = folder / "kernels.cpp"
    src.write_text(shim + cb.DEVICE_SOURCE + cb.KERNEL_SOURCE + driver)
    lib = folder / "kernels.so"
    subprocess.run(
        [cxx, "-O2", "-ffp-contract=off", "-shared", "-fPIC", str(src), "-o", str(lib)],
        check=True,
    )
    return ctypes.CDLL(str(lib))


#: The C type of each NumPy scalar type the kernels' argument builders use.
_C_SCALARS = {
    np.int32: ctypes.c_int, np.int64: ctypes.c_longlong, np.uint64: ctypes.c_ulonglong,
    np.float64: ctypes.c_double,
}


def _c_arg(a):
    """A kernel argument as CuPy would pass it: arrays by pointer, scalars by their width."""
    if isinstance(a, np.ndarray):
        return a.ctypes.data_as(ctypes.c_void_p)
    return _C_SCALARS[type(a)](a.item())


@pytest.mark.parametrize("noise", ["gaussian", "gumbel"])
@pytest.mark.parametrize("antithetic", [False, True])
def test_cuda_noise_source_matches_keyed_cpu_noise(cuda_source_on_cpu, noise, antithetic):
    keys = np.array([0, 5, 2**40, 7, 123456789], dtype=np.int64)
    n, m, d, seed = keys.shape[0], 13, 301, 0xDEADBEEF12345
    out = np.full((n, m, d), np.nan)
    zx, zf = np.ascontiguousarray(_ZIG_X), np.ascontiguousarray(_ZIG_F)
    lib = cuda_source_on_cpu
    # One extra "thread" checks the kernel's bounds guard.
    args = cb.noise_kernel_args(keys, m, d, seed, noise, antithetic, zx, zf, out)
    lib.cpu_noise(ctypes.c_longlong(n * m + 1), *map(_c_arg, args))
    expected = sample_noise(seed, keys, m, d, noise, antithetic)
    # Same 64-bit stream, same ziggurat; the host libm serves both here.
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("grid", [(2, 2), (1, 4), (4, 1), (5, 5), (12, 12)])
@pytest.mark.parametrize("ties", [False, True])
def test_cuda_dag_source_matches_numba_solver(cuda_source_on_cpu, grid, ties):
    solver = DAGShortestPath(grid=grid)
    rows, cols = grid
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, solver.dimension()))
    if ties:
        x = np.round(x)
    p, d = x.shape
    out = np.full_like(x, np.nan)
    dist = np.empty((p, rows * cols))
    args = cb.dag_kernel_args(x, rows, cols, dist, out)
    cuda_source_on_cpu.cpu_dag(ctypes.c_longlong(p + 3), *map(_c_arg, args))
    np.testing.assert_array_equal(out, solver(x))


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
    args = dict(row_keys=np.arange(23), seed=9, n_samples=6, epsilon=1.0, noise="gaussian",
                multiplicative=False, antithetic=False, sign=1.0, v=v, control_variate=True)
    whole = cb.estimate_on(cb.numpy_device(), Ranking(), theta=theta, **args)
    parts = cb.estimate_on(cb.numpy_device(), Ranking(), theta=theta, max_elements=70, **args)
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
def _plain(a):
    return a.view(np.ndarray) if isinstance(a, _DeviceArray) else a


def _plain_tree(a):
    if isinstance(a, (list, tuple)):
        return type(a)(_plain_tree(b) for b in a)
    if isinstance(a, dict):
        return {k: _plain_tree(b) for k, b in a.items()}
    return _plain(a)


def _leaves(a):
    if isinstance(a, (list, tuple)):
        return [c for b in a for c in _leaves(b)]
    if isinstance(a, dict):
        return _leaves(list(a.values()))
    return [a]


def _on_device(a):
    if isinstance(a, np.ndarray):
        return a.view(_DeviceArray)
    if isinstance(a, tuple):
        return tuple(_on_device(b) for b in a)
    return a


def _refuse_host_arrays(name, arrays):
    # CuPy raises a TypeError when a NumPy array meets a CuPy array.
    if any(type(a) is np.ndarray and a.ndim > 0 for a in arrays):
        raise TypeError(f"{name}: a host NumPy array meets a device array (CuPy refuses this)")


class _DeviceArray(np.ndarray):
    """A NumPy array marked as living on the stand-in device.

    Like a CuPy array, it refuses to meet a host array in a ufunc or a NumPy
    function, and what is computed from it stays on the device.
    """

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_host_arrays(ufunc.__name__, list(inputs) + list(out or ()))
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*map(_plain, inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _on_device(result)

    def __array_function__(self, func, types, args, kwargs):
        _refuse_host_arrays(func.__name__, _leaves(args) + _leaves(kwargs))
        return _on_device(func(*_plain_tree(args), **_plain_tree(kwargs)))


class _DeviceNamespace:
    """``numpy`` whose array constructors build device arrays (as ``cupy.*`` do)."""

    _CONSTRUCTORS = {
        "arange", "array", "asarray", "ascontiguousarray", "empty", "eye", "full", "ones",
        "zeros", "linspace",
    }

    def __getattr__(self, name):
        value = getattr(np, name)
        if name in self._CONSTRUCTORS:
            return lambda *args, **kwargs: _on_device(value(*args, **kwargs))
        return value

    @staticmethod
    def argsort(a, axis=-1):
        return np.argsort(a, axis=axis, kind="stable")  # CuPy's sort is stable


_DEVICE_XP = _DeviceNamespace()


def _copying_device():
    """A stand-in GPU on NumPy with real transfers and CuPy's host/device rules.

    Device arrays are marked copies that refuse to meet host arrays, and the
    namespace builds new arrays on the device: training on it checks the GPU
    path's bookkeeping without a GPU (what is copied to the device and back,
    that no host array leaks into device arithmetic, that nothing on the host
    goes stale).
    """
    base = cb.numpy_device()
    return cb.Device(
        _DEVICE_XP, "numpy-copying",
        to_device=lambda a: np.array(_plain(a), copy=True).view(_DeviceArray),
        to_host=lambda a: np.array(_plain(a), copy=True),
        is_device_array=lambda a: isinstance(a, _DeviceArray),
        sample_noise=lambda *args: _on_device(base.sample_noise(*args)),
        dag_solve=lambda x, rows, cols: cb.dag_shortest_path_xp(_DEVICE_XP, x, rows, cols),
    )


@pytest.fixture
def copying_device(monkeypatch):
    from sk_perturbed import _base, _models, _noise, _optimizers

    monkeypatch.setattr(cb, "get_device", _copying_device)
    monkeypatch.setattr(perturbed, "_require_cupy", lambda: None)
    monkeypatch.setattr(cb, "_WARNED", set())
    # The library finds a device array's namespace by its type, as for CuPy.
    host_namespace = _noise._array_namespace
    for module in (_base, _models, _noise, _optimizers, perturbed):
        monkeypatch.setattr(
            module, "_array_namespace",
            lambda a: _DEVICE_XP if isinstance(a, _DeviceArray) else host_namespace(a),
        )


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
def test_training_on_the_device_matches_the_host(copying_device, Estimator, params):
    X, y, kwargs = _training_problem(Estimator, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = Estimator(backend="numpy", **kwargs).fit(X, y)
        got = Estimator(backend="cupy", **kwargs).fit(X, y)
    _assert_host_state(got)
    _assert_same_fit(got, ref)
    np.testing.assert_array_equal(got.predict(X), ref.predict(X))
    if params.get("early_stopping"):
        assert got.validation_scores_ == ref.validation_scores_


def test_device_training_with_dag_paths_and_sample_weights(copying_device):
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


def test_partial_fit_and_warm_start_on_the_device(copying_device):
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


def test_fitted_on_the_device_pickles_to_numpy_and_predicts_anywhere(copying_device):
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


def test_divergence_on_the_device_raises_and_leaves_host_arrays(copying_device):
    rng = np.random.default_rng(14)
    X = rng.normal(size=(30, 3)) * 1e150
    Y = rng.normal(size=(30, 4))
    est = PerturbedRankingRegressor(backend="cupy", optimizer="sgd", learning_rate_init=1e6,
                                    momentum=0.99, max_iter=50, n_samples=2, random_state=0)
    with pytest.raises(ValueError, match="diverged"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, Y)
    _assert_host_state(est)


def test_cupy_input_with_a_cpu_backend_is_refused_by_name(monkeypatch):
    fake = FakeCupyArray()
    with pytest.raises(ValueError, match="X is a CuPy array but backend='numba'"):
        PerturbedRankingRegressor(backend="numba").fit(fake, np.ones((2, 3)))


def test_device_losses_match_the_host_losses(copying_device):
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
def test_gpu_estimates_match_numba_within_monte_carlo_error(solver, params):
    cp = _gpu()
    rng = np.random.default_rng(10)
    d = solver.dimension() or 6
    theta = rng.uniform(0.5, 2.0, size=(16, d))
    v = rng.normal(size=theta.shape)
    m = 400
    kwargs = dict(epsilon=0.7, n_samples=m, random_state=4, **params)
    cpu = PerturbedOptimizer(solver, backend="numba", **kwargs).estimate(theta, v)
    gpu = PerturbedOptimizer(solver, **kwargs).estimate(cp.asarray(theta), cp.asarray(v))
    assert isinstance(gpu.y_eps, cp.ndarray)
    # A different seed on the CPU gives the scale of the Monte Carlo error.
    other = PerturbedOptimizer(solver, backend="numba", **{**kwargs, "random_state": 5})
    spread = np.abs(other.estimate(theta, v).y_eps - cpu.y_eps)
    for name in OUTPUTS:
        got, ref = cp.asnumpy(getattr(gpu, name)), getattr(cpu, name)
        # Same keyed noise: equal up to rounding; the bound allows 5 MC errors.
        tol = 5 * np.sqrt(2) * max(float(np.std(spread)), 1e-12) + 1e-9 * np.abs(ref).max()
        assert np.max(np.abs(got - ref)) <= tol, name


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


def test_gpu_check_training_section_runs_on_a_stand_in(copying_device):
    # benchmarks/gpu_check.py runs only where a GPU is lent: its training
    # section is dry-run here with NumPy standing in for CuPy, so that a GPU
    # session does not spend its time on a bug in the script.
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    fake_cp = types.SimpleNamespace(
        asarray=np.asarray,
        cuda=types.SimpleNamespace(Device=lambda: types.SimpleNamespace(synchronize=lambda: None)),
    )
    lines = []
    failures = gpu_check.check_training(fake_cp, lines.append, n_headline=2000, ms_headline=(2,))
    assert failures == 0, lines
    assert sum(line.endswith("OK") for line in lines) == 5
    assert any(line.startswith("epoch ranking MLP(128,) n=2000") for line in lines)
