"""Base estimator: validation, the training loop, and prediction.

Subclasses implement the hooks ``_make_solver``, ``_encode_targets`` and
``_decode``, and ``score``, which is also the early-stopping criterion;
everything else (models, losses, optimizers, early stopping, warm starts,
thread budget, GPU training) lives here once.

GPU training (``backend='cupy'``, or ``'auto'`` with CuPy inputs): inputs are
validated and targets encoded on the host, then X, the targets and the sample
weights are copied to the device once per fit, and the epochs (forward,
loss, backward, optimizer step) run there. The parameters and the optimizer
state move to the device for the fit and back to NumPy at its end, so fitted
attributes are always NumPy arrays: the estimator pickles and predicts on
machines without CuPy. Prediction runs on the host (CuPy inputs are copied).
"""

import contextlib
import copy
import numbers
import warnings
from abc import ABCMeta, abstractmethod

import numpy as np
from scipy import sparse
from sklearn import get_config
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _engine, _models
from ._engine import _check_noise_and_perturbation
from ._loss import LOSSES
from ._noise import _array_namespace, content_row_keys
from ._optimizers import AdamOptimizer, SGDOptimizer, move_optimizer
from ._threads import training_threads
from ._validation import is_cupy_array, to_host
from .perturbed import (
    PERTURBATION_CONSTRAINTS,
    PerturbedOptimizer,
    exact_marginals,
)

_SEED_MASK = (1 << 63) - 1

#: The parameters an optimizer is built from (a warm start with other values builds a new one).
_OPTIMIZER_PARAMS = ("optimizer", "learning_rate", "learning_rate_init", "power_t", "momentum",
                     "nesterovs_momentum", "beta_1", "beta_2", "adam_epsilon")

#: How every method validates X: dense or CSR (the models' first layer is a
#: sparse-dense product), float64 or float32 (kept for the model).
X_VALIDATION = dict(accept_sparse="csr", dtype=[np.float64, np.float32])


def _epoch_seed(base_seed, epoch):
    # Distinct noise per epoch, a pure function of (fit seed, epoch): the
    # kernels hash it again with each row key, so a simple affine map suffices.
    return (base_seed * 0x9E3779B1 + epoch + 1) & _SEED_MASK


class _TrainingData:
    """What the epochs read: X, targets and weights where the model trains, host X and weights.

    On the GPU (``device`` set) the first three are device copies, made once
    per fit; the host weights serve the batch weight sums, which decide on the
    host whether a batch is skipped, and the host X the validation scores.
    """

    def __init__(self, X, targets, sample_weight, device):
        to_device = (lambda a: a) if device is None else device.to_device
        self.X = to_device(X)
        self.targets = to_device(targets)
        self.weights = to_device(sample_weight)
        self.host_X = X
        self.host_weights = sample_weight
        self.device = device


class BasePerturbedEstimator(BaseEstimator, metaclass=ABCMeta):
    """Shared machinery of the perturbed estimators (not for direct use)."""

    _parameter_constraints = {
        **{k: v for k, v in PERTURBATION_CONSTRAINTS.items()
           if k not in ("antithetic", "control_variate")},
        "loss": [StrOptions(set(LOSSES))],
        "blackbox_lambda": [Interval(numbers.Real, 0, None, closed="neither")],
        "model": [StrOptions({"linear", "mlp"})],
        "n_item_features": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_models.ACTIVATIONS))],
        "optimizer": [StrOptions({"adam", "sgd"})],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "adam_epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"), Options(numbers.Real, {np.inf})],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "shuffle": ["boolean"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
    }

    # ----------------------------------------------------------------- hooks
    @abstractmethod
    def _make_solver(self, n_outputs):
        """The fitted solver for structures of width ``n_outputs``."""

    @abstractmethod
    def _encode_targets(self, Y, reset):
        """Targets as float structures (n, d); ``reset`` on the first fit."""

    @abstractmethod
    def _decode(self, theta):
        """Predictions from raw scores θ."""

    def _update_solver(self, n_outputs):
        """Follow a solver parameter changed since the fit that built ``solver_``."""

    def _check_fit_targets(self, targets):
        """Check targets the estimator did not build itself (after ``solver_`` exists)."""

    def _validate_targets_for_fit(self, X, Y, reset):
        """Validate X and Y together (subclasses choose y's accepted shape)."""
        X, Y = validate_data(
            self, X, Y, reset=reset, multi_output=True, y_numeric=True, **X_VALIDATION
        )
        # y_numeric converts object arrays only: strings would be ranked as text.
        if Y.dtype.kind not in "biuf":
            raise ValueError(
                f"Y must hold numbers, got an array of dtype {Y.dtype}: convert it first "
                "(e.g. Y.astype(float))."
            )
        return X, Y

    # ---------------------------------------------------------------- public
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data X and targets Y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets; see the estimator's documentation.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the loss.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with one epoch over X and Y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets; see the estimator's documentation.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the loss.

        Returns
        -------
        self : object
            Updated estimator.
        """
        # Every call, unlike scikit-learn's _fit_context (first call only): a
        # set_params between calls must not train with a bad value.
        self._check_params()
        if self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True: a single epoch has no "
                "validation history. Set early_stopping=False."
            )
        return self._fit(X, y, sample_weight, incremental=True)

    def predict_scores(self, X):
        """Raw scores θ = g_w(X) fed to the solver.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        theta : ndarray of shape (n_samples, n_outputs)
            Scores, or costs for a minimizing solver.
        """
        return self._scores(self._validate_for_predict(X))

    def predict_marginals(self, X):
        """Perturbed maximizer ``y_ε(θ)`` of each row: marginals of the structures.

        Uses a seed fixed at fit time and keys the noise by each sample's
        content, so repeated calls, subsets and reorderings agree. For the
        argmax solver with additive noise it is computed without Monte Carlo
        error (``softmax(θ/ε)`` for Gumbel noise, quadrature for Gaussian).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        y_eps : ndarray of shape (n_samples, n_outputs)
            Expected structure of each sample under the perturbations.
        """
        X = self._validate_for_predict(X)
        theta = self._scores(X)
        po = self._perturbed_optimizer(self.solver_)
        exact = exact_marginals(po, theta)
        if exact is not None:
            return exact.astype(theta.dtype, copy=False)
        # Noise keyed by the content of each sample: a row's estimate does not
        # depend on which other rows share the batch, or their order.
        with training_threads(self.n_jobs):
            return po.estimate(theta, row_keys=content_row_keys(X), seed=self._predict_seed).y_eps

    def predict(self, X):
        """Predict with the unperturbed solver: ``y*(g_w(X))``, decoded.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        Y_pred : ndarray
            Predictions; see the estimator's documentation.
        """
        theta = self.predict_scores(X)
        with training_threads(self.n_jobs):
            return self._decode(theta)

    # --------------------------------------------------------------- helpers
    def _check_params(self):
        """Validate the parameters (about 0.1 ms), unless the user turned it off."""
        if get_config()["skip_parameter_validation"]:
            return
        self._validate_params()
        _check_noise_and_perturbation(self.noise, self.perturbation)

    def _validate_for_predict(self, X):
        check_is_fitted(self)
        if self.__dict__.get("_scoring_validated_input"):
            return X  # the fit's own validation split, validated with the training data
        # Prediction reads epsilon, noise, n_samples, n_jobs, ...: a bad value
        # set after fitting is named here rather than giving wrong marginals.
        self._check_params()
        return validate_data(self, to_host(X), reset=False, **X_VALIDATION)

    @contextlib.contextmanager
    def _validated_input(self):
        """Score the validation split without validating it again.

        It was validated with the training data, which also dropped its
        feature names: validating it again would warn at every epoch.
        """
        self._scoring_validated_input = True
        try:
            yield
        finally:
            del self._scoring_validated_input

    def _scores(self, X):
        """θ for an X that went through :meth:`_validate_for_predict`."""
        self._check_fitted_item_features()
        dtype = self.coefs_[0].dtype
        if X.dtype != dtype:
            with np.errstate(over="ignore"):  # named below
                X = X.astype(dtype)
            values = X.data if sparse.issparse(X) else X
            if not np.isfinite(values).all():
                raise ValueError(
                    f"X has values beyond the range of {dtype}, the precision of the fitted "
                    f"model (it was fitted on {dtype} X). Scale X, or refit on float64 X."
                )
        return self._forward(X)[1]

    def _perturbed_optimizer(self, solver):
        # Seeds are passed per call (keyed by epoch), never drawn from here.
        return PerturbedOptimizer(
            solver, epsilon=self.epsilon, n_samples=self.n_samples, noise=self.noise,
            perturbation=self.perturbation, backend=self.backend,
        )

    def _batch_size(self, n):
        return min(200 if self.batch_size == "auto" else self.batch_size, n)

    def _warn_batch_size(self, n):
        """Once per call of fit or partial_fit, not once per epoch."""
        if self.batch_size != "auto" and self.batch_size > n:
            held_out = " (after the early-stopping validation split)" if self.early_stopping else ""
            warnings.warn(
                f"Got batch_size={self.batch_size} larger than the number of training samples "
                f"{n}{held_out}; clipping it.",
                UserWarning,
            )

    def _layer_sizes(self, n_features, n_outputs):
        """Widths of the model's layers that the parameters ask for."""
        if self.n_item_features is None:
            return _models.layer_sizes(n_features, self._hidden_sizes(), n_outputs, self.model)
        if n_features != n_outputs * self.n_item_features:
            raise ValueError(
                f"With n_item_features={self.n_item_features}, X needs "
                f"{n_outputs} x {self.n_item_features} = {n_outputs * self.n_item_features} "
                f"columns (item-major: the features of item 0, then item 1, ...) for "
                f"{n_outputs} items; got {n_features}."
            )
        # One model, shared by every item, scores an item from its own features.
        return _models.layer_sizes(self.n_item_features, self._hidden_sizes(), 1, self.model)

    def _check_fitted_item_features(self):
        """Prediction reads n_item_features: a value set after fit must fit the fitted layers."""
        first, last = self.coefs_[0].shape[0], self.coefs_[-1].shape[1]
        value, n_outputs = self.n_item_features, self.n_outputs_
        whole_rows = first == self.n_features_in_ and last == n_outputs
        if (value is None and whole_rows) or (
            value is not None and last == 1 and first == value and value * n_outputs == self.n_features_in_
        ):
            return
        fitted = None if whole_rows else first
        raise ValueError(
            f"n_item_features={value!r} was set after fitting, but the model was fitted with "
            f"n_item_features={fitted!r}: its first layer reads {first} features per "
            f"{'sample' if whole_rows else 'item'}. Set n_item_features={fitted!r} again, or "
            "fit the model anew with the new value."
        )

    def _check_same_architecture(self, n_features):
        """A warm start or partial_fit continues the fitted layers: refuse new ones."""
        fitted = [self.coefs_[0].shape[0], *(W.shape[1] for W in self.coefs_)]
        wanted = self._layer_sizes(n_features, self.n_outputs_)
        if wanted != fitted:
            raise ValueError(
                f"The fitted model has layer sizes {fitted}, but model={self.model!r}, "
                f"hidden_layer_sizes={self.hidden_layer_sizes!r} and "
                f"n_item_features={self.n_item_features!r} ask for {wanted}: warm_start and "
                "partial_fit continue the fitted layers. Set warm_start=False (or call fit) "
                "to train a new model."
            )

    def _initialize(self, n_features, n_outputs, dtype, rng):
        sizes = self._layer_sizes(n_features, n_outputs)
        self.coefs_, self.intercepts_ = _models.init_params(sizes, self.activation, dtype, rng)
        self.n_layers_ = len(sizes)
        self.n_outputs_ = n_outputs
        # Solvers that need positive costs get positive scores by construction.
        self.out_activation_ = "softplus" if self.solver_.requires_positive else "identity"
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._seed = int(rng.randint(np.iinfo(np.int32).max))
        self._predict_seed = _epoch_seed(self._seed, -1)
        self.validation_scores_ = self.best_loss_ = None
        self._start_training(new_optimizer=True)

    def _optimizer_settings(self):
        return tuple(self.get_params()[name] for name in _OPTIMIZER_PARAMS)

    def _start_training(self, new_optimizer):
        """The optimizer and the stopping rule of a call of ``fit``, from the current parameters.

        A warm-started fit keeps the weights and, unless an optimizer
        parameter changed since it was built, the optimizer's state (so
        chained warm fits equal calls of ``partial_fit``); the best loss or
        validation score so far is kept.
        """
        self._no_improvement_count = 0
        if self.early_stopping:
            if self.validation_scores_ is None:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = self.best_validation_score_ = None
            if self.best_loss_ is None:
                self.best_loss_ = np.inf
        settings = self._optimizer_settings()
        if not new_optimizer and getattr(self, "_optimizer_built_with", None) == settings:
            return
        self._optimizer_built_with = settings
        params = self.coefs_ + self.intercepts_
        if self.optimizer == "adam":
            self._optimizer = AdamOptimizer(
                params, self.learning_rate_init, self.beta_1, self.beta_2, self.adam_epsilon,
                self.learning_rate,
            )
        else:
            self._optimizer = SGDOptimizer(
                params, self.learning_rate_init, self.learning_rate, self.momentum,
                self.nesterovs_momentum, self.power_t,
            )

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        if self.model == "mlp" and (not sizes or any(
            not isinstance(s, numbers.Integral) or isinstance(s, (bool, np.bool_)) or s < 1
            for s in sizes
        )):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}."
            )
        return sizes

    def _make_loss(self, device=None):
        po = self._perturbed_optimizer(self.solver_)
        if self.loss == "blackbox":
            return LOSSES["blackbox"](po, self.blackbox_lambda, device=device)
        return LOSSES[self.loss](po, device=device)

    def _training_device(self, X):
        """The device the epochs run on: None for the CPU, else the CuPy device."""
        if self.backend == "cupy" or (self.backend == "auto" and is_cupy_array(X)):
            _engine._require_cupy()
            from . import _cupy_backend

            return _cupy_backend.get_device()
        if is_cupy_array(X):
            raise ValueError(
                f"X is a CuPy array but backend={self.backend!r} trains on the CPU: use "
                "backend='cupy' (or 'auto') to train on the GPU, or pass NumPy arrays."
            )
        return None

    def _set_params_list(self, params):
        n = len(self.coefs_)
        self.coefs_, self.intercepts_ = list(params[:n]), list(params[n:])

    @contextlib.contextmanager
    def _parameters_on(self, device):
        """Move the parameters and the optimizer state to ``device`` for the body.

        Back on the host afterwards, whatever happens in the body (an error
        included), so the fitted attributes are NumPy arrays between calls.
        """
        if device is None:
            yield
            return
        params = [device.to_device(p) for p in self.coefs_ + self.intercepts_]
        self._set_params_list(params)
        move_optimizer(self._optimizer, params, device.to_device)
        try:
            yield
        finally:
            host = [np.asarray(device.to_host(p)) for p in self.coefs_ + self.intercepts_]
            self._set_params_list(host)
            move_optimizer(self._optimizer, host, lambda a: np.asarray(device.to_host(a)))

    @contextlib.contextmanager
    def _host_parameters(self, device):
        """Host copies of the parameters for the body (the validation score on the GPU)."""
        if device is None:
            yield
            return
        on_device = self.coefs_ + self.intercepts_
        self._set_params_list([np.asarray(device.to_host(p)) for p in on_device])
        try:
            yield
        finally:
            self._set_params_list(on_device)

    def _fit(self, X, Y, sample_weight, incremental):
        # A call that raises (bad targets found after the reset, divergence)
        # leaves the estimator as it was: unfitted, or the previous model.
        saved = self._state_before_fit(incremental)
        try:
            return self._fit_or_raise(X, Y, sample_weight, incremental)
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _continues_fit(self, incremental):
        """Whether this call trains the fitted model further (warm start, partial_fit)."""
        return hasattr(self, "coefs_") and (incremental or self.warm_start)

    def _state_before_fit(self, incremental):
        """The attributes to put back if the call fails."""
        state = dict(self.__dict__)
        if self._continues_fit(incremental):
            # Training updates these in place; copied together so that the
            # optimizer's copy refers to the copied parameters.
            state["coefs_"], state["intercepts_"], state["_optimizer"] = copy.deepcopy(
                (self.coefs_, self.intercepts_, self._optimizer)
            )
            state["loss_curve_"] = list(self.loss_curve_)
            if self.validation_scores_ is not None:
                state["validation_scores_"] = list(self.validation_scores_)
        return state

    def _fit_or_raise(self, X, Y, sample_weight, incremental):
        _check_noise_and_perturbation(self.noise, self.perturbation)
        device = self._training_device(X)
        # Validation and target encoding run on the host.
        X, Y, sample_weight = to_host(X), to_host(Y), to_host(sample_weight)
        if sparse.issparse(Y):
            raise TypeError(
                "A sparse y was passed, but the targets must be dense: use y.toarray()."
            )
        if device is not None and sparse.issparse(X):
            raise TypeError(
                "A sparse X was passed with GPU training (backend="
                f"{self.backend!r}), which needs dense X: use X.toarray(), or a CPU backend."
            )
        first_call = not self._continues_fit(incremental)
        X, Y = self._validate_targets_for_fit(X, Y, reset=first_call)
        if X.shape[0] < 2 and not incremental:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 samples to fit, got n_samples = "
                f"{X.shape[0]}."
            )
        # Negative weights would reward loss, all-zero ones leave nothing to fit.
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=X.dtype, ensure_non_negative=True
        )
        targets = self._encode_targets(Y, reset=first_call)
        n_outputs = targets.shape[1]
        rng = check_random_state(self.random_state)
        if first_call:
            self.solver_ = self._make_solver(n_outputs)
            self._initialize(X.shape[1], n_outputs, X.dtype, rng)
        elif n_outputs != self.n_outputs_:
            raise ValueError(
                f"Y has {n_outputs} outputs but the model was fitted with {self.n_outputs_}."
            )
        else:
            self._check_same_architecture(X.shape[1])
            self._update_solver(n_outputs)
            if not incremental:
                self._start_training(new_optimizer=False)
            # A new warm-started fit draws fresh shuffles and noise epochs.
            rng = np.random.RandomState(_epoch_seed(self._seed, self.n_iter_) % (2**32))
        self._check_fit_targets(targets)
        X = X.astype(self.coefs_[0].dtype, copy=False)
        loss = self._make_loss(device)
        data = _TrainingData(X, targets, sample_weight, device)

        with training_threads(self.n_jobs), self._parameters_on(device):
            if incremental:
                self._warn_batch_size(X.shape[0])
                self._run_epoch(data, np.arange(X.shape[0]), loss, rng)
                if self.best_loss_ is None:  # the previous fit stopped early on validation
                    self.best_loss_ = np.inf
                # best_loss_ as in scikit-learn's MLPs (partial_fit never stops).
                self._update_no_improvement_count(data, None)
                return self
            self._fit_epochs(data, Y, loss, rng)
        return self

    def _fit_epochs(self, data, Y, loss, rng):
        # Validation scores are computed on the host, from host copies.
        X, sample_weight = data.host_X, data.host_weights
        n = X.shape[0]
        train_idx = np.arange(n)
        if self.early_stopping:
            # Seeded by the fit alone: every warm-started fit holds out the same
            # rows, so best_validation_score_ stays comparable across fits.
            try:
                train_idx, val_idx = self._validation_split(
                    train_idx, Y, _epoch_seed(self._seed, -2) % (2**32)
                )
            except ValueError as exc:  # a stratified split too small for the classes
                raise ValueError(
                    f"early_stopping with validation_fraction={self.validation_fraction} cannot "
                    f"split {n} samples: {str(exc).rstrip('.')}. Increase validation_fraction or the size of the "
                    "data set, or set early_stopping=False."
                ) from exc
            if len(train_idx) < 1 or len(val_idx) < 2:
                raise ValueError(
                    f"early_stopping with validation_fraction={self.validation_fraction} leaves "
                    f"{len(train_idx)} training and {len(val_idx)} validation samples of {n}: "
                    "the validation set needs at least 2 and the training set 1. Increase "
                    "validation_fraction or the size of the data set."
                )
            for name, part in (("training", train_idx), ("validation", val_idx)):
                if not sample_weight[part].sum() > 0:
                    raise ValueError(
                        f"early_stopping with validation_fraction={self.validation_fraction}: "
                        f"every sample of the {name} split has sample_weight 0. Give more "
                        "samples a positive weight, change random_state or "
                        "validation_fraction, or set early_stopping=False."
                    )
            validation = self._validation_data(X, Y, sample_weight, val_idx)
        else:
            validation = None
        self._warn_batch_size(len(train_idx))
        try:
            self._epochs_until_stop(data, train_idx, loss, rng, validation)
        except KeyboardInterrupt:
            # As scikit-learn's MLPs: keep what was learned so far.
            warnings.warn("Training interrupted by user.")
        if self.early_stopping and hasattr(self, "_best_params"):
            # Restore in place: the optimizer holds references to these arrays.
            for target, best in zip(self.coefs_ + self.intercepts_, self._best_params):
                target[...] = best
            del self._best_params

    def _epochs_until_stop(self, data, train_idx, loss, rng, validation):
        """Epochs until the stopping rule or ``max_iter`` (with its ConvergenceWarning)."""
        for _ in range(self.max_iter):
            self._run_epoch(data, train_idx, loss, rng)
            self._update_no_improvement_count(data, validation)
            if self._no_improvement_count > self.n_iter_no_change:
                if self._optimizer.on_plateau(self.verbose):
                    self._no_improvement_count = 0
                    continue
                if self.verbose:
                    what = "Validation score" if self.early_stopping else "Training loss"
                    print(f"{what} did not improve more than tol={self.tol} for "
                          f"{self.n_iter_no_change} consecutive epochs. Stopping.")
                break
        else:
            warnings.warn(
                f"Stochastic optimizer: maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
            )

    def _update_no_improvement_count(self, data, validation):
        """Compare the epoch with the best so far (validation score, or training loss)."""
        if validation is not None:
            with self._host_parameters(data.device), self._validated_input():
                score = self.score(*validation)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            improved = score > self.best_validation_score_ + self.tol
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = [p.copy() for p in self.coefs_ + self.intercepts_]
        else:
            last = self.loss_curve_[-1]
            improved = last < self.best_loss_ - self.tol
            self.best_loss_ = min(self.best_loss_, last)
        self._no_improvement_count = 0 if improved else self._no_improvement_count + 1

    def _stratify_labels(self, Y):
        return None

    def _epoch_batches(self, indices, rng):
        """The epoch's order of the training rows, and its mini-batches as slices of it."""
        if self.shuffle:
            indices = indices[rng.permutation(len(indices))]
        return indices, gen_batches(len(indices), self._batch_size(len(indices)))

    def _validation_split(self, train_idx, Y, random_state):
        """Training and validation rows of early stopping."""
        return train_test_split(
            train_idx, test_size=self.validation_fraction, random_state=random_state,
            stratify=self._stratify_labels(Y),
        )

    def _validation_data(self, X, Y, sample_weight, val_idx):
        """The arguments of ``score`` on the validation rows."""
        return X[val_idx], Y[val_idx], sample_weight[val_idx]

    def _run_epoch(self, data, indices, loss, rng):
        indices, batches = self._epoch_batches(indices, rng)
        seed = _epoch_seed(self._seed, self.n_iter_)
        total_loss = 0.0
        dtype = self.coefs_[0].dtype
        xp = _array_namespace(self.coefs_[0])
        host_weights = data.host_weights
        # grad * 1.0 is grad: skip the weighting pass when every weight is 1.
        unit_weights = bool(np.all(host_weights == 1))
        # The rows of each batch where the data lives (one transfer per epoch on
        # the GPU) and on the host, where they are the noise keys.
        model_indices = indices if data.device is None else data.device.to_device(indices)
        for batch in batches:
            idx = indices[batch]
            rows = model_indices[batch]
            activations, theta = self._forward(data.X[rows])
            if not bool(_array_namespace(theta).isfinite(theta).all()):
                self._raise_diverged()
            values, grad = loss.loss_gradient(theta, data.targets[rows], idx, seed)
            weight_sum = host_weights[idx].sum()
            if weight_sum <= 0:
                continue
            w = data.weights[rows]
            batch_loss = values.astype(np.float64, copy=False) @ w
            if self.alpha:
                # The L2 term of this batch's objective, at the weights it
                # differentiates (scikit-learn's MLPs report the same sum).
                batch_loss = batch_loss + 0.5 * self.alpha * sum(xp.vdot(W, W) for W in self.coefs_)
            if not unit_weights:
                grad = grad * w[:, None]
            grad = grad.astype(dtype, copy=False)
            coef_grads, intercept_grads = _models.backward(
                activations, grad.reshape(activations[-1].shape), self.coefs_, self.activation,
                self.alpha, weight_sum, self.out_activation_,
            )
            self.t_ += len(idx)
            self._optimizer.step(coef_grads + intercept_grads, self.t_)
            # Summed in float64 (a device scalar on the GPU: no sync per batch).
            total_loss += batch_loss
        total_weight = host_weights[indices].sum()
        epoch_loss = float(total_loss) / max(total_weight, np.finfo(float).tiny)
        finite = all(bool(_array_namespace(p).isfinite(p).all()) for p in self.coefs_)
        if not np.isfinite(epoch_loss) or not finite:
            self._raise_diverged()
        self.n_iter_ += 1
        self.loss_ = epoch_loss
        self.loss_curve_.append(epoch_loss)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {epoch_loss:.8f}")

    def _forward(self, X):
        """The model's activations and θ of shape (n, n_outputs_).

        With ``n_item_features`` the rows of the model are items, not samples:
        X (n, d·f) is read as (n·d, f) and the (n·d, 1) output as θ (n, d).
        """
        n = X.shape[0]
        if self.n_item_features is not None:
            X = X.reshape(n * self.n_outputs_, self.n_item_features)
        activations = _models.forward(
            X, self.coefs_, self.intercepts_, self.activation, self.out_activation_
        )
        return activations, activations[-1].reshape(n, self.n_outputs_)

    def _raise_diverged(self):
        raise ValueError(
            f"{type(self).__name__} diverged in epoch {self.n_iter_ + 1}: the scores, the "
            "loss or the weights are no longer finite. Lower learning_rate_init, scale X "
            "(e.g. StandardScaler), or increase alpha."
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True
        tags.non_deterministic = False
        return tags
