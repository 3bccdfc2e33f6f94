"""Calling a solver for one row from inside numba kernels.

Built-in solvers are selected by an integer id in one switch, so the fused
kernels that call them are compiled once and cached on disk. A user's
``@njit`` function is passed as a first-class function instead; kernels that
receive one are compiled per process (numba cannot cache them).

``call_solver(solver, x, out)`` accepts either form of ``solver``:

* a tuple ``(solver_id, float_params, int_params)`` for built-in solvers;
* a numba dispatcher ``f`` with ``f(x) -> y`` for user solvers.
"""

import numba as nb
import numpy as np
from numba import types
from numba.extending import overload

from .._threads import interruptible, parallel_kernel

from ._basic import ARGMAX_ID, RANKING_ID, TOPK_ID, argmax_row, ranking_row, topk_row
from ._knapsack import KNAPSACK_ID, knapsack_row
from ._matching import ASSIGNMENT_ID, assignment_row
from ._paths import (
    DAG_SHORTEST_PATH_ID,
    GRID_SHORTEST_PATH_ID,
    dag_shortest_path_row,
    grid_shortest_path_row,
)
from ._spanning_tree import SPANNING_TREE_ID, spanning_tree_row


@nb.njit(inline="always", cache=True)
def solve_builtin_row(solver_id, float_params, int_params, x, out):
    """Solve one row with the built-in solver ``solver_id``.

    The selection solvers are inlined at every call site: a call costs about
    as much as an argmax over d = 10. The others, whose solves cost far more
    than a call, sit behind one compiled switch.
    """
    if solver_id == ARGMAX_ID:
        argmax_row(x, float_params, int_params, out)
    elif solver_id == TOPK_ID:
        topk_row(x, float_params, int_params, out)
    elif solver_id == RANKING_ID:
        ranking_row(x, float_params, int_params, out)
    else:
        _solve_structured_row(solver_id, float_params, int_params, x, out)


@nb.njit(cache=True)
def _solve_structured_row(solver_id, float_params, int_params, x, out):
    if solver_id == DAG_SHORTEST_PATH_ID:
        dag_shortest_path_row(x, float_params, int_params, out)
    elif solver_id == GRID_SHORTEST_PATH_ID:
        grid_shortest_path_row(x, float_params, int_params, out)
    elif solver_id == ASSIGNMENT_ID:
        assignment_row(x, float_params, int_params, out)
    elif solver_id == KNAPSACK_ID:
        knapsack_row(x, float_params, int_params, out)
    elif solver_id == SPANNING_TREE_ID:
        spanning_tree_row(x, float_params, int_params, out)
    else:
        # No raise: exceptions are unreliable in parallel loops; NaN is reported.
        out[:] = np.nan


def call_solver(solver, x, out):
    """Solve one row (numba-only; see the module docstring)."""
    raise NotImplementedError("call_solver is only callable from numba code")


@overload(call_solver)
def _call_solver_impl(solver, x, out):
    if isinstance(solver, types.BaseTuple):

        def impl(solver, x, out):
            solve_builtin_row(solver[0], solver[1], solver[2], x, out)

        return impl

    def impl(solver, x, out):
        y = solver(x)
        if y.shape[0] != out.shape[0]:
            out[:] = np.nan  # reported by the caller as an unsolvable row
        else:
            for j in range(out.shape[0]):
                out[j] = y[j]

    return impl


@parallel_kernel
def _solve_batch_kernel(theta, solver):
    out = np.empty_like(theta)
    for i in nb.prange(theta.shape[0]):
        call_solver(solver, theta[i], out[i])
    return out


def numba_solver_arg(solver):
    """The ``solver`` argument of the kernels for a solver object, or None."""
    spec = solver._numba_spec()
    if spec is not None:
        solver_id, float_params, int_params = spec
        return (
            np.int64(solver_id),
            np.ascontiguousarray(float_params, dtype=np.float64),
            np.ascontiguousarray(int_params, dtype=np.int64),
        )
    return solver._numba_function()


def solve_batch(solver, theta):
    """Solve every row of a validated float64 batch with the solver's numba kernel."""
    arg = numba_solver_arg(solver)
    if arg is None:
        raise TypeError(
            f"{type(solver).__name__} has no numba kernel; override _solve_batch to solve in Python."
        )
    with interruptible():
        out = _solve_batch_kernel(theta, arg)
    # Row kernels flag a row they cannot solve with NaN (exceptions inside
    # numba's parallel loops are unreliable): raise for it here.
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{type(solver).__name__} could not solve row {i}. "
            f"{solver._invalid_output_hint(theta[i])}"
        )
    return out
