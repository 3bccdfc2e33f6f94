"""Keyed noise: the generator's bits, the distributions, and the keying rules."""

import math

import naive
import numpy as np
import pytest
from scipy import stats

from sk_perturbed._noise import (
    _ZIG_R,
    _next_u64,
    grad_nu_numpy,
    sample_noise,
    stream_state,
)

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _python_stream(seed, row_key, sample):
    # SplitMix64 in Python integers: the unsigned 64-bit arithmetic spelled out.
    h = _mix64((seed + GOLDEN) & MASK)
    h = _mix64(h ^ ((row_key + GOLDEN) & MASK))
    h = _mix64(h ^ ((sample + GOLDEN) & MASK))
    while True:
        h = (h + GOLDEN) & MASK
        yield _mix64(h)


def test_splitmix64_known_output():
    # First output of SplitMix64 from state 0 (Vigna's reference generator).
    state, bits = _next_u64(np.uint64(0))
    assert int(state) == GOLDEN
    assert int(bits) == 0xE220A8397B1DCDAF


@pytest.mark.parametrize("seed, row_key, sample", [(0, 0, 0), (2**63 + 5, 17, 3), (42, 10**9, 999)])
def test_stream_state_matches_python_integers(seed, row_key, sample):
    expected = _python_stream(seed, row_key, sample)
    state = stream_state(np.uint64(seed), row_key, sample)
    for _ in range(5):
        # numba returns uint64 as a Python int: type it back before the next call.
        state, bits = _next_u64(np.uint64(state))
        assert int(bits) == next(expected)


def test_gumbel_bits_match_python_reference():
    seed, keys, n_samples, d = 7, [0, 3, 11], 4, 6
    z = sample_noise(seed, keys, n_samples, d, "gumbel")
    for i, key in enumerate(keys):
        for m in range(n_samples):
            stream = _python_stream(seed, key, m)
            for j in range(d):
                u = ((next(stream) >> 11) + 0.5) * 2.0**-53
                assert z[i, m, j] == -math.log(-math.log(u))


def _flat_noise(noise, seed=0, n=200, n_samples=100, d=100):
    return sample_noise(seed, np.arange(n), n_samples, d, noise).ravel()


@pytest.mark.parametrize(
    "noise, mean, var, skew, kurt, skew_tol, kurt_tol",
    [
        ("gaussian", 0.0, 1.0, 0.0, 0.0, 0.01, 0.02),
        # Gumbel's heavy right tail makes its sample skew and kurtosis noisier
        # (standard errors ~0.005 and ~0.035 at n = 2e6, measured over seeds).
        ("gumbel", np.euler_gamma, np.pi**2 / 6, 1.1395470994046486, 2.4, 0.03, 0.2),
    ],
)
def test_moments(noise, mean, var, skew, kurt, skew_tol, kurt_tol):
    z = _flat_noise(noise)
    n = z.size
    # ~6 standard errors of the sample mean and variance at n = 2e6.
    assert abs(z.mean() - mean) < 6 * math.sqrt(var / n)
    assert abs(z.var() - var) < 6 * var * math.sqrt((2 + kurt) / n)
    assert abs(stats.skew(z) - skew) < skew_tol
    assert abs(stats.kurtosis(z) - kurt) < kurt_tol


@pytest.mark.parametrize("noise, dist", [("gaussian", stats.norm), ("gumbel", stats.gumbel_r)])
def test_kolmogorov_smirnov(noise, dist):
    z = _flat_noise(noise, seed=3)
    assert stats.kstest(z, dist.cdf).pvalue > 1e-3
    # The same on each coordinate and each sample index alone (no position bias).
    z3 = sample_noise(5, np.arange(2000), 8, 8, noise)
    assert stats.kstest(z3[:, :, 7].ravel(), dist.cdf).pvalue > 1e-3
    assert stats.kstest(z3[:, 7, :].ravel(), dist.cdf).pvalue > 1e-3


def test_gaussian_tail_beyond_ziggurat_base():
    # The tail beyond r is drawn by a separate branch: check its mass and shape.
    z = np.abs(_flat_noise("gaussian", seed=11, n=400))
    tail = z[z > _ZIG_R]
    expected = z.size * 2 * stats.norm.sf(_ZIG_R)
    assert abs(tail.size - expected) < 5 * math.sqrt(expected)
    conditional = lambda t: 1 - stats.norm.sf(t) / stats.norm.sf(_ZIG_R)  # noqa: E731
    assert stats.kstest(tail, conditional).pvalue > 1e-3


@pytest.mark.parametrize("noise", ["gaussian", "gumbel"])
def test_coordinates_and_samples_uncorrelated(noise):
    z = sample_noise(9, np.arange(4000), 6, 6, noise)
    z = (z - z.mean()) / z.std()
    n = z.shape[0]
    bound = 5 / math.sqrt(n)
    for a, b in [
        (z[:, 0, 0], z[:, 0, 1]),  # neighbouring coordinates
        (z[:, 0, 0], z[:, 1, 0]),  # neighbouring samples
        (z[:-1, 0, 0], z[1:, 0, 0]),  # neighbouring row keys
    ]:
        assert abs(np.corrcoef(a, b)[0, 1]) < bound


@pytest.mark.parametrize("noise", ["gaussian", "gumbel"])
def test_grad_nu_has_zero_mean(noise):
    # E[∇ν(Z)] = 0 is what makes the control variate unbiased.
    g = grad_nu_numpy(_flat_noise(noise, seed=1), noise)
    assert abs(g.mean()) < 6 * g.std() / math.sqrt(g.size)


@pytest.mark.parametrize("noise", ["gaussian", "gumbel"])
def test_grad_nu_numpy_matches_reference(noise):
    z = sample_noise(0, [0], 1, 50, noise)[0, 0]
    np.testing.assert_allclose(grad_nu_numpy(z, noise), naive.grad_nu(z, noise), rtol=1e-15)


def test_antithetic_pairs_are_exact_negations():
    plain = sample_noise(4, np.arange(5), 3, 7)
    paired = sample_noise(4, np.arange(5), 6, 7, antithetic=True)
    assert np.array_equal(paired[:, 0::2], plain)
    assert np.array_equal(paired[:, 1::2], -plain)


def test_keyed_determinism():
    full = sample_noise(12, np.arange(8), 5, 4)
    assert np.array_equal(full, sample_noise(12, np.arange(8), 5, 4))
    # A row's noise depends on its key only: any subset, in any order.
    keys = np.array([6, 1, 3])
    assert np.array_equal(sample_noise(12, keys, 5, 4), full[keys])
    # Sample m does not depend on M, so the first samples of a longer run agree.
    assert np.array_equal(sample_noise(12, np.arange(8), 9, 4)[:, :5], full)
    # Another seed or key gives other noise.
    assert not np.any(sample_noise(13, np.arange(8), 5, 4) == full)
    assert not np.any(sample_noise(12, np.arange(8) + 100, 5, 4) == full)


def test_large_seed_and_keys():
    z = sample_noise(2**64 - 1, [2**62], 2, 3)
    assert z.shape == (1, 2, 3) and np.all(np.isfinite(z))
