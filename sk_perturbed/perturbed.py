"""Perturbed optimizers and the losses built on them (the functional core).

Given a solver ``y*(θ) = argmax_{y ∈ C} <y, θ>``, noise Z with density
∝ exp(-ν(z)) and a scale ε > 0, the perturbed maximizer is
``y_ε(θ) = E[y*(θ + εZ)]`` and the perturbed maximum ``F_ε(θ) = E[max_y <y, θ + εZ>]``;
``∇F_ε = y_ε`` and ``J_θ y_ε(θ) = E[y*(θ + εZ) ∇ν(Z)ᵀ] / ε``. All three are
estimated by Monte Carlo over M perturbations per row.
"""

import numbers

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)

from . import _engine
from ._closed_forms import argmax_marginals, gumbel_argmax_fenchel_young, is_gumbel_argmax
from ._engine import (
    EstimationSpec,
    PerturbedEstimate,
    _any_batch_shape,
    _batch_shape,
    _blackbox_from,
    _check_noise_and_perturbation,
    _fenchel_young_from,
    _from_rows,
    _keys_to_rows,
    _loss_inputs,
    _output_dtype,
    _perturbed_squared_from,
    _squared_from,
    _to_rows,
    normalize_seed,
)
from ._noise import NOISE_IDS, SYMMETRIC_NOISES, _array_namespace
from ._spo import spo_plus_loss
from ._validation import (
    check_on_host,
    check_row_keys,
    check_same_shape,
    check_solver,
    check_theta,
    is_cupy_array,
)
from .solvers._basic import Argmax
from .solvers._registry import numba_solver_arg

__all__ = [
    "PerturbedOptimizer",
    "PerturbedEstimate",
    "fenchel_young_loss",
    "perturbed_squared_loss",
    "squared_loss",
    "blackbox_loss",
    "spo_plus_loss",
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
            return normalize_seed(self.random_state)
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
            _engine._require_cupy()
            seed = self._draw_seed() if seed is None else normalize_seed(seed)
            y, grad, value, vjp = _engine.estimate(
                EstimationSpec.of(self), theta, row_keys, seed, v, backend="cupy"
            )
            return PerturbedEstimate(y, value, grad, vjp)
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
        seed = self._draw_seed() if seed is None else normalize_seed(seed)
        backend = self._resolve_backend(theta)
        y, grad, value, vjp = _engine.estimate(
            EstimationSpec.of(self), theta_checked, keys, seed, v, backend=backend
        )
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
        backend = self.backend
        if self._runs_on_gpu(theta):
            _engine._require_cupy()
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
    return argmax_marginals(np.asarray(theta, dtype=np.float64), float(po.epsilon), po.noise)


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
    if is_gumbel_argmax(po):
        return gumbel_argmax_fenchel_young(theta64, y, float(po.epsilon))
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

