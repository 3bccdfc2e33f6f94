"""PerturbedRankingRegressor: learn scores whose ranking matches the targets."""

import warnings

import numpy as np
from scipy.stats import rankdata
from sklearn.base import RegressorMixin
from sklearn.utils import gen_batches

from ._base import BasePerturbedEstimator
from ._validation import to_host
from .metrics import spearman_score
from .solvers import Ranking


def _average_ranks(scores):
    """Float64 ranks 1..d of each row, ties averaged (``rankdata``'s convention).

    Ranked in blocks of rows: rankdata's temporaries for a whole large Y
    doubled the peak memory of fits.
    """
    ranks = np.empty(scores.shape, dtype=np.float64)
    for rows in gen_batches(scores.shape[0], 4096):
        ranks[rows] = rankdata(scores[rows], axis=1)
    return ranks


class PerturbedRankingRegressor(RegressorMixin, BasePerturbedEstimator):
    """Label ranking with a perturbed ranking layer and the Fenchel–Young loss.

    Learns scores θ = g_w(x) (linear or MLP) such that the ranking of θ
    matches the ranking of the targets, by minimizing the perturbed
    Fenchel–Young loss of the permutahedron (Berthet et al., 2020) with
    mini-batch Adam or SGD.

    Parameters
    ----------
    epsilon : float, default=1.0
        Noise scale ε of the perturbations.
    n_samples : int, default=10
        Perturbations M per sample and step.
    noise : {'gaussian', 'normal', 'gumbel'}, default='gaussian'
        Distribution of the noise Z.
    perturbation : {'additive', 'multiplicative'}, default='additive'
        ``θ + εZ``, or ``θ ⊙ exp(εZ - ε²/2)``, which keeps the sign of each score
        (Gaussian noise only; the FY loss is then taken at θ / mean|θ| per
        row, since it would otherwise shrink θ to 0).
    loss : {'fenchel_young', 'perturbed_squared', 'squared', 'blackbox'}, default='fenchel_young'
        'fenchel_young' is the perturbed FY loss (gradient ``y_ε(θ) - y``);
        'perturbed_squared' is ``½‖y - y_ε(θ)‖²``; 'squared' regresses the ranks
        directly, ``½‖y - θ‖²``; 'blackbox' is ``½‖y - y*(θ)‖²`` with the
        interpolation gradient of Vlastelica et al. (2019).
    blackbox_lambda : float, default=10.0
        Interpolation step λ of the 'blackbox' loss. Its best value scales
        with θ and must be tuned: on the benchmarks, 0.1 for perfect ranks and
        1 for 5×5 shortest paths (10, the value of Vlastelica et al., fails on
        ranks); see benchmarks/README.md.
    model : {'linear', 'mlp'}, default='mlp'
        ``θ = XW + b``, or an MLP with ``hidden_layer_sizes``. The MLP default
        was chosen on the shipped label-ranking data sets (it beats per-label
        ridge regression on 6 of the 7 small ones; see benchmarks/README.md).
    n_item_features : int, default=None
        When set, X holds the features of each of the d items side by side
        (item-major: ``X.reshape(n, d, n_item_features)``), and one model,
        shared by all items, scores each item from its own features
        (listwise learning to rank, or per-cell costs of a map). None: the
        model maps a row of X to all d scores.
    hidden_layer_sizes : tuple of int, default=(100,)
        Hidden layers of the MLP (ignored by the linear model).
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Activation of the hidden layers of the MLP.
    optimizer : {'adam', 'sgd'}, default='adam'
        Stochastic gradient method (``solver`` is the combinatorial oracle).
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='adaptive'
        Step schedule. 'adaptive': when the training stalls
        (``n_iter_no_change`` epochs without improvement), divide the step by
        5 instead of stopping: at most twice with 'adam', until it falls below
        1e-6 with 'sgd' (as scikit-learn's MLP). 'invscaling' (``sgd`` only)
        decays it as ``learning_rate_init / t**power_t``; 'constant' keeps it.
        The Monte Carlo training loss is noisy, so the first stall comes when
        the constant step reaches its noise floor: with 'adaptive' the fit goes
        on with smaller steps (measured: +2.7 points of accuracy at 100 000
        rows, see the benchmarks' README).
    learning_rate_init : float, default=0.01
        Initial step size.
    power_t : float, default=0.5
        Exponent of 'invscaling'.
    momentum : float, default=0.9
        Momentum of 'sgd'.
    nesterovs_momentum : bool, default=True
        Whether 'sgd' uses Nesterov's momentum.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decay rates.
    adam_epsilon : float, default=1e-8
        Adam's numerical-stability constant (``epsilon`` is the noise scale).
    alpha : float, default=1e-4
        L2 penalty.
    batch_size : int or 'auto', default='auto'
        ``min(200, n_samples)`` for 'auto'.
    max_iter : int, default=500
        Maximum number of epochs.
    tol : float, default=1e-4
        Minimal improvement of the training loss (or validation score) that
        counts as progress.
    n_iter_no_change : int, default=20
        Epochs without improvement of ``tol`` before stopping.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop on its Spearman
        score and restore the best weights.
    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping.
    shuffle : bool, default=True
        Whether to shuffle the samples at each epoch.
    warm_start : bool, default=False
        Whether ``fit`` continues from the current weights (and the
        optimizer state, unless an optimizer parameter changed).
    random_state : int, RandomState instance or None, default=None
        Seeds initialization, shuffling, the validation split and the noise.
    verbose : bool, default=False
        Whether to print the loss at each epoch.
    n_jobs : int, default=None
        Threads of the numba kernels during this estimator's calls.
    backend : {'auto', 'numba', 'numpy', 'cupy'}, default='auto'
        Where the perturbed estimates run; see
        :class:`~sk_perturbed.perturbed.PerturbedOptimizer`. With ``'cupy'``
        (or ``'auto'`` and CuPy inputs) the whole training runs on the GPU and
        the fitted attributes are NumPy arrays afterwards; prediction runs on
        the CPU.

    Attributes
    ----------
    coefs_, intercepts_ : list of ndarray
        Weights and biases per layer.
    n_outputs_ : int
        Number of ranked items d.
    solver_ : Ranking
    loss_, loss_curve_, best_loss_ : float, list, float
        Training loss (for 'fenchel_young': ``F̂_ε(θ) - <θ, y>``, which is the FY
        loss minus the constant εΩ(y), so it can be negative).
    validation_scores_, best_validation_score_ : list, float
        With early stopping, else None.
    n_iter_ : int
        Epochs run.
    t_ : int
        Samples seen.
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    Examples
    --------
    >>> from sk_perturbed import PerturbedRankingRegressor
    >>> from sk_perturbed.datasets import make_perfect_ranks
    >>> X, Y = make_perfect_ranks(n_samples=300, n_features=5, n_labels=4, random_state=0)
    >>> model = PerturbedRankingRegressor(random_state=0).fit(X, Y)
    >>> model.predict(X[:2]).shape
    (2, 4)
    >>> model.score(X, Y) > 0.9
    True
    """

    def __init__(
        self, *, epsilon=1.0, n_samples=10, noise="gaussian", perturbation="additive",
        loss="fenchel_young", blackbox_lambda=10.0, model="mlp", n_item_features=None,
        hidden_layer_sizes=(100,), activation="relu", optimizer="adam", learning_rate="adaptive",
        learning_rate_init=0.01,
        power_t=0.5, momentum=0.9, nesterovs_momentum=True, beta_1=0.9, beta_2=0.999,
        adam_epsilon=1e-8, alpha=1e-4, batch_size="auto", max_iter=500, tol=1e-4,
        n_iter_no_change=20, early_stopping=False, validation_fraction=0.1, shuffle=True,
        warm_start=False, random_state=None, verbose=False, n_jobs=None, backend="auto",
    ):
        self.epsilon = epsilon
        self.n_samples = n_samples
        self.noise = noise
        self.perturbation = perturbation
        self.loss = loss
        self.blackbox_lambda = blackbox_lambda
        self.model = model
        self.n_item_features = n_item_features
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.adam_epsilon = adam_epsilon
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs
        self.backend = backend

    def _make_solver(self, n_outputs):
        return Ranking()

    def _encode_targets(self, Y, reset):
        if Y.ndim != 2:
            raise ValueError(
                "PerturbedRankingRegressor needs Y of shape (n_samples, n_items) with one "
                f"relevance score per item; got a {Y.ndim}-D array."
            )
        if reset and Y.shape[1] == 1:
            # scikit-learn's common checks fit multi-output regressors on one
            # column, so this is a warning, not an error: the fit is exact but
            # empty (the only ranking of one item is [1]).
            warnings.warn(
                "Y has a single item: its only ranking is [1], so there is nothing to "
                "learn; predict returns rank 1 and score is 0. Pass Y of shape "
                "(n_samples, n_items) with n_items >= 2.",
                UserWarning,
            )
        if not reset and Y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"Y has {Y.shape[1]} items but the model ranks {self.n_outputs_}."
            )
        # Ties in the relevance scores get their average rank: still a point of
        # the permutahedron, so still a valid Fenchel–Young target.
        return _average_ranks(Y)

    def _decode(self, theta):
        # Tied scores share their average rank (the centre of the face of
        # maximizers, as rankdata ranks): no order made up from column order.
        return _average_ranks(theta)

    def predict(self, X):
        """Predicted ranks: float64 1..d per row, d for the highest score.

        Items with exactly equal scores share their average rank, as in
        :func:`scipy.stats.rankdata`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        ranks : ndarray of shape (n_samples, n_items)
            Ranks of the items for each sample.
        """
        return super().predict(X)

    def predict_marginals(self, X):
        """Soft ranks ``y_ε(θ)``: expected rank of each item under the noise.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        soft_ranks : ndarray of shape (n_samples, n_items)
            Each row sums to d(d+1)/2.
        """
        return super().predict_marginals(X)

    def score(self, X, y, sample_weight=None):
        """Mean Spearman correlation between predicted and true rankings.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples, n_items)
            True relevance scores or ranks (higher = better).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the mean.

        Returns
        -------
        score : float
            Mean Spearman ρ, in [-1, 1].
        """
        Y_pred = self.predict(X)
        Y, sample_weight = np.asarray(to_host(y)), to_host(sample_weight)
        if Y.ndim != 2 or Y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"Y must have shape (n_samples, {self.n_outputs_}), got {Y.shape}."
            )
        if self.n_outputs_ == 1:
            return 0.0  # one item: no order to agree on (fit warned about it)
        return spearman_score(Y, Y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        # The common checks score a ranker on one-column regression targets.
        tags.regressor_tags.poor_score = True
        return tags
