"""Fused parallel kernels of the perturbed optimizer.

One ``prange`` iteration owns one row: it draws the row's M noise vectors
one at a time (keyed by ``(seed, row_key, sample)``), solves each perturbed
problem and accumulates the Monte Carlo sums into that row of the outputs.
Nothing of size n·M·d is ever built, no two threads write the same memory,
and each row's sums are taken in sample order, so results are bit-for-bit
identical for any thread count and any split of the batch.

Conventions (``u`` is θ in the solver's own sense: scores or costs):

* additive perturbation: ``ũ = u + s·ε·Z`` with ``s = +1`` for a maximizing
  solver and ``-1`` for a minimizing one (the maximization form is then
  ``θ = s·u`` perturbed by ``+εZ``, so Gumbel-argmax stays a softmax);
* multiplicative perturbation: ``ũ = u ⊙ exp(εZ - ε²/2)``.
"""

import math

import numba as nb
import numpy as np

from ._noise import GAUSSIAN, fill_noise, grad_nu
from ._threads import parallel_kernel
from .solvers._registry import call_solver


@parallel_kernel
def perturbed_kernel(
    theta,
    row_keys,
    seed,
    n_samples,
    epsilon,
    noise_id,
    multiplicative,
    antithetic,
    sign,
    v,
    want_vjp,
    control_variate,
    solver,
):
    """Monte Carlo estimates for every row of ``theta``.

    Returns
    -------
    y_mean : (n, d) mean of the perturbed structures, E[y*(ũ)].
    grad_opt : (n, d) gradient in ``u`` of the expected optimal value,
        E[y*(ũ) ⊙ ∂ũ/∂u]; the same array as ``y_mean`` when additive.
    opt_value : (n,) expected optimal value E[<y*(ũ), ũ>].
    vjp : (n, d) vᵀ J_u y_mean, or an empty (0, d) array when not wanted.
    """
    n, d = theta.shape
    y_mean = np.zeros((n, d))
    grad_opt = np.zeros((n, d)) if multiplicative else y_mean
    opt_value = np.zeros(n)
    vjp = np.zeros((n, d)) if want_vjp else np.zeros((0, d))
    # Scores enter the centred VJP relative to the first sample's: centring is
    # shift-invariant, and equal scores (a tiny ε, where no perturbation
    # changes the structure) then give exactly 0 instead of the difference of
    # two large sums, divided by ε.
    centre = want_vjp and control_variate and not antithetic and n_samples > 1
    for i in nb.prange(n):
        # The cast: numba types the loop index int64 when typing the loop
        # and uint64 when lowering it, which would compile the row twice.
        _estimate_row(
            np.int64(i), theta, row_keys, seed, n_samples, epsilon, noise_id, multiplicative,
            antithetic, sign, v, want_vjp, centre, solver, y_mean, grad_opt, opt_value, vjp,
        )
    return y_mean, grad_opt, opt_value, vjp


# The parallel loop calls this function instead of holding its body, so
# numba's parfor passes see a one-call body (they cost compile time in
# proportion to the body: a cold compile of the Argmax kernel went from 19 s
# to 13 s on a loaded 2-core machine).
@nb.njit(cache=True)
def _estimate_row(
    i, theta, row_keys, seed, n_samples, epsilon, noise_id, multiplicative, antithetic, sign,
    v, want_vjp, centre, solver, y_mean, grad_opt, opt_value, vjp,
):
    """Row ``i`` of every output of :func:`perturbed_kernel` (written in place)."""
    d = theta.shape[1]
    half_var = 0.5 * epsilon * epsilon
    step = sign * epsilon
    # Per-row buffers, allocated once per row and reused for every sample.
    z = np.empty(d)
    perturbed = np.empty(d)
    scale = np.empty(d)
    y = np.empty(d)
    sum_grad_nu = np.zeros(d)
    theta_i = theta[i]
    y_i = y_mean[i]
    grad_i = grad_opt[i]
    # Without a VJP these stand-ins are never read.
    v_i = v[i] if want_vjp else z
    vjp_i = vjp[i] if want_vjp else sum_grad_nu
    sum_score = 0.0
    value = 0.0
    pivot = 0.0
    for m in range(n_samples):
        fill_noise(seed, row_keys[i], m, noise_id, antithetic, z)
        if multiplicative:
            for j in range(d):
                scale[j] = math.exp(epsilon * z[j] - half_var)
                perturbed[j] = theta_i[j] * scale[j]
        else:
            for j in range(d):
                perturbed[j] = theta_i[j] + step * z[j]
        call_solver(solver, perturbed, y)
        # One pass over y for every sum it enters (each summed in j order).
        dot = 0.0
        if want_vjp:
            score = 0.0
            for j in range(d):
                dot += y[j] * perturbed[j]
                y_i[j] += y[j]
                score += y[j] * v_i[j]
        else:
            for j in range(d):
                dot += y[j] * perturbed[j]
                y_i[j] += y[j]
        value += dot
        if multiplicative:
            for j in range(d):
                grad_i[j] += y[j] * scale[j]
        if want_vjp:
            if m == 0 and centre:
                pivot = score
            relative = score - pivot
            sum_score += relative
            if noise_id == GAUSSIAN:
                for j in range(d):
                    vjp_i[j] += relative * z[j]
                    sum_grad_nu[j] += z[j]
            else:
                for j in range(d):
                    g = grad_nu(z[j], noise_id)
                    vjp_i[j] += relative * g
                    sum_grad_nu[j] += g
    inv_m = 1.0 / n_samples
    for j in range(d):
        y_mean[i, j] *= inv_m
        if multiplicative:
            grad_opt[i, j] *= inv_m
    opt_value[i] = value * inv_m
    if want_vjp:
        if centre:
            # Leave-one-out baseline: unbiased since E[∇ν(Z)] = 0 and the
            # other samples are independent of this one. Antithetic pairs
            # break that independence and already cancel any baseline.
            mean_score = sum_score * inv_m
            for j in range(d):
                vjp[i, j] = (vjp[i, j] - mean_score * sum_grad_nu[j]) / (n_samples - 1)
        else:
            for j in range(d):
                vjp[i, j] *= inv_m
        for j in range(d):
            if multiplicative:
                # Gaussian noise in log|u|: chain rule through d log|u| / du = 1/u.
                vjp[i, j] /= epsilon * theta[i, j]
            else:
                vjp[i, j] *= sign / epsilon
