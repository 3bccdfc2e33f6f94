"""Wrap any Python (or numba-jitted) function as a solver."""

import numbers
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from joblib import effective_n_jobs
from numba.core.dispatcher import Dispatcher

from ._base import BaseSolver
from ._utils import check_int


def _function_name(func):
    return getattr(func, "__name__", None) or type(func).__name__


def _is_numba_dispatcher(func):
    # CPUDispatcher (what @njit returns) subclasses numba.core.dispatcher.Dispatcher.
    return isinstance(func, Dispatcher)


class CallableSolver(BaseSolver):
    """A solver given by a function: θ (d,) → y (d,), or batched (n, d) → (n, d).

    Wraps a user oracle so that it can be used by
    :class:`~sk_perturbed.perturbed.PerturbedOptimizer` and the estimators.
    A plain Python function is called on each perturbed problem (n·M of them
    per call of the perturbed optimizer), optionally on a thread pool: this
    pays off when the function releases the GIL (NumPy, SciPy, compiled
    solvers such as OR-Tools or Gurobi). Its outputs are checked: shape,
    numeric dtype, finite values.

    A numba ``@njit`` function (with ``batched=False``) instead runs inside
    the parallel numba kernels, with no Python overhead per problem. The
    kernels that call it cannot be cached on disk, so they are compiled once
    per process (the first call takes a few seconds), and its outputs are
    checked for length only.

    Parameters
    ----------
    func : callable
        The oracle. With ``batched=False`` it takes one θ of shape (d,) and
        returns the optimal structure of shape (d,); with ``batched=True`` it
        takes (n, d) and returns (n, d). It must not modify its input: a
        Python function receives read-only arrays; an ``@njit`` function
        gets the kernels' buffers, where a write goes unnoticed.
    batched : bool, default=False
        Whether ``func`` solves a whole batch per call.
    sense : {'max', 'min'}, default='max'
        Whether ``func`` maximizes scores or minimizes costs. (A plain
        function passed as ``solver=`` to
        :class:`~sk_perturbed.PerturbedStructuredClassifier` has its sense
        inferred at fit instead.)
    n_jobs : int, default=None
        Threads calling a Python ``func`` concurrently: None or 1 calls it
        sequentially, -1 uses all CPUs (joblib's convention). The rows are
        split in contiguous chunks, one task per chunk. Ignored for a numba
        function, which runs in the numba kernels' threads.
    d : int, default=None
        The length of θ that ``func`` expects, checked on every call; None
        accepts any length.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.solvers import CallableSolver
    >>> def sign_solver(theta):
    ...     return (theta > 0).astype(float)
    >>> solver = CallableSolver(sign_solver)
    >>> solver(np.array([[0.5, -1.0, 2.0]]))
    array([[1., 0., 1.]])
    >>> solver.get_params()["func"] is sign_solver
    True
    """

    def __init__(self, func, batched=False, sense="max", n_jobs=None, d=None):
        self.func = func
        self.batched = batched
        self.sense = sense
        self.n_jobs = n_jobs
        self.d = d

    def _validate_params(self):
        if not callable(self.func):
            raise ValueError(f"CallableSolver: func must be callable, got {self.func!r}.")
        if not isinstance(self.batched, (bool, np.bool_)):
            raise ValueError(f"CallableSolver: batched must be a bool, got {self.batched!r}.")
        if self.sense not in ("max", "min"):
            raise ValueError(f"CallableSolver: sense must be 'max' or 'min', got {self.sense!r}.")
        if self.n_jobs is not None and (
            not isinstance(self.n_jobs, numbers.Integral) or self.n_jobs == 0
        ):
            raise ValueError(
                f"CallableSolver: n_jobs must be None or a non-zero integer, got {self.n_jobs!r}."
            )
        if self.d is not None:
            check_int(self.d, "d", "CallableSolver", min_value=1)

    def dimension(self):
        """The length ``d`` of θ given at construction, or None.

        Returns
        -------
        d : int or None
            The parameter ``d``: None when ``func`` accepts any length.
        """
        return self.d

    def _check_dimension(self, d):
        if self.d is not None and d != self.d:
            raise ValueError(
                f"CallableSolver({_function_name(self.func)}) expects θ with "
                f"{self.d} columns, got {d}."
            )

    def _numba_function(self):
        if _is_numba_dispatcher(self.func) and not self.batched:
            return self.func
        return None

    def _invalid_output_hint(self, theta_row):
        # Inside the kernels a wrong length or a NaN only shows as a non-finite
        # result: call the function on the row's θ from Python to name the fault.
        name = _function_name(self.func)
        self._call(theta_row.copy(), name)  # raises on a wrong shape or dtype
        return (
            f"CallableSolver({name}) returned NaN or infinite values for the θ of that row "
            "or a perturbed copy of it."
        )

    def _solve_batch(self, theta):
        self._validate_params()
        name = _function_name(self.func)
        if self._numba_function() is not None:
            # Exceptions raised inside numba's parallel loops are unreliable:
            # try the function on one row from Python first, where they are not.
            self._call(theta[0].copy(), name)
            # solve_batch raises for rows the kernel returns non-finite, naming the function.
            return super()._solve_batch(theta)
        # The function sees read-only views: it must not alter the batch.
        theta = theta.view()
        theta.flags.writeable = False
        out = np.empty(theta.shape)
        n_workers = 1 if self.n_jobs in (None, 1) else effective_n_jobs(self.n_jobs)
        if n_workers == 1:
            self._solve_chunk(theta, out, 0, theta.shape[0], name)
            return _check_finite(out, name)
        # A few chunks per worker balance uneven solve times.
        n_chunks = min(theta.shape[0], 4 * n_workers)
        bounds = np.linspace(0, theta.shape[0], n_chunks + 1).astype(np.int64)
        with ThreadPoolExecutor(max_workers=n_workers) as executor:
            futures = [
                executor.submit(self._solve_chunk, theta, out, start, stop, name)
                for start, stop in zip(bounds[:-1], bounds[1:])
            ]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return _check_finite(out, name)

    def _solve_chunk(self, theta, out, start, stop, name):
        # Each chunk writes its own rows of ``out``: no locking needed.
        if self.batched:
            out[start:stop] = self._call(theta[start:stop], name)
        else:
            for i in range(start, stop):
                out[i] = self._call(theta[i], name)

    def _call(self, theta, name):
        """Call the function once; check the type and shape of its answer.

        Finiteness is checked once per batch, on the float64 output.
        """
        try:
            y = self.func(theta)
        except Exception as exc:
            raise RuntimeError(
                f"CallableSolver: the solver function {name!r} raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            y = np.asarray(y)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"CallableSolver({name}) returned something that is not an array: {exc}"
            ) from exc
        if y.dtype.kind not in "biuf":
            raise ValueError(
                f"CallableSolver({name}) returned an array of dtype {y.dtype}; "
                "a solver must return numbers."
            )
        if y.shape != theta.shape:
            raise ValueError(
                f"CallableSolver({name}) returned an array of shape {y.shape} for θ of "
                f"shape {theta.shape}; it must return one structure of the same shape"
                + (" per row." if self.batched else ".")
            )
        return y


def infer_sense(func, d):
    """``'max'`` or ``'min'``: whether a plain oracle θ (d,) → y (d,) maximizes or minimizes.

    An exact optimizer is monotone: for any θ₁, θ₂ a maximizer has
    ``<y(θ₁) − y(θ₂), θ₁ − θ₂> ≥ 0`` (add ``<y(θ₁), θ₁> ≥ <y(θ₂), θ₁>`` and the
    same with 1 and 2 swapped), a minimizer ``≤ 0``. The sign is read on a few
    pairs of random scores in [1, 2] (positive, which solvers of costs
    accept); ``ValueError`` when no pair tells, or when pairs disagree.
    """
    name = _function_name(func)
    rng = np.random.default_rng(0)
    first, second = rng.uniform(1.0, 2.0, size=(2, 8, d))
    y = CallableSolver(func)(np.vstack([first, second]))
    gaps = np.einsum("nd,nd->n", y[:8] - y[8:], first - second)
    tol = 1e-9 * max(1.0, np.abs(y).sum(axis=1).max())
    wrap = (
        f"Wrap it to say which: solver=CallableSolver({name}, sense='max') for scores, or "
        "sense='min' for costs (from sk_perturbed.solvers)."
    )
    if (gaps >= -tol).all() and (gaps > tol).any():
        return "max"
    if (gaps <= tol).all() and (gaps < -tol).any():
        return "min"
    if (np.abs(gaps) <= tol).all():
        found = "it returned structures that do not change with the scores"
    else:
        found = "it behaved as a maximizer on some and as a minimizer on others"
    raise ValueError(
        f"Cannot tell whether the solver function {name!r} maximizes scores or minimizes "
        f"costs: on pairs of random scores {found}. {wrap}"
    )


def _check_finite(structures, name):
    bad = ~np.isfinite(structures).all(axis=1)
    if bad.any():
        raise ValueError(
            f"CallableSolver({name}) returned NaN or infinite values "
            f"(first in problem {np.flatnonzero(bad)[0]} of the batch)."
        )
    return structures
