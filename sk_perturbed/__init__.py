"""Learning with differentiable perturbed optimizers, for scikit-learn.

Berthet et al., "Learning with Differentiable Perturbed Optimizers",
NeurIPS 2020: turn a combinatorial solver into a smooth layer by averaging
its solutions under random perturbations, and train the scores that feed it
with the Fenchel–Young loss.
"""

from ._classifier import PerturbedStructuredClassifier
from ._decision import DecisionFocusedRegressor
from ._ranker import PerturbedRanker
from ._ranking import PerturbedRankingRegressor

__version__ = "0.1.0.dev0"

__all__ = [
    "DecisionFocusedRegressor",
    "PerturbedRanker",
    "PerturbedRankingRegressor",
    "PerturbedStructuredClassifier",
    "__version__",
]
