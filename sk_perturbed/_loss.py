"""Training losses of the estimators, seen only through raw scores θ.

Each loss maps a batch (θ, y) and the noise keys of its rows to per-sample
values and gradients in θ; the estimator composes it with a model. The maths
lives in :mod:`sk_perturbed.perturbed`; this module only binds parameters.
"""

from .perturbed import (
    _fast_loss_gradient,
    _PreparedOptimizer,
    blackbox_loss,
    fenchel_young_loss,
    perturbed_squared_loss,
    squared_loss,
)


class _PerturbedLossMixin:
    uses_noise = True
    _kind = None
    _public = None

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self._prepared = None

    def loss_gradient(self, theta, y, row_keys, seed):
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


class FenchelYoungLoss(_PerturbedLossMixin):
    """Perturbed Fenchel–Young loss (reported up to the constant εΩ(y))."""

    _kind = "fenchel_young"
    _public = staticmethod(fenchel_young_loss)


class PerturbedSquaredLoss(_PerturbedLossMixin):
    """``½‖y - y_ε(θ)‖²``, differentiated through the perturbed maximizer."""

    _kind = "perturbed_squared"
    _public = staticmethod(perturbed_squared_loss)


class SquaredLoss:
    """``½‖y - θ‖²``: regress the structures directly (a baseline)."""

    uses_noise = False

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def loss_gradient(self, theta, y, row_keys, seed):
        # For a minimizing solver θ are costs: regress -y so that larger
        # structure entries still mean "preferred" after the sign flip.
        sign = self.optimizer.solver._sign
        loss, grad = squared_loss(sign * theta, y)
        return loss, sign * grad


class BlackboxLoss:
    """``½‖y - y*(θ)‖²`` with the interpolation gradient of Vlastelica et al."""

    uses_noise = False

    def __init__(self, optimizer, lambda_=10.0):
        self.optimizer = optimizer
        self.lambda_ = lambda_

    def loss_gradient(self, theta, y, row_keys, seed):
        return blackbox_loss(theta, y, self.optimizer.solver, lambda_=self.lambda_)


LOSSES = {
    "fenchel_young": FenchelYoungLoss,
    "perturbed_squared": PerturbedSquaredLoss,
    "squared": SquaredLoss,
    "blackbox": BlackboxLoss,
}
