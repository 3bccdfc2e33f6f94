"""PerturbedStructuredClassifier: classes or combinatorial structures from x."""

import functools
import types

import joblib
import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d, validate_data

from . import solvers as _solvers
from ._base import X_VALIDATION, BasePerturbedEstimator
from ._validation import to_host
from .metrics import _check_sample_weight, _check_targets

#: Solver names accepted by ``solver=``, mapped to the class in sk_perturbed.solvers.
SOLVER_NAMES = {
    "argmax": "Argmax",
    "topk": "TopK",
    "ranking": "Ranking",
    "dag_shortest_path": "DAGShortestPath",
    "grid_shortest_path": "GridShortestPath",
    "assignment": "Assignment",
}


def _solver_from_name(name, n_outputs):
    cls = getattr(_solvers, SOLVER_NAMES[name], None)
    if cls is None:
        raise ValueError(f"Solver {name!r} is not available in this installation.")
    if name == "assignment":
        n = int(round(np.sqrt(n_outputs)))
        if n * n != n_outputs:
            raise ValueError(
                "solver='assignment' needs Y with n² columns (flattened n x n permutation "
                f"matrices), got {n_outputs} columns."
            )
        return cls(n)
    return cls()


def _solver_key(solver):
    """A value that changes when the ``solver`` parameter is changed."""
    if isinstance(solver, str):
        return solver
    if isinstance(solver, _solvers.BaseSolver):
        try:
            return type(solver), joblib.hash(solver.get_params(deep=True))
        except Exception:  # parameters that do not pickle: assume a change
            return object()
    return id(solver)


def _check_one_hot_solver(solver, n_classes):
    """A user's solver for class labels must pick one class: try it on a few score rows."""
    theta = np.random.default_rng(0).standard_normal((4, n_classes))
    structures = solver(theta)
    one_hot = np.all((structures == 0) | (structures == 1), axis=1) & (structures.sum(axis=1) == 1)
    if not one_hot.all():
        row = structures[np.flatnonzero(~one_hot)[0]]
        raise ValueError(
            "1-D class labels need a solver that returns one-hot rows (one class per sample); "
            f"the solver returned {row!r} for random scores. Pass 2-D structures y to "
            "use other solvers."
        )


class _labels_only:
    """A method that exists before fit and after a fit on 1-D class labels.

    As scikit-learn's ``available_if``, ``hasattr`` is False after a fit on
    2-D structures (so scorers and meta-estimators see no probabilities),
    but the AttributeError itself says why.
    """

    def __init__(self, method):
        self.method = method
        functools.update_wrapper(self, method)

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.method
        if hasattr(obj, "coefs_") and not obj._labels_mode():
            raise AttributeError(
                f"{type(obj).__name__}.{self.method.__name__} is only available after fitting "
                "1-D class labels; this model was fitted on 2-D structures: use "
                "predict_marginals for their marginals."
            )
        return types.MethodType(self.method, obj)


class PerturbedStructuredClassifier(ClassifierMixin, BasePerturbedEstimator):
    """Predict classes or combinatorial structures through a perturbed solver.

    Learns scores θ = g_w(x) (linear or MLP) that a solver turns into a
    structure, trained end to end with the perturbed Fenchel–Young loss
    (Berthet et al., 2020). With 1-D class labels and the argmax solver it is
    a multiclass classifier whose ``predict_proba`` is the probability that
    each class wins under the noise; with 2-D targets Y of shape (n, d) it
    predicts structures (paths, matchings, selections, ...). Each row of such
    a Y must be a structure of the solver or a mean of structures (a point of
    their convex hull, e.g. soft targets); ``fit`` checks the conditions each
    solver states (entries in [0, 1], the sums it implies; for shortest paths
    and spanning trees, that a 0/1 row is a path or a tree, and flow
    conservation on the DAG) and names the first row that breaks them.

    Parameters
    ----------
    solver : str, solver object or callable, default='argmax'
        The combinatorial oracle: a name in ``{'argmax', 'topk', 'ranking',
        'dag_shortest_path', 'grid_shortest_path', 'assignment'}`` (default
        parameters), an object from :mod:`sk_perturbed.solvers` (its
        parameters are searchable as ``solver__<name>``; a name has none: pass
        e.g. ``solver=TopK(k=2)`` to set ``solver__k``), or a Python callable
        θ (d,) → y (d,) wrapped in :class:`~sk_perturbed.solvers.CallableSolver`.
        For minimizing solvers (shortest paths, assignment) θ is a cost
        vector; the sign is handled internally. Whether a plain callable
        maximizes or minimizes is inferred at fit from its answers on a few
        pairs of random positive scores (an optimizer is monotone); when they
        do not tell, ``fit`` raises and asks for
        ``CallableSolver(func, sense='max' or 'min')``, which is never probed.
    epsilon : float, default=1.0
        Noise scale ε.
    n_samples : int, default=10
        Perturbations M per sample and step.
    noise : {'gaussian', 'normal', 'gumbel'}, default='gaussian'
        With 'gumbel' and the argmax solver, the FY loss is the logistic loss
        and ``predict_proba`` is ``softmax(θ/ε)``, both computed exactly.
    perturbation : {'additive', 'multiplicative'}, default='additive'
        ``θ + εZ``, or ``θ ⊙ exp(εZ - ε²/2)``, which keeps the sign of each
        score: use 'multiplicative' (with Gaussian noise) for solvers that need
        non-negative costs. The FY loss is then taken at θ / mean|θ| per row:
        it is positively homogeneous in θ and would shrink θ to 0.
    loss : {'fenchel_young', 'perturbed_squared', 'squared', 'blackbox'}, \
default='fenchel_young'
        'fenchel_young' is the perturbed FY loss (gradient ``y_ε(θ) - y``);
        'perturbed_squared' is ``½‖y - y_ε(θ)‖²``; 'squared' regresses the
        structures directly, ``½‖y - θ‖²``; 'blackbox' is ``½‖y - y*(θ)‖²`` with
        the interpolation gradient of Vlastelica et al. (2019).
    blackbox_lambda : float, default=10.0
        Interpolation step λ of the 'blackbox' loss. Its best value scales
        with θ and must be tuned: on the benchmarks, 0.1 for perfect ranks and
        1 for 5×5 shortest paths (10, the value of Vlastelica et al., fails on
        ranks); see benchmarks/README.md.
    model : {'linear', 'mlp'}, default='mlp'
        ``θ = XW + b``, or an MLP with ``hidden_layer_sizes``.
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
        Hold out ``validation_fraction`` of the data, stop on its accuracy
        (exact-match ratio for structures) and restore the best weights.
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
    classes_ : ndarray of shape (n_classes,)
        Class labels for 1-D targets; for 2-D structures the column indices
        ``0 .. d-1``, as :class:`~sklearn.neural_network.MLPClassifier` sets
        for multilabel targets.
    solver_ : BaseSolver
        The fitted solver.
    out_activation_ : {'identity', 'softplus'}
        Output link of the model: 'softplus' when the solver needs positive
        costs (``solver.requires_positive``, e.g. GridShortestPath), so every
        predicted cost is positive; use ``perturbation='multiplicative'`` then,
        which keeps perturbed costs positive too.
    coefs_, intercepts_, n_outputs_, loss_, loss_curve_, best_loss_, \
validation_scores_, best_validation_score_, n_iter_, t_, n_features_in_, \
feature_names_in_
        As in :class:`~sk_perturbed.PerturbedRankingRegressor`.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sk_perturbed import PerturbedStructuredClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = PerturbedStructuredClassifier(random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:1]).shape
    (1, 3)
    >>> clf.score(X, y) > 0.9
    True
    """

    _parameter_constraints = {
        **BasePerturbedEstimator._parameter_constraints,
        "solver": [StrOptions(set(SOLVER_NAMES)), HasMethods(["get_params"]), callable],
    }

    def __init__(
        self, solver="argmax", *, epsilon=1.0, n_samples=10, noise="gaussian",
        perturbation="additive", loss="fenchel_young", blackbox_lambda=10.0, model="mlp",
        n_item_features=None, hidden_layer_sizes=(100,), activation="relu", optimizer="adam",
        learning_rate="adaptive", learning_rate_init=0.01, power_t=0.5, momentum=0.9,
        nesterovs_momentum=True, beta_1=0.9, beta_2=0.999, adam_epsilon=1e-8, alpha=1e-4,
        batch_size="auto", max_iter=500, tol=1e-4, n_iter_no_change=20,
        early_stopping=False, validation_fraction=0.1, shuffle=True, warm_start=False,
        random_state=None, verbose=False, n_jobs=None, backend="auto",
    ):
        self.solver = solver
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

    # ----------------------------------------------------------------- hooks
    def _validate_targets_for_fit(self, X, Y, reset):
        X, Y = validate_data(self, X, Y, reset=reset, multi_output=True, **X_VALIDATION)
        Y = np.asarray(Y)
        if Y.ndim == 2 and Y.shape[1] == 1:
            # A column vector is a 1-D label vector (with scikit-learn's warning).
            Y = column_or_1d(Y, warn=True)
        return X, Y

    def _labels_mode(self):
        """Whether the model was fitted (or is being fitted) on 1-D class labels."""
        return hasattr(self, "_label_encoder")

    def _make_solver(self, n_outputs):
        from sklearn.base import clone

        solver = self.solver
        self._solver_key = _solver_key(solver)
        if isinstance(solver, str):
            solver = _solver_from_name(solver, n_outputs)
        elif isinstance(solver, _solvers.BaseSolver):
            solver = clone(solver)
        elif callable(solver):
            from .solvers._callable import infer_sense

            solver = _solvers.CallableSolver(solver, sense=infer_sense(solver, n_outputs))
        else:
            raise ValueError(f"solver must be a name, a solver object or a callable, got {solver!r}.")
        solver._validate_params()
        try:
            solver._check_dimension(n_outputs)
        except ValueError as exc:  # the solver speaks of θ; the user passed Y
            raise ValueError(
                f"Y has {n_outputs} columns, one per structure entry: {exc}"
            ) from exc
        if self._labels_mode() and solver.sense != "max":
            raise ValueError(
                "1-D class labels need a maximizing one-hot solver such as 'argmax'; "
                f"{type(solver).__name__} minimizes."
            )
        if self._labels_mode() and isinstance(solver, _solvers.CallableSolver):
            _check_one_hot_solver(solver, n_outputs)
        return solver

    def _update_solver(self, n_outputs):
        # A warm start or partial_fit after set_params(solver=...) trains
        # with the new solver, if the fitted model can feed it.
        if getattr(self, "_solver_key", None) == _solver_key(self.solver):
            return
        previous = self.solver_
        solver = self._make_solver(n_outputs)
        if solver.requires_positive != previous.requires_positive:
            raise ValueError(
                f"solver={self.solver!r} {'needs' if solver.requires_positive else 'does not need'}"
                f" positive costs, unlike the fitted {previous!r}: the fitted model's output "
                "link cannot feed it. Set warm_start=False (or call fit) to train a new model."
            )
        self.solver_ = solver

    def _encode_targets(self, Y, reset):
        if Y.ndim == 1:
            check_classification_targets(Y)
            if reset:
                if hasattr(self, "n_outputs_"):
                    del self.n_outputs_
                # partial_fit's `classes` fixes the label set before any data is seen.
                labels = self.__dict__.pop("_partial_classes", Y)
                self._label_encoder = LabelEncoder().fit(labels)
                self.classes_ = self._label_encoder.classes_
                if len(self.classes_) < 2:
                    raise ValueError(
                        "The number of classes has to be greater than one; got 1 class "
                        f"({self.classes_[0]!r})."
                    )
                if not self._is_argmax_like():
                    raise ValueError(
                        "1-D class labels need the 'argmax' solver (one-hot structures); "
                        f"got solver={self.solver!r}. Pass 2-D structures Y to use other solvers."
                    )
            elif not self._labels_mode():
                raise ValueError("The model was fitted on 2-D structures; Y must be 2-D too.")
            unseen = np.setdiff1d(Y, self.classes_)
            if unseen.size:
                # At reset the classes can only come from partial_fit's `classes`.
                where = "classes" if reset else "the classes of the first fit"
                raise ValueError(f"Y contains labels not in {where}: {unseen!r}.")
            codes = np.searchsorted(self.classes_, Y)
            onehot = np.zeros((Y.shape[0], len(self.classes_)))
            onehot[np.arange(Y.shape[0]), codes] = 1.0
            return onehot
        if Y.ndim != 2:
            raise ValueError(f"Y must be 1-D labels or 2-D structures, got {Y.ndim}-D.")
        if not reset and self._labels_mode():
            raise ValueError("The model was fitted on 1-D labels; Y must be 1-D too.")
        if reset:
            self.__dict__.pop("_label_encoder", None)
            # The columns of the structures, as MLPClassifier's multilabel
            # classes_: scikit-learn's scorers read classes_ of any classifier.
            self.classes_ = np.arange(Y.shape[1])
        Y = Y.astype(np.float64)
        if not np.all(np.isfinite(Y)):
            raise ValueError("Input Y contains NaN or infinity.")
        return Y

    def _check_fit_targets(self, targets):
        # One-hot encodings of labels are valid by construction; 2-D structures
        # must lie in the convex hull of the solver's structures.
        if not self._labels_mode():
            self.solver_._check_targets(targets)

    def _is_argmax_like(self):
        s = self.solver
        if isinstance(s, str):
            return s == "argmax"
        if isinstance(s, _solvers.BaseSolver):
            return isinstance(s, _solvers.Argmax) or isinstance(s, _solvers.CallableSolver)
        return callable(s)

    def _decode(self, theta):
        structures = self.solver_(theta)
        if self._labels_mode():
            return self.classes_[np.argmax(structures, axis=1)]
        rounded = np.rint(structures)
        fractional = np.abs(structures - rounded) > 1e-6
        if fractional.any():
            i = int(np.flatnonzero(fractional.any(axis=1))[0])
            raise ValueError(
                f"The solver {self.solver_!r} returned a structure with non-integer entries "
                f"for sample {i} ({np.array2string(structures[i], precision=4, threshold=12)}); "
                "predict returns integer structures, and rounding would change it silently. "
                "Use predict_scores(X) and solve with the scores yourself."
            )
        return rounded.astype(np.int64)

    def _stratify_labels(self, Y):
        return Y if Y.ndim == 1 else None

    # ---------------------------------------------------------------- public
    def set_params(self, **params):
        """Set the parameters of this estimator (and of its solver object).

        ``solver__<name>`` needs ``solver`` to be a solver object: a solver
        name or a plain function has no parameters to set.

        Parameters
        ----------
        **params : dict
            Estimator parameters, and ``solver__<name>`` for the solver's.

        Returns
        -------
        self : object
            The estimator.
        """
        solver = params.get("solver", self.solver)
        nested = sorted(key for key in params if key.startswith("solver__"))
        if nested and not hasattr(solver, "set_params"):
            names = ", ".join(f"{key[len('solver__'):]}=..." for key in nested)
            if isinstance(solver, str) and solver in SOLVER_NAMES:
                example = f"solver={SOLVER_NAMES[solver]}({names}) (the class {solver!r} names)"
            else:
                example = f"solver=CallableSolver(func, {names})"
            raise ValueError(
                f"Cannot set {', '.join(nested)}: solver={solver!r} has no parameters (a "
                f"solver name or a plain function stands for a solver with its defaults). Pass "
                f"a solver object from sk_perturbed.solvers instead, e.g. {example}; its "
                "parameters can then be set and searched as solver__<name>."
            )
        return super().set_params(**params)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Update the model with one epoch over X and Y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, d)
            Class labels, or structures.
        classes : array-like of shape (n_classes,), default=None
            All classes that will ever appear; required on the first call
            with 1-D labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the loss.

        Returns
        -------
        self : object
            Updated estimator.
        """
        shape = np.shape(to_host(y))
        labels = len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)
        if classes is not None:
            classes = np.unique(to_host(classes))
            if not labels:
                raise ValueError(
                    "classes is for 1-D class labels; y holds 2-D structures. Leave classes=None."
                )
        if not hasattr(self, "coefs_") and labels:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            # Fit the label encoder on all classes before the first epoch.
            self._partial_classes = classes
        elif classes is not None and self._labels_mode() and not np.array_equal(
            classes, self.classes_
        ):
            raise ValueError(
                f"classes={classes!r} is not the same as the classes of the fitted model "
                f"({self.classes_!r})."
            )
        try:
            return super().partial_fit(X, y, sample_weight)
        finally:
            # Consumed by a successful first call; never left for a later fit.
            self.__dict__.pop("_partial_classes", None)

    @_labels_only
    def predict_proba(self, X):
        """Probability that each class wins under the noise, ``y_ε(θ)``.

        Only for 1-D class labels with the argmax solver. Exact for additive
        noise and the built-in argmax (``softmax(θ/ε)`` for Gumbel noise,
        quadrature for Gaussian noise up to 256 classes, to a relative error of
        about 5e-12 at 10 classes and 2e-4 at 256); otherwise a Monte
        Carlo frequency in steps of ``1/n_samples``: raise ``n_samples`` after
        fitting (``set_params(n_samples=1000)``) for finer probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Class probabilities, in the order of ``classes_``.
        """
        proba = self.predict_marginals(X)
        # Monte Carlo frequencies are exact multiples of 1/M; clip tiny round-off.
        return np.clip(proba, 0.0, 1.0)

    @_labels_only
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        A class that never wins under the noise (a Monte Carlo frequency of
        0) gets ``-inf``, as in scikit-learn's classifiers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probabilities, in the order of ``classes_``.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def score(self, X, y, sample_weight=None):
        """Accuracy (1-D labels) or exact-match ratio of structures (2-D).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,) or (n_samples, d)
            True labels, or true structures.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the mean.

        Returns
        -------
        score : float
            Accuracy, or fraction of structures predicted exactly.
        """
        Y_pred = self.predict(X)
        Y, sample_weight = np.asarray(to_host(y)), to_host(sample_weight)
        # The weights as every metric of this library checks them (the
        # ranker's score included): non-negative, one per sample, not all zero.
        if self._labels_mode():
            Y = column_or_1d(Y, warn=True) if Y.ndim == 2 and Y.shape[1] == 1 else Y
            sample_weight = _check_sample_weight(sample_weight, Y_pred.shape[0])
            return accuracy_score(Y, Y_pred, sample_weight=sample_weight)
        if Y.ndim != 2 or Y.shape[1] != self.n_outputs_:
            raise ValueError(f"Y must have shape (n_samples, {self.n_outputs_}), got {Y.shape}.")
        # Checks Y, the predictions and the weights together.
        Y, Y_pred, sample_weight = _check_targets(
            Y, Y_pred, sample_weight, names=("Y", "the predictions")
        )
        exact = np.all(np.isclose(Y, Y_pred), axis=1)
        return float(np.average(exact, weights=sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # 1-D class labels, or 2-D targets: one structure per row.
        tags.target_tags.multi_output = True
        return tags
