"""Metrics for rankings and combinatorial structures.

The rank metrics (:func:`spearman_score`, :func:`kendall_tau_score`,
:func:`perfect_rank_score`) compare, row by row, two ``(n_samples, n_labels)``
arrays of scores or ranks; only the order within each row matters, so raw
scores, :func:`scipy.stats.rankdata` ranks and the output of
``PerturbedRankingRegressor.predict`` can be mixed freely. Higher is better.
:func:`hamming_score` compares 0/1 structures entry by entry and
:func:`normalized_regret` measures the excess cost of predicted structures.

Ready-made scorers for :class:`~sklearn.model_selection.GridSearchCV` and
:func:`~sklearn.model_selection.cross_val_score`: ``spearman_scorer``,
``kendall_tau_scorer``, ``perfect_rank_scorer``, ``hamming_scorer`` (built
with :func:`sklearn.metrics.make_scorer`; they compare ``estimator.predict(X)``
to ``y``) and :func:`normalized_regret_scorer` (``y`` is the cost matrix).

The learning-to-rank metrics (:func:`ndcg_score`,
:func:`mean_average_precision_score`, :func:`mean_reciprocal_rank_score`)
take one entry per document instead: 1-D arrays of graded relevance, scores
and query ids, and average a per-query value over the queries.
:func:`make_ndcg_scorer` builds a scorer that receives ``qid`` through
scikit-learn's metadata routing.
"""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.special import gammaln
from scipy.stats import rankdata
from sklearn import config_context, get_config
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import make_scorer
from sklearn.utils import check_array, gen_batches
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ._groups import check_qid_values

__all__ = [
    "hamming_score",
    "hamming_scorer",
    "kendall_tau_score",
    "kendall_tau_scorer",
    "make_ndcg_scorer",
    "mean_average_precision_score",
    "mean_reciprocal_rank_score",
    "ndcg_score",
    "normalized_regret",
    "normalized_regret_scorer",
    "perfect_rank_score",
    "perfect_rank_scorer",
    "spearman_score",
    "spearman_scorer",
]


def _check_matrix(Y, name, *, min_labels):
    """Validate one 2-D, finite, non-empty ``(n_samples, n_labels)`` array."""
    # ensure_2d/ensure_min_* are disabled so that every message below can
    # name the offending argument (check_array's own messages do not).
    Y = check_array(
        Y,
        input_name=name,
        dtype="numeric",
        ensure_2d=False,
        allow_nd=True,
        ensure_min_samples=0,
        ensure_min_features=0,
    )
    if Y.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_labels); "
            f"got an array with {Y.ndim} dimension(s)."
        )
    if Y.shape[0] < 1:
        raise ValueError(f"{name} must have at least one row; got shape {Y.shape}.")
    if Y.shape[1] < min_labels:
        raise ValueError(
            f"{name} must have at least {min_labels} column(s) (labels); "
            f"got shape {Y.shape}."
        )
    return Y


def _check_sample_weight(sample_weight, n_samples):
    """Validate ``sample_weight``: length n_samples, >= 0, not all zero."""
    if sample_weight is None:
        return None
    sample_weight = check_array(
        sample_weight,
        input_name="sample_weight",
        dtype=np.float64,
        ensure_2d=False,
        ensure_min_samples=0,
    )
    if sample_weight.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must be a 1-D array of length n_samples={n_samples}; "
            f"got shape {sample_weight.shape}."
        )
    if np.any(sample_weight < 0):
        raise ValueError("sample_weight must be non-negative; got negative values.")
    if not np.any(sample_weight > 0):
        raise ValueError("sample_weight must not be all zero.")
    return sample_weight


def _check_targets(
    Y_true, Y_pred, sample_weight=None, *, min_labels=1, names=("Y_true", "Y_pred")
):
    """Shared validation of every metric's (Y_true, Y_pred, sample_weight).

    Returns the validated arrays; raises ValueError naming the argument at
    fault otherwise.
    """
    Y_true = _check_matrix(Y_true, names[0], min_labels=min_labels)
    Y_pred = _check_matrix(Y_pred, names[1], min_labels=min_labels)
    if Y_true.shape != Y_pred.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape; "
            f"got {Y_true.shape} and {Y_pred.shape}."
        )
    sample_weight = _check_sample_weight(sample_weight, Y_true.shape[0])
    return Y_true, Y_pred, sample_weight


def _weighted_mean(values, sample_weight):
    return float(np.average(values, weights=sample_weight))


def _cosine_rows(A, B):
    """Row-wise cosine similarity; 0 for a row where A or B is all zero.

    Both Spearman's rho (on centred ranks) and Kendall's tau-b (on pairwise
    signs) are this quantity; a zero row means a constant ranking, for which
    the correlation is undefined and counted as 0 (no association).
    """
    num = np.einsum("ij,ij->i", A, B)
    den = np.sqrt(np.einsum("ij,ij->i", A, A) * np.einsum("ij,ij->i", B, B))
    out = np.zeros(num.shape)
    np.divide(num, den, out=out, where=den > 0)
    # Rounding can push a perfect correlation a hair outside [-1, 1].
    return np.clip(out, -1.0, 1.0)


_RANKING_PARAMS = {
    "Y_true": ["array-like"],
    "Y_pred": ["array-like"],
    "sample_weight": ["array-like", None],
}


@validate_params(_RANKING_PARAMS, prefer_skip_nested_validation=True)
def spearman_score(Y_true, Y_pred, *, sample_weight=None):
    """Mean Spearman rank correlation between the rows of two score arrays.

    Each row is ranked with :func:`scipy.stats.rankdata` (ties get their
    average rank) and Spearman's rho is the Pearson correlation of the two
    rank vectors. The result is the (weighted) mean of rho over rows.

    Parameters
    ----------
    Y_true : array-like of shape (n_samples, n_labels)
        True scores or ranks, higher is better. ``n_labels >= 2``.

    Y_pred : array-like of shape (n_samples, n_labels)
        Predicted scores or ranks, higher is better.

    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights of the rows, not all zero.

    Returns
    -------
    score : float
        Mean rho, in [-1, 1]; 1 means every predicted ranking is exactly the
        true one.

    Notes
    -----
    Rho is undefined for a row where the true or the predicted ranking is
    constant (all entries tied). Such a row counts as a correlation of 0, the
    value of an uninformative prediction, so the mean stays finite (where
    :func:`scipy.stats.spearmanr` would return NaN).

    Examples
    --------
    >>> from sk_perturbed.metrics import spearman_score
    >>> Y_true = [[1, 2, 3], [3, 2, 1]]
    >>> spearman_score(Y_true, [[10, 20, 30], [1, 2, 3]])
    0.0
    >>> spearman_score(Y_true, [[0.1, 0.5, 0.9], [0.9, 0.2, 0.1]])
    1.0
    """
    Y_true, Y_pred, sample_weight = _check_targets(
        Y_true, Y_pred, sample_weight, min_labels=2
    )
    # The mean of average ranks is always (d + 1) / 2, ties or not.
    center = (Y_true.shape[1] + 1) / 2
    R_true = rankdata(Y_true, axis=1) - center
    R_pred = rankdata(Y_pred, axis=1) - center
    return _weighted_mean(_cosine_rows(R_true, R_pred), sample_weight)


def _pairwise_signs(Y, rows, i, j):
    """sign(y_i - y_j) for every label pair i < j of the given rows."""
    # Comparisons rather than a subtraction: exact for any dtype (no integer
    # overflow) and float64 so that the sums below cannot overflow.
    left, right = Y[rows][:, i], Y[rows][:, j]
    signs = (left > right).astype(np.float64)
    signs -= left < right
    return signs


@validate_params(_RANKING_PARAMS, prefer_skip_nested_validation=True)
def kendall_tau_score(Y_true, Y_pred, *, sample_weight=None):
    """Mean Kendall tau-b between the rows of two score arrays.

    For each row, tau-b counts concordant minus discordant label pairs,
    normalised by the number of pairs not tied in each ranking (the default
    variant of :func:`scipy.stats.kendalltau`). The result is the (weighted)
    mean over rows.

    Parameters
    ----------
    Y_true : array-like of shape (n_samples, n_labels)
        True scores or ranks, higher is better. ``n_labels >= 2``.

    Y_pred : array-like of shape (n_samples, n_labels)
        Predicted scores or ranks, higher is better.

    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights of the rows, not all zero.

    Returns
    -------
    score : float
        Mean tau-b, in [-1, 1].

    Notes
    -----
    As in :func:`spearman_score`, a row whose true or predicted ranking is
    constant counts as 0. The pairwise comparisons take
    ``O(n_samples * n_labels**2)`` operations; rows are processed in chunks
    whose size follows ``sklearn.get_config()["working_memory"]``.

    Examples
    --------
    >>> from sk_perturbed.metrics import kendall_tau_score
    >>> round(kendall_tau_score([[1, 2, 3, 4]], [[1, 2, 4, 3]]), 4)
    0.6667
    """
    Y_true, Y_pred, sample_weight = _check_targets(
        Y_true, Y_pred, sample_weight, min_labels=2
    )
    n_samples, n_labels = Y_true.shape
    i, j = np.triu_indices(n_labels, k=1)
    # Per row: two float64 sign vectors plus two operand copies (<= 8 bytes
    # per item each).
    row_bytes = 4 * 8 * i.size
    chunk = max(1, int(get_config()["working_memory"] * 2**20 // row_bytes))
    tau = np.empty(n_samples)
    for rows in gen_batches(n_samples, chunk):
        tau[rows] = _cosine_rows(
            _pairwise_signs(Y_true, rows, i, j), _pairwise_signs(Y_pred, rows, i, j)
        )
    return _weighted_mean(tau, sample_weight)


@validate_params(_RANKING_PARAMS, prefer_skip_nested_validation=True)
def perfect_rank_score(Y_true, Y_pred, *, sample_weight=None):
    """Fraction of rows whose predicted ranking equals the true ranking.

    Both rows are ranked with :func:`scipy.stats.rankdata` (ties get their
    average rank) and compared exactly, so ties must match too.

    Parameters
    ----------
    Y_true : array-like of shape (n_samples, n_labels)
        True scores or ranks, higher is better. ``n_labels >= 2``.

    Y_pred : array-like of shape (n_samples, n_labels)
        Predicted scores or ranks, higher is better.

    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights of the rows, not all zero.

    Returns
    -------
    score : float
        (Weighted) fraction of perfectly ranked rows, in [0, 1].

    Examples
    --------
    >>> from sk_perturbed.metrics import perfect_rank_score
    >>> Y_true = [[1, 2, 3], [1, 2, 3]]
    >>> perfect_rank_score(Y_true, [[0.1, 0.2, 0.3], [0.2, 0.1, 0.3]])
    0.5
    """
    Y_true, Y_pred, sample_weight = _check_targets(
        Y_true, Y_pred, sample_weight, min_labels=2
    )
    same = np.all(rankdata(Y_true, axis=1) == rankdata(Y_pred, axis=1), axis=1)
    return _weighted_mean(same, sample_weight)


@validate_params(_RANKING_PARAMS, prefer_skip_nested_validation=True)
def hamming_score(Y_true, Y_pred, *, sample_weight=None):
    """Mean fraction of entries on which two structure arrays agree.

    Parameters
    ----------
    Y_true : array-like of shape (n_samples, n_labels)
        True structures, typically 0/1 indicator vectors (a path, a
        matching, a top-k set...).

    Y_pred : array-like of shape (n_samples, n_labels)
        Predicted structures.

    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights of the rows, not all zero.

    Returns
    -------
    score : float
        In [0, 1]; 1 means every structure is predicted exactly. This is
        ``1 - sklearn.metrics.hamming_loss`` computed row-wise.

    Examples
    --------
    >>> from sk_perturbed.metrics import hamming_score
    >>> hamming_score([[1, 0, 0, 1], [0, 1, 1, 0]], [[1, 0, 1, 1], [0, 1, 1, 0]])
    0.875
    """
    Y_true, Y_pred, sample_weight = _check_targets(Y_true, Y_pred, sample_weight)
    return _weighted_mean(np.mean(Y_true == Y_pred, axis=1), sample_weight)


@validate_params(
    {
        "costs": ["array-like"],
        "Y_pred": ["array-like"],
        "Y_true": ["array-like", None],
        "solver": [callable, None],
        "sense": [StrOptions({"min", "max"}), None],
        "sample_weight": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def normalized_regret(costs, Y_pred, *, Y_true=None, solver=None, sense=None, sample_weight=None):
    """Excess cost of predicted structures, relative to the optimal cost.

    With cost vectors ``c_i`` (to be minimised), predicted structures
    ``y_hat_i`` and optimal structures ``y*_i = argmin_y <c_i, y>``::

        regret = sum_i (<c_i, y_hat_i> - <c_i, y*_i>) / sum_i |<c_i, y*_i>|

    For a maximisation problem (``sense='max'``) the rows of ``costs`` are
    values, ``y*_i = argmax_y <c_i, y>``, and the regret is the value lost,
    ``sum_i (<c_i, y*_i> - <c_i, y_hat_i>) / sum_i |<c_i, y*_i>|``.

    Parameters
    ----------
    costs : array-like of shape (n_samples, n_labels)
        True cost vectors, one problem per row.

    Y_pred : array-like of shape (n_samples, n_labels)
        Predicted structures.

    Y_true : array-like of shape (n_samples, n_labels), default=None
        Optimal structures for ``costs``. Exactly one of ``Y_true`` and
        ``solver`` must be given.

    solver : callable, default=None
        Maps an ``(n_samples, n_labels)`` batch of costs to the
        ``(n_samples, n_labels)`` minimising structures, e.g. a fitted
        minimising solver object of :mod:`sk_perturbed.solvers`. Used to
        compute ``Y_true`` when it is not given.

    sense : {'min', 'max'}, default=None
        Whether the structures minimise costs or maximise values. ``None``
        takes ``solver.sense`` when the solver has one (every solver of
        :mod:`sk_perturbed.solvers` does), else ``'min'``.

    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the problems in both sums.

    Returns
    -------
    regret : float
        Non-negative when ``Y_true`` is optimal; 0 means every prediction is
        optimal. Lower is better.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.metrics import normalized_regret
    >>> costs = np.array([[1.0, 3.0], [2.0, 1.0]])
    >>> normalized_regret(costs, [[0, 1], [0, 1]], Y_true=[[1, 0], [0, 1]])
    1.0

    Any batch solver works, here a one-hot argmin:

    >>> def argmin(C):
    ...     return np.eye(C.shape[1])[np.argmin(C, axis=1)]
    >>> normalized_regret(costs, [[1, 0], [0, 1]], solver=argmin)
    0.0
    """
    if (Y_true is None) == (solver is None):
        raise ValueError(
            "Pass exactly one of Y_true (the optimal structures) or solver "
            "(a callable returning them for a batch of costs)."
        )
    if sense is None:
        sense = getattr(solver, "sense", "min")
    costs, Y_pred, sample_weight = _check_targets(
        costs, Y_pred, sample_weight, names=("costs", "Y_pred")
    )
    if Y_true is None:
        Y_true = solver(costs)
        name = "solver(costs)"
    else:
        name = "Y_true"
    Y_true = _check_matrix(Y_true, name, min_labels=1)
    if Y_true.shape != costs.shape:
        raise ValueError(
            f"{name} must have the same shape as costs {costs.shape}; "
            f"got {Y_true.shape}."
        )
    optimal = np.einsum("ij,ij->i", costs, Y_true)
    weights = np.ones(costs.shape[0]) if sample_weight is None else sample_weight
    scale = weights @ np.abs(optimal)
    if scale == 0:
        raise ValueError(
            "normalized_regret is undefined: every optimal cost <c_i, y*_i> is zero."
        )
    predicted = np.einsum("ij,ij->i", costs, Y_pred)
    excess = predicted - optimal if sense == "min" else optimal - predicted
    return float(weights @ excess / scale)


def normalized_regret_scorer(estimator, X, y):
    """Scorer: minus the normalised regret of ``estimator.predict(X)``.

    Follows scikit-learn's ``neg_*`` convention (greater is better), like a
    scorer built with ``make_scorer(..., greater_is_better=False)``. It is a
    plain callable rather than a :func:`~sklearn.metrics.make_scorer` object
    because it needs the estimator itself, not only its predictions.

    Parameters
    ----------
    estimator : estimator object
        Fitted estimator with ``predict`` returning structures of shape
        ``(n_samples, n_labels)`` and a ``solver_`` attribute: the fitted
        solver, callable on an ``(n_samples, n_labels)`` batch of costs,
        used to compute the optimal structures. Its ``sense`` (``'min'``
        unless it says ``'max'``) tells whether ``y`` holds costs or values.

    X : array-like of shape (n_samples, n_features)
        Input data.

    y : array-like of shape (n_samples, n_labels)
        The true **cost vectors** (values for a maximising solver), not
        structures.

    Returns
    -------
    score : float
        ``-normalized_regret(y, estimator.predict(X), solver=estimator.solver_)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.metrics import normalized_regret_scorer
    >>> class AlwaysFirst:
    ...     def solver_(self, C):  # one-hot argmin
    ...         return np.eye(C.shape[1])[np.argmin(C, axis=1)]
    ...     def predict(self, X):
    ...         return np.tile([1, 0], (len(X), 1))
    >>> costs = np.array([[1.0, 3.0], [2.0, 1.0]])
    >>> normalized_regret_scorer(AlwaysFirst(), np.zeros((2, 1)), costs)
    -0.5
    """
    solver = getattr(estimator, "solver_", None)
    if solver is None:
        raise ValueError(
            f"normalized_regret_scorer needs a fitted solver in "
            f"{type(estimator).__name__}.solver_ to compute the optimal structures."
        )
    return -normalized_regret(y, estimator.predict(X), solver=solver)


spearman_scorer = make_scorer(spearman_score)
kendall_tau_scorer = make_scorer(kendall_tau_score)
perfect_rank_scorer = make_scorer(perfect_rank_score)
hamming_scorer = make_scorer(hamming_score)


# Learning to rank ------------------------------------------------------------
#
# The metrics below take one entry per document: y_true (graded relevance),
# y_score and qid are 1-D arrays of the same length, and a query is the set
# of documents sharing a qid value, wherever its rows are.

_NO_RELEVANT = StrOptions({"skip", "one", "zero"})


def _check_document_vector(y, name):
    """Validate a finite, non-empty 1-D float vector of per-document values."""
    y = check_array(
        y,
        input_name=name,
        dtype=np.float64,
        ensure_2d=False,
        allow_nd=True,
        ensure_min_samples=0,
        ensure_min_features=0,
    )
    if y.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array with one entry per document; "
            f"got an array of shape {y.shape}."
        )
    if y.size == 0:
        raise ValueError(f"{name} must hold at least one document; got an empty array.")
    return y


def _query_index(sorted_qid):
    """Index 0..n_queries-1 of each document's query, for sorted ids."""
    new_query = np.empty(sorted_qid.size, dtype=bool)
    new_query[0] = True
    np.not_equal(sorted_qid[1:], sorted_qid[:-1], out=new_query[1:])
    query = np.cumsum(new_query) - 1
    return query, int(query[-1]) + 1


def _check_documents(y_true, y_score, qid, sample_weight=None):
    """Validate the per-document inputs and put them in query order.

    Returns ``y_true``, ``y_score`` and ``query`` (the index of each
    document's query in ``np.unique(qid)``), all sorted by qid (stably), the
    number of queries and the per-query weights (None without
    ``sample_weight``).
    """
    y_true = _check_document_vector(y_true, "y_true")
    y_score = _check_document_vector(y_score, "y_score")
    qid = check_qid_values(qid, "document")
    if not (y_true.size == y_score.size == qid.size):
        raise ValueError(
            "y_true, y_score and qid must have the same length (one entry per "
            f"document); got lengths {y_true.size}, {y_score.size} and {qid.size}."
        )
    # Sorting the documents by qid first is cheaper than np.unique and makes
    # the later sorts by score run on query-ordered keys, which are faster.
    by_query = None
    if not np.all(qid[1:] >= qid[:-1]):
        by_query = np.argsort(qid, kind="stable")
        qid, y_true, y_score = qid[by_query], y_true[by_query], y_score[by_query]
    query, n_queries = _query_index(qid)
    weights = _check_query_weights(sample_weight, query, n_queries, by_query)
    return y_true, y_score, query, n_queries, weights


def _check_query_weights(sample_weight, query, n_queries, by_query):
    """Per-query weights from ``sample_weight`` (per query or per document)."""
    if sample_weight is None:
        return None
    sample_weight = check_array(
        sample_weight,
        input_name="sample_weight",
        dtype=np.float64,
        ensure_2d=False,
        allow_nd=True,
        ensure_min_samples=0,
        ensure_min_features=0,
    )
    n_documents = query.size
    if sample_weight.ndim == 1 and sample_weight.size == n_documents:
        # Per-document form (what metadata routing slices with the rows);
        # it wins when n_documents == n_queries.
        rows = np.arange(n_documents) if by_query is None else by_query
        sample_weight = sample_weight[rows]
        weights = np.zeros(n_queries)
        weights[query] = sample_weight
        varying = np.flatnonzero(weights[query] != sample_weight)
        if varying.size:
            i = varying[0]
            raise ValueError(
                "sample_weight of length n_documents must be constant within each "
                f"query; row {rows[i]} has weight {sample_weight[i]} where another "
                f"row of its query has {weights[query[i]]}."
            )
    elif sample_weight.ndim == 1 and sample_weight.size == n_queries:
        weights = sample_weight
    else:
        raise ValueError(
            f"sample_weight must be a 1-D array of length n_queries={n_queries} "
            "(one weight per query, in the order of np.unique(qid)) or "
            f"n_documents={n_documents} (constant within each query); got shape "
            f"{sample_weight.shape}."
        )
    if np.any(weights < 0):
        raise ValueError("sample_weight must be non-negative; got negative values.")
    if not np.any(weights > 0):
        raise ValueError("sample_weight must not be all zero.")
    return weights


def _order_within_queries(values, query):
    """Order sorting the documents by query, then by decreasing ``values``.

    Equal values of a query end up adjacent, in no particular order: none of
    the metrics depends on the order inside a tie. Two plain sorts (the
    values, then one distinct int64 key per document) run about twice as
    fast as ``np.lexsort((-values, query))`` on 10**6 documents.
    """
    n = values.size
    by_value = np.argsort(-values)
    rank = np.empty(n, dtype=np.int64)
    rank[by_value] = np.arange(n)
    # query * n + rank < n**2 cannot overflow int64 below 3e9 documents. The
    # stable sort is the fastest on keys already grouped by query.
    return np.argsort(query * n + rank, kind="stable")


class _RankedQueries:
    """Documents sorted by (query, descending score), with their tie blocks.

    A block is a maximal run of documents of one query with equal scores. All
    arrays are in sorted order: ``order`` maps it back to the input rows,
    ``position`` is the 0-based rank within the query, ``block`` the block
    index of each document, ``block_start``/``block_size`` the first sorted
    index and the size of each block.
    """

    def __init__(self, y_score, query):
        self.order = _order_within_queries(y_score, query)
        self.query = query[self.order]
        score = y_score[self.order]
        n = score.size
        new_query = np.empty(n, dtype=bool)
        new_query[0] = True
        np.not_equal(self.query[1:], self.query[:-1], out=new_query[1:])
        new_block = new_query.copy()
        new_block[1:] |= score[1:] != score[:-1]
        self.query_start = np.flatnonzero(new_query)
        self.query_size = np.diff(self.query_start, append=n)
        self.position = np.arange(n) - np.repeat(self.query_start, self.query_size)
        self.block = np.cumsum(new_block) - 1
        self.block_start = np.flatnonzero(new_block)
        self.block_size = np.diff(self.block_start, append=n)

    def offset_in_block(self):
        """0-based position of each document inside its tie block."""
        return self.position - self.position[self.block_start][self.block]


def _ndcg_values(y_true, ranked, query, n_queries, k, gain):
    """NDCG@k of each query; NaN where the ideal DCG is 0."""
    if np.any(y_true < 0):
        raise ValueError(
            "ndcg_score needs non-negative relevance grades; y_true has negative "
            f"values (min {y_true.min()})."
        )
    if gain == "exponential":
        with np.errstate(over="ignore"):
            gains = np.expm1(y_true * np.log(2.0))  # 2**y - 1, exact near 0
        if not np.all(np.isfinite(gains)):
            raise ValueError(
                f"The exponential gain 2**y_true - 1 overflows for y_true = "
                f"{y_true.max()}; use gain='linear' or smaller grades."
            )
    else:
        gains = y_true
    discount = 1.0 / np.log2(np.arange(ranked.query_size.max()) + 2.0)
    if k is not None:
        discount[k:] = 0.0
    doc_discount = discount[ranked.position]
    # Ties: every document of a tied block gets the block's mean discount,
    # the expected discount over the orders of the block (sklearn's
    # ignore_ties=False). A one-document block keeps its own discount exactly.
    block_discount = np.bincount(ranked.block, weights=doc_discount) / ranked.block_size
    dcg = np.bincount(
        ranked.query,
        weights=gains[ranked.order] * block_discount[ranked.block],
        minlength=n_queries,
    )
    # The ideal ranking sorts by gain; both sorts put the queries in the same
    # order, so positions carry over.
    ideal_gains = gains[_order_within_queries(gains, query)]
    idcg = np.bincount(ranked.query, weights=ideal_gains * doc_discount, minlength=n_queries)
    values = np.full(n_queries, np.nan)
    np.divide(dcg, idcg, out=values, where=idcg > 0)
    # Tie averaging sums in another order than the ideal DCG: clip rounding.
    return np.minimum(values, 1.0)


def _relevance_blocks(y_true, ranked, threshold):
    """Relevant documents (in sorted order) and, per block, their count and
    the number of relevant documents ranked before the block in its query."""
    relevant = (y_true[ranked.order] > threshold).astype(np.float64)
    in_block = np.bincount(ranked.block, weights=relevant)
    before = np.cumsum(relevant) - relevant  # exclusive prefix sum
    first_of_query = ranked.query_start[ranked.query[ranked.block_start]]
    before_block = before[ranked.block_start] - before[first_of_query]
    return relevant, in_block, before_block


def _average_precision_values(y_true, ranked, n_queries, k, threshold):
    """AP@k of each query (expected over random tie breaking); NaN if no
    document is relevant."""
    relevant, r, c = _relevance_blocks(y_true, ranked, threshold)
    m = ranked.block_size
    b = ranked.block
    # A tied block of m documents, r of them relevant, placed after c relevant
    # ones: the document at offset j (0-based) is relevant with probability
    # r/m, and then the j documents before it in the block hold on average
    # j (r-1)/(m-1) relevant ones.
    others = np.zeros(m.shape)
    np.divide(r - 1, m - 1, out=others, where=m > 1)
    hits = c[b] + 1.0 + ranked.offset_in_block() * others[b]
    term = (r / m)[b] * hits / (ranked.position + 1.0)
    if k is not None:
        term[ranked.position >= k] = 0.0
    total = np.bincount(ranked.query, weights=term, minlength=n_queries)
    n_relevant = np.bincount(ranked.query, weights=relevant, minlength=n_queries)
    denominator = n_relevant if k is None else np.minimum(n_relevant, k)
    values = np.full(n_queries, np.nan)
    np.divide(total, denominator, out=values, where=n_relevant > 0)
    return np.minimum(values, 1.0)


def _log_comb(n, k):
    return gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)


def _reciprocal_rank_values(y_true, ranked, n_queries, threshold):
    """Reciprocal rank of each query's first relevant document (expected
    over random tie breaking); NaN if no document is relevant."""
    _, r, c = _relevance_blocks(y_true, ranked, threshold)
    # Only the first block holding a relevant document matters.
    first_block = (c == 0) & (r > 0)
    docs = np.flatnonzero(first_block[ranked.block])
    b = ranked.block[docs]
    m, r = ranked.block_size[b].astype(np.float64), r[b]
    above = m - ranked.offset_in_block()[docs] - 1.0  # block documents after this one
    # The first relevant document of a random order of the block sits at
    # offset j with probability C(m-j-1, r-1) / C(m, r).
    possible = above >= r - 1
    log_p = _log_comb(above, r - 1.0) - _log_comb(m, r)
    p = np.where(possible, np.exp(np.where(possible, log_p, 0.0)), 0.0)
    values = np.full(n_queries, np.nan)
    first_query = ranked.query[ranked.block_start[first_block]]
    values[first_query] = np.bincount(
        ranked.query[docs], weights=p / (ranked.position[docs] + 1.0), minlength=n_queries
    )[first_query]
    return np.minimum(values, 1.0)


def _mean_over_queries(values, weights, no_relevant, name):
    """(Weighted) mean of per-query values, NaN marking no-relevant queries."""
    defined = ~np.isnan(values)
    if no_relevant == "skip":
        keep = defined
    else:
        keep = np.ones(values.shape, dtype=bool)
        values = np.where(defined, values, 1.0 if no_relevant == "one" else 0.0)
    if weights is None:
        weights = np.ones(values.shape)
    total = weights[keep].sum()
    if total == 0:
        reason = (
            "no query has a relevant document, and no_relevant='skip' leaves them all out"
            if not keep.any()
            else "every query that counts has a zero sample_weight"
        )
        warnings.warn(f"{name} is undefined: {reason}. Returning 0.0.", UndefinedMetricWarning)
        return 0.0
    return float(np.dot(weights[keep], values[keep]) / total)


def _per_query_ndcg(y_true, y_score, qid, *, k=10, gain="exponential"):
    """NDCG@k of every query, in the order of ``np.unique(qid)``.

    Same rules as :func:`ndcg_score`; a query without a relevant document
    (ideal DCG 0) gets NaN. Returns ``(query_ids, values)``.
    """
    y_true, y_score, query, n_queries, _ = _check_documents(y_true, y_score, qid)
    ranked = _RankedQueries(y_score, query)
    values = _ndcg_values(y_true, ranked, query, n_queries, k, gain)
    return np.unique(np.asarray(qid)), values


@validate_params(
    {
        "y_true": ["array-like"],
        "y_score": ["array-like"],
        "qid": ["array-like"],
        "k": [Interval(Integral, 1, None, closed="left"), None],
        "gain": [StrOptions({"exponential", "linear"})],
        "no_relevant": [_NO_RELEVANT],
        "sample_weight": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def ndcg_score(
    y_true, y_score, qid, *, k=10, gain="exponential", no_relevant="skip", sample_weight=None
):
    """Mean normalized discounted cumulative gain at k over queries (NDCG@k).

    The documents of each query (the rows sharing a ``qid`` value, contiguous
    or not) are sorted by decreasing ``y_score``. With ``rel_(i)`` the grade
    of the document at position ``i`` (1 = top) and ``n_q`` the number of
    documents of query ``q``::

        DCG@k(q)  = sum_{i=1}^{min(k, n_q)} gain(rel_(i)) / log2(i + 1)
        NDCG@k(q) = DCG@k(q) / IDCG@k(q)

    where the ideal ``IDCG@k(q)`` is the DCG of the documents sorted by
    decreasing grade. The result is the (weighted) mean of NDCG@k(q) over
    queries.

    Parameters
    ----------
    y_true : array-like of shape (n_documents,)
        Non-negative relevance grade of each document (any reals, typically
        integers 0..4).

    y_score : array-like of shape (n_documents,)
        Predicted score of each document, higher is ranked first.

    qid : array-like of shape (n_documents,)
        Query id of each document (integers or strings). The rows of a query
        need not be contiguous.

    k : int or None, default=10
        Only the top ``k`` positions of each query count. ``None`` uses all
        documents. A query with fewer than ``k`` documents uses all of them.

    gain : {'exponential', 'linear'}, default='exponential'
        ``'exponential'``: ``gain(rel) = 2**rel - 1`` (the LightGBM and
        XGBoost default); ``'linear'``: ``gain(rel) = rel`` (the gain of
        :func:`sklearn.metrics.ndcg_score`).

    no_relevant : {'skip', 'one', 'zero'}, default='skip'
        What a query without a relevant document (all grades 0, so
        ``IDCG = 0`` and NDCG undefined) counts as: ``'skip'`` leaves it out
        of the mean, ``'one'`` counts it as 1 (LightGBM's convention),
        ``'zero'`` as 0.

    sample_weight : array-like of shape (n_queries,) or (n_documents,), default=None
        Non-negative weight of each query, not all zero: either one weight
        per query, in the order of ``np.unique(qid)``, or one weight per
        document, constant within each query (the form that metadata routing
        and cross-validation slice with the rows). When
        ``n_queries == n_documents`` the per-document reading is used.

    Returns
    -------
    score : float
        Mean NDCG@k, in [0, 1]; 1 means every query is ranked ideally. If
        every query is skipped (no query has a relevant document and
        ``no_relevant='skip'``), an
        :class:`~sklearn.exceptions.UndefinedMetricWarning` is issued and
        0.0 returned.

    Notes
    -----
    **Ties.** Documents of a query with equal scores share their positions:
    each one gets the mean discount of the positions the tied block spans
    (cut at ``k``). This is the expected DCG over uniformly random orders of
    the tied documents, and the rule of ``sklearn.metrics.ndcg_score`` with
    ``ignore_ties=False``.

    The documents are sorted once by (query, decreasing score) and once by
    (query, decreasing grade); everything else is vectorized, so 10**6
    documents take a fraction of a second.

    Examples
    --------
    >>> from sk_perturbed.metrics import ndcg_score
    >>> y_true = [3, 2, 0, 0, 1, 2]
    >>> y_score = [0.9, 0.8, 0.1, 0.3, 0.2, 0.7]
    >>> qid = [1, 1, 1, 2, 2, 2]
    >>> round(ndcg_score(y_true, y_score, qid), 4)
    0.982

    The first query is ranked ideally (NDCG 1), the second puts its grade-0
    document above its grade-1 one (NDCG 0.964). A query with no relevant
    document is left out by default:

    >>> ndcg_score([0, 0, 1, 0], [0.5, 0.2, 0.9, 0.1], [7, 7, 8, 8])
    1.0
    >>> ndcg_score([0, 0, 1, 0], [0.5, 0.2, 0.9, 0.1], [7, 7, 8, 8],
    ...            no_relevant="zero")
    0.5

    Tied scores average over the tied positions:

    >>> round(ndcg_score([1, 0], [0.5, 0.5], [0, 0]), 4)
    0.8155
    """
    y_true, y_score, query, n_queries, weights = _check_documents(
        y_true, y_score, qid, sample_weight
    )
    ranked = _RankedQueries(y_score, query)
    values = _ndcg_values(y_true, ranked, query, n_queries, k, gain)
    return _mean_over_queries(values, weights, no_relevant, "ndcg_score")


@validate_params(
    {
        "y_true": ["array-like"],
        "y_score": ["array-like"],
        "qid": ["array-like"],
        "k": [Interval(Integral, 1, None, closed="left"), None],
        "threshold": [Real],
        "no_relevant": [_NO_RELEVANT],
        "sample_weight": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def mean_average_precision_score(
    y_true, y_score, qid, *, k=None, threshold=0, no_relevant="skip", sample_weight=None
):
    """Mean average precision at k over queries (MAP@k).

    A document is relevant when ``y_true > threshold``. The documents of
    each query are sorted by decreasing ``y_score``; with ``rel_i`` in {0, 1}
    at position ``i`` (1 = top), ``P@i`` the fraction of relevant documents
    among the top ``i`` and ``R_q`` the number of relevant documents of the
    query::

        AP@k(q) = sum_{i=1}^{k} rel_i * P@i / min(R_q, k)

    (``k=None``: the sum runs over all documents and the denominator is
    ``R_q``). The result is the (weighted) mean of AP@k(q) over queries.

    Parameters
    ----------
    y_true : array-like of shape (n_documents,)
        Relevance grade of each document (any reals).

    y_score : array-like of shape (n_documents,)
        Predicted score of each document, higher is ranked first.

    qid : array-like of shape (n_documents,)
        Query id of each document. The rows of a query need not be
        contiguous.

    k : int or None, default=None
        Cut-off position; ``None`` uses all documents.

    threshold : float, default=0
        Documents with ``y_true > threshold`` are relevant.

    no_relevant : {'skip', 'one', 'zero'}, default='skip'
        What a query without a relevant document (``R_q = 0``, AP undefined)
        counts as: ``'skip'`` leaves it out of the mean, ``'one'`` counts it
        as 1, ``'zero'`` as 0. A query with relevant documents, none of them
        in the top ``k``, has AP 0 and always counts.

    sample_weight : array-like of shape (n_queries,) or (n_documents,), default=None
        Non-negative weight of each query, not all zero: one weight per query
        in the order of ``np.unique(qid)``, or one per document, constant
        within each query (the per-document reading wins when
        ``n_queries == n_documents``).

    Returns
    -------
    score : float
        Mean AP@k, in [0, 1]. If every query is skipped, an
        :class:`~sklearn.exceptions.UndefinedMetricWarning` is issued and
        0.0 returned.

    Notes
    -----
    **Ties.** Equal scores within a query are broken uniformly at random and
    the metric is the exact expected value over these random orders,
    computed in closed form (no sampling): in a tied block of ``m``
    documents holding ``r`` relevant ones, the document at each position is
    relevant with probability ``r / m``, and the relevant documents above it
    in the block number ``(r - 1) / (m - 1)`` per position on average.
    Without ties this is the usual AP.

    Examples
    --------
    >>> from sk_perturbed.metrics import mean_average_precision_score
    >>> y_true = [1, 0, 1, 0, 1]
    >>> y_score = [0.9, 0.8, 0.7, 0.2, 0.1]
    >>> qid = [0, 0, 0, 1, 1]
    >>> round(mean_average_precision_score(y_true, y_score, qid), 4)
    0.6667

    The first query has AP (1 + 2/3) / 2 = 5/6, the second 1/2. A tie between
    a relevant and an irrelevant document gives the mean of both orders:

    >>> mean_average_precision_score([1, 0], [0.5, 0.5], [0, 0])
    0.75
    """
    y_true, y_score, query, n_queries, weights = _check_documents(
        y_true, y_score, qid, sample_weight
    )
    ranked = _RankedQueries(y_score, query)
    values = _average_precision_values(y_true, ranked, n_queries, k, threshold)
    return _mean_over_queries(values, weights, no_relevant, "mean_average_precision_score")


@validate_params(
    {
        "y_true": ["array-like"],
        "y_score": ["array-like"],
        "qid": ["array-like"],
        "threshold": [Real],
        "no_relevant": [_NO_RELEVANT],
        "sample_weight": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def mean_reciprocal_rank_score(
    y_true, y_score, qid, *, threshold=0, no_relevant="skip", sample_weight=None
):
    """Mean reciprocal rank of the first relevant document over queries (MRR).

    A document is relevant when ``y_true > threshold``. The documents of
    each query are sorted by decreasing ``y_score`` and ``RR(q) = 1 / i``
    where ``i`` is the position (1 = top) of the first relevant document.
    The result is the (weighted) mean of RR(q) over queries.

    Parameters
    ----------
    y_true : array-like of shape (n_documents,)
        Relevance grade of each document (any reals).

    y_score : array-like of shape (n_documents,)
        Predicted score of each document, higher is ranked first.

    qid : array-like of shape (n_documents,)
        Query id of each document. The rows of a query need not be
        contiguous.

    threshold : float, default=0
        Documents with ``y_true > threshold`` are relevant.

    no_relevant : {'skip', 'one', 'zero'}, default='skip'
        What a query without a relevant document (RR undefined) counts as:
        ``'skip'`` leaves it out of the mean, ``'one'`` counts it as 1,
        ``'zero'`` as 0.

    sample_weight : array-like of shape (n_queries,) or (n_documents,), default=None
        Non-negative weight of each query, not all zero: one weight per query
        in the order of ``np.unique(qid)``, or one per document, constant
        within each query (the per-document reading wins when
        ``n_queries == n_documents``).

    Returns
    -------
    score : float
        Mean RR, in (0, 1]. If every query is skipped, an
        :class:`~sklearn.exceptions.UndefinedMetricWarning` is issued and
        0.0 returned.

    Notes
    -----
    **Ties.** As in :func:`mean_average_precision_score`, equal scores are
    broken uniformly at random and the metric is the exact expected value:
    if the first tied block holding a relevant document has ``m`` documents,
    ``r`` of them relevant, and ``a`` documents above it, RR is
    ``sum_j C(m - j, r - 1) / C(m, r) / (a + j)`` over the block positions
    ``j = 1..m`` (the probability that the first relevant document of the
    block lands at its ``j``-th position, over ``a + j``).

    Examples
    --------
    >>> from sk_perturbed.metrics import mean_reciprocal_rank_score
    >>> y_true = [0, 1, 0, 0, 2]
    >>> y_score = [0.9, 0.8, 0.7, 0.2, 0.1]
    >>> qid = [0, 0, 0, 1, 1]
    >>> mean_reciprocal_rank_score(y_true, y_score, qid)
    0.5

    Both queries find their first relevant document at position 2. With a
    threshold of 1 only the grade-2 document is relevant, so the first
    query is skipped:

    >>> mean_reciprocal_rank_score(y_true, y_score, qid, threshold=1)
    0.5
    """
    y_true, y_score, query, n_queries, weights = _check_documents(
        y_true, y_score, qid, sample_weight
    )
    ranked = _RankedQueries(y_score, query)
    values = _reciprocal_rank_values(y_true, ranked, n_queries, threshold)
    return _mean_over_queries(values, weights, no_relevant, "mean_reciprocal_rank_score")


@validate_params(
    {
        "k": [Interval(Integral, 1, None, closed="left"), None],
        "gain": [StrOptions({"exponential", "linear"})],
        "no_relevant": [_NO_RELEVANT],
    },
    prefer_skip_nested_validation=True,
)
def make_ndcg_scorer(k=10, *, gain="exponential", no_relevant="skip"):
    """Scorer computing :func:`ndcg_score` of ``estimator.predict(X)``, qid routed.

    Built with :func:`sklearn.metrics.make_scorer` and
    ``set_score_request(qid=True)``: with metadata routing enabled
    (``sklearn.set_config(enable_metadata_routing=True)``), tools such as
    :func:`~sklearn.model_selection.cross_validate` or
    :class:`~sklearn.model_selection.GridSearchCV` given ``params={"qid":
    qid}`` hand the scorer the query ids of the rows it scores. Without
    routing a scorer cannot receive ``qid``; call :func:`ndcg_score`
    directly instead.

    Parameters
    ----------
    k : int or None, default=10
        Cut-off of NDCG@k; ``None`` uses all documents.

    gain : {'exponential', 'linear'}, default='exponential'
        Gain function, see :func:`ndcg_score`.

    no_relevant : {'skip', 'one', 'zero'}, default='skip'
        Rule for queries without a relevant document, see :func:`ndcg_score`.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, qid=qid)`` returns
        ``ndcg_score(y, estimator.predict(X), qid, k=k, ...)``; greater is
        better. To route per-document sample weights too, call
        ``scorer.set_score_request(sample_weight=True)`` (under routing).

    Examples
    --------
    >>> from sklearn import config_context
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.model_selection import GroupKFold, cross_validate
    >>> from sk_perturbed.datasets import make_ranking_groups
    >>> from sk_perturbed.metrics import make_ndcg_scorer
    >>> X, y, qid = make_ranking_groups(n_queries=30, random_state=0)
    >>> with config_context(enable_metadata_routing=True):
    ...     result = cross_validate(
    ...         Ridge(), X, y, cv=GroupKFold(n_splits=3),
    ...         scoring=make_ndcg_scorer(k=5),
    ...         params={"qid": qid, "groups": qid})
    >>> result["test_score"].shape
    (3,)
    """
    scorer = make_scorer(ndcg_score, k=k, gain=gain, no_relevant=no_relevant)
    # set_score_request only exists under routing; the request it records
    # stays with the scorer whatever the global setting later is.
    with config_context(enable_metadata_routing=True):
        scorer.set_score_request(qid=True)
    return scorer
