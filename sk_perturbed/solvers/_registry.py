"""Registry of the built-in row solvers, and calling a solver from numba kernels.

A built-in solver describes its problem by ``_numba_spec()``: an integer id,
float parameters and int parameters. :data:`ROW_SOLVERS` maps each id to its
row function ``row(x, float_params, int_params, out)``; tests enumerate the
built-in solvers from it. The kernels receive
the solver as ``(SolverKind(id), float_params, int_params)``: a
:class:`SolverKind` holds no data, but its numba *type* carries the id, so a
kernel compiled for one solver contains only that solver's row function.
Each (kernel, solver) pair is compiled on first use and cached on disk; an
application that only ranks never compiles Dijkstra.

A user's ``@njit`` function is passed to the kernels as a first-class
function instead; kernels that receive one are compiled per process (numba
cannot cache them).
"""

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import NativeValue, models, overload, register_model, typeof_impl, unbox

from .._threads import compile_notice, interruptible, parallel_kernel

#: Row function of each built-in solver id, filled by :func:`register_row_solvers`
#: when ``sk_perturbed.solvers`` is imported (the solver modules import the
#: base class, which uses this module: they are not imported here).
ROW_SOLVERS = {}


def register_row_solvers(row_solvers):
    """Add ``{solver_id: row_function}`` entries; an id cannot be registered twice."""
    for solver_id, row in row_solvers.items():
        if ROW_SOLVERS.get(solver_id, row) is not row:
            raise ValueError(f"solver id {solver_id} is already registered.")
        ROW_SOLVERS[solver_id] = row


class SolverKind:
    """The id of a built-in solver, as a value whose numba type is that id."""

    __slots__ = ("solver_id",)

    def __init__(self, solver_id):
        if solver_id not in ROW_SOLVERS:
            raise ValueError(f"no built-in row solver has id {solver_id}.")
        self.solver_id = int(solver_id)

    def __repr__(self):
        return f"SolverKind({self.solver_id})"


class SolverKindType(types.Type):
    def __init__(self, solver_id):
        self.solver_id = solver_id
        super().__init__(name=f"SolverKind({solver_id})")


@typeof_impl.register(SolverKind)
def _typeof_solver_kind(value, context):
    return SolverKindType(value.solver_id)


@register_model(SolverKindType)
class _SolverKindModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, [("solver_id", types.int64)])


@unbox(SolverKindType)
def _unbox_solver_kind(typ, obj, c):
    # The type is the information; the value only has to exist.
    kind = cgutils.create_struct_proxy(typ)(c.context, c.builder)
    kind.solver_id = ir.Constant(ir.IntType(64), typ.solver_id)
    return NativeValue(kind._getvalue())


def call_solver(solver, x, out):
    """Solve one row (numba-only; see the module docstring)."""
    raise NotImplementedError("call_solver is only callable from numba code")


@overload(call_solver, inline="always")
def _call_solver_impl(solver, x, out):
    if isinstance(solver, types.BaseTuple) and isinstance(solver.types[0], SolverKindType):
        row = ROW_SOLVERS[solver.types[0].solver_id]

        def impl(solver, x, out):
            row(x, solver[1], solver[2], out)

        return impl

    def impl(solver, x, out):
        y = solver(x)
        if y.shape[0] != out.shape[0]:
            out[:] = np.nan  # reported by the caller as an unsolvable row
        else:
            for j in range(out.shape[0]):
                out[j] = y[j]

    return impl


#: Batches of fewer θ entries are solved on the calling thread (a mini-batch
#: of SPO+ or a one-row call: a parallel region costs more than the solves).
MIN_PARALLEL_SOLVE_ENTRIES = 1 << 14


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
            SolverKind(solver_id),
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
    name = f"{type(solver).__name__} (solve)"
    with interruptible(), compile_notice(name, cached=isinstance(arg, tuple)):
        out = _solve_batch_kernel.for_work(theta.size, MIN_PARALLEL_SOLVE_ENTRIES)(theta, arg)
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
