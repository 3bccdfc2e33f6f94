import numpy as np
import pytest
from scipy.stats import kendalltau, rankdata, spearmanr
from sklearn import config_context
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression
from sklearn.metrics import hamming_loss
from sklearn.model_selection import GridSearchCV, cross_val_score

from sk_perturbed.metrics import (
    hamming_score,
    hamming_scorer,
    kendall_tau_score,
    kendall_tau_scorer,
    normalized_regret,
    normalized_regret_scorer,
    perfect_rank_score,
    perfect_rank_scorer,
    spearman_score,
    spearman_scorer,
)

RANK_METRICS = [spearman_score, kendall_tau_score, perfect_rank_score]
ALL_METRICS = RANK_METRICS + [hamming_score]


def _tied_scores(rng, n, d):
    # Few distinct values, so that most rows contain ties.
    return rng.integers(0, max(2, d // 2), size=(n, d)).astype(np.float64)


def _argmin(C):
    return np.eye(C.shape[1])[np.argmin(C, axis=1)]


# scipy warns (and returns NaN) on constant rows; we count them as 0.
_SCIPY_CONSTANT = "ignore::scipy.stats.ConstantInputWarning"


@pytest.mark.filterwarnings(_SCIPY_CONSTANT)
@pytest.mark.parametrize("d", [2, 5, 30])
def test_spearman_matches_scipy_per_row(d):
    rng = np.random.default_rng(d)
    Y_true = _tied_scores(rng, 40, d)
    Y_pred = rng.standard_normal((40, d))
    Y_pred[::3] = _tied_scores(rng, len(Y_pred[::3]), d)
    expected = [spearmanr(t, p).statistic for t, p in zip(Y_true, Y_pred)]
    expected = np.nan_to_num(expected, nan=0.0)  # the documented constant-row rule
    assert spearman_score(Y_true, Y_pred) == pytest.approx(np.mean(expected))


@pytest.mark.filterwarnings(_SCIPY_CONSTANT)
@pytest.mark.parametrize("d", [2, 5, 100])
def test_kendall_matches_scipy_tau_b_per_row(d):
    rng = np.random.default_rng(d)
    Y_true = _tied_scores(rng, 30, d)
    Y_pred = rng.standard_normal((30, d))
    Y_pred[::2] = _tied_scores(rng, len(Y_pred[::2]), d)
    expected = [kendalltau(t, p).statistic for t, p in zip(Y_true, Y_pred)]
    expected = np.nan_to_num(expected, nan=0.0)
    assert kendall_tau_score(Y_true, Y_pred) == pytest.approx(np.mean(expected))


def test_kendall_independent_of_chunk_size():
    rng = np.random.default_rng(0)
    Y_true, Y_pred = _tied_scores(rng, 50, 12), rng.standard_normal((50, 12))
    expected = kendall_tau_score(Y_true, Y_pred)
    # A tiny working memory forces one row per chunk.
    with config_context(working_memory=1e-6):
        assert kendall_tau_score(Y_true, Y_pred) == pytest.approx(expected)


def test_kendall_integer_inputs_do_not_overflow():
    big = np.iinfo(np.int64).max
    Y_true = np.array([[-big, 0, big]])
    assert kendall_tau_score(Y_true, Y_true) == 1.0
    assert kendall_tau_score(Y_true, Y_true[:, ::-1]) == -1.0


@pytest.mark.parametrize("metric", [spearman_score, kendall_tau_score])
def test_constant_row_counts_as_zero_correlation(metric):
    Y_true = [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]
    Y_pred = [[1.0, 2.0, 3.0], [7.0, 7.0, 7.0], [1.0, 2.0, 3.0]]
    assert metric(Y_true, Y_pred) == pytest.approx(1 / 3)
    assert metric([[2.0, 2.0]], [[2.0, 2.0]]) == 0.0


@pytest.mark.parametrize("metric", [spearman_score, kendall_tau_score])
def test_correlation_extremes(metric):
    Y = np.random.default_rng(0).standard_normal((10, 6))
    assert metric(Y, Y) == 1.0
    assert metric(Y, -Y) == -1.0


def test_perfect_rank_hand_examples():
    Y_true = [[1, 2, 3], [3, 1, 2], [1, 1, 2], [1, 1, 2]]
    Y_pred = [
        [0.1, 0.2, 0.3],  # same order
        [0.9, 0.2, 0.1],  # last two swapped
        [4.0, 4.0, 5.0],  # same ties
        [4.0, 4.5, 5.0],  # tie broken
    ]
    assert perfect_rank_score(Y_true, Y_pred) == 0.5
    assert perfect_rank_score(Y_true[:1], Y_pred[:1]) == 1.0
    assert perfect_rank_score(Y_true[1:2], Y_pred[1:2]) == 0.0


@pytest.mark.parametrize("metric", RANK_METRICS)
@pytest.mark.parametrize(
    "transform", [np.exp, np.arctan, lambda s: 3.0 * s - 7.0, lambda s: s**3]
)
def test_rank_metrics_invariant_to_increasing_transforms(metric, transform):
    rng = np.random.default_rng(1)
    Y_true = _tied_scores(rng, 25, 6)
    Y_pred = Y_true + 0.5 * rng.standard_normal((25, 6))
    Y_pred[:5] = _tied_scores(rng, 5, 6)
    expected = metric(Y_true, Y_pred)
    assert metric(transform(Y_true), transform(Y_pred)) == pytest.approx(expected)
    assert metric(rankdata(Y_true, axis=1), Y_pred) == pytest.approx(expected)


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_sample_weight_equals_repetition(metric):
    rng = np.random.default_rng(2)
    Y_true = rng.integers(0, 2, size=(12, 5))
    Y_pred = rng.integers(0, 2, size=(12, 5))
    weights = rng.integers(0, 4, size=12)
    weights[0] = 1
    repeated = metric(
        np.repeat(Y_true, weights, axis=0), np.repeat(Y_pred, weights, axis=0)
    )
    assert metric(Y_true, Y_pred, sample_weight=weights) == pytest.approx(repeated)
    uniform = metric(Y_true, Y_pred, sample_weight=np.full(12, 0.3))
    assert uniform == pytest.approx(metric(Y_true, Y_pred))


def test_hamming_score():
    Y_true = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0]])
    Y_pred = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [0, 0, 1, 1]])
    assert hamming_score(Y_true, Y_pred) == pytest.approx((0.75 + 1.0 + 0.0) / 3)
    assert hamming_score(Y_true, Y_pred) == pytest.approx(
        1 - hamming_loss(Y_true, Y_pred)
    )
    assert hamming_score(Y_true, Y_true) == 1.0
    # A single column is a valid structure.
    assert hamming_score([[1], [0]], [[1], [1]]) == 0.5


def test_normalized_regret_zero_for_optimal_predictions():
    costs = np.random.default_rng(3).uniform(0.1, 2.0, size=(20, 6))
    Y_opt = _argmin(costs)
    assert normalized_regret(costs, Y_opt, Y_true=Y_opt) == 0.0
    assert normalized_regret(costs, Y_opt, solver=_argmin) == 0.0


def test_normalized_regret_hand_computation():
    costs = np.array([[1.0, 3.0, 2.0], [4.0, -1.0, 2.0]])
    Y_true = np.array([[1, 0, 0], [0, 1, 0]])
    Y_pred = np.array([[0, 0, 1], [1, 0, 0]])
    # Optimal costs 1 and -1; predicted 2 and 4: (1 + 5) / (1 + 1).
    assert normalized_regret(costs, Y_pred, Y_true=Y_true) == pytest.approx(3.0)
    assert normalized_regret(costs, Y_pred, solver=_argmin) == pytest.approx(3.0)


def test_normalized_regret_argument_errors():
    costs = np.array([[1.0, 2.0]])
    with pytest.raises(ValueError, match="exactly one of Y_true .* or solver"):
        normalized_regret(costs, [[1, 0]])
    with pytest.raises(ValueError, match="exactly one of Y_true .* or solver"):
        normalized_regret(costs, [[1, 0]], Y_true=[[1, 0]], solver=_argmin)
    with pytest.raises(ValueError, match="'solver' parameter .* must be a callable"):
        normalized_regret(costs, [[1, 0]], solver="argmin")
    with pytest.raises(ValueError, match=r"solver\(costs\) must have the same shape"):
        normalized_regret(costs, [[1, 0]], solver=lambda C: C[:, :1])
    with pytest.raises(ValueError, match=r"Input solver\(costs\) contains NaN"):
        normalized_regret(costs, [[1, 0]], solver=lambda C: C * np.nan)
    with pytest.raises(ValueError, match="Y_true must have the same shape"):
        normalized_regret(costs, [[1, 0]], Y_true=[[1, 0, 0]])
    with pytest.raises(ValueError, match="costs and Y_pred must have the same shape"):
        normalized_regret(costs, [[1, 0, 0]], Y_true=[[1, 0]])
    with pytest.raises(ValueError, match="Input costs contains infinity"):
        normalized_regret([[np.inf, 1.0]], [[1, 0]], Y_true=[[1, 0]])
    with pytest.raises(ValueError, match="every optimal cost .* is zero"):
        normalized_regret([[0.0, 1.0]], [[0, 1]], Y_true=[[1, 0]])


@pytest.mark.parametrize("metric", ALL_METRICS)
@pytest.mark.parametrize(
    "Y_true, Y_pred, kwargs, match",
    [
        ([1, 2, 3], [1, 2, 3], {}, "Y_true must be a 2-D array .* 1 dimension"),
        ([[1, 2]], [[[1, 2]]], {}, "Y_pred must be a 2-D array .* 3 dimension"),
        (np.empty((0, 3)), np.empty((0, 3)), {}, "Y_true must have at least one row"),
        ([[1, 2]], [[1, 2, 3]], {}, "Y_true and Y_pred must have the same shape"),
        ([[1, np.nan]], [[1, 2]], {}, "Input Y_true contains NaN"),
        ([[1, 2]], [[1, np.inf]], {}, "Input Y_pred contains infinity"),
        ("ab", [[1, 2]], {}, "'Y_true' parameter .* must be an array-like"),
        ([[1, 2]], [[1, 2]], {"sample_weight": [1, 1]}, "length n_samples=1"),
        ([[1, 2]] * 2, [[1, 2]] * 2, {"sample_weight": [1, -1]}, "non-negative"),
        ([[1, 2]] * 2, [[1, 2]] * 2, {"sample_weight": [0, 0]}, "not be all zero"),
        ([[1, 2]] * 2, [[2, 1]] * 2, {"sample_weight": [np.nan, 1]}, "sample_weight"),
        ([[1, 2]], [[1, 2]], {"sample_weight": [[1]]}, "sample_weight must be a 1-D"),
    ],
)
def test_bad_inputs_raise(metric, Y_true, Y_pred, kwargs, match):
    with pytest.raises(ValueError, match=match):
        metric(Y_true, Y_pred, **kwargs)


@pytest.mark.parametrize("metric", RANK_METRICS)
def test_rankings_need_two_labels(metric):
    with pytest.raises(ValueError, match=r"Y_true must have at least 2 column"):
        metric([[1.0], [2.0]], [[1.0], [2.0]])


@pytest.mark.parametrize(
    "scorer, metric",
    [
        (spearman_scorer, spearman_score),
        (kendall_tau_scorer, kendall_tau_score),
        (perfect_rank_scorer, perfect_rank_score),
    ],
)
def test_rank_scorers_use_predict(scorer, metric):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 3))
    Y = rankdata(X @ rng.standard_normal((3, 4)) + rng.standard_normal((60, 4)), axis=1)
    est = LinearRegression().fit(X, Y)
    assert scorer(est, X, Y) == pytest.approx(metric(Y, est.predict(X)))
    assert np.all(cross_val_score(LinearRegression(), X, Y, scoring=scorer, cv=3) > 0)


def test_hamming_scorer_uses_predict():
    class Constant(BaseEstimator):
        def fit(self, X, Y):
            return self

        def predict(self, X):
            return np.tile([1, 0, 0], (len(X), 1))

    X, Y = np.zeros((2, 1)), np.array([[1, 0, 0], [0, 0, 1]])
    assert hamming_scorer(Constant(), X, Y) == pytest.approx((1 + 1 / 3) / 2)


class _CostRegressor(BaseEstimator):
    """Predict-then-optimise: regress the costs, return their argmin."""

    def __init__(self, fit_intercept=True):
        self.fit_intercept = fit_intercept

    def fit(self, X, C):
        self.regressor_ = LinearRegression(fit_intercept=self.fit_intercept).fit(X, C)
        self.solver_ = _argmin
        return self

    def predict(self, X):
        return self.solver_(self.regressor_.predict(X))


def test_normalized_regret_scorer():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((80, 3))
    offsets = np.array([3.0, 5.0, 4.0, 6.0])
    C = offsets + X @ rng.standard_normal((3, 4)) + 0.3 * rng.standard_normal((80, 4))
    est = _CostRegressor().fit(X, C)
    regret = normalized_regret(C, est.predict(X), solver=_argmin)
    assert regret >= 0
    assert normalized_regret_scorer(est, X, C) == pytest.approx(-regret)
    search = GridSearchCV(
        _CostRegressor(),
        {"fit_intercept": [False, True]},
        scoring=normalized_regret_scorer,
        cv=2,
    ).fit(X, C)
    # The costs have label-specific offsets that only the intercept captures.
    assert search.best_params_ == {"fit_intercept": True}
    assert search.best_score_ <= 0


def test_normalized_regret_scorer_needs_solver():
    est = LinearRegression().fit(np.eye(2), np.eye(2))
    with pytest.raises(ValueError, match=r"fitted solver in LinearRegression\.solver_"):
        normalized_regret_scorer(est, np.eye(2), np.eye(2))


def test_normalized_regret_of_a_maximising_solver_is_the_value_lost():
    from sk_perturbed.solvers import TopK

    values = np.array([[3.0, 1.0, 2.0], [0.5, 4.0, 1.0]])
    best = TopK(k=1)(values)
    # A maximising solver's sense is taken: its own argmax has regret 0.
    assert normalized_regret(values, best, solver=TopK(k=1)) == 0.0
    worst = np.array([[0, 1, 0], [1, 0, 0]])
    # (3 - 1) + (4 - 0.5) lost, over 3 + 4.
    assert normalized_regret(values, worst, solver=TopK(k=1)) == pytest.approx(5.5 / 7)
    assert normalized_regret(values, worst, Y_true=best, sense="max") == pytest.approx(5.5 / 7)
    # The same Y_true read as costs: the predictions are cheaper than "optimal".
    assert normalized_regret(values, worst, Y_true=best) == pytest.approx(-5.5 / 7)
    with pytest.raises(ValueError, match="'sense' parameter of normalized_regret must be a str among"):
        normalized_regret(values, worst, Y_true=best, sense="maximise")
