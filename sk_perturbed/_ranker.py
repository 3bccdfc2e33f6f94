"""PerturbedRanker: learning to rank documents grouped by query."""

import contextlib

import numpy as np
from sklearn.model_selection import GroupShuffleSplit
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import _num_samples, validate_data

from ._base import X_VALIDATION, BasePerturbedEstimator
from ._groups import QueryLayout, check_qid
from ._loss import RaggedFenchelYoungLoss
from ._noise import content_row_keys
from ._ragged import RANK_WEIGHTS, ragged_fenchel_young, ranking_targets
from ._threads import training_threads
from ._validation import to_host
from .metrics import ndcg_score

#: Documents per mini-batch for ``batch_size='auto'`` (whole queries are added
#: until a batch holds about this many documents).
_AUTO_BATCH_DOCUMENTS = 256


class _RankingPolytope:
    """The solver of a query group: the permutahedron of a weight vector (see ``_ragged``)."""

    requires_positive = False

    def __init__(self, rank_weights):
        self.rank_weights = rank_weights

    def __repr__(self):
        return f"RankingPolytope(rank_weights={self.rank_weights!r})"


def _positions(scores, query):
    """Position of each document in its query's ranking by decreasing score (1 = top).

    Tied scores share the mean of the positions they span.
    """
    n = scores.shape[0]
    order = np.lexsort((-scores, query))
    q, s = query[order], scores[order]
    new_query = np.r_[True, q[1:] != q[:-1]]
    query_start = np.maximum.accumulate(np.where(new_query, np.arange(n), 0))
    position = np.arange(n) - query_start + 1.0
    new_block = new_query | np.r_[True, s[1:] != s[:-1]]
    block = np.cumsum(new_block) - 1
    first = np.flatnonzero(new_block)
    last = np.r_[first[1:], n] - 1
    mean_position = (position[first] + position[last]) / 2
    out = np.empty(n)
    out[order] = mean_position[block]
    return out


class PerturbedRanker(BasePerturbedEstimator):
    """Learning to rank with a perturbed ranking layer and the Fenchel–Young loss.

    Each row of X is a document, with its own features, and ``qid`` says
    which query it answers; queries may have any number of documents. A model
    (linear or MLP) scores every document, ``θ = g_w(x)``; within each query
    the scores are ranked by a perturbed solver over the permutahedron of a
    weight vector, and the model is trained with the Fenchel–Young loss,
    whose gradient is ``y_ε(θ) - y`` per query (Berthet et al., 2020). All
    queries of a mini-batch go through one parallel kernel, without padding.

    Parameters
    ----------
    rank_weights : {'dcg', 'ranks'}, default='dcg'
        Weight vector ``w`` of the ranking polytope of a query of ``n``
        documents; the solver gives the document with the p-th highest score
        the weight ``w_p``. ``'dcg'``: ``w_p = 1 / log2(1 + p)``, the DCG
        discounts, so that the loss concentrates on the top positions;
        ``'ranks'``: ``w_p = n + 1 - p``, plain ranks. The target of a query
        is ``w`` ordered by true relevance, tied grades sharing the mean
        weight of the positions they span. ``'dcg'`` was chosen by
        measurement (test NDCG@10 on the shipped and the synthetic data,
        where 'ranks' was lower by about 0.01 and 0.002).
    epsilon : float, default=1.0
        Noise scale ε of the perturbations of the scores.
    n_samples : int, default=10
        Perturbations M per query and step.
    noise : {'gaussian', 'gumbel'}, default='gaussian'
        Distribution of the noise Z.
    perturbation : {'additive'}, default='additive'
        ``θ + εZ`` (scores of any sign; the multiplicative perturbation is
        not offered here).
    loss : {'fenchel_young'}, default='fenchel_young'
        The perturbed Fenchel–Young loss of the ranking polytope.
    model : {'linear', 'mlp'}, default='mlp'
        Document scorer: ``θ = x·w + b``, or an MLP with ``hidden_layer_sizes``.
    hidden_layer_sizes : tuple of int, default=(100,)
        Hidden layers of the MLP (ignored by the linear model).
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='tanh'
        Activation of the hidden layers of the MLP. 'tanh' was chosen by
        measurement (test NDCG@10 higher than with 'relu' on the shipped and
        the synthetic data, see ``benchmarks/learning_to_rank.py``).
    optimizer : {'adam', 'sgd'}, default='adam'
        Stochastic gradient method.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='adaptive'
        Step schedule, as in :class:`PerturbedRankingRegressor`.
    learning_rate_init : float, default=1e-3
        Initial step size. With ``max_iter=60``, the compromise measured
        between the small shipped data (larger steps or more epochs
        over-fit) and 1e5 synthetic documents (smaller steps under-fit).
        40 epochs at 1.5e-3 (the same epochs x step budget, two thirds of
        the fit time) lost 0.001-0.003 NDCG@10 on the synthetic data.
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
        Documents per mini-batch, made of whole queries: queries are added
        to a batch until it holds about ``batch_size`` documents (256 for
        'auto'); a query larger than that is a batch of its own.
    max_iter : int, default=60
        Maximum number of epochs.
    tol : float, default=1e-4
        Minimal improvement of the training loss (or validation score) that
        counts as progress.
    n_iter_no_change : int, default=20
        Epochs without improvement of ``tol`` before stopping (or, with
        'adaptive', before dividing the step).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the queries (whole queries), stop
        on their NDCG@10 and restore the best weights.
    validation_fraction : float, default=0.1
        Fraction of the queries held out for early stopping.
    shuffle : bool, default=True
        Whether to shuffle the queries at each epoch.
    warm_start : bool, default=False
        Whether ``fit`` continues from the current weights.
    random_state : int, RandomState instance or None, default=None
        Seeds initialization, shuffling, the validation split and the noise.
    verbose : bool, default=False
        Whether to print the loss at each epoch.
    n_jobs : int, default=None
        Threads of the numba kernels during this estimator's calls.
    backend : {'auto', 'numba'}, default='auto'
        The ragged kernels run on the CPU with numba (no NumPy or CuPy
        variant yet).

    Attributes
    ----------
    coefs_, intercepts_ : list of ndarray
        Weights and biases per layer (one output: the document's score).
    solver_ : object
        The ranking polytope (its ``rank_weights``).
    loss_, loss_curve_, best_loss_ : float, list, float
        Training loss per document, ``F̂_ε(θ) - <θ, y>`` summed over queries
        and divided by the number (total weight) of documents; the FY loss
        minus the constant εΩ(y), so it can be negative.
    validation_scores_, best_validation_score_ : list, float
        NDCG@10 of the held-out queries with early stopping, else None.
    n_iter_ : int
        Epochs run.
    t_ : int
        Documents seen.
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    Notes
    -----
    **Queries.** ``qid`` holds one id per row of X (integers or strings).
    Rows with the same id are one query wherever they are: they need not be
    contiguous or sorted (unlike XGBoost's ``qid``). ``qid`` is required by
    every method that groups rows (all but ``predict``): ``None`` raises
    instead of ranking all rows as one query (pass ``np.zeros(len(X))`` for
    that), so a meta-estimator that does not route ``qid`` fails loudly. Queries of one document have a
    single ranking, so they carry no signal: their loss and gradient are 0
    (they still count in the number of documents the loss is divided by).
    A query whose documents all have the same grade has the centre of the
    polytope as its target: it pulls its scores together.

    **Precision.** The model trains in the dtype of X: float32 X gives a
    float32 model, whose matrix products (most of a fit on dense features)
    take about half the time; float64 X keeps a float64 model.

    **Sample weights** are per document and must be constant within each
    query (a weight of a query, repeated on its rows, which is what
    cross-validation and metadata routing slice with the rows).

    **Metadata routing.** ``fit`` and ``score`` request ``qid`` by default,
    so with ``sklearn.set_config(enable_metadata_routing=True)`` it reaches
    them inside a Pipeline, ``GridSearchCV`` or ``cross_validate``
    (``params={"qid": qid}``); ``sample_weight`` is requested with
    ``set_fit_request`` / ``set_score_request`` as usual.

    Examples
    --------
    >>> from sk_perturbed import PerturbedRanker
    >>> from sk_perturbed.datasets import make_ranking_groups
    >>> X, y, qid = make_ranking_groups(n_queries=100, n_features=5, random_state=0)
    >>> ranker = PerturbedRanker(model="linear", learning_rate_init=0.01,
    ...                          random_state=0).fit(X, y, qid=qid)
    >>> ranker.predict(X[:3]).shape
    (3,)
    >>> ranker.score(X, y, qid) > 0.8
    True
    """

    __metadata_request__fit = {"qid": True}
    __metadata_request__partial_fit = {"qid": True}
    __metadata_request__score = {"qid": True}

    _parameter_constraints = {
        **{k: v for k, v in BasePerturbedEstimator._parameter_constraints.items()
           if k not in ("blackbox_lambda", "n_item_features")},
        "rank_weights": [StrOptions(set(RANK_WEIGHTS))],
        "perturbation": [StrOptions({"additive"})],
        "loss": [StrOptions({"fenchel_young"})],
        "backend": [StrOptions({"auto", "numba"})],
    }

    # Documents are rows of X: the model maps one row to one score.
    n_item_features = None

    def __init__(
        self, *, rank_weights="dcg", epsilon=1.0, n_samples=10, noise="gaussian",
        perturbation="additive", loss="fenchel_young", model="mlp", hidden_layer_sizes=(100,),
        activation="tanh", optimizer="adam", learning_rate="adaptive", learning_rate_init=1e-3,
        power_t=0.5, momentum=0.9, nesterovs_momentum=True, beta_1=0.9, beta_2=0.999,
        adam_epsilon=1e-8, alpha=1e-4, batch_size="auto", max_iter=60, tol=1e-4,
        n_iter_no_change=20, early_stopping=False, validation_fraction=0.1, shuffle=True,
        warm_start=False, random_state=None, verbose=False, n_jobs=None, backend="auto",
    ):
        self.rank_weights = rank_weights
        self.epsilon = epsilon
        self.n_samples = n_samples
        self.noise = noise
        self.perturbation = perturbation
        self.loss = loss
        self.model = model
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

    # ---------------------------------------------------------------- public
    def fit(self, X, y, qid=None, sample_weight=None):
        """Fit the document scorer to graded relevance within queries.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_documents, n_features)
            One row per document.
        y : array-like of shape (n_documents,)
            Graded relevance of each document to its query (any reals,
            higher is more relevant; only the order within a query matters).
        qid : array-like of shape (n_documents,), default=None
            Query id of each document; the rows of a query need not be
            contiguous. Required: None raises a ValueError.
        sample_weight : array-like of shape (n_documents,), default=None
            Weight of each document's query, constant within each query.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        with self._training_queries(X, qid, sample_weight):
            return super().fit(X, y, sample_weight)

    def partial_fit(self, X, y, qid=None, sample_weight=None):
        """Update the model with one epoch over the queries of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_documents, n_features)
            One row per document.
        y : array-like of shape (n_documents,)
            Graded relevance of each document.
        qid : array-like of shape (n_documents,), default=None
            Query id of each document. Required: None raises a ValueError.
        sample_weight : array-like of shape (n_documents,), default=None
            Weight of each document's query, constant within each query.

        Returns
        -------
        self : object
            Updated estimator.
        """
        with self._training_queries(X, qid, sample_weight):
            return super().partial_fit(X, y, sample_weight)

    def predict_scores(self, X):
        """Score θ of each document (higher is ranked first); the same as :meth:`predict`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_documents, n_features)
            Documents.

        Returns
        -------
        scores : ndarray of shape (n_documents,)
            The model's output θ for each document.
        """
        return super().predict_scores(X)[:, 0]

    def predict(self, X):
        """Score of each document, as XGBRanker and LGBMRanker predict.

        Scores are comparable within a query (sort them to rank its
        documents); no query id is needed.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_documents, n_features)
            Documents.

        Returns
        -------
        scores : ndarray of shape (n_documents,)
            Higher is ranked first within a query.
        """
        return super().predict(X)

    def predict_ranks(self, X, qid=None):
        """Position of each document in its query's predicted ranking (1 = top).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_documents, n_features)
            Documents.
        qid : array-like of shape (n_documents,), default=None
            Query id of each row of X. Required: None raises a ValueError.

        Returns
        -------
        positions : ndarray of shape (n_documents,)
            Float64 positions 1..n_q within each query, 1 for the highest
            score; tied scores share the mean of the positions they span.
        """
        query, _ = check_qid(qid, self._n_rows(X))
        return _positions(self.predict(X), query)

    def predict_marginals(self, X, qid=None):
        """Soft weights ``y_ε(θ)``: each document's expected weight under the noise.

        The weight of position p is ``w_p`` (see ``rank_weights``); a
        document always first gets ``w_1``. The noise is keyed by each
        document's content and a seed fixed at fit time, so repeated calls
        agree and a query's result does not depend on the other queries.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_documents, n_features)
            Documents.
        qid : array-like of shape (n_documents,), default=None
            Query id of each row of X. Required: None raises a ValueError.

        Returns
        -------
        soft_weights : ndarray of shape (n_documents,)
            Within each query they sum to ``sum(w)``.
        """
        X = self._validate_for_predict(X)
        query, n_queries = check_qid(qid, X.shape[0])
        layout = QueryLayout(query, n_queries)
        theta = self._scores(X)[:, 0]
        rows = layout.rows
        with training_threads(self.n_jobs):
            _, _, y_eps = ragged_fenchel_young(
                theta[rows], np.zeros(len(rows)), layout.offsets, content_row_keys(X)[rows],
                seed=self._predict_seed, n_samples=self.n_samples, epsilon=self.epsilon,
                noise=self.noise, rank_weights=self.rank_weights,
            )
        out = np.empty(len(rows))
        out[rows] = y_eps
        return out

    def score(self, X, y, qid=None, sample_weight=None):
        """Mean NDCG@10 over queries (exponential gain ``2**rel - 1``).

        Queries without a relevant document are left out, as in
        :func:`sk_perturbed.metrics.ndcg_score`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_documents, n_features)
            Documents.
        y : array-like of shape (n_documents,)
            True grades, non-negative.
        qid : array-like of shape (n_documents,), default=None
            Query id of each row of X. Required: None raises a ValueError.
        sample_weight : array-like of shape (n_queries,) or (n_documents,), default=None
            Weight of each query in the mean (see ``ndcg_score``).

        Returns
        -------
        score : float
            Mean NDCG@10, in [0, 1].
        """
        query, _ = check_qid(qid, self._n_rows(X))
        scores = self.predict(X)
        y = np.asarray(to_host(y))
        if y.ndim == 1 and y.shape[0] == scores.shape[0] and y.dtype.kind in "biuf" and np.any(y < 0):
            raise ValueError(
                "score computes NDCG, which needs non-negative grades; y has negative values."
            )
        return ndcg_score(y, scores, query, k=10, sample_weight=to_host(sample_weight))

    # ----------------------------------------------------------------- hooks
    @staticmethod
    def _n_rows(X):
        return _num_samples(to_host(X))

    @contextlib.contextmanager
    def _training_queries(self, X, qid, sample_weight):
        """The query layout of the training rows, for the hooks of this fit."""
        query, n_queries = check_qid(qid, self._n_rows(X))
        if sample_weight is not None:
            weights = np.asarray(to_host(sample_weight))
            if weights.shape == query.shape and weights.dtype.kind in "biuf":
                first = np.full(n_queries, -1)
                first[query[::-1]] = np.arange(len(query))[::-1]
                varying = np.flatnonzero(weights != weights[first[query]])
                if varying.size:
                    i = varying[0]
                    raise ValueError(
                        "sample_weight must be constant within each query (it weights "
                        f"queries); row {i} has weight {weights[i]} where row "
                        f"{first[query[i]]} of the same query has {weights[first[query[i]]]}."
                    )
        self._fit_layout = QueryLayout(query, n_queries)
        try:
            yield
        finally:
            self.__dict__.pop("_fit_layout", None)

    def _validate_targets_for_fit(self, X, Y, reset):
        X, y = validate_data(self, X, Y, reset=reset, y_numeric=True, **X_VALIDATION)
        if y.dtype.kind not in "biuf":
            raise ValueError(
                f"y must hold numbers (graded relevance), got an array of dtype {y.dtype}."
            )
        return X, y

    def _make_solver(self, n_outputs):
        return _RankingPolytope(self.rank_weights)

    def _update_solver(self, n_outputs):
        self.solver_ = _RankingPolytope(self.rank_weights)

    def _encode_targets(self, Y, reset):
        layout = self._fit_layout
        if layout.sizes.max(initial=0) < 2:
            raise ValueError(
                f"Every query of the {layout.n_queries} has a single document: there is no "
                "ranking to learn. Pass qid with queries of at least 2 documents."
            )
        targets = np.empty(Y.shape[0])
        targets[layout.rows] = ranking_targets(Y[layout.rows], layout.offsets, self.rank_weights)
        return targets[:, None]

    def _decode(self, theta):
        return np.asarray(theta).reshape(-1)

    def _make_loss(self, device=None):
        return RaggedFenchelYoungLoss(
            self._fit_layout.query, epsilon=self.epsilon, n_samples=self.n_samples,
            noise=self.noise, rank_weights=self.rank_weights,
        )

    def _batch_size(self, n):
        return min(_AUTO_BATCH_DOCUMENTS if self.batch_size == "auto" else self.batch_size, n)

    def _epoch_batches(self, indices, rng):
        layout = self._fit_layout
        if len(indices) == len(layout.query):
            queries = np.arange(layout.n_queries)
        else:  # the training queries of an early-stopping split (whole queries)
            queries = np.unique(layout.query[indices])
        if self.shuffle:
            queries = queries[rng.permutation(len(queries))]
        rows = layout.rows_of(queries)
        sizes = layout.sizes[queries]
        starts = np.cumsum(sizes) - sizes
        # A query joins the batch in which its first document falls.
        batch_of_query = starts // self._batch_size(len(rows))
        cuts = starts[np.flatnonzero(np.diff(batch_of_query)) + 1]
        bounds = np.r_[0, cuts, len(rows)]
        return rows, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def _validation_split(self, train_idx, Y, random_state):
        groups = self._fit_layout.query[train_idx]
        splitter = GroupShuffleSplit(
            n_splits=1, test_size=self.validation_fraction, random_state=random_state
        )
        train, val = next(splitter.split(train_idx, groups=groups))
        return train_idx[train], train_idx[val]

    def _validation_data(self, X, Y, sample_weight, val_idx):
        return X[val_idx], Y[val_idx], self._fit_layout.query[val_idx], sample_weight[val_idx]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
