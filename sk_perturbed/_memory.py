"""Refuse a NumPy-backend estimate that cannot fit in memory, before allocating it.

The NumPy backend (what Python solvers run on) builds the (n, M, d) tensor of
perturbed problems explicitly; with a huge ``n_samples`` NumPy's own
``MemoryError`` names no parameter.
"""

import os

#: (n, M, d) float64 arrays alive at once in the NumPy backend: the noise, the
#: perturbed scores, the solver's structures and one temporary (the
#: multiplicative factor or the noise gradient of a VJP).
ARRAYS_PER_PROBLEM = 4


def available_memory():
    """Bytes of memory available to a new allocation, or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _gib(n_bytes):
    return f"{n_bytes / 2**30:.3g} GiB"


def check_perturbed_batch_memory(n_rows, n_samples, d, available=None):
    """Raise ``MemoryError`` naming ``n_samples`` when the batch cannot fit.

    Parameters
    ----------
    n_rows, n_samples, d : int
        Rows of θ, perturbations M per row, and dimension.
    available : int, default=None
        Bytes available; None reads them from the system (no check when unknown).
    """
    needed = ARRAYS_PER_PROBLEM * 8 * int(n_rows) * int(n_samples) * int(d)
    available = available_memory() if available is None else available
    if available is None or needed <= available:
        return
    raise MemoryError(
        f"n_samples={n_samples} perturbations of {n_rows} rows of dimension {d} need about "
        f"{_gib(needed)} at once ({ARRAYS_PER_PROBLEM} arrays of n_rows x n_samples x d "
        f"float64: a Python solver is called on all n_rows x n_samples perturbed problems "
        f"together), more than the {_gib(available)} of memory available. Lower "
        "n_samples, or pass fewer rows per call (a smaller batch_size in the estimators)."
    )
