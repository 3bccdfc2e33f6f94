"""Parameter checks and packing shared by the solvers.

A built-in solver hands its parameters to the numba kernels as two flat
arrays (float64 and int64); these helpers validate user parameters with
messages that name the solver, and pack them.
"""

import numbers

import numpy as np
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from ._base import TARGET_TOL


def check_int(value, name, owner, min_value=None):
    """Return ``value`` as a Python int, or raise ``ValueError`` naming ``owner``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{owner}: {name} must be an integer, got {value!r}.")
    if min_value is not None and value < min_value:
        raise ValueError(f"{owner}: {name} must be >= {min_value}, got {value!r}.")
    return int(value)


def check_integer_array(values, name, owner, ndim=1, min_value=None):
    """Return ``values`` as a C-contiguous int64 array of dimension ``ndim``.

    Floats are accepted when every value is integral (``[2.0, 3.0]``), since
    they often come out of NumPy computations; booleans and fractional values
    are rejected.
    """
    try:
        array = np.asarray(values)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{owner}: {name} must be an array of integers ({exc}).") from exc
    if array.ndim != ndim:
        raise ValueError(f"{owner}: {name} must be a {ndim}-D array, got {array.ndim}-D.")
    if array.dtype.kind not in "iuf" or (
        array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.round(array)))
    ):
        raise ValueError(f"{owner}: {name} must contain integers, got {array.dtype} values.")
    if array.size and not (
        np.iinfo(np.int64).min <= array.min().item() and array.max().item() <= np.iinfo(np.int64).max
    ):
        raise ValueError(f"{owner}: {name} must fit in 64-bit integers, got {array.max().item()!r}.")
    if min_value is not None and array.size and array.min() < min_value:
        raise ValueError(f"{owner}: {name} must be >= {min_value}, got {array.min()!r}.")
    return np.ascontiguousarray(array, dtype=np.int64)


def check_grid_shape(shape, name, owner):
    """Return ``(rows, cols)`` of a grid with at least two cells."""
    if not isinstance(shape, (tuple, list, np.ndarray)) or len(shape) != 2:
        raise ValueError(f"{owner}: {name} must be a pair (rows, cols), got {shape!r}.")
    rows = check_int(shape[0], f"{name}[0]", owner, min_value=1)
    cols = check_int(shape[1], f"{name}[1]", owner, min_value=1)
    if rows * cols < 2:
        raise ValueError(f"{owner}: {name} must have at least two cells, got {shape!r}.")
    return rows, cols


def pack_spec(solver_id, float_params=(), int_params=()):
    """The ``(solver_id, float_params, int_params)`` triple of ``_numba_spec``."""
    return (
        solver_id,
        np.ascontiguousarray(float_params, dtype=np.float64).ravel(),
        np.ascontiguousarray(int_params, dtype=np.int64).ravel(),
    )


def first_failure_rule(rule, checks):
    """``(bad rows, rule)`` for ``BaseSolver._target_rule`` from several checks.

    ``checks`` is a sequence of ``(bad, describe)``: a boolean mask of the
    rows that fail a condition, and ``describe(i)`` the failure of row ``i``
    in words. The rule text ends with the first failure of the first bad
    row, which is the row the error message names.
    """
    bad = np.zeros(len(checks[0][0]), dtype=bool)
    for failed, _ in checks:
        bad |= failed
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        for failed, describe in checks:
            if failed[i]:
                return bad, f"{rule}; this row fails as {describe(i)}"
    return bad, rule


def zero_one_rows(Y):
    """Rows of ``Y`` whose entries all lie within ``TARGET_TOL`` of 0 or 1."""
    return (np.minimum(np.abs(Y), np.abs(Y - 1.0)) <= TARGET_TOL).all(axis=1)


def first_outside_box(row):
    """Index of the first entry of ``row`` outside [0, 1] (beyond ``TARGET_TOL``)."""
    return int(np.flatnonzero((row < -TARGET_TOL) | (row > 1.0 + TARGET_TOL))[0])


def component_labels(n_rows, n_nodes, row, u, v):
    """Connected components of ``n_rows`` separate graphs on ``n_nodes`` nodes each.

    Edge ``k`` joins nodes ``u[k]`` and ``v[k]`` of graph ``row[k]``. Returns
    labels of shape (n_rows, n_nodes): two nodes of one graph share a label
    iff they are connected. One sparse call for the whole batch.
    """
    size = n_rows * n_nodes
    offset = np.asarray(row, dtype=np.int64) * n_nodes
    adjacency = coo_array(
        (np.ones(len(offset)), (offset + u, offset + v)), shape=(size, size)
    )
    _, labels = connected_components(adjacency, directed=False)
    return labels.reshape(n_rows, n_nodes)
