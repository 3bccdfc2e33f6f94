"""DecisionFocusedRegressor: predict costs that lead to good decisions.

Decision-focused ("predict, then optimize") learning: the training targets
are the true cost vectors c of linear problems ``min_y <c, y>`` over the
solver's feasible set, the model predicts ĉ = g_w(x), and the losses judge ĉ
by the decisions it leads to. The estimator solves every training problem
once per fit (one batched call of the solver, which also finds the problems
with several optimal decisions), then trains on the costs and those optimal
decisions together.
"""

import numpy as np
from sklearn.base import RegressorMixin, clone
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import solvers as _solvers
from ._base import BasePerturbedEstimator
from ._loss import LOSSES
from ._noise import sample_noise
from ._spo import _spo_plus_from
from ._threads import numba_threads, training_threads
from ._validation import to_host
from .metrics import normalized_regret
from .perturbed import _squared_from

#: Mini-batches of SPO+ with fewer cost entries than this are solved on one thread.
_MIN_PARALLEL_ENTRIES = 1 << 14

#: Index of the costs, of their optimal decisions and of the flag of rows
#: with several optimal decisions (1.0 on every entry of such a row) along
#: the last axis of the training targets, which stack the three: (n, d, 3),
#: so that every mini-batch slices them together.
_COSTS, _DECISIONS, _TIED = 0, 1, 2


#: How far the true costs are moved to choose among their optimal decisions:
#: this fraction of each row's largest |cost| (far below the gap between
#: distinct values of integer costs).
_TIE_STEP = 1e-6

#: Seed of the directions that find the rows with ties, and offset of the
#: seed of the per-epoch tie-breaking draws from that of the perturbations.
_TIE_SEED, _TIE_SEED_OFFSET = 0, 0x9E3779B97F4A7C15


def _moved(direction, c):
    """The costs c moved by ``δ·direction``, scaled to each row's largest |c|."""
    direction = np.asarray(direction, dtype=np.float64)
    largest = np.abs(c).max(axis=1, keepdims=True)
    scale = np.where(largest > 0, largest, 1.0) / np.maximum(
        np.abs(direction).max(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    return np.ascontiguousarray(c + _TIE_STEP * scale * direction)


def _where_optimal(candidate, c, y, sign):
    """Per row, ``candidate`` where it is as good as the optimum y for c, else y."""
    best = np.einsum("ij,ij->i", c, y)
    shortfall = sign * (best - np.einsum("ij,ij->i", c, candidate))
    tied = shortfall <= 1e-9 * (1.0 + np.abs(best))
    return np.where(tied[:, None], candidate, y)


def _preferred_optima(direction, c, y, solve, sign):
    """Per row, the decision optimal for c that ``direction`` prefers, else y.

    True costs often have several optimal decisions (integer costs: 468 of
    1000 of PyEPO's knapsack problems, whose values are rounded up, and
    Gurobi and our branch and bound return different ones on 215), and a
    solver returns the first one its search meets; for the branch and
    bound, the one richest in items of high value per weight. Training
    towards that systematic choice biases the decision-focused losses. This
    solves the costs moved by a tiny ``δ·direction`` and keeps that decision
    where it is optimal for c too, so a target is never suboptimal.
    """
    return _where_optimal(solve(_moved(direction, c)), c, y, sign)


def _decision_targets(solver, C, find_ties=True):
    """Training targets of the cost rows C: costs, optimal decisions, tie flags.

    One batched solve of 3n problems: C, and C moved by ``±δr`` (r random).
    Where a row has several optimal decisions, the ones that r and -r prefer
    are not both the solver's (with probability 1: ``<r, y>`` is not constant
    over them), so these rows are found, and only they pay the extra solve
    of a tie-break at each mini-batch. ``find_ties=False`` solves C alone
    (no row flagged), for losses that never train on the decisions.
    """
    n, d = C.shape
    if not find_ties:
        return np.stack([C, solver(C), np.zeros_like(C)], axis=-1)
    r = np.random.default_rng(_TIE_SEED).standard_normal(C.shape)
    solved = solver(np.concatenate([C, _moved(r, C), _moved(-r, C)]))
    decisions = solved[:n]
    tied = np.zeros(n, dtype=bool)
    for k in (1, 2):
        other = _where_optimal(solved[k * n:(k + 1) * n], C, decisions, solver._sign)
        tied |= np.any(other != decisions, axis=1)
    flags = np.broadcast_to(tied[:, None].astype(np.float64), (n, d))
    return np.stack([C, decisions, flags], axis=-1)


class _DecisionLoss:
    """A loss on (costs, optimal decisions, tie flags) targets, with its solver."""

    def __init__(self, solver):
        self.solver = solver

    def _solve(self, theta):
        # A mini-batch of fast problems runs on the calling thread: 32 shortest
        # paths took 40 µs there and 14 ms in a parallel region on 2 busy
        # cores (the thread count is per call, results do not depend on it).
        if theta.size >= _MIN_PARALLEL_ENTRIES:
            return self.solver._solve_batch(theta)
        with numba_threads(1):
            return self.solver._solve_batch(theta)

    def _tie_direction(self, theta, row_keys, seed):
        """Which of several optimal decisions of each row to train towards."""
        raise NotImplementedError

    def _targets(self, theta, targets, row_keys, seed):
        """The true costs and, per row, the optimal decision to train towards."""
        costs = targets[:, :, _COSTS]
        decisions = targets[:, :, _DECISIONS].copy()  # tied rows are overwritten
        rows = np.flatnonzero(targets[:, 0, _TIED])
        if rows.size:
            direction = self._tie_direction(np.asarray(theta)[rows],
                                            np.asarray(row_keys)[rows], seed)
            decisions[rows] = _preferred_optima(direction, costs[rows], decisions[rows],
                                                self._solve, self.solver._sign)
        return costs, decisions


class _SPOPlusLoss(_DecisionLoss):
    """SPO+: two solver calls per mini-batch (the target, then at 2ĉ - c)."""

    def _tie_direction(self, theta, row_keys, seed):
        # Among optimal decisions the one the prediction ranks best gives the
        # tightest SPO+ bound on the regret: on PyEPO's knapsack (tuning draw,
        # 8 seeds) normalized regret 0.0857 against 0.0877 for the solver's
        # first optimum and 0.0867 for a random one.
        return theta

    def loss_gradient(self, theta, targets, row_keys, seed):
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        costs, decisions = self._targets(theta, targets, row_keys, seed)
        return _spo_plus_from(theta, costs, decisions, self._solve, self.solver._sign)


class _CostSquaredLoss:
    """``½‖θ - c‖²``: regress the costs (the two-stage baseline)."""

    def loss_gradient(self, theta, targets, row_keys, seed):
        return _squared_from(theta, targets[:, :, _COSTS])


class _OnDecisions(_DecisionLoss):
    """A structure loss of :mod:`sk_perturbed._loss`, trained on the optimal decisions."""

    def __init__(self, solver, loss):
        super().__init__(solver)
        self.loss = loss

    def _tie_direction(self, theta, row_keys, seed):
        # A fresh random optimum at each visit: in expectation the target is
        # the mean of the optimal decisions, as a distribution over decisions
        # should be. Fenchel-Young on PyEPO's knapsack (tuning draw, 6 seeds):
        # 0.0860 against 0.0887 for the optimum the prediction prefers.
        tie_seed = (int(seed) + _TIE_SEED_OFFSET) % 2**64
        return sample_noise(tie_seed, row_keys, 1, theta.shape[1])[:, 0]

    def loss_gradient(self, theta, targets, row_keys, seed):
        _, decisions = self._targets(theta, targets, row_keys, seed)
        return self.loss.loss_gradient(theta, decisions, row_keys, seed)


#: Losses on decisions (through the perturbed or blackbox solver) and on costs.
DECISION_LOSSES = ("spo_plus", "fenchel_young", "perturbed_squared", "blackbox", "squared")


class DecisionFocusedRegressor(RegressorMixin, BasePerturbedEstimator):
    """Predict the costs of linear problems, trained for the decisions they lead to.

    Decision-focused learning ("predict, then optimize"): each sample has
    features x and the true cost vector c of a problem ``min_y <c, y>`` over
    the feasible set of ``solver`` (a linear or integer program, a shortest
    path, a knapsack, ...). The model predicts ĉ = g_w(x) (linear or MLP), and
    is trained so that the decision ``y*(ĉ)`` is nearly as good as the optimal
    ``y*(c)`` under the true costs: by the SPO+ loss of Elmachtoub & Grigas
    (2022), the perturbed Fenchel–Young loss of the optimal decisions
    (Berthet et al., 2020; PyEPO's "PFYL"), or by regressing the costs (the
    two-stage baseline). ``fit`` solves every training problem once (one
    batched call of the solver) and needs no commercial solver: linear and
    mixed-integer programs run on SciPy's HiGHS
    (:class:`~sk_perturbed.solvers.LinearProgram`).

    For a maximizing solver (e.g. :class:`~sk_perturbed.solvers.Knapsack`)
    read "values" for "costs" throughout: ``C`` holds the true values, the
    model predicts values and the decisions maximize them.

    Parameters
    ----------
    solver : solver object, default=None
        The oracle of the problems: an object of :mod:`sk_perturbed.solvers`
        (its parameters are searchable as ``solver__<name>``), which declares
        whether it minimizes costs or maximizes values (``sense``). Required:
        None raises an error at fit. Wrap a Python function in
        :class:`~sk_perturbed.solvers.CallableSolver` with its ``sense``.
    loss : {'spo_plus', 'fenchel_young', 'perturbed_squared', 'blackbox', 'squared'}, \
default='spo_plus'
        'spo_plus' is SPO+ (subgradient ``2(y*(c) - y*(2ĉ - c))`` for costs);
        'fenchel_young' is the perturbed FY loss of the optimal decisions
        (gradient ``y*(c) - y_ε(ĉ)`` for costs); 'perturbed_squared' is
        ``½‖y*(c) - y_ε(ĉ)‖²``; 'blackbox' is ``½‖y*(c) - y*(ĉ)‖²`` with the
        interpolation gradient of Vlastelica et al. (2019); 'squared'
        regresses the costs, ``½‖c - ĉ‖²`` (two-stage "predict, then
        optimize"). Where the true costs have several optimal decisions
        ``y*(c)`` (ties, common with integer costs), SPO+ trains towards the
        one the current prediction ranks best (its tightest bound) and the
        other decision losses towards a fresh random one at each epoch.
    epsilon : float, default=1.0
        Noise scale ε of the perturbed losses.
    n_samples : int, default=10
        Perturbations M per sample and step of the perturbed losses (the
        library's default; in an ad-hoc run on the tuning draw of
        benchmarks/decision_focused_defaults.py, not kept as a file, M = 1, 3,
        10 gave FY validation regrets 0.0756, 0.0724, 0.0697 on the shortest
        paths and 0.0916, 0.0900, 0.0915 on the knapsack, M = 10 for 2.7x the
        time of M = 1).
    noise : {'gaussian', 'gumbel'}, default='gaussian'
        Distribution of the noise Z.
    perturbation : {'additive', 'multiplicative'}, default='additive'
        ``ĉ + εZ``, or ``ĉ ⊙ exp(εZ - ε²/2)``, which keeps the sign of each cost.
    blackbox_lambda : float, default=10.0
        Interpolation step λ of the 'blackbox' loss.
    model : {'linear', 'mlp'}, default='linear'
        ``ĉ = XW + b`` (the model of PyEPO's experiments), or an MLP.
    n_item_features : int, default=None
        When set, X holds the features of each of the d cost entries side by
        side (item-major), and one model shared by all entries predicts each
        cost from its own features.
    hidden_layer_sizes : tuple of int, default=(100,)
        Hidden layers of the MLP (ignored by the linear model).
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Activation of the hidden layers of the MLP.
    optimizer : {'adam', 'sgd'}, default='adam'
        Stochastic gradient method.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='adaptive'
        Step schedule (see :class:`~sk_perturbed.PerturbedStructuredClassifier`):
        'adaptive' divides the step by 5 when the training loss stalls
        instead of stopping (lower validation regret than 'constant' on
        benchmarks/decision_focused_defaults.py).
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
        Adam's numerical-stability constant.
    alpha : float, default=0.0
        L2 penalty.
    batch_size : int or 'auto', default=32
        Problems per mini-batch (``min(200, n_samples)`` for 'auto').
    max_iter : int, default=100
        Maximum number of epochs.
    tol : float, default=1e-4
        Minimal improvement of the training loss (or validation score) that
        counts as progress.
    n_iter_no_change : int, default=20
        Epochs without improvement of ``tol`` before stopping.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop on its score (minus
        the normalized regret) and restore the best weights.
    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping.
    shuffle : bool, default=True
        Whether to shuffle the samples at each epoch.
    warm_start : bool, default=False
        Whether ``fit`` continues from the current weights.
    random_state : int, RandomState instance or None, default=None
        Seeds initialization, shuffling, the validation split and the noise.
    verbose : bool, default=False
        Whether to print the loss at each epoch.
    n_jobs : int, default=None
        Threads of the numba kernels (perturbations and numba solvers) during
        this estimator's calls. A solver with its own ``n_jobs``
        (:class:`~sk_perturbed.solvers.LinearProgram`) keeps it.
    backend : {'auto', 'numba', 'numpy'}, default='auto'
        Where the perturbed estimates run; training runs on the CPU.

    Attributes
    ----------
    solver_ : BaseSolver
        The fitted solver (a clone of ``solver``).
    out_activation_ : {'identity', 'softplus'}
        'softplus' when the solver needs positive costs.
    coefs_, intercepts_, n_outputs_, loss_, loss_curve_, best_loss_, \
validation_scores_, best_validation_score_, n_iter_, t_, n_features_in_, \
feature_names_in_
        As in :class:`~sk_perturbed.PerturbedRankingRegressor`; ``n_outputs_``
        is the length d of the cost vectors.

    See Also
    --------
    sk_perturbed.perturbed.spo_plus_loss : The SPO+ loss as a function.
    sk_perturbed.metrics.normalized_regret : The regret that ``score`` negates.

    References
    ----------
    A. N. Elmachtoub and P. Grigas, "Smart 'Predict, then Optimize'",
    Management Science 68(1), 2022.

    B. Tang and E. B. Khalil, "PyEPO: A PyTorch-based end-to-end
    predict-then-optimize library for linear and integer programming",
    Mathematical Programming Computation, 2024.

    Examples
    --------
    >>> from sk_perturbed import DecisionFocusedRegressor
    >>> from sk_perturbed.datasets import make_shortest_path
    >>> from sk_perturbed.solvers import DAGShortestPath
    >>> X, C, _ = make_shortest_path(300, deg=2, noise_width=0.5, random_state=0)
    >>> model = DecisionFocusedRegressor(DAGShortestPath(grid=(5, 5)), random_state=0)
    >>> model.fit(X[:200], C[:200]).predict(X[200:202]).shape   # paths
    (2, 40)
    >>> model.predict_costs(X[200:202]).shape
    (2, 40)
    >>> model.score(X[200:], C[200:]) > -0.2                     # minus the normalized regret
    True
    """

    _parameter_constraints = {
        **BasePerturbedEstimator._parameter_constraints,
        "solver": [HasMethods(["get_params"]), callable, None],
        "loss": [StrOptions(set(DECISION_LOSSES))],
    }

    def __init__(
        self, solver=None, *, loss="spo_plus", epsilon=1.0, n_samples=10, noise="gaussian",
        perturbation="additive", blackbox_lambda=10.0, model="linear", n_item_features=None,
        hidden_layer_sizes=(100,), activation="relu", optimizer="adam",
        learning_rate="adaptive", learning_rate_init=0.01, power_t=0.5, momentum=0.9,
        nesterovs_momentum=True, beta_1=0.9, beta_2=0.999, adam_epsilon=1e-8, alpha=0.0,
        batch_size=32, max_iter=100, tol=1e-4, n_iter_no_change=20, early_stopping=False,
        validation_fraction=0.1, shuffle=True, warm_start=False, random_state=None,
        verbose=False, n_jobs=None, backend="auto",
    ):
        self.solver = solver
        self.loss = loss
        self.epsilon = epsilon
        self.n_samples = n_samples
        self.noise = noise
        self.perturbation = perturbation
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

    # ----------------------------------------------------------------- hooks
    def _checked_solver(self, d):
        """A validated clone of ``solver`` for cost vectors of length ``d``."""
        solver = self.solver
        if solver is None:
            raise ValueError(
                "DecisionFocusedRegressor needs a solver: pass the oracle of your problems, "
                "e.g. DecisionFocusedRegressor(LinearProgram(...)) or "
                "DecisionFocusedRegressor(DAGShortestPath(grid=(5, 5)))."
            )
        if not isinstance(solver, _solvers.BaseSolver):
            raise ValueError(
                f"solver must be a solver object of sk_perturbed.solvers, which declares "
                f"whether it minimizes costs or maximizes values; got {solver!r}, whose sense "
                "is unknown. Wrap a function as CallableSolver(func, sense='min') (or "
                "sense='max')."
            )
        solver = clone(solver)
        if solver.sense not in ("min", "max"):
            raise ValueError(
                f"{type(solver).__name__}.sense must be 'min' or 'max', got {solver.sense!r}."
            )
        solver._validate_params()
        try:
            solver._check_dimension(d)
        except ValueError as exc:  # the solver speaks of θ; the user passed C
            raise ValueError(f"C has {d} columns, one per cost entry: {exc}") from exc
        if self.loss == "spo_plus" and solver.requires_positive:
            raise ValueError(
                f"loss='spo_plus' solves the problems at costs 2ĉ - c, which can be negative, "
                f"and {type(solver).__name__} needs positive costs: use loss='fenchel_young' "
                "with perturbation='multiplicative', or a solver that takes any costs "
                "(e.g. DAGShortestPath for grid paths)."
            )
        return solver

    def _encode_targets(self, C, reset):
        if C.ndim != 2:
            raise ValueError(
                "DecisionFocusedRegressor needs C of shape (n_samples, d): one true cost "
                f"vector per sample; got a {C.ndim}-D array."
            )
        if not reset and C.shape[1] != self.n_outputs_:
            raise ValueError(
                f"C has {C.shape[1]} columns but the model was fitted on cost vectors of "
                f"length {self.n_outputs_}."
            )
        solver = self._checked_solver(C.shape[1])
        C = np.ascontiguousarray(C, dtype=np.float64)
        with training_threads(self.n_jobs):
            # The optimal decisions, once per fit (the two-stage loss trains
            # on the costs alone, so its ties do not matter).
            targets = _decision_targets(solver, C, find_ties=self.loss != "squared")
        # Picked up by _make_solver / _update_solver, which the base calls next.
        self._solver_for_fit = solver
        return targets

    def _make_solver(self, n_outputs):
        return self.__dict__.pop("_solver_for_fit")

    def _update_solver(self, n_outputs):
        # A warm start trains with the solver its targets were solved by.
        self.solver_ = self._make_solver(n_outputs)

    def _make_loss(self, device=None):
        if device is not None:
            raise ValueError(
                "DecisionFocusedRegressor trains on the CPU: use backend='auto' with NumPy "
                "inputs, 'numba' or 'numpy'."
            )
        if self.loss == "spo_plus":
            return _SPOPlusLoss(self.solver_)
        if self.loss == "squared":
            return _CostSquaredLoss()
        po = self._perturbed_optimizer(self.solver_)
        args = (self.blackbox_lambda,) if self.loss == "blackbox" else ()
        return _OnDecisions(self.solver_, LOSSES[self.loss](po, *args))

    def _decode(self, theta):
        return self.solver_(theta)

    # ---------------------------------------------------------------- public
    def fit(self, X, y, sample_weight=None):
        """Fit the cost model to features X and true costs C.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.
        y : array-like of shape (n_samples, d)
            The true cost vector C of each sample's problem (values for a
            maximizing solver).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the loss.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return super().fit(X, y, sample_weight)

    def predict(self, X):
        """The decisions ``y*(ĉ)`` of the predicted costs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.

        Returns
        -------
        decisions : ndarray of shape (n_samples, d)
            The solver's optimal solution for each row's predicted costs.
        """
        return super().predict(X)

    def predict_costs(self, X):
        """Predicted cost vectors ĉ = g_w(X) (values for a maximizing solver).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.

        Returns
        -------
        costs : ndarray of shape (n_samples, d)
            Predicted costs.
        """
        return self.predict_scores(X)

    def score(self, X, y, sample_weight=None):
        """Return minus the normalized regret of the predicted decisions (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.
        y : array-like of shape (n_samples, d)
            True costs C (values for a maximizing solver).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the problems.

        Returns
        -------
        score : float
            ``-normalized_regret(C, predict(X), solver=solver_)``: 0 when
            every decision is optimal.
        """
        check_is_fitted(self)
        decisions = self.predict(X)
        C = np.asarray(to_host(y))
        if C.ndim != 2 or C.shape[1] != self.n_outputs_:
            raise ValueError(f"C must have shape (n_samples, {self.n_outputs_}), got {C.shape}.")
        return -normalized_regret(
            C, decisions, solver=self.solver_, sample_weight=to_host(sample_weight)
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        # score is minus a regret (<= 0), not an R².
        tags.regressor_tags.poor_score = True
        return tags
