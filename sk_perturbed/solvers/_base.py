"""The solver protocol shared by every linear maximization (or minimization) oracle."""

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_array

from ._registry import solve_batch

#: Slack of the target checks: targets are often Monte Carlo means or averaged ranks.
TARGET_TOL = 1e-6


def _outside_box(Y, upper=1.0):
    return ((Y < -TARGET_TOL) | (Y > upper + TARGET_TOL)).any(axis=1)


def zero_one_target_rule(solver, Y):
    """``_target_rule`` of a solver whose structures are 0/1 vectors."""
    return _outside_box(Y), "entries in [0, 1]"


def _wrong_sum(sums, expected):
    return np.abs(sums - expected) > TARGET_TOL * max(1.0, abs(expected))


class BaseSolver(BaseEstimator):
    """Base class of the combinatorial solvers.

    A solver maps a batch of scores θ of shape (n, d) to a batch of structures
    y*(θ) of shape (n, d): ``argmax_y <y, θ>`` when ``sense == 'max'``, or
    ``argmin_y <y, θ>`` when ``sense == 'min'`` (θ is then a cost vector).

    Subclasses declare how one row is solved inside the fused numba kernels by
    implementing ``_numba_spec`` (a built-in kernel id and its parameters), or
    solve whole batches in Python by overriding ``_solve_batch``. They derive
    from :class:`~sklearn.base.BaseEstimator` so that ``get_params`` and
    ``set_params`` work and nested parameters (``solver__k``) can be searched.

    Examples
    --------
    >>> from sk_perturbed.solvers import BaseSolver, GridShortestPath, Ranking
    >>> isinstance(Ranking(), BaseSolver)
    True
    >>> Ranking().sense, GridShortestPath().sense
    ('max', 'min')
    """

    #: 'max' for a maximizing oracle, 'min' for a minimizing one.
    sense = "max"

    #: True when θ must be non-negative (e.g. Dijkstra's costs). The estimators
    #: then predict θ through a softplus, so that predicted costs are positive.
    requires_positive = False

    def dimension(self):
        """Length d of θ and of the structures, or None when any d ≥ 1 works.

        Returns
        -------
        d : int or None
            The dimension this solver requires, or None.
        """
        return None

    @property
    def _sign(self):
        # Maps the user's sense to the maximization form used internally.
        return 1.0 if self.sense == "max" else -1.0

    def _numba_spec(self):
        """``(solver_id, float_params, int_params)`` for the built-in kernels.

        Returns None when the solver has no built-in numba kernel.
        """
        return None

    def _numba_function(self):
        """A user ``@njit`` function θ (d,) → y (d,) to call inside the kernels, or None."""
        return None

    def _invalid_output_hint(self, theta_row):
        """Advice shown when the numba kernel reports an unsolvable row (θ of that row)."""
        return "Its row kernel returned a non-finite structure."

    def _validate_params(self):
        """Check the solver's own parameters; raise ``ValueError`` on a bad one."""

    def _target_rule(self, Y):
        """Rows of ``Y`` (n, d) that break a cheap necessary condition of the convex
        hull of the structures, and that condition in words.

        A target outside the hull makes the Fenchel–Young loss unbounded below.
        Nothing is assumed of a user's subclass; the built-in solvers state
        their rules (entries in [0, 1] for 0/1 structures, and their sums).
        """
        return np.zeros(Y.shape[0], dtype=bool), ""

    def _check_targets(self, Y):
        """Raise ``ValueError`` naming the first row of ``Y`` that cannot be a target."""
        for start in range(0, Y.shape[0], 4096):  # blocks: small temporaries
            bad, rule = self._target_rule(Y[start : start + 4096])
            if not bad.any():
                continue
            i = start + int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"Y row {i} is neither a structure of {type(self).__name__} nor a mean of "
                f"such structures (their convex hull), which needs {rule}; got "
                f"{np.array2string(Y[i], precision=4, threshold=12)}."
            )

    def _check_dimension(self, d):
        expected = self.dimension()
        if expected is not None and d != expected:
            raise ValueError(
                f"{type(self).__name__} expects θ with {expected} columns "
                f"(one per element of its structure), got {d}."
            )
        if d < self._min_dimension:
            raise ValueError(
                f"{type(self).__name__} needs at least {self._min_dimension} "
                f"column(s) in θ, got {d}."
            )

    _min_dimension = 1

    def __call__(self, theta):
        """Solve every row of ``theta``.

        Parameters
        ----------
        theta : array-like of shape (n_problems, d)
            Scores (``sense='max'``) or costs (``sense='min'``), one problem
            per row. A 1-D array is read as a single problem.

        Returns
        -------
        structures : ndarray of shape (n_problems, d)
            The optimal structure of each row, as float64.
        """
        theta = np.asarray(theta)
        one_row = theta.ndim == 1
        theta = self._check_theta(theta[None, :] if one_row else theta)
        structures = self._solve_batch(theta)
        return structures[0] if one_row else structures

    def _check_theta(self, theta, name="theta"):
        """``theta`` as a finite float64 C-contiguous (n, d) array this solver takes.

        Raises ``ValueError`` naming the problem: not 2-D, empty, NaN/inf, or a
        number of columns the solver cannot take.
        """
        theta = check_array(
            theta, dtype=np.float64, order="C", ensure_all_finite=True, ensure_min_samples=1,
            ensure_min_features=1, input_name=name,
        )
        self._check_problem_size(theta.shape[1])
        return theta

    def _check_problem_size(self, d):
        """The solver's parameters, and that it takes problems of dimension ``d``."""
        self._validate_params()
        self._check_dimension(d)

    def _solve_batch(self, theta):
        """Solve a validated float64 C-contiguous batch."""
        return solve_batch(self, theta)
