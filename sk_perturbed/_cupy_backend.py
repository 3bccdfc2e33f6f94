"""Optional CuPy backend of :class:`~sk_perturbed.perturbed.PerturbedOptimizer`.

CuPy is imported lazily (``pip install sk-perturbed[gpu]``). For a batch θ of
shape (n, d) the GPU path

1. draws the keyed noise (n, M, d) with a CUDA kernel that runs the *same*
   SplitMix64 stream as :mod:`sk_perturbed._noise`: one thread per perturbed
   problem ``(row, sample)`` hashes ``(seed, row_key, sample)`` and reads its
   stream in order, so the 64-bit draws are identical to the CPU's. Gumbel
   noise is ``-log(-log(u))`` of the same uniforms; Gaussian noise runs the same
   256-layer ziggurat on those draws (compiled with ``--fmad=false`` so no
   fused multiply-add changes a rounding). CUDA's ``log``/``exp`` may differ
   from the CPU's libm in the last ulp, so noise values agree to ~1e-16
   relative, and a ziggurat acceptance test sitting within an ulp of its
   threshold could (very rarely) flip and shift the rest of that row's stream:
   CPU/GPU parity is then bit-for-bit in practice for the uniform stream and
   within Monte Carlo error in the worst case;
2. perturbs θ (additive ``θ + s·εZ`` or multiplicative ``θ ⊙ exp(εZ − ε²/2)``);
3. solves all n·M problems at once where the solver has a GPU form:
   :class:`Argmax` (``argmax``), :class:`TopK` and :class:`Ranking` (one
   batched stable ``argsort``), :class:`DAGShortestPath` (a dynamic-programming
   kernel, one thread per problem, same tie rule as the numba solver). Other
   solvers are solved on the CPU: the perturbed batch is copied to the host
   once per chunk, solved with ``solver._solve_batch``, and copied back (with a
   one-time warning);
4. accumulates ``y_ε``, ``F̂_ε``, its gradient and the VJP with the formulas of
   the NumPy backend (one implementation, ``_numpy_backend.accumulate``): multiplicative
   perturbation, the sign of minimizing solvers, the leave-one-out control
   variate.

Everything but the two CUDA kernels is written against an array namespace
``xp``, so the same code runs with ``xp = numpy`` (see :func:`numpy_device`),
which is how it is tested without a GPU. Rows are processed in chunks so that
the (rows, M, d) temporaries stay below ``max_elements`` entries (see
:data:`MAX_ELEMENTS` for the device memory this takes).

Outputs follow the input: a CuPy θ gives CuPy outputs; a NumPy θ (e.g.
``backend='cupy'`` inside the estimators, whose model stays on the CPU) gives
NumPy outputs. Estimates that are not finite raise the CPU backends' error
(:func:`estimate_cupy`); the training loop's path (:func:`estimate_with`)
leaves that to the loop's once-per-epoch check, so that a mini-batch does not
wait for the device.
"""

import warnings

import numpy as np

from ._noise import _ZIG_F, _ZIG_R, _ZIG_X, NOISE_IDS, sample_noise
from ._numpy_backend import accumulate, check_estimated_values
from ._validation import check_device_theta, check_row_keys, check_same_shape, check_theta
from .solvers._basic import Argmax, Ranking, TopK
from .solvers._paths import DAGShortestPath

__all__ = [
    "estimate_cupy", "estimate_checked", "estimate_with", "cupy_device", "numpy_device", "gpu_solver",
]

#: Largest number of entries of one (rows, M, d) temporary (float64: 128 MiB).
#: A chunk holds several such temporaries at once. Measured with ``xp = numpy``
#: (tracemalloc; tests/test_cupy_backend.py keeps it so), the peak of a chunk
#: is 3.2x one temporary for Argmax, 3.6x for DAGShortestPath, 6.0x for
#: Ranking and TopK, 5.1x to 7.1x with ``perturbation='multiplicative'`` (a
#: VJP adds < 0.1x): at most ~0.9 GiB here, where 2**26 took ~3.5 GiB. CuPy's
#: argsort (Ranking, TopK) adds its index and sort buffers on top (not
#: measured: no GPU), so a call needs ~1.5 GiB, which 4-8 GB cards have. The
#: price of smaller chunks is a few more kernel launches per call.
MAX_ELEMENTS = 1 << 24

_BLOCK = 128

#: NVRTC options of the kernels: no fused multiply-add, so that every rounding
#: of the ziggurat matches the CPU's (the architecture is added by CuPy).
NVRTC_OPTIONS = ("--fmad=false",)

# --------------------------------------------------------------------------
# CUDA source. The device functions are plain C (no CUDA intrinsics), so the
# tests compile them with a C compiler on the CPU and check them against the
# numba implementations; only the two thin __global__ wrappers are GPU-only.
# --------------------------------------------------------------------------
DEVICE_SOURCE = r"""
typedef unsigned long long u64;
#define SKP_GOLDEN 0x9E3779B97F4A7C15ULL
#define SKP_MIX1 0xBF58476D1CE4E5B9ULL
#define SKP_MIX2 0x94D049BB133111EBULL
#define SKP_TO_UNIT (1.0 / 9007199254740992.0)

__device__ u64 skp_mix64(u64 z) {
    z = (z ^ (z >> 30)) * SKP_MIX1;
    z = (z ^ (z >> 27)) * SKP_MIX2;
    return z ^ (z >> 31);
}

__device__ u64 skp_stream_state(u64 seed, u64 row_key, u64 sample) {
    u64 h = skp_mix64(seed + SKP_GOLDEN);
    h = skp_mix64(h ^ (row_key + SKP_GOLDEN));
    h = skp_mix64(h ^ (sample + SKP_GOLDEN));
    return h;
}

__device__ u64 skp_next(u64* state) {
    *state = *state + SKP_GOLDEN;
    return skp_mix64(*state);
}

__device__ double skp_open_uniform(u64 bits) {
    return ((double)(bits >> 11) + 0.5) * SKP_TO_UNIT;
}

/* One N(0, 1) draw: the 256-layer ziggurat of sk_perturbed._noise. */
__device__ double skp_normal(u64* state, const double* zx, const double* zf, double r) {
    for (;;) {
        u64 bits = skp_next(state);
        int layer = (int)(bits & 0xFFULL);
        int negative = (int)((bits >> 8) & 1ULL);
        double u = (double)(bits >> 11) * SKP_TO_UNIT;
        double z = u * zx[layer];
        if (z < zx[layer + 1]) return negative ? -z : z;
        if (layer == 0) {
            for (;;) {
                u64 b1 = skp_next(state);
                u64 b2 = skp_next(state);
                double a = -log(skp_open_uniform(b1)) / r;
                double b = -log(skp_open_uniform(b2));
                if (2.0 * b > a * a) {
                    z = r + a;
                    return negative ? -z : z;
                }
            }
        }
        u64 b3 = skp_next(state);
        double w = skp_open_uniform(b3) * (zf[layer + 1] - zf[layer]);
        double y = zf[layer] + w;
        if (y < exp(-0.5 * z * z)) return negative ? -z : z;
    }
}

/* Noise vector of problem (row_key, sample) into out[0..d). */
__device__ void skp_fill_noise(u64 seed, long long row_key, long long sample, int noise_id,
                               int antithetic, long long d, const double* zx,
                               const double* zf, double r, double* out) {
    int negate = 0;
    if (antithetic) {
        negate = (int)(sample % 2);
        sample = sample / 2;
    }
    u64 state = skp_stream_state(seed, (u64)row_key, (u64)sample);
    for (long long j = 0; j < d; j++) {
        double z;
        if (noise_id == 0) {
            z = skp_normal(&state, zx, zf, r);
        } else {
            u64 bits = skp_next(&state);
            z = -log(-log(skp_open_uniform(bits)));
        }
        out[j] = negate ? -z : z;
    }
}

__device__ long long skp_right_arc(long long r, long long c, long long cols) {
    return r * (2 * cols - 1) + c;
}

__device__ long long skp_down_arc(long long r, long long c, long long cols) {
    return r * (2 * cols - 1) + cols - 1 + c;
}

/* Shortest right/down path on a rows x cols grid DAG (arc costs x), as the
   numba dag_shortest_path_row: same DP order, same exact-equality trace back. */
__device__ void skp_dag_path(const double* x, long long rows, long long cols, double* dist,
                             double* out, long long d) {
    long long n = rows * cols;
    dist[0] = 0.0;
    for (long long v = 1; v < n; v++) {
        long long r = v / cols, c = v % cols;
        double best;
        if (r > 0) {
            best = dist[v - cols] + x[skp_down_arc(r - 1, c, cols)];
            if (c > 0) {
                double other = dist[v - 1] + x[skp_right_arc(r, c - 1, cols)];
                if (other < best) best = other;
            }
        } else {
            best = dist[v - 1] + x[skp_right_arc(r, c - 1, cols)];
        }
        dist[v] = best;
    }
    for (long long j = 0; j < d; j++) out[j] = 0.0;
    long long v = n - 1;
    while (v > 0) {
        long long r = v / cols, c = v % cols;
        if (r > 0 && (c == 0 || dist[v - cols] + x[skp_down_arc(r - 1, c, cols)] == dist[v])) {
            out[skp_down_arc(r - 1, c, cols)] = 1.0;
            v -= cols;
        } else {
            out[skp_right_arc(r, c - 1, cols)] = 1.0;
            v -= 1;
        }
    }
}
"""

KERNEL_SOURCE = r"""
extern "C" __global__ void skp_noise_kernel(
        const long long* row_keys, long long n, long long n_samples, long long d,
        u64 seed, int noise_id, int antithetic, const double* zx, const double* zf,
        double r, double* out) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n * n_samples) return;
    long long i = t / n_samples, m = t % n_samples;
    skp_fill_noise(seed, row_keys[i], m, noise_id, antithetic, d, zx, zf, r, out + t * d);
}

extern "C" __global__ void skp_dag_kernel(
        const double* x, long long n_problems, long long rows, long long cols, long long d,
        double* dist, double* out) {
    long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n_problems) return;
    skp_dag_path(x + p * d, rows, cols, dist + p * rows * cols, out + p * d, d);
}
"""


# CuPy passes each NumPy scalar with its own width: these builders fix the
# argument types of the two kernels in one place (the tests check them against
# the parameter list that NVRTC compiles from KERNEL_SOURCE).
def noise_kernel_args(keys, n_samples, d, seed, noise, antithetic, zx, zf, out):
    """Arguments of ``skp_noise_kernel`` for the (n, n_samples, d) noise of ``keys``."""
    return (
        keys, np.int64(keys.shape[0]), np.int64(n_samples), np.int64(d), np.uint64(seed),
        np.int32(NOISE_IDS[noise]), np.int32(bool(antithetic)), zx, zf, np.float64(_ZIG_R), out,
    )


def dag_kernel_args(x, rows, cols, dist, out):
    """Arguments of ``skp_dag_kernel`` for the (p, d) arc costs ``x``."""
    p, d = x.shape
    return (x, np.int64(p), np.int64(rows), np.int64(cols), np.int64(d), dist, out)


# --------------------------------------------------------------------------
# Devices: the array namespace plus the two kernels.
# --------------------------------------------------------------------------
class Device:
    """An array namespace with host transfers, noise and the DAG solver."""

    def __init__(self, xp, name, to_device, to_host, is_device_array, sample_noise, dag_solve):
        self.xp = xp
        self.name = name
        self.to_device = to_device
        self.to_host = to_host
        self.is_device_array = is_device_array
        self.sample_noise = sample_noise
        self.dag_solve = dag_solve


def numpy_device():
    """The backend's array code on NumPy (noise from :func:`sample_noise`).

    Used by the tests to run everything but the CUDA kernels on the CPU.
    """

    def noise(seed, row_keys, n_samples, d, noise, antithetic):
        return sample_noise(seed, np.asarray(row_keys), n_samples, d, noise, antithetic)

    return Device(
        np, "numpy", lambda a: np.asarray(a), lambda a: np.asarray(a),
        lambda a: isinstance(a, np.ndarray), noise,
        lambda x, rows, cols: dag_shortest_path_xp(np, x, rows, cols),
    )


_CUPY_DEVICE = None


def cupy_device():
    """The CuPy device, one per process.

    CuPy compiles and loads the kernels once per CUDA device; the ziggurat
    tables are copied once per CUDA device too, so a call made under
    ``with cupy.cuda.Device(i):`` reads them from device ``i``.
    """
    global _CUPY_DEVICE
    if _CUPY_DEVICE is not None:
        return _CUPY_DEVICE
    try:
        import cupy as cp
    except ImportError as exc:  # pragma: no cover - guarded by _require_cupy
        raise ImportError(
            "backend='cupy' needs CuPy: install the GPU extra, `pip install sk-perturbed[gpu]`."
        ) from exc

    module = cp.RawModule(
        code=DEVICE_SOURCE + KERNEL_SOURCE,
        options=NVRTC_OPTIONS,
    )
    noise_kernel = module.get_function("skp_noise_kernel")
    dag_kernel = module.get_function("skp_dag_kernel")
    tables = {}  # CUDA device id -> (zx, zf) in that device's memory

    def ziggurat_tables():
        device_id = cp.cuda.Device().id
        if device_id not in tables:
            tables[device_id] = (
                cp.asarray(_ZIG_X, dtype=cp.float64), cp.asarray(_ZIG_F, dtype=cp.float64)
            )
        return tables[device_id]

    def noise(seed, row_keys, n_samples, d, noise, antithetic):
        keys = cp.ascontiguousarray(cp.asarray(row_keys, dtype=cp.int64))
        n = keys.shape[0]
        out = cp.empty((n, n_samples, d), dtype=cp.float64)
        total = n * n_samples
        if total:
            zx, zf = ziggurat_tables()
            noise_kernel(
                ((total + _BLOCK - 1) // _BLOCK,), (_BLOCK,),
                noise_kernel_args(keys, n_samples, d, seed, noise, antithetic, zx, zf, out),
            )
        return out

    def dag_solve(x, rows, cols):
        x = cp.ascontiguousarray(x, dtype=cp.float64)
        p, d = x.shape
        out = cp.empty_like(x)
        dist = cp.empty((p, rows * cols), dtype=cp.float64)
        if p:
            dag_kernel(
                ((p + _BLOCK - 1) // _BLOCK,), (_BLOCK,), dag_kernel_args(x, rows, cols, dist, out),
            )
        return out

    _CUPY_DEVICE = Device(
        cp, "cupy", lambda a: cp.asarray(a), cp.asnumpy,
        lambda a: isinstance(a, cp.ndarray), noise, dag_solve,
    )
    return _CUPY_DEVICE


#: Factory of the device used by :func:`estimate_cupy` (the tests swap it).
get_device = cupy_device


# --------------------------------------------------------------------------
# Solvers in array form.
# --------------------------------------------------------------------------
def _inverse_permutation(xp, order):
    """``inv`` with ``inv[p, order[p, j]] = j`` for a batch of permutations."""
    p, d = order.shape
    inv = xp.empty_like(order)
    flat = (order + (xp.arange(p, dtype=order.dtype) * d)[:, None]).reshape(-1)
    inv.reshape(-1)[flat] = xp.tile(xp.arange(d, dtype=order.dtype), p)
    return inv


def _stable_argsort(xp, x):
    # CuPy's argsort is always stable (and only documents kind=None).
    if xp is np:
        return np.argsort(x, axis=1, kind="stable")
    return xp.argsort(x, axis=1)


def argmax_xp(xp, x):
    """One-hot argmax rows; ties to the lowest index (as ``argmax`` does)."""
    idx = xp.argmax(x, axis=1)
    return (xp.arange(x.shape[1])[None, :] == idx[:, None]).astype(xp.float64)


def ranking_xp(xp, x):
    """Ranks 1..d, largest score d; ties: the lower index gets the lower rank."""
    order = _stable_argsort(xp, x)
    return (_inverse_permutation(xp, order) + 1).astype(xp.float64)


def topk_xp(xp, x, k):
    """k-hot rows of the k largest scores; ties: lowest indices first."""
    order = _stable_argsort(xp, -x)
    return (_inverse_permutation(xp, order) < k).astype(xp.float64)


def dag_shortest_path_xp(xp, x, rows, cols):
    """Batched DP of :class:`DAGShortestPath` in array form (one op per node).

    Same recursion, arc order and exact-equality tie rule as the numba row
    solver, vectorized over problems.
    """
    p, d = x.shape
    n = rows * cols
    dist = xp.empty((p, n), dtype=xp.float64)
    dist[:, 0] = 0.0
    for v in range(1, n):
        r, c = divmod(v, cols)
        if r > 0:
            best = dist[:, v - cols] + x[:, r * (2 * cols - 1) - cols + c]
        if c > 0:
            other = dist[:, v - 1] + x[:, r * (2 * cols - 1) + c - 1]
            best = other if r == 0 else xp.minimum(best, other)
        dist[:, v] = best
    out = xp.zeros((p, d), dtype=xp.float64)
    node = xp.full(p, n - 1, dtype=xp.int64)
    rows_idx = xp.arange(p)
    # Every path has exactly rows + cols - 2 arcs: step all problems together.
    for _ in range(rows + cols - 2):
        r, c = node // cols, node % cols
        up_arc = (r - 1) * (2 * cols - 1) + cols - 1 + c
        left_arc = r * (2 * cols - 1) + c - 1
        up_node = xp.maximum(node - cols, 0)
        up_cost = dist[rows_idx, up_node] + x[rows_idx, xp.clip(up_arc, 0, d - 1)]
        go_up = (r > 0) & ((c == 0) | (up_cost == dist[rows_idx, node]))
        arc = xp.where(go_up, up_arc, left_arc)
        out[rows_idx, arc] = 1.0
        node = xp.where(go_up, node - cols, node - 1)
    return out


_WARNED = set()


def gpu_solver(device, solver):
    """``solve(x)`` for a (p, d) device batch, and whether it runs on the device."""
    xp = device.xp
    kind = type(solver)
    if kind is Argmax:
        return (lambda x: argmax_xp(xp, x)), True
    if kind is Ranking:
        return (lambda x: ranking_xp(xp, x)), True
    if kind is TopK:
        k = int(solver.k)
        return (lambda x: topk_xp(xp, x, k)), True
    if kind is DAGShortestPath:
        rows, cols = (int(s) for s in solver.grid)
        return (lambda x: device.dag_solve(x, rows, cols)), True

    def host_solve(x):
        host = np.ascontiguousarray(device.to_host(x), dtype=np.float64)
        return xp.asarray(device.to_device(solver._solve_batch(host)), dtype=xp.float64)

    if kind.__name__ not in _WARNED:
        _WARNED.add(kind.__name__)
        warnings.warn(
            f"backend='cupy': {kind.__name__} has no GPU form; each batch of perturbed "
            "problems is copied to the CPU, solved there and copied back (GPU forms exist "
            "for Argmax, TopK, Ranking and DAGShortestPath).",
            UserWarning,
            stacklevel=4,
        )
    return host_solve, False


def estimate_on(device, spec, theta, row_keys, seed, v=None, *, max_elements=None):
    """All estimates on ``device`` for device arrays θ (n, d), v and row keys.

    Rows are processed in chunks of at most ``max_elements`` noise entries.
    Returns device arrays ``(y_eps, grad, value, vjp)`` in float64.
    """
    xp = device.xp
    max_elements = MAX_ELEMENTS if max_elements is None else int(max_elements)
    n, d = theta.shape
    n_samples = spec.n_samples
    solve, _ = gpu_solver(device, spec.solver)
    chunk = max(1, max_elements // max(1, n_samples * d))
    parts = []
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        z = device.sample_noise(seed, row_keys[sl], n_samples, d, spec.noise, spec.antithetic)
        # Overflow is reported by the callers (as on the CPU), not warned about.
        with np.errstate(over="ignore", invalid="ignore"):
            parts.append(accumulate(spec, solve, theta[sl], z, None if v is None else v[sl]))
    if len(parts) == 1:
        return parts[0]
    y_eps, grad, value, vjp = (
        None if parts[0][k] is None else xp.concatenate([p[k] for p in parts])
        for k in range(4)
    )
    return y_eps, grad, value, vjp


def estimate_with(device, spec, theta, row_keys, seed, v=None):
    """:func:`estimate_on` for trusted float64 device arrays.

    The training loop's path: θ comes from the model on the device, the keys
    and seed from the epoch loop, so nothing is validated or copied here, and
    nothing waits for the device (non-finite estimates surface in the loop's
    once-per-epoch check).
    """
    return estimate_on(device, spec, theta, row_keys, seed, v)


def estimate_cupy(spec, theta, row_keys, seed, v=None, *, out_dtype=None):
    """GPU estimates for a validated θ (NumPy or CuPy); outputs follow θ's type.

    Returns ``(y_eps, grad, value, vjp)`` in
    ``out_dtype`` (default: float32 for a float32 θ, else float64). Raises the
    ``ValueError`` of the CPU backends when an estimated F̂ is not finite (θ or
    ε so large that the perturbed problems overflow, or a solver failure).
    """
    device = get_device()
    xp = device.xp
    on_device = device.is_device_array(theta)
    if out_dtype is None:
        out_dtype = np.float32 if theta.dtype == np.float32 else np.float64
    theta_d = xp.ascontiguousarray(device.to_device(theta), dtype=xp.float64)
    v_d = None if v is None else xp.ascontiguousarray(device.to_device(v), dtype=xp.float64)
    keys_d = device.to_device(np.ascontiguousarray(row_keys, dtype=np.int64))
    y, grad, value, vjp = estimate_on(device, spec, theta_d, keys_d, seed, v_d)
    # One reduction (one wait for the device) per call; the offending row is
    # then diagnosed on the host with the CPU backends' message.
    if not bool(xp.isfinite(value).all()):
        check_estimated_values(spec, np.asarray(device.to_host(value)), theta_d, row_keys, seed)

    def out(a):
        if a is None:
            return None
        a = a.astype(out_dtype, copy=False)
        return a if on_device else np.asarray(device.to_host(a))

    return out(y), out(grad), out(value), out(vjp)


def estimate_checked(spec, theta, row_keys, seed, v=None):
    """``po.estimate`` on the GPU: validation and row keys, then :func:`estimate_cupy`.

    θ and ``v`` may be NumPy (or array-like) or CuPy arrays; device arrays are
    checked on the device without a host copy.
    """
    device = get_device()
    out_dtype = np.float32 if getattr(theta, "dtype", None) == np.float32 else np.float64

    def on_device(a):
        return device.name != "numpy" and device.is_device_array(a)

    if on_device(theta):
        theta = check_device_theta(theta, spec.solver)
    else:
        theta = check_theta(theta, spec.solver)
    if v is not None:
        if on_device(theta) and on_device(v):
            v = check_device_theta(v, None, "v", reference=theta)
        else:
            v = check_same_shape(device.to_host(v) if on_device(v) else v, theta, "v")
        if spec.multiplicative and bool((theta == 0).any()):
            raise ValueError(
                "The Jacobian of a multiplicative perturbation is undefined where "
                "theta == 0; use perturbation='additive' or keep theta away from 0."
            )
    if on_device(row_keys):
        row_keys = device.to_host(row_keys)
    keys = check_row_keys(row_keys, theta.shape[0])
    return estimate_cupy(spec, theta, keys, seed, v, out_dtype=out_dtype)
