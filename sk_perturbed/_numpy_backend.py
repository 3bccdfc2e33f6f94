"""The NumPy backend: estimates from the materialized (n, M, d) noise tensor.

``accumulate`` is array code in θ's namespace, shared with the CuPy backend;
``check_estimated_values`` turns a non-finite F̂ of any backend into an
error naming the row and the cause (overflow, or the solver's failure).
"""

import numpy as np

from ._memory import check_perturbed_batch_memory
from ._noise import _array_namespace, grad_nu_numpy, sample_noise
from ._validation import to_host


def estimate_numpy(spec, theta, row_keys, seed, v):
    """Same estimates with the (n, M, d) noise tensor built explicitly.

    The noise is the kernels' keyed noise, so both backends agree up to
    floating-point summation order. Solvers are called on the whole (n·M, d)
    batch, which is what Python (batched) solvers need.
    """
    check_perturbed_batch_memory(theta.shape[0], spec.n_samples, theta.shape[1])
    z = sample_noise(seed, row_keys, spec.n_samples, theta.shape[1], spec.noise, spec.antithetic)
    with np.errstate(over="ignore", invalid="ignore"):  # reported just below
        out = accumulate(spec, spec.solver._solve_batch, theta, z, v)
    check_estimated_values(spec, out[2], theta, row_keys, seed)
    return out


def perturbed_scores(spec, theta, z):
    """θ̃ for noise ``z`` (θ broadcast against it) and the multiplicative factor, or None."""
    epsilon = spec.epsilon
    if spec.multiplicative:
        scale = _array_namespace(z).exp(epsilon * z - 0.5 * epsilon**2)
        return theta * scale, scale
    return theta + (spec.sign * epsilon) * z, None


def accumulate(spec, solve, theta, z, v):
    """``(y_eps, grad, value, vjp)`` from the noise ``z`` (n, M, d) of every problem.

    Array code in θ's namespace (NumPy, or CuPy for the GPU backend); ``solve``
    maps a batch (n·M, d) of perturbed problems to their structures.
    """
    xp = _array_namespace(theta)
    n, n_samples, d = z.shape
    epsilon, sign, multiplicative = spec.epsilon, spec.sign, spec.multiplicative
    perturbed, scale = perturbed_scores(spec, theta[:, None, :], z)
    y = solve(perturbed.reshape(n * n_samples, d)).reshape(n, n_samples, d)
    y_eps = y.mean(axis=1)
    value = xp.einsum("nmd,nmd->nm", y, perturbed).mean(axis=1)
    grad = (y * scale).mean(axis=1) if multiplicative else y_eps
    vjp = None
    if v is not None:
        scores = xp.einsum("nmd,nd->nm", y, v)
        g = grad_nu_numpy(z, spec.noise)
        if spec.control_variate and not spec.antithetic and n_samples > 1:
            # Relative to the first sample (as the kernel): equal scores give 0.
            scores = scores - scores[:, :1]
            vjp = xp.einsum("nm,nmd->nd", scores - scores.mean(axis=1, keepdims=True), g)
            vjp /= n_samples - 1
        else:
            vjp = xp.einsum("nm,nmd->nd", scores, g) / n_samples
        vjp = vjp / (epsilon * theta) if multiplicative else vjp * (sign / epsilon)
    return y_eps, grad, value, vjp


def check_estimated_values(spec, value, theta, row_keys, seed):
    """Raise for the first row whose F̂ is not finite, naming the likely cause.

    ``value`` and ``row_keys`` are host arrays; ``theta`` may be on the GPU,
    only the offending row is copied to the host.
    """
    if np.isfinite(value).all():
        return
    bad = int(np.flatnonzero(~np.isfinite(value))[0])
    theta_row = np.asarray(to_host(theta[bad]), dtype=np.float64)
    # Redraw that row's noise: perturbed scores that overflow are the
    # caller's ε or θ, not the solver's fault.
    z = sample_noise(seed, row_keys[bad : bad + 1], spec.n_samples, theta.shape[1], spec.noise,
                     spec.antithetic)
    where = f"row {bad} (row key {int(row_keys[bad])})"
    solver, epsilon = spec.solver, spec.epsilon
    if overflows(spec, theta_row, z[0]):
        raise ValueError(
            f"The perturbed problems of {where} overflow float64 (max |theta| = "
            f"{np.abs(theta_row).max():.3g}, epsilon = {epsilon:.3g}): θ + εZ, "
            "θ ⊙ exp(εZ), or the optimal values <y*, θ̃> and their sum over the samples "
            "are beyond 1.8e308. To fix it, lower epsilon or rescale: divide theta (the "
            "scores or costs) by a constant c, and for additive noise epsilon by the same "
            "c; the structures y_ε are unchanged and the optimal values scale by 1/c."
        )
    raise ValueError(
        f"{type(solver).__name__} could not solve a perturbed problem of {where}. "
        f"{solver._invalid_output_hint(theta_row)}"
    )


def overflows(spec, theta_row, z):
    """Whether one row's estimates overflow float64 rather than its solver failing.

    Overflow is the perturbed scores θ̃ (M, d), or one of their optimal values
    ``<y*(θ̃), θ̃>``, or the running sum of those values over the samples.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        perturbed, _ = perturbed_scores(spec, theta_row, z)
        if not np.isfinite(perturbed).all():
            return True
        try:
            y = spec.solver._solve_batch(perturbed)
        except ValueError:  # the solver's own failure
            return False
        if not np.isfinite(y).all():
            return False
        values = np.einsum("md,md->m", y, perturbed)
        return not (np.isfinite(values).all() and np.isfinite(np.cumsum(values)).all())

