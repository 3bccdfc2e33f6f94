"""Input checks shared by the functional core and the estimators."""

import numpy as np
from sklearn.utils import check_array


def is_cupy_array(a):
    """True for a CuPy array (checked by type, so CuPy is never imported here)."""
    return type(a).__module__.split(".")[0] == "cupy"


def to_host(a):
    """A CuPy array copied to a NumPy array; anything else unchanged."""
    return a.get() if is_cupy_array(a) else a


def check_solver(solver):
    """Raise ``ValueError`` unless ``solver`` is one of the library's solver objects."""
    from .solvers._base import BaseSolver  # here: the solvers import this module

    if not isinstance(solver, BaseSolver):
        raise ValueError(
            "solver must be a solver object from sk_perturbed.solvers (wrap a Python "
            f"function in CallableSolver), got {type(solver).__name__}."
        )


def check_theta(theta, solver, name="theta"):
    """Return ``theta`` as a finite float64 C-contiguous (n, d) array for ``solver``.

    Raises ``ValueError`` naming the problem: not 2-D, empty, NaN/inf, or a
    number of columns the solver cannot take.
    """
    theta = check_array(
        theta,
        dtype=np.float64,
        order="C",
        ensure_all_finite=True,
        ensure_min_samples=1,
        ensure_min_features=1,
        input_name=name,
    )
    check_solver(solver)
    solver._validate_params()
    solver._check_dimension(theta.shape[1])
    return theta


def check_same_shape(array, reference, name, reference_name="theta"):
    """Return ``array`` as finite float64 with the shape of ``reference``."""
    array = check_array(
        array, dtype=np.float64, order="C", ensure_all_finite=True, input_name=name
    )
    if array.shape != reference.shape:
        raise ValueError(
            f"{name} must have the shape of {reference_name} {reference.shape}, got {array.shape}."
        )
    return array


def check_row_keys(row_keys, n_rows):
    """Return the noise keys of the rows: ``arange(n)`` by default."""
    if row_keys is None:
        return np.arange(n_rows, dtype=np.int64)
    keys = np.asarray(row_keys)
    if keys.ndim != 1 or keys.shape[0] != n_rows:
        raise ValueError(f"row_keys must be a 1-D array of length {n_rows}, got shape {keys.shape}.")
    if not np.issubdtype(keys.dtype, np.integer):
        raise ValueError(f"row_keys must be integers, got dtype {keys.dtype}.")
    if keys.size and keys.min() < 0:
        raise ValueError("row_keys must be non-negative.")
    return np.ascontiguousarray(keys, dtype=np.int64)
