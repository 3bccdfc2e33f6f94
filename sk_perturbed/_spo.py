"""The SPO+ loss of Elmachtoub & Grigas (2022), for any solver of the library.

Kept apart from :mod:`sk_perturbed.perturbed` (which re-exports the public
function): it needs only a solver, no perturbations.
"""

import numpy as np

from ._validation import check_same_shape, check_solver, check_theta


def _spo_plus_from(theta, c, y_true, solve, sign):
    """SPO+ values (n,) and gradients (n, d) of validated float64 arrays.

    In cost form (minimization, ĉ and c costs) SPO+ is
    ``max_y <y, c - 2ĉ> + 2<ĉ, y*(c)> - z*(c)`` with subgradient
    ``2(y*(c) - y*(2ĉ - c))``. A maximizing solver reads θ and c as values,
    i.e. costs ``-θ`` and ``-c``; both cases are ``u = 2θ - c``,
    ``y_u = solve(u)``, value ``sign <y_u - y*(c), u>`` and gradient
    ``2 sign (y_u - y*(c))``, with ``sign`` +1 for 'max' and -1 for 'min'.
    """
    u = 2.0 * theta - c
    y_u = solve(u)
    diff = y_u - y_true
    return sign * np.einsum("ij,ij->i", diff, u), (2.0 * sign) * diff


def spo_plus_loss(theta, c, solver, *, y_true=None):
    """SPO+ loss (Elmachtoub & Grigas, 2022) of predicted costs θ and its subgradient.

    For a minimizing solver, θ = ĉ and c are cost vectors, ``y*(c)`` the
    optimal decision and ``z*(c) = <c, y*(c)>`` its cost::

        SPO+(ĉ, c) = -min_y <y, 2ĉ - c> + 2<ĉ, y*(c)> - z*(c)
        ∇_ĉ SPO+  = 2 (y*(c) - y*(2ĉ - c))

    It is a convex upper bound of the regret ``<c, y*(ĉ)> - z*(c)`` and zero
    at ĉ = c. For a maximizing solver θ and c are values (``solver.sense ==
    'max'``); the loss is that of the costs ``-θ, -c``, and the gradient is
    taken in θ: ``2 (y*(2θ - c) - y*(c))``.

    Parameters
    ----------
    theta : array-like of shape (n, d)
        Predicted costs (values for a maximizing solver), one problem per row.
    c : array-like of shape (n, d)
        True costs (values).
    solver : BaseSolver
        The oracle of the problems; its ``sense`` says how θ and c are read.
    y_true : array-like of shape (n, d), default=None
        The optimal decisions ``solver(c)``, when already known (they are
        computed otherwise).

    Returns
    -------
    loss : ndarray of shape (n,)
        SPO+ of each row, ≥ 0 when ``y_true`` is optimal for c.
    grad : ndarray of shape (n, d)
        A subgradient in θ of each row's loss.

    References
    ----------
    A. N. Elmachtoub and P. Grigas, "Smart 'Predict, then Optimize'",
    Management Science 68(1), 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.perturbed import spo_plus_loss
    >>> from sk_perturbed.solvers import Argmax
    >>> values = np.array([[3.0, 1.0]])        # argmax picks item 0, worth 3
    >>> loss, grad = spo_plus_loss(np.array([[0.0, 1.0]]), values, Argmax())
    >>> loss, grad                              # predicting item 1 loses 2
    (array([4.]), array([[-2.,  2.]]))
    >>> spo_plus_loss(values, values, Argmax())[0]
    array([0.])
    """
    check_solver(solver)
    theta = check_theta(theta, solver)
    c = check_same_shape(c, theta, "c")
    if y_true is None:
        y_true = solver(c)
    else:
        y_true = check_same_shape(y_true, theta, "y_true")
    return _spo_plus_from(theta, c, y_true, solver._solve_batch, solver._sign)
