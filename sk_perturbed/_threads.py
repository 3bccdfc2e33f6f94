"""Thread budget of the numba kernels for one call."""

import contextlib

import numba
from numba import config


def resolve_n_threads(n_jobs):
    """Number of numba threads for ``n_jobs`` (joblib's convention).

    ``None`` keeps the calling thread's current numba setting, which joblib's
    workers and ``numba.set_num_threads`` already cap; ``-1`` means every thread
    numba was started with, ``-2`` all but one, and so on. Never more than
    ``NUMBA_NUM_THREADS``, numba's hard limit for the process.
    """
    limit = config.NUMBA_NUM_THREADS
    if n_jobs is None:
        return numba.get_num_threads()
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive int, or -1.")
    if n_jobs < 0:
        return max(1, limit + 1 + n_jobs)
    return min(int(n_jobs), limit)


@contextlib.contextmanager
def numba_threads(n_jobs):
    """Run the body with the numba thread count of ``n_jobs``, then restore it.

    numba's setting is per calling thread, so concurrent callers do not see
    each other's budget.
    """
    previous = numba.get_num_threads()
    numba.set_num_threads(resolve_n_threads(n_jobs))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@contextlib.contextmanager
def training_threads(n_jobs):
    """Thread budget of a fit or predict: numba kernels in parallel, BLAS serial.

    numba's worker threads spin for a while after each parallel loop; a
    multi-threaded BLAS call issued meanwhile fights them for the cores and
    runs tens of times slower. The model's small matrix products gain little
    from BLAS threads, so they run on one.
    """
    from threadpoolctl import threadpool_limits

    with numba_threads(n_jobs), threadpool_limits(limits=1, user_api="blas"):
        yield
