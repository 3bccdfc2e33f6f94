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
"""

import numpy as np
from scipy.stats import rankdata
from sklearn import get_config
from sklearn.metrics import make_scorer
from sklearn.utils import check_array, gen_batches
from sklearn.utils._param_validation import StrOptions, validate_params

__all__ = [
    "hamming_score",
    "hamming_scorer",
    "kendall_tau_score",
    "kendall_tau_scorer",
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
    },
    prefer_skip_nested_validation=True,
)
def normalized_regret(costs, Y_pred, *, Y_true=None, solver=None, sense=None):
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
    costs, Y_pred, _ = _check_targets(costs, Y_pred, names=("costs", "Y_pred"))
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
    scale = np.sum(np.abs(optimal))
    if scale == 0:
        raise ValueError(
            "normalized_regret is undefined: every optimal cost <c_i, y*_i> is zero."
        )
    predicted = np.einsum("ij,ij->i", costs, Y_pred)
    excess = predicted - optimal if sense == "min" else optimal - predicted
    return float(np.sum(excess) / scale)


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
