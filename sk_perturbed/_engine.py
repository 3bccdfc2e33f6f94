"""The estimation engine under the public API of :mod:`sk_perturbed.perturbed`.

Backends: the fused numba kernels (``_estimate_numba``), NumPy on the
materialized (n, M, d) noise tensor (``_estimate_numpy``, whose array code
``_accumulate`` the CuPy backend shares), the prepared fast path of the
training losses, and the loss formulas written once for NumPy and CuPy
arrays. Imports go one way: ``perturbed`` → ``_engine`` → kernels, noise,
validation, solvers.
"""

import functools
import threading
import time
from collections import deque, namedtuple
from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_array

from ._closed_forms import gumbel_argmax_fenchel_young, is_gumbel_argmax
from ._memory import check_perturbed_batch_memory
from ._noise import GAUSSIAN, NOISE_IDS, _array_namespace, grad_nu_numpy, sample_noise
from ._threads import compile_notice, numba_threads, resolve_n_threads
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
    """``(y_eps, grad, value, vjp)`` in float64 for validated host inputs.

    The one entry point of the CPU backends: ``'numba'`` (fused kernels;
    ``solver_arg`` and ``n_threads`` skip their look-up) or ``'numpy'`` (the
    materialized noise tensor, for Python solvers). θ is a float64 C (n, d)
    array, ``row_keys`` int64 (n,), ``seed`` normalized, ``v`` None or like θ.
    """
    if backend == "numba":
        return _estimate_numba(spec, theta, row_keys, seed, v, solver_arg, n_threads)
    if backend == "numpy":
        return _estimate_numpy(spec, theta, row_keys, seed, v)
    raise ValueError(f"unknown CPU backend {backend!r}.")


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


#: Least work (perturbed entries n·M·d) worth one more kernel thread, about
#: 10 ms of serial work. A parallel region costs tens of µs on idle cores but,
#: with numba's OpenMP layer spinning at its barriers, 50-100 ms on an
#: oversubscribed machine (measured on 2 cores at load 11: a 200-row, M = 100,
#: d = 20 call took 10 ms on 1 thread and 64 ms on 2). Training mini-batches
#: (200 rows, d = 20, M ≤ 100) therefore run on one thread, predictions on
#: large X in parallel. Results do not depend on the thread count.
_MIN_WORK_PER_THREAD = 1 << 18


#: Perturbed entries (rows·M·d) of one kernel launch: about 0.1-1 s of work
#: per thread, the longest a Ctrl-C waits.
_CHUNK_ENTRIES = 1 << 22


def _kernel_threads(n_jobs, n_rows, n_samples, d):
    """Threads for one kernel call.

    An explicit ``n_jobs`` is obeyed as given. With ``None`` (the default, and
    what the estimators pass: their ``n_jobs`` sets the calling thread's numba
    budget), the current budget is capped by the work of the call.
    """
    budget = resolve_n_threads(n_jobs)
    if n_jobs is not None:
        return budget
    return max(1, min(budget, (n_rows * n_samples * d) // _MIN_WORK_PER_THREAD))


def _estimate_numba(spec, theta, row_keys, seed, v, solver_arg=None, n_threads=None):
    from ._kernels import perturbed_kernel  # looked up per call: tests count the calls

    if solver_arg is None:
        solver_arg = numba_solver_arg(spec.solver)
    want_vjp = v is not None
    n, d = theta.shape
    n_samples = spec.n_samples
    if n_threads is None:
        n_threads = _kernel_threads(spec.n_jobs, n, n_samples, d)
    rows = max(1, _CHUNK_ENTRIES // max(1, n_samples * d))
    outputs = []
    with numba_threads(n_threads), _compile_notice(spec.solver, solver_arg):
        # Chunks of rows: a Ctrl-C is seen between two chunks (a signal
        # cannot stop a compiled loop); rows do not depend on the split.
        for start in range(0, n, rows):
            part = slice(start, start + rows)
            outputs.append(perturbed_kernel(
                theta[part], row_keys[part], np.uint64(seed), n_samples, spec.epsilon,
                NOISE_IDS[spec.noise], spec.multiplicative, spec.antithetic, spec.sign,
                v[part] if want_vjp else np.zeros((0, d)),
                want_vjp, spec.control_variate, solver_arg,
            ))
    if len(outputs) == 1:
        y, grad, value, vjp = outputs[0]
    else:
        y, value, vjp = (np.concatenate([out[k] for out in outputs]) for k in (0, 2, 3))
        grad = np.concatenate([out[1] for out in outputs]) if spec.multiplicative else y
    # Exceptions raised inside numba's parallel loops are unreliable, so row
    # kernels flag a problem they cannot solve with NaN and it is raised here.
    _check_estimated_values(spec, value, theta, row_keys, seed)
    return y, grad, value, (vjp if want_vjp else None)


def _compile_notice(solver, solver_arg):
    return compile_notice(type(solver).__name__, cached=isinstance(solver_arg, tuple))


def _check_estimated_values(spec, value, theta, row_keys, seed):
    """Raise for the first row whose F̂ is not finite, naming the likely cause.

    ``value`` and ``row_keys`` are host arrays; ``theta`` may be on the GPU,
    only the offending row is copied to the host.
    """
    if np.isfinite(value).all():
        return
    bad = int(np.flatnonzero(~np.isfinite(value))[0])
    theta_row = np.asarray(to_host(theta[bad]), dtype=np.float64)
    # Redraw that row's noise: perturbed scores that overflow are the
    # caller's ε or θ, not the solver's fault.
    z = sample_noise(seed, row_keys[bad : bad + 1], spec.n_samples, theta.shape[1], spec.noise,
                     spec.antithetic)
    where = f"row {bad} (row key {int(row_keys[bad])})"
    solver, epsilon = spec.solver, spec.epsilon
    if _overflows(spec, theta_row, z[0]):
        raise ValueError(
            f"The perturbed problems of {where} overflow float64 (max |theta| = "
            f"{np.abs(theta_row).max():.3g}, epsilon = {epsilon:.3g}): θ + εZ, "
            "θ ⊙ exp(εZ), or the optimal values <y*, θ̃> and their sum over the samples "
            "are beyond 1.8e308. To fix it, lower epsilon or rescale: divide theta (the "
            "scores or costs) by a constant c, and for additive noise epsilon by the same "
            "c; the structures y_ε are unchanged and the optimal values scale by 1/c."
        )
    raise ValueError(
        f"{type(solver).__name__} could not solve a perturbed problem of {where}. "
        f"{solver._invalid_output_hint(theta_row)}"
    )


def _overflows(spec, theta_row, z):
    """Whether one row's estimates overflow float64 rather than its solver failing.

    Overflow is the perturbed scores θ̃ (M, d), or one of their optimal values
    ``<y*(θ̃), θ̃>``, or the running sum of those values over the samples.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        perturbed, _ = _perturbed_scores(spec, theta_row, z)
        if not np.isfinite(perturbed).all():
            return True
        try:
            y = spec.solver._solve_batch(perturbed)
        except ValueError:  # the solver's own failure
            return False
        if not np.isfinite(y).all():
            return False
        values = np.einsum("md,md->m", y, perturbed)
        return not (np.isfinite(values).all() and np.isfinite(np.cumsum(values)).all())


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


def _estimate_numpy(spec, theta, row_keys, seed, v):
    """Same estimates with the (n, M, d) noise tensor built explicitly.

    The noise is the kernels' keyed noise, so both backends agree up to
    floating-point summation order. Solvers are called on the whole (n·M, d)
    batch, which is what Python (batched) solvers need.
    """
    check_perturbed_batch_memory(theta.shape[0], spec.n_samples, theta.shape[1])
    z = sample_noise(seed, row_keys, spec.n_samples, theta.shape[1], spec.noise, spec.antithetic)
    with np.errstate(over="ignore", invalid="ignore"):  # reported just below
        out = _accumulate(spec, spec.solver._solve_batch, theta, z, v)
    _check_estimated_values(spec, out[2], theta, row_keys, seed)
    return out


def _perturbed_scores(spec, theta, z):
    """θ̃ for noise ``z`` (θ broadcast against it) and the multiplicative factor, or None."""
    epsilon = spec.epsilon
    if spec.multiplicative:
        scale = _array_namespace(z).exp(epsilon * z - 0.5 * epsilon**2)
        return theta * scale, scale
    return theta + (spec.sign * epsilon) * z, None


def _accumulate(spec, solve, theta, z, v):
    """``(y_eps, grad, value, vjp)`` from the noise ``z`` (n, M, d) of every problem.

    Array code in θ's namespace (NumPy, or CuPy for the GPU backend); ``solve``
    maps a batch (n·M, d) of perturbed problems to their structures.
    """
    xp = _array_namespace(theta)
    n, n_samples, d = z.shape
    epsilon, sign, multiplicative = spec.epsilon, spec.sign, spec.multiplicative
    perturbed, scale = _perturbed_scores(spec, theta[:, None, :], z)
    y = solve(perturbed.reshape(n * n_samples, d)).reshape(n, n_samples, d)
    y_eps = y.mean(axis=1)
    value = xp.einsum("nmd,nmd->nm", y, perturbed).mean(axis=1)
    grad = (y * scale).mean(axis=1) if multiplicative else y_eps
    vjp = None
    if v is not None:
        scores = xp.einsum("nmd,nd->nm", y, v)
        g = grad_nu_numpy(z, spec.noise)
        if spec.control_variate and not spec.antithetic and n_samples > 1:
            # Relative to the first sample (as the kernel): equal scores give 0.
            scores = scores - scores[:, :1]
            vjp = xp.einsum("nm,nmd->nd", scores - scores.mean(axis=1, keepdims=True), g)
            vjp /= n_samples - 1
        else:
            vjp = xp.einsum("nm,nmd->nd", scores, g) / n_samples
        vjp = vjp / (epsilon * theta) if multiplicative else vjp * (sign / epsilon)
    return y_eps, grad, value, vjp


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

