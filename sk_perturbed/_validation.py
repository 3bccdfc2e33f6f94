"""Input checks shared by the functional core and the estimators."""

import numpy as np
from sklearn.utils import check_array

from ._noise import _array_namespace
from .solvers._base import BaseSolver


def is_cupy_array(a):
    """True for a CuPy array (checked by type, so CuPy is never imported here)."""
    return type(a).__module__.split(".")[0] == "cupy"


def to_host(a):
    """A CuPy array copied to a NumPy array; anything else unchanged."""
    return a.get() if is_cupy_array(a) else a


def check_solver(solver):
    """Raise ``ValueError`` unless ``solver`` is one of the library's solver objects."""
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
    check_solver(solver)
    return solver._check_theta(theta, name)


def check_device_theta(a, solver, name="theta", reference=None):
    """:func:`check_theta` (or, with ``reference``, :func:`check_same_shape`) for a CuPy array.

    The checks run on the array's device: no host copy, one reduction (the
    finiteness test). ``solver=None`` skips the solver's checks (for ``v``
    or ``y``). Returns a float64 C-contiguous array on that device.
    """
    if a.ndim != 2:
        raise ValueError(f"Expected a 2D array for {name}, got {a.ndim}D array instead.")
    if reference is None and (a.shape[0] < 1 or a.shape[1] < 1):
        raise ValueError(f"{name} must have at least one row and one column, got {a.shape}.")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}.")
    if reference is not None and a.shape != reference.shape:
        raise ValueError(
            f"{name} must have the shape of theta {reference.shape}, got {a.shape}."
        )
    xp = _array_namespace(a)
    if not bool(xp.isfinite(a).all()):
        raise ValueError(f"Input {name} contains NaN or infinity.")
    if solver is not None:
        check_solver(solver)
        solver._check_problem_size(a.shape[1])
    return xp.ascontiguousarray(a, dtype=xp.float64)


def check_on_host(where, hint, **arrays):
    """Raise ``ValueError`` for the first CuPy array of ``arrays``: ``where`` runs on the CPU.

    The message names the array and ``where`` (a backend, a function), then
    ``hint``; without this check CuPy's own ``TypeError`` about implicit
    conversion would surface from deep inside NumPy.
    """
    for name, a in arrays.items():
        if is_cupy_array(a):
            raise ValueError(f"{name} is a CuPy array but {where} runs on the CPU: {hint}")


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
