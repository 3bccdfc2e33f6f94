"""Training losses of the estimators, seen only through raw scores θ.

Each loss maps a batch (θ, y) and the noise keys of its rows to per-sample
values and gradients in θ; the estimator composes it with a model. The maths
lives in :mod:`sk_perturbed.perturbed`; this module only binds parameters and
picks the path: the fast CPU path, or, when the model trains on the GPU
(``device`` set), the same formulas on device arrays.
"""

import numpy as np

from ._closed_forms import gumbel_argmax_fenchel_young, is_gumbel_argmax
from ._engine import (
    EstimationSpec,
    _blackbox_from,
    _fast_loss_gradient,
    _fenchel_young_from,
    _perturbed_squared_from,
    _PreparedOptimizer,
    _squared_from,
)
from ._noise import _array_namespace
from ._ragged import ragged_fenchel_young
from .perturbed import (
    blackbox_loss,
    fenchel_young_loss,
    perturbed_squared_loss,
)


class _BaseLoss:
    def __init__(self, optimizer, device=None):
        self.optimizer = optimizer
        self.device = device

    def loss_gradient(self, theta, y, row_keys, seed):
        """Per-row values (n,) and gradient in θ (n, d) of the batch.

        On the GPU, θ and y are device arrays and so are the outputs; the row
        keys are host integers.
        """
        if self.device is not None:
            return self._device_loss_gradient(theta.astype(np.float64, copy=False), y, row_keys, seed)
        return self._host_loss_gradient(theta, y, row_keys, seed)


class _PerturbedLossMixin(_BaseLoss):
    _kind = None
    _public = None

    def __init__(self, optimizer, device=None):
        super().__init__(optimizer, device)
        self._prepared = None

    def _host_loss_gradient(self, theta, y, row_keys, seed):
        # The optimizer is validated once per width d, then every mini-batch
        # goes straight to the kernel (same results as the public function,
        # which remains the path for anything unusual and raises its errors).
        d = getattr(theta, "shape", (0, 0))[-1]
        if self._prepared is None or self._prepared.d != d:
            self._prepared = _PreparedOptimizer(self.optimizer, d)
        out = _fast_loss_gradient(self._kind, self._prepared, theta, y, row_keys, seed)
        if out is None:
            out = type(self)._public(theta, y, self.optimizer, row_keys=row_keys, seed=seed)
        return out

    def _device_estimate(self, theta, row_keys, seed, v=None):
        from ._cupy_backend import estimate_with

        return estimate_with(self.device, EstimationSpec.of(self.optimizer), theta, row_keys, seed, v)


class FenchelYoungLoss(_PerturbedLossMixin):
    """Perturbed Fenchel–Young loss (reported up to the constant εΩ(y)).

    With the multiplicative perturbation it is taken at θ / mean|θ| per row.
    There ``F̂_ε(cθ) = c F̂_ε(θ)`` for c > 0, so the loss is positively
    homogeneous, ``L(cθ) = c L(θ)`` with ``L ≥ 0``: its infimum is at θ → 0,
    and a model trained on it shrinks every score towards 0 until the
    decisions degrade. The solutions ``y*(θ̃)`` do not depend on the scale of
    θ, so the scale-free loss keeps what the decisions need and removes the
    shrinking (its gradient is orthogonal to θ).
    """

    _kind = "fenchel_young"
    _public = staticmethod(fenchel_young_loss)

    def loss_gradient(self, theta, y, row_keys, seed):
        if self.optimizer.perturbation != "multiplicative":
            return super().loss_gradient(theta, y, row_keys, seed)
        xp = _array_namespace(theta)
        # θ_j = 0 is refused by the perturbation itself; tiny keeps 0/0 away.
        scale = xp.maximum(xp.abs(theta).mean(axis=1, keepdims=True), np.finfo(theta.dtype).tiny)
        theta_n = theta / scale
        values, grad_n = super().loss_gradient(theta_n, y, row_keys, seed)
        # Chain rule through θ / mean|θ|.
        radial = (grad_n * theta_n).sum(axis=1, keepdims=True) / theta.shape[1]
        return values, (grad_n - xp.sign(theta) * radial) / scale

    def _device_loss_gradient(self, theta, y, row_keys, seed):
        po = self.optimizer
        if is_gumbel_argmax(po):
            return gumbel_argmax_fenchel_young(theta, y, float(po.epsilon))
        _, grad, value, _ = self._device_estimate(theta, row_keys, seed)
        return _fenchel_young_from(theta, y, value, grad, po.solver._sign)


class PerturbedSquaredLoss(_PerturbedLossMixin):
    """``½‖y - y_ε(θ)‖²``, differentiated through the perturbed maximizer."""

    _kind = "perturbed_squared"
    _public = staticmethod(perturbed_squared_loss)

    def _device_loss_gradient(self, theta, y, row_keys, seed):
        return _perturbed_squared_from(
            lambda v: self._device_estimate(theta, row_keys, seed, v)[::3], y
        )


class SquaredLoss(_BaseLoss):
    """``½‖y - θ‖²``: regress the structures directly (a baseline)."""

    def _host_loss_gradient(self, theta, y, row_keys, seed):
        # For a minimizing solver θ are costs: regress -y so that larger
        # structure entries still mean "preferred" after the sign flip.
        sign = self.optimizer.solver._sign
        loss, grad = _squared_from(sign * theta, y)
        return loss, sign * grad

    _device_loss_gradient = _host_loss_gradient


class BlackboxLoss(_BaseLoss):
    """``½‖y - y*(θ)‖²`` with the interpolation gradient of Vlastelica et al."""

    def __init__(self, optimizer, lambda_=10.0, device=None):
        super().__init__(optimizer, device)
        self.lambda_ = lambda_

    def _host_loss_gradient(self, theta, y, row_keys, seed):
        return blackbox_loss(theta, y, self.optimizer.solver, lambda_=self.lambda_)

    def _device_loss_gradient(self, theta, y, row_keys, seed):
        from ._cupy_backend import gpu_solver

        solver = self.optimizer.solver
        solve, _ = gpu_solver(self.device, solver)
        return _blackbox_from(
            theta, y, solve, solver._sign, self.lambda_, solver.requires_positive
        )


LOSSES = {
    "fenchel_young": FenchelYoungLoss,
    "perturbed_squared": PerturbedSquaredLoss,
    "squared": SquaredLoss,
    "blackbox": BlackboxLoss,
}


class RaggedFenchelYoungLoss:
    """Perturbed Fenchel–Young loss of rankings, over query groups of any size.

    θ and y hold one score per document (shape (n, 1)); the rows of a batch
    come query after query (whole queries, each contiguous), and
    ``query_of_row[row]`` tells which query a training row belongs to, so the
    group boundaries of a batch are where that index changes. The noise of a
    document is keyed by its training row. See :mod:`sk_perturbed._ragged`.
    """

    uses_noise = True

    def __init__(self, query_of_row, *, epsilon, n_samples, noise, rank_weights):
        self.query_of_row = query_of_row
        self.epsilon = epsilon
        self.n_samples = n_samples
        self.noise = noise
        self.rank_weights = rank_weights

    def loss_gradient(self, theta, y, row_keys, seed):
        query = self.query_of_row[row_keys]
        offsets = np.concatenate(([0], np.flatnonzero(query[1:] != query[:-1]) + 1, [len(query)]))
        values, grad, _ = ragged_fenchel_young(
            theta[:, 0], y[:, 0], offsets, row_keys, seed=seed, n_samples=self.n_samples,
            epsilon=self.epsilon, noise=self.noise, rank_weights=self.rank_weights,
        )
        return values, grad[:, None]
