"""Thread budget of the numba kernels for one call.

Rules (see ``docs/scaling.rst``):

* ``n_jobs=None`` (the default) is the *automatic* budget: the calling
  thread's numba setting (``numba.get_num_threads()``, which
  ``NUMBA_NUM_THREADS`` and ``numba.set_num_threads`` cap), capped by
  ``OMP_NUM_THREADS`` when it is set (joblib's loky workers, Dask's nanny and
  Ray set it to the worker's share of the cores), and shared with the other
  Python threads of the process that are inside a kernel context at the same
  time (joblib's threading backend, a Dask worker with several threads).
* An explicit ``n_jobs`` is obeyed (capped by ``NUMBA_NUM_THREADS``); an
  inner ``n_jobs=None`` call inherits it.
* ``numba.set_num_threads`` is restored on exit (the setting is per thread).
* numba's 'workqueue' threading layer, its fallback when neither TBB nor
  OpenMP can be loaded, aborts the process when two Python threads launch
  parallel kernels at once; under it, kernel contexts are serialized by a
  process-wide lock. 'omp' and 'tbb' are thread-safe and run concurrently.
"""

import contextlib
import os
import sys
import threading
import types

import numba
from numba import config

# Python threads currently inside a numba_threads context: ident -> depth.
_active = {}
_active_lock = threading.Lock()
# Thread-local stack of the contexts of the calling thread.
_local = threading.local()
# Serializes kernel launches when numba runs on the non-thread-safe
# 'workqueue' layer (re-entrant: contexts nest within one thread).
_workqueue_lock = threading.RLock()


def _env_thread_cap():
    """``OMP_NUM_THREADS`` as an int (its first level), or None when unset/invalid."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    try:
        cap = int(value)
    except ValueError:
        return None
    return cap if cap >= 1 else None


def cpu_budget():
    """Threads the kernels of this process may use in all.

    ``NUMBA_NUM_THREADS`` (numba's pool size: every available core unless a
    process manager set it lower), capped by ``OMP_NUM_THREADS`` when set.
    """
    budget = config.NUMBA_NUM_THREADS
    cap = _env_thread_cap()
    return budget if cap is None else max(1, min(budget, cap))


def _n_callers():
    with _active_lock:
        n = len(_active)
    registered = threading.get_ident() in _active
    return max(1, n if registered else n + 1)


def _explicit_outer():
    stack = getattr(_local, "stack", None)
    return bool(stack) and stack[-1]


def resolve_n_threads(n_jobs):
    """Number of numba threads for ``n_jobs`` (joblib's convention).

    ``None`` is the automatic budget: ``min(numba.get_num_threads(),
    cpu_budget() // concurrent callers)``, at least 1 — the calling thread's
    numba setting (which joblib's loky workers and ``numba.set_num_threads``
    already cap), never more than ``OMP_NUM_THREADS`` when that is set, and
    shared evenly with the other Python threads of the process that are
    running kernels; inside an explicit ``numba_threads(k)`` context of the
    calling thread it is that context's count. ``-1`` means every thread numba
    was started with, ``-2`` all but one, and so on. Never more than
    ``NUMBA_NUM_THREADS``, numba's hard limit for the process.
    """
    limit = config.NUMBA_NUM_THREADS
    if n_jobs is None:
        if _explicit_outer():
            return numba.get_num_threads()
        share = max(1, cpu_budget() // _n_callers())
        return max(1, min(numba.get_num_threads(), share, limit))
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive int, or -1.")
    if n_jobs < 0:
        return max(1, limit + 1 + n_jobs)
    return min(int(n_jobs), limit)


def _raised_by_interrupt(exc):
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def interruptible():
    """Let a Ctrl-C during a numba kernel surface as ``KeyboardInterrupt``.

    The signal handler runs when the kernel returns to Python, inside numba's
    unboxing of the result, and the dispatcher reports that as
    ``SystemError: ... returned a result with an exception set`` whose
    ``__context__`` is the ``KeyboardInterrupt``.
    """
    try:
        yield
    except SystemError as exc:
        if _raised_by_interrupt(exc):
            raise KeyboardInterrupt() from exc
        raise


def _needs_serial_launch():
    # numba.get_num_threads() has launched the thread pool, so the layer is known.
    try:
        return numba.threading_layer() == "workqueue"
    except ValueError:  # pragma: no cover - no pool launched yet
        return True


@contextlib.contextmanager
def numba_threads(n_jobs):
    """Run the body with the numba thread count of ``n_jobs``, then restore it.

    numba's setting is per calling thread, so concurrent callers do not see
    each other's budget; the automatic budget (``n_jobs=None``) splits the
    process's budget between them. An inner ``None`` inside an explicit outer
    context keeps the outer count.
    """
    previous = numba.get_num_threads()
    stack = _local.__dict__.setdefault("stack", [])
    ident = threading.get_ident()
    with _active_lock:
        _active[ident] = _active.get(ident, 0) + 1
    explicit_outer = _explicit_outer()
    try:
        n_threads = resolve_n_threads(n_jobs)
        serial = _needs_serial_launch()
        if serial:
            _workqueue_lock.acquire()
        stack.append(n_jobs is not None or explicit_outer)
        try:
            numba.set_num_threads(n_threads)
            with interruptible():
                yield
        finally:
            stack.pop()
            numba.set_num_threads(previous)
            if serial:
                _workqueue_lock.release()
    finally:
        with _active_lock:
            depth = _active[ident] - 1
            if depth:
                _active[ident] = depth
            else:
                del _active[ident]


# Serial BLAS during fits: the limit is process-wide (threadpoolctl changes the
# library's global setting), so concurrent fits share one limiter, taken by the
# first and restored by the last; per-call limiters would restore each other's
# saved values out of order and could leave BLAS at 1 thread for good.
_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter = None


@contextlib.contextmanager
def _serial_blas():
    global _blas_users, _blas_limiter
    from threadpoolctl import threadpool_limits

    with _blas_lock:
        if _blas_users == 0:
            _blas_limiter = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


@contextlib.contextmanager
def training_threads(n_jobs):
    """Thread budget of a fit or predict: numba kernels in parallel, BLAS serial.

    numba's worker threads spin for a while after each parallel loop; a
    multi-threaded BLAS call issued meanwhile fights them for the cores and
    runs tens of times slower. The model's small matrix products gain little
    from BLAS threads, so they run on one.
    """
    with numba_threads(n_jobs), _serial_blas():
        yield


# A child forked after this process launched numba's thread pool inherits a
# pool whose threads did not survive the fork: GNU OpenMP (numba's 'omp'
# layer on Linux) terminates such a child at its first parallel region, and
# the 'workqueue' layer's pool is as dead. 'tbb' is fork-safe.
_forked_after_pool = False


def _after_fork_in_child():
    global _forked_after_pool
    from numba.np.ufunc import parallel

    if parallel._is_initialized and numba.threading_layer() != "tbb":
        _forked_after_pool = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def in_forked_child():
    """Whether kernels must run serially: forked after the thread pool started."""
    return _forked_after_pool


class ParallelKernel:
    """``@njit(cache=True, parallel=True)`` with a serial twin for forked children.

    In a process forked after the parent ran a parallel kernel (multiprocessing's
    'fork' context, a pre-forking server), calls go to a ``parallel=False``
    compilation of the same function, compiled there on first use and cached
    on disk under its own name (numba's cache index does not tell the two
    apart by their flags). Results are the same: rows are independent.
    Attributes (``stats``, ``signatures``, ...) are the parallel dispatcher's.
    """

    def __init__(self, py_func):
        self.parallel = numba.njit(cache=True, parallel=True)(py_func)
        self._py_func = py_func
        self._serial = None
        self.__doc__ = py_func.__doc__
        self.__name__ = py_func.__name__

    @property
    def serial(self):
        if self._serial is None:
            f = self._py_func
            twin = types.FunctionType(
                f.__code__, f.__globals__, f.__name__ + "_serial", f.__defaults__, f.__closure__
            )
            twin.__qualname__ = f.__qualname__ + "_serial"
            twin.__doc__ = f.__doc__
            self._serial = numba.njit(cache=True)(twin)
        return self._serial

    def __call__(self, *args):
        return (self.serial if _forked_after_pool else self.parallel)(*args)

    def for_work(self, work, min_parallel_work):
        """This kernel, or its serial twin when ``work < min_parallel_work``.

        Opening a parallel region costs milliseconds on a busy machine (32
        shortest paths: 14 ms in one, 40 µs on the calling thread), and a cold
        serial compilation takes a fraction of a parallel one. Rows are
        independent, so both give the same results.
        """
        return self.serial if work < min_parallel_work else self

    def __getattr__(self, name):
        return getattr(self.parallel, name)


def parallel_kernel(py_func):
    """Decorator: a :class:`ParallelKernel` of ``py_func``."""
    return ParallelKernel(py_func)


#: What has been run once in this process (see :func:`compile_notice`).
_first_uses = set()
_first_uses_lock = threading.Lock()
#: A first call slower than this prints the notice (loading cached code is faster).
COMPILE_NOTICE_AFTER_S = 1.0


def _print_compile_notice(what, cached):
    how = "first use only, cached afterwards" if cached else "once per process"
    print(f"sk_perturbed: compiling numba kernels for {what} ({how})...", file=sys.stderr,
          flush=True)


@contextlib.contextmanager
def compile_notice(what, cached=True):
    """Say on stderr that kernels are compiling when a first call of ``what`` is slow.

    A fresh install compiles each kernel on first use, which takes from
    seconds to a minute with nothing printed; a notice appears when the first
    call of ``what`` in this process has not returned after
    ``COMPILE_NOTICE_AFTER_S`` seconds.
    """
    with _first_uses_lock:
        first = what not in _first_uses
        _first_uses.add(what)
    if not first:
        yield
        return
    timer = threading.Timer(COMPILE_NOTICE_AFTER_S, _print_compile_notice, (what, cached))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
