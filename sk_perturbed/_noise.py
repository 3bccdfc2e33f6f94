"""Noise distributions of the perturbations: keyed sampling and ∇ν.

Every draw is a pure function of ``(seed, row_key, sample)``: the stream for one
perturbed problem is seeded by hashing that triple with SplitMix64, then read
sequentially. Results therefore do not depend on the number of threads, on how
rows are split into batches, or on the order in which rows are processed.

A noise distribution has density ∝ exp(-ν(z)); the Jacobian estimator of the
perturbed maximizer needs ∇ν:

* ``'gaussian'`` (alias ``'normal'``): standard normal, ν(z) = z²/2, ∇ν(z) = z
  (symmetric).
* ``'gumbel'``: standard Gumbel, ν(z) = z + exp(-z), ∇ν(z) = 1 - exp(-z).
"""

import math

import numba as nb
import numpy as np
from scipy import sparse

from ._threads import interruptible, parallel_kernel

GAUSSIAN = 0
GUMBEL = 1
#: 'normal' is an alias of 'gaussian'.
NOISE_IDS = {"gaussian": GAUSSIAN, "normal": GAUSSIAN, "gumbel": GUMBEL}
SYMMETRIC_NOISES = ("gaussian", "normal")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


def _ziggurat_tables(n_layers=256, r=3.6541528853610088, area=4.92867323399e-3):
    """Layer edges x_i of Marsaglia & Tsang's ziggurat for the half normal.

    ``x[0]`` is the width of the base strip (whose part beyond ``r`` is the
    tail), ``x[1] = r`` and ``x[n_layers] = 0``; ``f = exp(-x²/2)`` at each edge.
    """
    x = np.empty(n_layers + 1)
    x[0] = area / math.exp(-0.5 * r * r)
    x[1] = r
    for i in range(1, n_layers - 1):
        x[i + 1] = math.sqrt(-2.0 * math.log(area / x[i] + math.exp(-0.5 * x[i] ** 2)))
    x[n_layers] = 0.0
    return x, np.exp(-0.5 * x * x)


_ZIG_X, _ZIG_F = _ziggurat_tables()
_ZIG_R = 3.6541528853610088


@nb.njit(inline="always", cache=True)
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True)
def stream_state(seed, row_key, sample):
    """Initial state of the stream of one perturbed problem."""
    h = _mix64(np.uint64(seed) + _GOLDEN)
    h = _mix64(h ^ (np.uint64(row_key) + _GOLDEN))
    h = _mix64(h ^ (np.uint64(sample) + _GOLDEN))
    return h


@nb.njit(inline="always", cache=True)
def _next_u64(state):
    # SplitMix64: a Weyl sequence passed through a bijective mixer.
    state = state + _GOLDEN
    return state, _mix64(state)


@nb.njit(inline="always", cache=True)
def _open_uniform(bits):
    # Uniform on (0, 1): never 0 or 1, so logs below stay finite.
    return (np.float64(bits >> np.uint64(11)) + 0.5) * _TO_UNIT


@nb.njit(inline="always", cache=True)
def _standard_normal(state):
    """One N(0, 1) draw by the 256-layer ziggurat; returns (state, z)."""
    while True:
        state, bits = _next_u64(state)
        layer = np.int64(bits & np.uint64(0xFF))
        negative = (bits >> np.uint64(8)) & np.uint64(1)
        u = np.float64(bits >> np.uint64(11)) * _TO_UNIT
        z = u * _ZIG_X[layer]
        if z < _ZIG_X[layer + 1]:
            return state, -z if negative else z
        if layer == 0:
            # Tail beyond r (Marsaglia 1964).
            while True:
                state, b1 = _next_u64(state)
                state, b2 = _next_u64(state)
                a = -math.log(_open_uniform(b1)) / _ZIG_R
                b = -math.log(_open_uniform(b2))
                if 2.0 * b > a * a:
                    z = _ZIG_R + a
                    return state, -z if negative else z
        state, b3 = _next_u64(state)
        y = _ZIG_F[layer] + _open_uniform(b3) * (_ZIG_F[layer + 1] - _ZIG_F[layer])
        if y < math.exp(-0.5 * z * z):
            return state, -z if negative else z


@nb.njit(cache=True)
def fill_noise(seed, row_key, sample, noise_id, antithetic, out):
    """Write the noise vector of problem ``(row_key, sample)`` into ``out``.

    With ``antithetic``, samples ``2k`` and ``2k + 1`` share one stream and the
    odd one is its negation, so symmetric noise comes in pairs (Z, -Z).
    """
    negate = False
    if antithetic:
        negate = (sample % 2) == 1
        sample = sample // 2
    state = stream_state(seed, row_key, sample)
    d = out.shape[0]
    if noise_id == GAUSSIAN:
        for j in range(d):
            state, z = _standard_normal(state)
            out[j] = z
    else:
        for j in range(d):
            state, bits = _next_u64(state)
            out[j] = -math.log(-math.log(_open_uniform(bits)))
    if negate:
        for j in range(d):
            out[j] = -out[j]


@nb.njit(inline="always", cache=True)
def grad_nu(z, noise_id):
    """∇ν(z) for one coordinate."""
    if noise_id == GAUSSIAN:
        return z
    return 1.0 - math.exp(-z)


@parallel_kernel
def _sample_noise_kernel(seed, row_keys, n_samples, d, noise_id, antithetic):
    out = np.empty((row_keys.shape[0], n_samples, d))
    for i in nb.prange(row_keys.shape[0]):
        for m in range(n_samples):
            fill_noise(seed, row_keys[i], m, noise_id, antithetic, out[i, m])
    return out


#: Tensors of fewer draws are filled on the calling thread: a mini-batch of
#: 32 x 32 draws took 11 ms in a parallel region on 2 busy cores, far more
#: than drawing them.
MIN_PARALLEL_DRAWS = 1 << 16


def sample_noise(seed, row_keys, n_samples, d, noise="gaussian", antithetic=False):
    """Materialize the (n, M, d) noise tensor that the fused kernels draw.

    Used by the NumPy backend and by the reference implementations in the tests;
    the fused kernels never build this tensor.

    Parameters
    ----------
    seed : int
        Non-negative 64-bit seed.
    row_keys : array-like of int of shape (n,)
        Identity of each row in the noise stream.
    n_samples : int
        Number of perturbations M per row.
    d : int
        Dimension of each perturbation.
    noise : {'gaussian', 'normal', 'gumbel'}, default='gaussian'
        Distribution of Z.
    antithetic : bool, default=False
        Draw pairs (Z, -Z).

    Returns
    -------
    Z : ndarray of shape (n, n_samples, d)
    """
    row_keys = np.ascontiguousarray(row_keys, dtype=np.int64)
    kernel = _sample_noise_kernel.for_work(row_keys.shape[0] * int(n_samples) * int(d),
                                           MIN_PARALLEL_DRAWS)
    with interruptible():
        return kernel(
            np.uint64(seed), row_keys, int(n_samples), int(d), NOISE_IDS[noise], bool(antithetic)
        )


def content_row_keys(a):
    """Noise keys computed from the bytes of each row (FNV-1a over 64-bit words).

    Keying prediction noise by content makes a row's estimate independent of
    its position in the batch, so predictions are invariant to subsets and
    to the order of samples. A sparse matrix gets the keys of its dense form,
    densified a block of rows at a time.
    """
    if sparse.issparse(a):
        step = max(1, (1 << 22) // max(a.shape[1], 1))
        return np.concatenate(
            [content_row_keys(a[i:i + step].toarray()) for i in range(0, a.shape[0], step)]
            or [np.empty(0, dtype=np.int64)]
        )
    # + 0.0 turns -0.0 into 0.0: equal rows must have equal bytes.
    words = np.ascontiguousarray(np.add(a, 0.0, dtype=np.float64)).view(np.uint64)
    keys = np.full(words.shape[0], 0xCBF29CE484222325, dtype=np.uint64)
    prime = np.uint64(0x100000001B3)
    for j in range(words.shape[1]):
        keys ^= words[:, j]
        keys *= prime
    return (keys >> np.uint64(1)).astype(np.int64)


def grad_nu_numpy(z, noise):
    """Vectorized ∇ν for NumPy (or CuPy) arrays."""
    if NOISE_IDS[noise] == GAUSSIAN:
        return z
    xp = _array_namespace(z)
    return 1.0 - xp.exp(-z)


def _array_namespace(a):
    module = type(a).__module__.split(".")[0]
    if module == "cupy":
        import cupy

        return cupy
    return np
