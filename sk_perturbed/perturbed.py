"""Perturbed optimizers and the losses built on them (the functional core).

Given a solver ``y*(θ) = argmax_{y ∈ C} <y, θ>``, noise Z with density
∝ exp(-ν(z)) and a scale ε > 0, the perturbed maximizer is
``y_ε(θ) = E[y*(θ + εZ)]`` and the perturbed maximum ``F_ε(θ) = E[max_y <y, θ + εZ>]``;
``∇F_ε = y_ε`` and ``J_θ y_ε(θ) = E[y*(θ + εZ) ∇ν(Z)ᵀ] / ε``. All three are
estimated by Monte Carlo over M perturbations per row.
"""

import functools
import numbers
import threading
import time
from collections import deque, namedtuple

import numpy as np
from scipy.special import softmax
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)

from ._noise import GAUSSIAN, NOISE_IDS, SYMMETRIC_NOISES, _array_namespace
from ._threads import compile_notice, numba_threads, resolve_n_threads
from ._validation import (
    check_device_theta,
    check_on_host,
    check_row_keys,
    check_same_shape,
    check_solver,
    check_theta,
    is_cupy_array,
    to_host,
)
from .solvers._basic import Argmax

__all__ = [
    "PerturbedOptimizer",
    "PerturbedEstimate",
    "fenchel_young_loss",
    "perturbed_squared_loss",
    "squared_loss",
    "blackbox_loss",
    "exact_marginals",
    "jacobian",
]

#: Constraints of the perturbation parameters, shared with the estimators.
PERTURBATION_CONSTRAINTS = {
    "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
    "n_samples": [Interval(numbers.Integral, 1, None, closed="left")],
    "noise": [StrOptions(set(NOISE_IDS))],
    "perturbation": [StrOptions({"additive", "multiplicative"})],
    "antithetic": ["boolean"],
    "control_variate": ["boolean"],
    "random_state": ["random_state"],
    # 0 threads has no meaning; -1 is all of them, -2 all but one, ...
    "n_jobs": [
        Interval(numbers.Integral, 1, None, closed="left"),
        Interval(numbers.Integral, None, -1, closed="right"),
        None,
    ],
    "backend": [StrOptions({"auto", "numba", "numpy", "cupy"})],
}

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


class PerturbedOptimizer:
    """Monte Carlo perturbed optimizer around a combinatorial solver.

    Turns a piecewise-constant solver ``y*(θ)`` into the smooth map
    ``y_ε(θ) = E[y*(θ + εZ)]`` whose Jacobian is never zero, and estimates it,
    the perturbed optimal value and vector–Jacobian products with ``n_samples``
    perturbations per row, in one fused parallel numba loop.

    Parameters
    ----------
    solver : BaseSolver
        The combinatorial oracle, e.g. :class:`~sk_perturbed.solvers.Ranking`.
        For a minimizing solver (``solver.sense == 'min'``) θ is a cost vector
        and every output is in that sense (``y_ε`` is the expected argmin).
    epsilon : float, default=1.0
        Noise scale ε > 0. Small ε: close to ``y*(θ)``, noisy gradients; large
        ε: smooth, biased towards the centre of the structures' hull.
    n_samples : int, default=100
        Number of perturbations M per row.
    noise : {'gaussian', 'normal', 'gumbel'}, default='gaussian'
        Distribution of Z ('normal' is an alias of 'gaussian'). With Gumbel
        noise the perturbed argmax is
        ``softmax(θ / ε)``.
    perturbation : {'additive', 'multiplicative'}, default='additive'
        ``θ + εZ``, or ``θ ⊙ exp(εZ - ε²/2)`` which keeps the sign of each
        entry (for solvers that need positive costs; Gaussian noise only).
    antithetic : bool, default=False
        Draw noise in pairs (Z, -Z); only for symmetric (Gaussian) noise.
        Reduces the variance of ``y_ε`` and ``F̂_ε`` for the same M. The VJP
        then skips the control variate (a pair cancels any shared baseline)
        and is usually *noisier* than with the control variate alone.
    control_variate : bool, default=True
        Subtract a leave-one-out baseline from ``<y*(θ̃), v>`` in the VJP
        estimator; unbiased, and far lower variance when M > 1. Ignored with
        ``antithetic=True``: a pair's partner is not independent of it (the
        baseline would bias the VJP by M/(M-1)), and the pair (Z, -Z) already
        cancels any constant baseline.
    random_state : int, RandomState instance or None, default=None
        With an int, every call draws the same noise for the same row key
        (common random numbers), so calls are reproducible. With None or a
        RandomState, each call draws a fresh seed.
    n_jobs : int, default=None
        Threads of the numba kernels for this call. None: automatic, at most
        numba's current setting (and ``OMP_NUM_THREADS``), shared with other
        Python threads running kernels, and fewer for a small call (about one
        thread per 2**18 entries of noise); -1 uses all of numba's threads.
    backend : {'auto', 'numba', 'numpy', 'cupy'}, default='auto'
        'numba' runs the fused kernels; 'numpy' materializes the (n, M, d)
        noise tensor and calls ``solver`` on whole batches (the path for
        Python solvers); 'cupy' runs on an NVIDIA GPU. 'auto' picks 'cupy' for
        a CuPy θ, else 'numba' when the solver has a numba kernel, else
        'numpy'. CuPy inputs to a call that runs on the CPU ('numba',
        'numpy', or 'auto' with a NumPy θ) raise a ``ValueError``.

    Notes
    -----
    θ may also be a single problem of shape (d,) or a batch of any shape
    (..., d) (then ``v`` has θ's shape and ``row_keys`` its batch shape);
    the outputs keep that batch shape, e.g. ``expected_max`` is a scalar for
    a θ of shape (d,). The public losses and :func:`jacobian` accept the same
    shapes.

    Row ``i`` of a call uses the noise stream keyed by ``(seed, row_keys[i], m)``
    for ``m = 0..M-1``; by default ``row_keys = arange(n)``. Results are
    identical for any number of threads, and a batch split in parts gives the
    same rows when each part passes its own ``row_keys``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.perturbed import PerturbedOptimizer
    >>> from sk_perturbed.solvers import Ranking
    >>> po = PerturbedOptimizer(Ranking(), epsilon=0.5, n_samples=1000, random_state=0)
    >>> soft_ranks = po(np.array([[0.0, 1.0, 3.0]]))
    >>> soft_ranks.round(1)
    array([[1.1, 1.9, 3. ]])
    >>> float(soft_ranks.sum())
    6.0
    """

    def __init__(
        self,
        solver,
        *,
        epsilon=1.0,
        n_samples=100,
        noise="gaussian",
        perturbation="additive",
        antithetic=False,
        control_variate=True,
        random_state=None,
        n_jobs=None,
        backend="auto",
    ):
        self.solver = solver
        self.epsilon = epsilon
        self.n_samples = n_samples
        self.noise = noise
        self.perturbation = perturbation
        self.antithetic = antithetic
        self.control_variate = control_variate
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.backend = backend

    def _params(self):
        return {name: getattr(self, name) for name in PERTURBATION_CONSTRAINTS}

    def _validate(self):
        validate_parameter_constraints(
            PERTURBATION_CONSTRAINTS, self._params(), caller_name=type(self).__name__
        )
        check_solver(self.solver)
        if not np.isfinite(1.0 / self.epsilon):
            # The Jacobian estimators divide by ε.
            raise ValueError(
                f"epsilon={self.epsilon!r} is too small: 1/epsilon overflows float64."
            )
        if self.antithetic and self.noise not in SYMMETRIC_NOISES:
            raise ValueError(
                f"antithetic=True needs symmetric noise (one of {SYMMETRIC_NOISES}), "
                f"got noise={self.noise!r}."
            )
        _check_noise_and_perturbation(self.noise, self.perturbation)

    def _draw_seed(self):
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state) & 0xFFFFFFFFFFFFFFFF
        rng = check_random_state(self.random_state)
        return int(rng.randint(np.iinfo(np.int64).max))

    def estimate(self, theta, v=None, *, row_keys=None, seed=None):
        """All Monte Carlo estimates in one pass over the perturbed problems.

        Parameters
        ----------
        theta : array-like of shape (n, d), (d,) or (..., d)
            Scores (or costs for a minimizing solver), one problem per row.
        v : array-like of shape (n, d), default=None
            Cotangent for the vector–Jacobian product; None skips it.
        row_keys : array-like of int of shape (n,), default=None
            Noise key of each row; ``arange(n)`` by default.
        seed : int, default=None
            Overrides the seed drawn from ``random_state`` (used by the
            estimators to key noise by epoch).

        Returns
        -------
        estimate : PerturbedEstimate
            ``y_eps``, ``expected_max``, ``expected_max_grad`` and ``vjp``,
            in θ's floating dtype when it is float32, else float64.
        """
        lead = _batch_shape(theta)
        if lead is not None:
            rows = _to_rows(theta, lead)
            estimate = self.estimate(
                rows, _to_rows(v, lead, "v", rows.shape), row_keys=_keys_to_rows(row_keys, lead),
                seed=seed,
            )
            return PerturbedEstimate(*(_from_rows(a, lead) for a in estimate))
        self._validate()
        if self._check_placement(theta, v, row_keys):
            # The GPU path validates CuPy inputs on the device (no host copy).
            _require_cupy()
            from ._cupy_backend import estimate_for

            return estimate_for(self, theta, v, row_keys=row_keys, seed=seed)
        out_dtype = _output_dtype(theta)
        theta_checked = check_theta(theta, self.solver)
        want_vjp = v is not None
        if want_vjp:
            v = check_same_shape(v, theta_checked, "v")
            if self.perturbation == "multiplicative" and np.any(theta_checked == 0):
                raise ValueError(
                    "The Jacobian of a multiplicative perturbation is undefined where "
                    "theta == 0; use perturbation='additive' or keep theta away from 0."
                )
        keys = check_row_keys(row_keys, theta_checked.shape[0])
        seed = self._draw_seed() if seed is None else int(seed) & 0xFFFFFFFFFFFFFFFF
        backend = self._resolve_backend(theta)
        args = dict(
            theta=theta_checked,
            row_keys=keys,
            seed=seed,
            n_samples=int(self.n_samples),
            epsilon=float(self.epsilon),
            noise=self.noise,
            multiplicative=self.perturbation == "multiplicative",
            antithetic=bool(self.antithetic),
            sign=self.solver._sign,
            v=v,
            control_variate=bool(self.control_variate),
        )
        if backend == "numba":
            y, grad, value, vjp = _estimate_numba(self.solver, self.n_jobs, **args)
        else:
            y, grad, value, vjp = _estimate_numpy(self.solver, **args)
        cast = lambda a: None if a is None else a.astype(out_dtype, copy=False)  # noqa: E731
        return PerturbedEstimate(cast(y), cast(value), cast(grad), cast(vjp))

    def _runs_on_gpu(self, theta):
        return self.backend == "cupy" or (self.backend == "auto" and is_cupy_array(theta))

    def _check_placement(self, theta, v=None, row_keys=None):
        """Whether a call on these inputs runs on the GPU.

        A CuPy input to a call that runs on the CPU raises a ``ValueError``
        naming the backend (CuPy would refuse the implicit copy to the host
        with a ``TypeError`` from deep inside NumPy).
        """
        if self._runs_on_gpu(theta):
            return True
        where = (
            "backend='auto' with a NumPy theta" if self.backend == "auto"
            else f"backend={self.backend!r}"
        )
        check_on_host(
            where, "use backend='cupy' (or 'auto' with a CuPy theta), or pass NumPy arrays "
            "(a.get()).", theta=theta, v=v, row_keys=row_keys,
        )
        return False

    def _resolve_backend(self, theta):
        from .solvers._registry import numba_solver_arg

        backend = self.backend
        if self._runs_on_gpu(theta):
            _require_cupy()
            return "cupy"
        if backend == "auto":
            return "numba" if numba_solver_arg(self.solver) is not None else "numpy"
        if backend == "numba" and numba_solver_arg(self.solver) is None:
            raise ValueError(
                f"backend='numba' needs a solver with a numba kernel; {type(self.solver).__name__} "
                "solves in Python: use backend='numpy' or 'auto'."
            )
        return backend

    def __call__(self, theta, *, row_keys=None):
        """Perturbed maximizer ``y_ε(θ)``, shape (n, d).

        Parameters
        ----------
        theta : array-like of shape (n, d), (d,) or (..., d)
            Scores (or costs for a minimizing solver), one problem per row.
        row_keys : array-like of int of shape (n,), default=None
            Noise key of each row; ``arange(n)`` by default.

        Returns
        -------
        y_eps : ndarray of shape (n, d)
            Monte Carlo estimate of ``E[y*(θ + εZ)]`` for each row.
        """
        return self.estimate(theta, row_keys=row_keys).y_eps

    def expected_max(self, theta, *, row_keys=None):
        """Perturbed optimal value ``F̂_ε(θ)``, shape (n,).

        Parameters
        ----------
        theta : array-like of shape (n, d), (d,) or (..., d)
            Scores (or costs for a minimizing solver), one problem per row.
        row_keys : array-like of int of shape (n,), default=None
            Noise key of each row; ``arange(n)`` by default.

        Returns
        -------
        expected_max : ndarray of shape (n,)
            Monte Carlo estimate of ``E[max_y <y, θ + εZ>]`` for each row (the
            expected minimum for a minimizing solver).
        """
        return self.estimate(theta, row_keys=row_keys).expected_max

    def vjp(self, theta, v, *, row_keys=None):
        """Vector–Jacobian product ``vᵀ J_θ y_ε(θ)``, shape (n, d).

        Parameters
        ----------
        theta : array-like of shape (n, d), (d,) or (..., d)
            Scores (or costs for a minimizing solver), one problem per row.
        v : array-like of shape (n, d)
            Cotangent: one vector per row.
        row_keys : array-like of int of shape (n,), default=None
            Noise key of each row; ``arange(n)`` by default.

        Returns
        -------
        vjp : ndarray of shape (n, d)
            Monte Carlo estimate of ``vᵀ J_θ y_ε(θ)`` for each row.
        """
        return self.estimate(theta, v, row_keys=row_keys).vjp

    def __repr__(self):
        params = ", ".join(f"{k}={getattr(self, k)!r}" for k in ["solver", *PERTURBATION_CONSTRAINTS])
        return f"{type(self).__name__}({params})"


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


def _estimate_numba(
    solver, n_jobs, *, theta, row_keys, seed, n_samples, epsilon, noise,
    multiplicative, antithetic, sign, v, control_variate, solver_arg=None, n_threads=None,
):
    from ._kernels import perturbed_kernel
    from .solvers._registry import numba_solver_arg

    if solver_arg is None:
        solver_arg = numba_solver_arg(solver)
    want_vjp = v is not None
    n, d = theta.shape
    if n_threads is None:
        n_threads = _kernel_threads(n_jobs, n, n_samples, d)
    rows = max(1, _CHUNK_ENTRIES // max(1, n_samples * d))
    outputs = []
    with numba_threads(n_threads), _compile_notice(solver, solver_arg):
        # Chunks of rows: a Ctrl-C is seen between two chunks (a signal
        # cannot stop a compiled loop); rows do not depend on the split.
        for start in range(0, n, rows):
            part = slice(start, start + rows)
            outputs.append(perturbed_kernel(
                theta[part], row_keys[part], np.uint64(seed), n_samples, epsilon,
                NOISE_IDS[noise], multiplicative, antithetic, sign,
                v[part] if want_vjp else np.zeros((0, d)),
                want_vjp, control_variate, solver_arg,
            ))
    if len(outputs) == 1:
        y, grad, value, vjp = outputs[0]
    else:
        y, value, vjp = (np.concatenate([out[k] for out in outputs]) for k in (0, 2, 3))
        grad = np.concatenate([out[1] for out in outputs]) if multiplicative else y
    # Exceptions raised inside numba's parallel loops are unreliable, so row
    # kernels flag a problem they cannot solve with NaN and it is raised here.
    _check_estimated_values(
        solver, value, theta=theta, row_keys=row_keys, seed=seed, n_samples=n_samples,
        epsilon=epsilon, noise=noise, multiplicative=multiplicative, antithetic=antithetic,
    )
    return y, grad, value, (vjp if want_vjp else None)


def _compile_notice(solver, solver_arg):
    return compile_notice(type(solver).__name__, cached=isinstance(solver_arg, tuple))


def _check_estimated_values(
    solver, value, *, theta, row_keys, seed, n_samples, epsilon, noise, multiplicative,
    antithetic,
):
    """Raise for the first row whose F̂ is not finite, naming the likely cause.

    ``value`` and ``row_keys`` are host arrays; ``theta`` may be on the GPU,
    only the offending row is copied to the host.
    """
    if np.isfinite(value).all():
        return
    from ._noise import sample_noise

    bad = int(np.flatnonzero(~np.isfinite(value))[0])
    theta_row = np.asarray(to_host(theta[bad]), dtype=np.float64)
    # Redraw that row's noise: perturbed scores that overflow are the
    # caller's ε or θ, not the solver's fault.
    z = sample_noise(seed, row_keys[bad : bad + 1], n_samples, theta.shape[1], noise, antithetic)
    where = f"row {bad} (row key {int(row_keys[bad])})"
    if _overflows(solver, theta_row, z[0], epsilon, multiplicative):
        raise ValueError(
            f"The perturbed problems of {where} overflow float64 (max |theta| = "
            f"{np.abs(theta_row).max():.3g}, epsilon = {epsilon:.3g}): θ + εZ, "
            "θ ⊙ exp(εZ), or the optimal values <y*, θ̃> and their sum over the samples "
            "are beyond 1.8e308. To fix it, lower epsilon or rescale: divide theta (the scores or costs) by a constant "
            "c, and for additive noise epsilon by the same c; the structures y_ε are "
            "unchanged and the optimal values scale by 1/c."
        )
    raise ValueError(
        f"{type(solver).__name__} could not solve a perturbed problem of {where}. "
        f"{solver._invalid_output_hint(theta_row)}"
    )


def _overflows(solver, theta_row, z, epsilon, multiplicative):
    """Whether one row's estimates overflow float64 rather than its solver failing.

    Overflow is the perturbed scores θ̃ (M, d), or one of their optimal values
    ``<y*(θ̃), θ̃>``, or the running sum of those values over the samples.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        perturbed, _ = _perturbed_scores(theta_row, z, epsilon, multiplicative, solver._sign)
        if not np.isfinite(perturbed).all():
            return True
        try:
            y = solver._solve_batch(perturbed)
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
        self.gumbel_argmax = _is_gumbel_argmax(po)
        self.solver_arg = None
        if po.backend in ("auto", "numba"):
            from .solvers._registry import numba_solver_arg

            self.solver_arg = numba_solver_arg(po.solver)
        self.usable = self.gumbel_argmax or self.solver_arg is not None
        self.sign = po.solver._sign
        self.kernel_args = dict(
            n_samples=int(po.n_samples),
            epsilon=float(po.epsilon),
            noise=po.noise,
            multiplicative=po.perturbation == "multiplicative",
            antithetic=bool(po.antithetic),
            sign=self.sign,
            control_variate=bool(po.control_variate),
        )

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
        seed = self.po._draw_seed() if seed is None else int(seed) & 0xFFFFFFFFFFFFFFFF
        n_threads, record = None, None
        if self.po.n_jobs is None:  # an explicit n_jobs is obeyed (_kernel_threads)
            n_threads, record = _THREAD_TUNER.choose(
                (v is not None, (theta64.size * self.kernel_args["n_samples"]).bit_length()),
                resolve_n_threads(None),
            )
        start = time.perf_counter()
        out = _estimate_numba(
            self.po.solver, self.po.n_jobs, theta=theta64, row_keys=keys, seed=seed, v=v,
            solver_arg=self.solver_arg, n_threads=n_threads, **self.kernel_args,
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
            return _gumbel_argmax_fenchel_young(theta64, y64, float(prepared.po.epsilon))
        _, grad, value, _ = prepared.estimate(theta64, keys, seed)
        return _fenchel_young_from(theta64, y64, cast(value), cast(grad), prepared.sign)
    if prepared.solver_arg is None:
        return None
    if prepared.kernel_args["multiplicative"] and np.any(theta64 == 0):
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


def _gumbel_argmax_fenchel_young(theta, y, epsilon):
    """Exact FY loss of Gumbel-perturbed argmax: F_ε(θ) = ε logsumexp(θ/ε) + εγ."""
    xp = _array_namespace(theta)
    # ε logsumexp(θ/ε) = max θ + ε log Σ exp((θ - max θ)/ε): the shift comes
    # before the division, so a tiny ε cannot overflow θ/ε (inf - inf = NaN).
    top = theta.max(axis=1, keepdims=True)
    weights = xp.exp((theta - top) / epsilon)
    total = weights.sum(axis=1, keepdims=True)
    value = top[:, 0] + epsilon * xp.log(total)[:, 0] + epsilon * np.euler_gamma
    return value - _rowwise_dot(theta, y), weights / total - y


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


def _estimate_numpy(
    solver, *, theta, row_keys, seed, n_samples, epsilon, noise,
    multiplicative, antithetic, sign, v, control_variate,
):
    """Same estimates with the (n, M, d) noise tensor built explicitly.

    The noise is the kernels' keyed noise, so both backends agree up to
    floating-point summation order. Solvers are called on the whole (n·M, d)
    batch, which is what Python (batched) solvers need.
    """
    from ._noise import sample_noise

    z = sample_noise(seed, row_keys, n_samples, theta.shape[1], noise, antithetic)
    with np.errstate(over="ignore", invalid="ignore"):  # reported just below
        out = _accumulate(
            solver._solve_batch, theta, z, epsilon=epsilon, noise=noise,
            multiplicative=multiplicative, antithetic=antithetic, sign=sign, v=v,
            control_variate=control_variate,
        )
    _check_estimated_values(
        solver, out[2], theta=theta, row_keys=row_keys, seed=seed, n_samples=n_samples,
        epsilon=epsilon, noise=noise, multiplicative=multiplicative, antithetic=antithetic,
    )
    return out


def _perturbed_scores(theta, z, epsilon, multiplicative, sign):
    """θ̃ for noise ``z`` (θ broadcast against it) and the multiplicative factor, or None."""
    if multiplicative:
        scale = _array_namespace(z).exp(epsilon * z - 0.5 * epsilon**2)
        return theta * scale, scale
    return theta + (sign * epsilon) * z, None


def _accumulate(
    solve, theta, z, *, epsilon, noise, multiplicative, antithetic, sign, v, control_variate,
):
    """``(y_eps, grad, value, vjp)`` from the noise ``z`` (n, M, d) of every problem.

    Array code in θ's namespace (NumPy, or CuPy for the GPU backend); ``solve``
    maps a batch (n·M, d) of perturbed problems to their structures.
    """
    from ._noise import grad_nu_numpy

    xp = _array_namespace(theta)
    n, n_samples, d = z.shape
    perturbed, scale = _perturbed_scores(theta[:, None, :], z, epsilon, multiplicative, sign)
    y = solve(perturbed.reshape(n * n_samples, d)).reshape(n, n_samples, d)
    y_eps = y.mean(axis=1)
    value = xp.einsum("nmd,nmd->nm", y, perturbed).mean(axis=1)
    grad = (y * scale).mean(axis=1) if multiplicative else y_eps
    vjp = None
    if v is not None:
        scores = xp.einsum("nmd,nd->nm", y, v)
        g = grad_nu_numpy(z, noise)
        if control_variate and not antithetic and n_samples > 1:
            # Relative to the first sample (as the kernel): equal scores give 0.
            scores = scores - scores[:, :1]
            vjp = xp.einsum("nm,nmd->nd", scores - scores.mean(axis=1, keepdims=True), g)
            vjp /= n_samples - 1
        else:
            vjp = xp.einsum("nm,nmd->nd", scores, g) / n_samples
        vjp = vjp / (epsilon * theta) if multiplicative else vjp * (sign / epsilon)
    return y_eps, grad, value, vjp


def _is_gumbel_argmax(po):
    return (
        type(po.solver) is Argmax and po.noise == "gumbel" and po.perturbation == "additive"
    )


_HERMITE_NODES = 80
_MAX_EXACT_ARGMAX_D = 256


def exact_marginals(po, theta):
    """``y_ε(θ)`` without Monte Carlo error where a closed form exists, else None.

    For :class:`Argmax` with additive noise: Gumbel gives ``softmax(θ/ε)``;
    Gaussian gives ``P(i wins) = E_z[Π_{j≠i} Φ((θ_i - θ_j)/ε + z)]``, a 1-D
    integral computed by Gauss–Hermite quadrature (for d ≤ 256). Both are
    monotone in θ, so their argmax is the argmax of θ. The quadrature (80
    nodes) is deterministic but not exact to the last digit: its largest
    relative error on a probability, measured against a fine trapezoid rule,
    is about 5e-12 for 10 classes, 2e-6 for 50, 2e-5 for 100 and 2e-4 for
    256.

    Parameters
    ----------
    po : PerturbedOptimizer
        Supplies the solver, ε, the noise and the perturbation.
    theta : array-like of shape (n, d)
        Scores, on the host: a CuPy θ raises a ``ValueError`` (this runs on
        NumPy and SciPy; ``po(theta)`` estimates ``y_ε`` on the GPU).

    Returns
    -------
    y_eps : ndarray of shape (n, d) or None
        The exact ``y_ε(θ)``, or None when no closed form is known for
        ``po`` (then use ``po(theta)``).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.perturbed import PerturbedOptimizer, exact_marginals
    >>> from sk_perturbed.solvers import Argmax, Ranking
    >>> po = PerturbedOptimizer(Argmax(), noise="gumbel")
    >>> exact_marginals(po, np.array([[0.0, np.log(3.0)]])).round(3)  # softmax
    array([[0.25, 0.75]])
    >>> exact_marginals(PerturbedOptimizer(Ranking()), np.array([[0.0, 1.0]])) is None
    True
    """
    check_on_host(
        "exact_marginals", "it computes with NumPy and SciPy; pass theta.get(), or estimate "
        "y_ε on the GPU with po(theta).", theta=theta,
    )
    if not isinstance(po, PerturbedOptimizer):
        raise TypeError(f"po must be a PerturbedOptimizer, got {type(po).__name__}.")
    # As po(theta) would: a negative epsilon would silently reverse the classes.
    po._validate()
    if type(po.solver) is not Argmax or po.perturbation != "additive":
        return None
    theta = np.asarray(theta, dtype=np.float64)
    # Shift by the row maximum first: θ - max θ cannot overflow where θ/ε
    # would (a tiny ε, a huge θ) and would clip distinct scores to one tie.
    # Then -1e300 already makes a gap decisive and keeps the differences of
    # two scaled scores finite.
    with np.errstate(over="ignore"):
        scaled = np.maximum((theta - theta.max(axis=1, keepdims=True)) / po.epsilon, -1e300)
    if po.noise == "gumbel":
        return softmax(scaled, axis=1)
    if theta.shape[1] > _MAX_EXACT_ARGMAX_D:
        return None
    from scipy.special import log_ndtr

    nodes, weights = np.polynomial.hermite.hermgauss(_HERMITE_NODES)
    z = np.sqrt(2.0) * nodes  # E over z ~ N(0, 1)
    out = np.empty_like(theta)
    for i in range(theta.shape[1]):
        gaps = scaled[:, i : i + 1] - scaled  # (n, d); the j = i column is 0
        log_terms = log_ndtr(gaps[:, :, None] + z) .sum(axis=1) - log_ndtr(z)
        out[:, i] = np.exp(log_terms) @ weights / np.sqrt(np.pi)
    return out / out.sum(axis=1, keepdims=True)


def jacobian(po, theta, *, row_keys=None, seed=None):
    """Monte Carlo Jacobian ``J_θ y_ε(θ)`` of every row, shape (..., d, d).

    ``J[..., a, b] = ∂ y_ε(θ)_a / ∂ θ_b``. Row ``a`` is the vector–Jacobian
    product with the basis vector ``e_a``; the d products of a row are
    estimated from the same draws (the row's noise key and one seed), in one
    pass of ``po.vjp`` over d copies of each row, so a call costs d times a
    VJP.

    Parameters
    ----------
    po : PerturbedOptimizer
        Supplies the solver, ε, M, the noise and the seed.
    theta : array-like or cupy.ndarray of shape (n, d), (d,) or (..., d)
        Scores (or costs for a minimizing solver).
    row_keys : array-like of int of theta's batch shape, default=None
        Noise key of each row.
    seed : int, default=None
        Overrides the optimizer's seed.

    Returns
    -------
    jacobian : ndarray of shape (..., d, d)
        The estimated Jacobian of each row, in θ's namespace and float dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.perturbed import PerturbedOptimizer, jacobian
    >>> from sk_perturbed.solvers import Argmax
    >>> po = PerturbedOptimizer(Argmax(), noise="gumbel", n_samples=20000, random_state=0)
    >>> J = jacobian(po, np.array([0.0, 0.0]))  # (diag(p) - p pᵀ) / ε with p = (½, ½)
    >>> J.shape, bool(np.abs(J - [[0.25, -0.25], [-0.25, 0.25]]).max() < 0.02)
    ((2, 2), True)
    """
    if not isinstance(po, PerturbedOptimizer):
        raise TypeError(f"po must be a PerturbedOptimizer, got {type(po).__name__}.")
    lead = _batch_shape(theta)
    if lead is not None:
        rows = _to_rows(theta, lead)
        J = jacobian(po, rows, row_keys=_keys_to_rows(row_keys, lead), seed=seed)
        return J.reshape(lead + J.shape[1:])
    po._validate()
    po._check_placement(theta, row_keys=row_keys)
    xp = _array_namespace(theta)
    if xp is np:
        theta = check_theta(theta, po.solver)
    n, d = theta.shape
    keys = check_row_keys(row_keys, n) if xp is np else (
        xp.arange(n, dtype=xp.int64) if row_keys is None else row_keys
    )
    seed = po._draw_seed() if seed is None else seed
    # Copy (i, a) of row i has the row's key and cotangent e_a.
    copies = xp.repeat(theta, d, axis=0)
    basis = xp.tile(xp.eye(d, dtype=copies.dtype), (n, 1))
    vjp = po.estimate(copies, basis, row_keys=xp.repeat(keys, d), seed=seed).vjp
    return vjp.reshape(n, d, d)


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


@_any_batch_shape
def fenchel_young_loss(theta, y, po, *, row_keys=None, seed=None):
    """Perturbed Fenchel–Young loss and its gradient in θ.

    ``L_ε(θ; y) = F_ε(θ) + εΩ(y) - <θ, y>`` is convex in θ, non-negative and
    zero iff ``y = y_ε(θ)``; its gradient ``y_ε(θ) - y`` needs no Jacobian.
    Ω is not computable in general, so the value returned is
    ``F̂_ε(θ) - <θ, y>``, which differs from ``L_ε`` by ``εΩ(y)``, a constant per
    target. The estimate can be negative for small ``n_samples`` (its
    expectation is not). For a minimizing solver θ is a cost vector and the loss is
    ``<θ, y> - F̂_ε(θ)`` with gradient ``y - y_ε(θ)``.

    With Gumbel noise, additive perturbation and :class:`Argmax`, both value
    and gradient are exact: ``F_ε(θ) = ε logsumexp(θ/ε) + εγ`` and the gradient
    is ``softmax(θ/ε) - y`` (the loss is then the logistic loss, up to the
    constant).

    A CuPy θ is validated and the loss computed on its device, and the
    outputs are CuPy arrays (as for :class:`PerturbedOptimizer`); ``y`` may
    be a NumPy or a CuPy array either way, and is moved to θ's side.

    Parameters
    ----------
    theta : array-like or cupy.ndarray of shape (n, d)
        Raw scores (or costs).
    y : array-like or cupy.ndarray of shape (n, d)
        Target structures (points of the solver's hull).
    po : PerturbedOptimizer
        Supplies the solver, ε, M, noise and seed.
    row_keys : array-like of int of shape (n,), default=None
        Noise key of each row.
    seed : int, default=None
        Overrides the optimizer's seed.

    Returns
    -------
    loss : ndarray of shape (n,)
        ``F̂_ε(θ) - <θ, y>`` for each row (the FY loss minus ``εΩ(y)``).
    grad : ndarray of shape (n, d)
        ``y_ε(θ) - y`` for each row (``y - y_ε(θ)`` for a minimizing solver).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.perturbed import PerturbedOptimizer, fenchel_young_loss
    >>> from sk_perturbed.solvers import Argmax
    >>> po = PerturbedOptimizer(Argmax(), noise="gumbel", random_state=0)
    >>> loss, grad = fenchel_young_loss(np.array([[2.0, 0.0]]), np.array([[1.0, 0.0]]), po)
    >>> grad.round(3)
    array([[-0.119,  0.119]])
    """
    po._validate()
    po._check_placement(theta, row_keys=row_keys)
    theta64, y = _loss_inputs(theta, y, po.solver)
    if _is_gumbel_argmax(po):
        return _gumbel_argmax_fenchel_young(theta64, y, float(po.epsilon))
    est = po.estimate(theta, row_keys=row_keys, seed=seed)
    return _fenchel_young_from(theta64, y, est.expected_max, est.expected_max_grad, po.solver._sign)


@_any_batch_shape
def perturbed_squared_loss(theta, y, po, *, row_keys=None, seed=None):
    """``½‖y - y_ε(θ)‖²`` and its gradient ``(y_ε(θ) - y)ᵀ J_θ y_ε(θ)``.

    The gradient back-propagates through the perturbed maximizer with the
    Monte Carlo vector–Jacobian product of ``po``. Both estimates use the same
    draws, so the gradient estimate has a bias of order 1/M.

    A CuPy θ is validated and the loss computed on its device, and the
    outputs are CuPy arrays (as for :class:`PerturbedOptimizer`); ``y`` may
    be a NumPy or a CuPy array either way, and is moved to θ's side.

    Parameters
    ----------
    theta : array-like or cupy.ndarray of shape (n, d)
        Raw scores (or costs).
    y : array-like or cupy.ndarray of shape (n, d)
        Target structures.
    po : PerturbedOptimizer
        Supplies the solver, ε, M, noise and seed.
    row_keys : array-like of int of shape (n,), default=None
        Noise key of each row.
    seed : int, default=None
        Overrides the optimizer's seed.

    Returns
    -------
    loss : ndarray of shape (n,)
        ``½‖y - y_ε(θ)‖²`` for each row.
    grad : ndarray of shape (n, d)
        Its gradient in θ for each row.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.perturbed import PerturbedOptimizer, perturbed_squared_loss
    >>> from sk_perturbed.solvers import Ranking
    >>> po = PerturbedOptimizer(Ranking(), epsilon=0.5, n_samples=100, random_state=0)
    >>> loss, grad = perturbed_squared_loss([[0.0, 1.0, 2.0]], [[3.0, 2.0, 1.0]], po)
    >>> loss.shape, grad.shape
    ((1,), (1, 3))
    """
    po._validate()
    po._check_placement(theta, row_keys=row_keys)
    _, y = _loss_inputs(theta, y, po.solver)
    seed = po._draw_seed() if seed is None else seed
    return _perturbed_squared_from(
        lambda v: po.estimate(theta, v, row_keys=row_keys, seed=seed)[::3], y
    )


@_any_batch_shape
def squared_loss(theta, y):
    """``½‖y - θ‖²`` and its gradient ``θ - y`` (regression on the targets).

    A CuPy θ is validated and the loss computed on its device, and the
    outputs are CuPy arrays (as for :class:`PerturbedOptimizer`); ``y`` may
    be a NumPy or a CuPy array either way, and is moved to θ's side.

    Parameters
    ----------
    theta : array-like or cupy.ndarray of shape (n, d)
        Raw scores.
    y : array-like or cupy.ndarray of shape (n, d)
        Targets.

    Returns
    -------
    loss : ndarray of shape (n,)
        ``½‖y - θ‖²`` for each row.
    grad : ndarray of shape (n, d)
        ``θ - y``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.perturbed import squared_loss
    >>> squared_loss(np.array([[1.0, 2.0]]), np.array([[0.0, 2.0]]))
    (array([0.5]), array([[1., 0.]]))
    """
    return _squared_from(*_loss_inputs(theta, y, None))


@_any_batch_shape
def blackbox_loss(theta, y, solver, *, lambda_=10.0):
    """``½‖y - y*(θ)‖²`` with the interpolation gradient of Vlastelica et al. (2019).

    The solver's true gradient is zero almost everywhere; the blackbox
    gradient is that of a piecewise-affine interpolation of the loss:
    with ``g = y*(θ) - y``, ``∇ ≈ (y*(θ) - y*(θ - λg)) / λ`` in the
    maximization form (for a minimizing solver, θ are costs and the same rule
    applies to ``-θ``).

    A CuPy θ is validated and the loss computed on its device, and the
    outputs are CuPy arrays (as for :class:`PerturbedOptimizer`); ``y`` may
    be a NumPy or a CuPy array either way, and is moved to θ's side.
    The solver then runs on the GPU where it has a GPU form (see
    ``backend='cupy'`` of :class:`PerturbedOptimizer`), else on the host.

    Parameters
    ----------
    theta : array-like or cupy.ndarray of shape (n, d)
        Raw scores (or costs for a minimizing solver).
    y : array-like or cupy.ndarray of shape (n, d)
        Target structures.
    solver : BaseSolver
        The combinatorial oracle.
    lambda_ : float, default=10.0
        Interpolation step λ > 0: larger steps see structures further away.

    Returns
    -------
    loss : ndarray of shape (n,)
        ``½‖y - y*(θ)‖²`` for each row.
    grad : ndarray of shape (n, d)
        The interpolation gradient for each row.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.perturbed import blackbox_loss
    >>> from sk_perturbed.solvers import Ranking
    >>> loss, grad = blackbox_loss(np.array([[0.0, 1.0, 2.0]]), np.array([[3.0, 2.0, 1.0]]),
    ...                            Ranking())
    >>> loss, grad
    (array([4.]), array([[-0.2,  0. ,  0.2]]))
    """
    if not (isinstance(lambda_, numbers.Real) and lambda_ > 0 and np.isfinite(lambda_)):
        raise ValueError(f"lambda_ must be a finite float > 0, got {lambda_!r}.")
    theta, y = _loss_inputs(theta, y, solver)
    solve = solver._solve_batch
    if is_cupy_array(theta):
        from ._cupy_backend import get_device, gpu_solver

        solve, _ = gpu_solver(get_device(), solver)
    return _blackbox_from(theta, y, solve, solver._sign, lambda_, solver.requires_positive)
