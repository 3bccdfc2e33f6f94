"""The estimation engine under the public API of :mod:`sk_perturbed.perturbed`.

An :class:`EstimationSpec`, built once from an optimizer, and
:func:`estimate`, the one entry point to the backends: the fused numba
kernels (:mod:`._numba_backend`), NumPy on the materialized (n, M, d) noise
tensor (:mod:`._numpy_backend`, whose array code the CuPy backend shares) and
CuPy (:mod:`._cupy_backend`). Also the prepared fast path of the training
losses, and the loss formulas written once for NumPy and CuPy arrays.
Imports go one way: ``perturbed`` → ``_engine`` → backends → kernels, noise,
validation, solvers.
"""

import functools
import threading
import time
from collections import deque, namedtuple
from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_array

from . import _numba_backend, _numpy_backend
from ._closed_forms import gumbel_argmax_fenchel_young, is_gumbel_argmax
from ._noise import GAUSSIAN, NOISE_IDS, _array_namespace
from ._threads import resolve_n_threads
from ._validation import check_device_theta, check_same_shape, check_theta, is_cupy_array, to_host
from .solvers._registry import numba_solver_arg

#: Seeds are unsigned 64-bit: every seed given or drawn is reduced to that.
SEED_MASK = 0xFFFFFFFFFFFFFFFF


def normalize_seed(seed):
    """``seed`` as the kernels' unsigned 64-bit seed."""
    return int(seed) & SEED_MASK


@dataclass(frozen=True, eq=False)
class EstimationSpec:
    """What every backend needs of a :class:`~sk_perturbed.perturbed.PerturbedOptimizer`.

    Built once per call (or once per fit, for the training losses) from the
    validated optimizer; the backends read nothing else of it.
    """

    solver: object
    n_samples: int
    epsilon: float
    noise: str
    multiplicative: bool
    antithetic: bool
    control_variate: bool
    n_jobs: object = None

    @classmethod
    def of(cls, po):
        return cls(
            solver=po.solver, n_samples=int(po.n_samples), epsilon=float(po.epsilon),
            noise=po.noise, multiplicative=po.perturbation == "multiplicative",
            antithetic=bool(po.antithetic), control_variate=bool(po.control_variate),
            n_jobs=po.n_jobs,
        )

    @property
    def sign(self):
        """+1 for a maximizing solver, -1 for a minimizing one (θ are costs)."""
        return self.solver._sign


def estimate(spec, theta, row_keys, seed, v=None, *, backend="numba", solver_arg=None,
             n_threads=None):
    """``(y_eps, grad, value, vjp)``: the one entry point of the backends.

    ``'numba'`` (fused kernels; ``solver_arg`` and ``n_threads`` skip their
    look-up) and ``'numpy'`` (the materialized noise tensor, for Python
    solvers) take validated host inputs: θ a float64 C (n, d) array,
    ``row_keys`` int64 (n,), ``v`` None or like θ, all in float64 out.
    ``'cupy'`` takes NumPy or CuPy θ and ``v`` and host or device keys, checks
    them where they are, and returns arrays on θ's side in θ's float dtype.
    ``seed`` is normalized (:func:`normalize_seed`).
    """
    if backend == "numba":
        return _numba_backend.estimate_numba(spec, theta, row_keys, seed, v, solver_arg, n_threads)
    if backend == "numpy":
        return _numpy_backend.estimate_numpy(spec, theta, row_keys, seed, v)
    if backend == "cupy":
        from . import _cupy_backend  # imports CuPy: only for a call that runs there

        return _cupy_backend.estimate_checked(spec, theta, row_keys, seed, v)
    raise ValueError(f"unknown backend {backend!r}.")


PerturbedEstimate = namedtuple(
    "PerturbedEstimate", ["y_eps", "expected_max", "expected_max_grad", "vjp"]
)


PerturbedEstimate.__doc__ = """Monte Carlo estimates for a batch θ of shape (n, d).

Parameters
----------
y_eps : ndarray of shape (n, d)
    Perturbed maximizer ``y_ε(θ) = E[y*(θ̃)]``.
expected_max : ndarray of shape (n,)
    Perturbed optimal value ``F̂_ε(θ) = E[<y*(θ̃), θ̃>]`` (a minimum for a
    minimizing solver).
expected_max_grad : ndarray of shape (n, d)
    Gradient of ``F̂_ε`` in θ: ``y_eps`` for additive noise,
    ``E[exp(εZ - ε²/2) ⊙ y*(θ̃)]`` for multiplicative noise.
vjp : ndarray of shape (n, d) or None
    ``vᵀ J_θ y_ε(θ)`` when a ``v`` was given.
"""


def _check_noise_and_perturbation(noise, perturbation):
    """Refuse the multiplicative perturbation with Gumbel noise.

    The factor ``exp(εZ − ε²/2)`` has mean 1 only for Gaussian Z. For Gumbel
    Z, ``E[exp(εZ)] = Γ(1 − ε)``: its variance is infinite for ε ≥ 1/2 and
    its mean for ε ≥ 1, so F̂_ε and its gradient do not converge as M grows.
    """
    if perturbation == "multiplicative" and NOISE_IDS[noise] != GAUSSIAN:
        raise ValueError(
            f"perturbation='multiplicative' needs noise='gaussian', got noise={noise!r}: "
            "exp(εZ − ε²/2) has mean 1 only for Gaussian Z, and for Gumbel Z "
            "E[exp(εZ)] = Γ(1 − ε) is infinite for ε >= 1 (its variance for ε >= 1/2), "
            "so the Monte Carlo estimates do not converge."
        )


def _batch_shape(theta):
    """The batch shape ``(...)`` of a θ of shape (..., d) that is not a matrix, else None.

    A (n, d) matrix (and anything whose shape cannot be read, such as a
    ragged list) goes to the checks unchanged, which name its problems.
    """
    try:
        shape = theta.shape if hasattr(theta, "shape") else np.shape(theta)
    except ValueError:
        return None
    if len(shape) == 2:
        return None
    if len(shape) == 0:
        raise ValueError(
            "theta must be an array of shape (n, d), (d,) or (..., d), got a scalar."
        )
    return tuple(shape[:-1])


def _to_rows(a, lead, name="theta", rows_shape=None):
    """``a`` of shape ``lead + (d,)`` as a (prod(lead), d) matrix (None stays None)."""
    if a is None:
        return None
    if not hasattr(a, "reshape"):
        a = np.asarray(a)
    if rows_shape is not None and a.shape != lead + rows_shape[1:]:
        raise ValueError(
            f"{name} must have the shape of theta {lead + rows_shape[1:]}, got {a.shape}."
        )
    return a.reshape((int(np.prod(a.shape[:-1])), a.shape[-1]))  # -1 fails for d = 0


def _keys_to_rows(row_keys, lead):
    if row_keys is None:
        return None
    keys = row_keys if hasattr(row_keys, "reshape") else np.asarray(row_keys)
    if keys.shape != lead:
        raise ValueError(f"row_keys must have theta's batch shape {lead}, got {keys.shape}.")
    return keys.reshape(-1)


def _from_rows(a, lead):
    """A per-row output (rows, ...) back to the batch shape ``lead + (...)``."""
    if a is None:
        return None
    out = a.reshape(lead + a.shape[1:])
    return out[()] if out.ndim == 0 else out


def _any_batch_shape(loss):
    """Let ``loss(theta, y, ...)`` take θ and y of shape (..., d), as PerturbedOptimizer."""

    @functools.wraps(loss)
    def wrapper(theta, y, *args, **kwargs):
        lead = _batch_shape(theta)
        if lead is None:
            return loss(theta, y, *args, **kwargs)
        rows = _to_rows(theta, lead)
        if kwargs.get("row_keys") is not None:
            kwargs["row_keys"] = _keys_to_rows(kwargs["row_keys"], lead)
        value, grad = loss(rows, _to_rows(y, lead, "y", rows.shape), *args, **kwargs)
        return _from_rows(value, lead), _from_rows(grad, lead)

    return wrapper


def _output_dtype(theta):
    dtype = getattr(theta, "dtype", None)
    return np.float32 if dtype == np.float32 else np.float64


def _require_cupy():
    try:
        import cupy  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "backend='cupy' needs CuPy: install the GPU extra, "
            "`pip install sk-perturbed[gpu]`."
        ) from exc
















class _PreparedOptimizer:
    """A :class:`PerturbedOptimizer` validated once, for repeated internal calls.

    The training loop calls the losses on every mini-batch with arrays it
    built itself (float C-contiguous θ and targets of the right shape,
    non-negative int64 keys); re-validating parameters and inputs with
    scikit-learn's checks each time cost more than the kernel at small M.
    :func:`_fast_loss_gradient` runs the same kernels on the same inputs as
    the public losses, so results are identical, and falls back to them
    (which raise the usual errors) for anything unusual: a non-finite θ, a
    non-numba backend, a shape it did not expect.
    """

    def __init__(self, po, d):
        po._validate()
        po.solver._validate_params()
        po.solver._check_dimension(d)
        self.po = po
        self.d = d
        self.gumbel_argmax = is_gumbel_argmax(po)
        self.solver_arg = None
        if po.backend in ("auto", "numba"):
            self.solver_arg = numba_solver_arg(po.solver)
        self.usable = self.gumbel_argmax or self.solver_arg is not None
        self.sign = po.solver._sign
        self.spec = EstimationSpec.of(po)

    def inputs(self, theta, y, row_keys):
        """θ and y as float64 C arrays and the keys as int64, or None to fall back."""
        if not isinstance(theta, np.ndarray) or theta.ndim != 2 or theta.shape[1] != self.d:
            return None
        if theta.shape[0] < 1 or not isinstance(y, np.ndarray) or y.shape != theta.shape:
            return None
        theta64 = np.ascontiguousarray(theta, dtype=np.float64)
        y64 = np.ascontiguousarray(y, dtype=np.float64)
        if not (np.isfinite(theta64).all() and np.isfinite(y64).all()):
            return None
        if row_keys is None:
            keys = np.arange(theta.shape[0], dtype=np.int64)
        else:
            keys = np.ascontiguousarray(row_keys, dtype=np.int64)
            if keys.shape != (theta.shape[0],):
                return None
        return theta64, y64, keys

    def estimate(self, theta64, keys, seed, v=None):
        """Kernel outputs ``(y_eps, grad, value, vjp)`` in float64."""
        seed = self.po._draw_seed() if seed is None else normalize_seed(seed)
        n_threads, record = None, None
        if self.po.n_jobs is None:  # an explicit n_jobs is obeyed (_kernel_threads)
            n_threads, record = _THREAD_TUNER.choose(
                (v is not None, (theta64.size * self.spec.n_samples).bit_length()),
                resolve_n_threads(None),
            )
        start = time.perf_counter()
        out = estimate(
            self.spec, theta64, keys, seed, v, solver_arg=self.solver_arg, n_threads=n_threads
        )
        if record is not None:
            record.append((time.perf_counter() - start) / theta64.size)
        return out


class _ThreadTuner:
    """One thread or the whole budget for the training kernels, chosen by timing.

    Whether a parallel region pays for a mini-batch depends on the machine,
    not on the data: tens of µs on idle cores, tens of ms when another process
    holds one (numba's OpenMP workers, or another library's BLAS threads, spin
    at the barrier). For each kind of call (with or without a VJP, and its
    size to a power of two) the first calls alternate the two counts; then the
    count with the lower median of its recent timings runs, and one call in
    ``PROBE_EVERY`` runs the other, so a choice made while the machine was busy
    is revised within about a hundred calls once it is idle again (and the
    reverse). Results do not depend on the thread count, so this never changes
    a model. Shared by the process, so short fits do not each pay for the
    measurement.
    """

    WARMUP = 3  # timed calls per candidate before the first choice
    WINDOW = 5  # recent timings kept per candidate (seconds per entry)
    PROBE_EVERY = 32  # one call in this many runs the count not chosen

    def __init__(self):
        self._lock = threading.Lock()
        self._state = {}  # (kind, budget) -> [call count, {threads: deque of timings}]

    @staticmethod
    def _median(times):
        return sorted(times)[len(times) // 2]

    def choose(self, kind, budget):
        """``(n_threads, deque to append the call's time per entry to, or None)``."""
        if budget <= 1:
            return 1, None
        key = (kind, budget)
        with self._lock:
            state = self._state.get(key)
            if state is None:
                state = self._state[key] = [0, {n: deque(maxlen=self.WINDOW) for n in (1, budget)}]
            state[0] += 1
            timings = state[1]
            fewest = min(timings, key=lambda n: len(timings[n]))
            if len(timings[fewest]) < self.WARMUP:
                n_threads = fewest
            else:
                ranked = sorted(timings, key=lambda n: self._median(timings[n]))
                n_threads = ranked[1] if state[0] % self.PROBE_EVERY == 0 else ranked[0]
            return n_threads, timings[n_threads]


_THREAD_TUNER = _ThreadTuner()


def _fast_loss_gradient(kind, prepared, theta, y, row_keys, seed):
    """``fenchel_young_loss`` / ``perturbed_squared_loss`` on validated internal inputs.

    Returns None when the inputs need the public (checked) path.
    """
    if not prepared.usable:
        return None
    checked = prepared.inputs(theta, y, row_keys)
    if checked is None:
        return None
    theta64, y64, keys = checked
    out_dtype = _output_dtype(theta)
    def cast(a):  # the public path returns θ's float dtype
        return None if a is None else a.astype(out_dtype, copy=False)

    if kind == "fenchel_young":
        if prepared.gumbel_argmax:
            return gumbel_argmax_fenchel_young(theta64, y64, float(prepared.po.epsilon))
        _, grad, value, _ = prepared.estimate(theta64, keys, seed)
        return _fenchel_young_from(theta64, y64, cast(value), cast(grad), prepared.sign)
    if prepared.solver_arg is None:
        return None
    if prepared.spec.multiplicative and np.any(theta64 == 0):
        return None  # the public path raises: the Jacobian is undefined at θ = 0
    seed = prepared.po._draw_seed() if seed is None else seed
    return _perturbed_squared_from(
        lambda v: [cast(a) for a in prepared.estimate(theta64, keys, seed, v=v)[::3]], y64
    )


# The loss formulas below use only array methods, operators and functions of
# the array's own namespace, so they run on NumPy and CuPy arrays alike (the
# GPU training path calls them on the device).
def _rowwise_dot(a, b):
    return (a * b).sum(axis=1)


def _fenchel_young_from(theta, y, expected_max, expected_max_grad, sign):
    """FY value and gradient from the estimates, in the solver's sense."""
    loss = sign * (expected_max - _rowwise_dot(theta, y))
    return loss, sign * (expected_max_grad - y)


def _perturbed_squared_from(estimate, y):
    """``½‖y - y_ε‖²`` and its VJP gradient; ``estimate(v)`` returns ``(y_ε, vjp)``.

    y_ε is needed before the VJP can be formed: one pass for y_ε, one for the
    VJP, both with the same keyed noise (common random numbers).
    """
    residual = estimate(None)[0].astype(np.float64) - y
    vjp = estimate(residual)[1]
    return 0.5 * _rowwise_dot(residual, residual), vjp


def _squared_from(theta, y):
    """``½‖y - θ‖²`` and its gradient ``θ - y``."""
    residual = theta - y
    return 0.5 * _rowwise_dot(residual, residual), residual


def _blackbox_from(theta, y, solve, sign, lambda_, requires_positive):
    """Blackbox value and interpolation gradient; ``solve`` maps a batch to its structures."""
    y_star = solve(theta)
    g = y_star - y
    # Maximization form θ_max = sign·θ: shifted problem θ_max - λg, mapped back.
    shifted = theta - sign * lambda_ * g
    if requires_positive:
        # The shift can push costs below zero, which Dijkstra refuses: clip
        # them (a zero cost is the cheapest a positive-cost solver can see).
        shifted = _array_namespace(theta).maximum(shifted, 0.0)
    grad = sign * (y_star - solve(shifted)) / lambda_
    return 0.5 * _rowwise_dot(g, g), grad








def _loss_inputs(theta, y, solver):
    """θ and y as float64 (n, d) arrays on θ's side (host or GPU), validated there.

    A CuPy θ is checked on its device, without a host copy. ``y`` may be a
    NumPy or a CuPy array: it is moved to θ's side (the outputs follow θ).
    ``solver=None`` checks θ as a plain array.
    """
    if not is_cupy_array(theta):
        theta = (
            check_array(theta, dtype=np.float64, order="C", input_name="theta")
            if solver is None else check_theta(theta, solver)
        )
        return theta, check_same_shape(to_host(y), theta, "y")
    theta = check_device_theta(theta, solver)
    if is_cupy_array(y):
        return theta, check_device_theta(y, None, "y", reference=theta)
    xp = _array_namespace(theta)
    return theta, xp.asarray(check_same_shape(y, theta, "y"))

