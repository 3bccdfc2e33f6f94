"""The numba backend: the fused parallel kernels, called in chunks of rows."""

import numpy as np

from ._noise import NOISE_IDS
from ._numpy_backend import check_estimated_values
from ._threads import compile_notice, numba_threads, resolve_n_threads
from .solvers._registry import numba_solver_arg

#: Least work (perturbed entries n·M·d) worth one more kernel thread, about
#: 10 ms of serial work. A parallel region costs tens of µs on idle cores but,
#: with numba's OpenMP layer spinning at its barriers, 50-100 ms on an
#: oversubscribed machine (measured on 2 cores at load 11: a 200-row, M = 100,
#: d = 20 call took 10 ms on 1 thread and 64 ms on 2). Training mini-batches
#: (200 rows, d = 20, M ≤ 100) therefore run on one thread, predictions on
#: large X in parallel. Results do not depend on the thread count.
MIN_WORK_PER_THREAD = 1 << 18


#: Perturbed entries (rows·M·d) of one kernel launch: about 0.1-1 s of work
#: per thread, the longest a Ctrl-C waits.
CHUNK_ENTRIES = 1 << 22


def kernel_threads(n_jobs, n_rows, n_samples, d):
    """Threads for one kernel call.

    An explicit ``n_jobs`` is obeyed as given. With ``None`` (the default, and
    what the estimators pass: their ``n_jobs`` sets the calling thread's numba
    budget), the current budget is capped by the work of the call.
    """
    budget = resolve_n_threads(n_jobs)
    if n_jobs is not None:
        return budget
    return max(1, min(budget, (n_rows * n_samples * d) // MIN_WORK_PER_THREAD))


def estimate_numba(spec, theta, row_keys, seed, v, solver_arg=None, n_threads=None):
    from ._kernels import perturbed_kernel  # looked up per call: tests count the calls

    if solver_arg is None:
        solver_arg = numba_solver_arg(spec.solver)
    want_vjp = v is not None
    n, d = theta.shape
    n_samples = spec.n_samples
    if n_threads is None:
        n_threads = kernel_threads(spec.n_jobs, n, n_samples, d)
    rows = max(1, CHUNK_ENTRIES // max(1, n_samples * d))
    # One thread: the serial twin, with no parallel region to open (and, cold,
    # a far shorter compilation). Rows are independent: the same results.
    kernel = perturbed_kernel.serial if n_threads == 1 else perturbed_kernel
    outputs = []
    with numba_threads(n_threads), _compile_notice(spec.solver, solver_arg):
        # Chunks of rows: a Ctrl-C is seen between two chunks (a signal
        # cannot stop a compiled loop); rows do not depend on the split.
        for start in range(0, n, rows):
            part = slice(start, start + rows)
            outputs.append(kernel(
                theta[part], row_keys[part], np.uint64(seed), n_samples, spec.epsilon,
                NOISE_IDS[spec.noise], spec.multiplicative, spec.antithetic, spec.sign,
                v[part] if want_vjp else np.zeros((0, d)),
                want_vjp, spec.control_variate, solver_arg,
            ))
    if len(outputs) == 1:
        y, grad, value, vjp = outputs[0]
    else:
        y, value, vjp = (np.concatenate([out[k] for out in outputs]) for k in (0, 2, 3))
        grad = np.concatenate([out[1] for out in outputs]) if spec.multiplicative else y
    # Exceptions raised inside numba's parallel loops are unreliable, so row
    # kernels flag a problem they cannot solve with NaN and it is raised here.
    check_estimated_values(spec, value, theta, row_keys, seed)
    return y, grad, value, (vjp if want_vjp else None)


def _compile_notice(solver, solver_arg):
    return compile_notice(type(solver).__name__, cached=isinstance(solver_arg, tuple))

