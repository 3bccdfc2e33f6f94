"""Learning with differentiable perturbed optimizers, for scikit-learn."""

__version__ = "0.1.0.dev0"
