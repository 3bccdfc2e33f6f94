"""Learning-to-rank metrics: NDCG@k, MAP@k, MRR over query groups."""

import warnings

import numpy as np
import pytest
import sklearn.metrics
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import (
    average_precision_naive,
    ndcg_per_query_naive,
    query_mean_naive,
    reciprocal_rank_naive,
)
from sklearn import config_context
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold, cross_validate

from sk_perturbed.metrics import (
    _per_query_ndcg,
    make_ndcg_scorer,
    mean_average_precision_score,
    mean_reciprocal_rank_score,
    ndcg_score,
)

METRICS = [ndcg_score, mean_average_precision_score, mean_reciprocal_rank_score]
NO_RELEVANT = ["skip", "one", "zero"]


def _random_queries(rng, n_queries=25, max_size=6, n_levels=3, n_score_values=4):
    """Small queries with many ties, some without a relevant document, ids
    shuffled and rows interleaved (queries are not contiguous)."""
    sizes = rng.integers(1, max_size + 1, size=n_queries)
    ids = rng.choice(10 * n_queries, size=n_queries, replace=False)
    qid = np.repeat(ids, sizes)
    y_true = rng.integers(0, n_levels, size=qid.size).astype(float)
    y_true[np.isin(qid, ids[:3])] = 0.0  # a few queries with nothing relevant
    y_score = rng.integers(0, n_score_values, size=qid.size).astype(float)
    rows = rng.permutation(qid.size)
    return y_true[rows], y_score[rows], qid[rows]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 3, None, 10])
@pytest.mark.parametrize("gain", ["exponential", "linear"])
def test_ndcg_matches_naive(seed, k, gain):
    rng = np.random.default_rng(seed)
    y_true, y_score, qid = _random_queries(rng)
    for no_relevant in NO_RELEVANT:
        expected = query_mean_naive(
            lambda t, s: ndcg_per_query_naive(t, s, k=k, gain=gain),
            y_true, y_score, qid, no_relevant=no_relevant,
        )
        got = ndcg_score(y_true, y_score, qid, k=k, gain=gain, no_relevant=no_relevant)
        assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 2, 4, None])
def test_average_precision_matches_naive(seed, k):
    rng = np.random.default_rng(10 + seed)
    y_true, y_score, qid = _random_queries(rng)
    for threshold in [0, 1]:
        for no_relevant in NO_RELEVANT:
            expected = query_mean_naive(
                lambda t, s, c=threshold: average_precision_naive(t, s, k=k, threshold=c),
                y_true, y_score, qid, no_relevant=no_relevant,
            )
            got = mean_average_precision_score(
                y_true, y_score, qid, k=k, threshold=threshold, no_relevant=no_relevant
            )
            assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_reciprocal_rank_matches_naive(seed):
    rng = np.random.default_rng(20 + seed)
    # Up to 7 tied documents: the closed form of the tied block is exercised
    # with several relevant documents in it.
    y_true, y_score, qid = _random_queries(rng, max_size=7, n_score_values=2)
    for threshold in [0, 1.5]:
        for no_relevant in NO_RELEVANT:
            expected = query_mean_naive(
                lambda t, s, c=threshold: reciprocal_rank_naive(t, s, threshold=c),
                y_true, y_score, qid, no_relevant=no_relevant,
            )
            got = mean_reciprocal_rank_score(
                y_true, y_score, qid, threshold=threshold, no_relevant=no_relevant
            )
            assert got == pytest.approx(expected, rel=1e-12)


def test_weighted_means_match_naive():
    rng = np.random.default_rng(3)
    y_true, y_score, qid = _random_queries(rng)
    ids = np.unique(qid)
    per_query = rng.uniform(0.1, 3.0, size=ids.size)
    weights = dict(zip(ids, per_query))
    per_document = np.array([weights[q] for q in qid])
    cases = [
        (ndcg_score, lambda t, s: ndcg_per_query_naive(t, s, k=3)),
        (mean_average_precision_score, average_precision_naive),
        (mean_reciprocal_rank_score, reciprocal_rank_naive),
    ]
    for metric, naive in cases:
        kwargs = {"k": 3} if metric is ndcg_score else {}
        for no_relevant in NO_RELEVANT:
            expected = query_mean_naive(
                naive, y_true, y_score, qid, no_relevant=no_relevant, weights=weights
            )
            for sample_weight in (per_query, per_document):
                got = metric(
                    y_true, y_score, qid, no_relevant=no_relevant,
                    sample_weight=sample_weight, **kwargs,
                )
                assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("gain", ["exponential", "linear"])
@pytest.mark.parametrize("k", [1, 5, None])
def test_ndcg_matches_sklearn_per_query_with_ties(gain, k):
    rng = np.random.default_rng(7)
    n_queries, size = 30, 20
    qid = np.repeat(np.arange(n_queries), size)
    y_true = rng.integers(0, 5, size=qid.size).astype(float)
    y_score = rng.integers(0, 6, size=qid.size).astype(float)  # large tied blocks
    ids, values = _per_query_ndcg(y_true, y_score, qid, k=k, gain=gain)
    np.testing.assert_array_equal(ids, np.arange(n_queries))
    gains = 2.0**y_true - 1 if gain == "exponential" else y_true
    expected = [
        sklearn.metrics.ndcg_score(
            gains[qid == q][None], y_score[qid == q][None], k=k, ignore_ties=False
        )
        for q in range(n_queries)
    ]
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    assert ndcg_score(y_true, y_score, qid, k=k, gain=gain) == pytest.approx(np.mean(expected))


def test_ndcg_matches_lightgbm_without_ties():
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 30, size=40)
    qid = np.repeat(np.arange(sizes.size), sizes)
    X = rng.standard_normal((qid.size, 5))
    y = np.clip(np.round(X[:, 0] + X[:, 1] * X[:, 2] + 1 + rng.standard_normal(qid.size)), 0, 4)
    y[qid < 3] = 0  # LightGBM counts queries without relevant documents as 1
    # Tree outputs tie; a continuous initial score on the evaluation set
    # (added to the trees' output by LightGBM) makes the final scores
    # distinct. The evaluation set is a copy: given the training arrays
    # themselves, LightGBM would reuse the training scores and ignore it.
    init = rng.standard_normal(qid.size)
    X_eval = X.copy()
    model = lgb.LGBMRanker(n_estimators=10, num_leaves=7, n_jobs=1, verbose=-1)
    with warnings.catch_warnings():
        # LightGBM 4.7 deprecates eval_set for eval_X/eval_y, which older
        # versions lack.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*eval_set.*")
        model.fit(
            X, y, group=sizes, eval_set=[(X_eval, y)], eval_group=[sizes],
            eval_init_score=[init], eval_at=[1, 3, 10],
        )
    scores = model.predict(X_eval, raw_score=True) + init
    for q in range(sizes.size):
        assert np.unique(scores[qid == q]).size == sizes[q], "tie in the scores"
    for k in (1, 3, 10):
        expected = model.evals_result_["valid_0"][f"ndcg@{k}"][-1]
        got = ndcg_score(y, scores, qid, k=k, no_relevant="one")
        assert got == pytest.approx(expected, abs=1e-6)
        assert got != pytest.approx(ndcg_score(y, scores, qid, k=k), abs=1e-3)


def test_contiguous_and_interleaved_queries_agree():
    rng = np.random.default_rng(5)
    qid = np.repeat(np.arange(50), rng.integers(1, 15, size=50))
    y_true = rng.integers(0, 4, size=qid.size).astype(float)
    y_score = rng.standard_normal(qid.size)
    rows = rng.permutation(qid.size)
    for metric in METRICS:
        a = metric(y_true, y_score, qid)
        b = metric(y_true[rows], y_score[rows], qid[rows])
        assert a == pytest.approx(b, rel=1e-13)


def test_query_ids_may_be_strings():
    y_true = [1, 0, 2, 0, 1]
    y_score = [0.3, 0.9, 0.5, 0.2, 0.1]
    for metric in METRICS:
        assert metric(y_true, y_score, ["b", "a", "b", "a", "a"]) == metric(
            y_true, y_score, [1, 0, 1, 0, 0]
        )


def test_known_values():
    # Query 0: grades (2, 1, 0) ranked (0, 2, 1); query 1: one document.
    y_true = [2, 1, 0, 1]
    y_score = [3.0, 1.0, 2.0, 0.0]
    qid = [0, 0, 0, 1]
    dcg = 3 + 1 / np.log2(4)
    idcg = 3 + 1 / np.log2(3)
    assert ndcg_score(y_true, y_score, qid) == pytest.approx((dcg / idcg + 1) / 2)
    assert ndcg_score(y_true, y_score, qid, k=1) == 1.0
    lin = (2 + 1 / np.log2(4)) / (2 + 1 / np.log2(3))
    assert ndcg_score(y_true, y_score, qid, gain="linear") == pytest.approx((lin + 1) / 2)
    ap = (1 + 2 / 3) / 2
    assert mean_average_precision_score(y_true, y_score, qid) == pytest.approx((ap + 1) / 2)
    # AP@2 of query 0: one hit in the top 2, min(2 relevant, k=2) = 2.
    assert mean_average_precision_score(y_true, y_score, qid, k=2) == pytest.approx(0.75)
    assert mean_average_precision_score(y_true, y_score, qid, threshold=1) == 1.0
    assert mean_reciprocal_rank_score(y_true, y_score, qid) == 1.0
    assert mean_reciprocal_rank_score([0, 0, 1], [3, 2, 1], [0, 0, 0]) == pytest.approx(1 / 3)


def test_ties_take_the_expected_value():
    # One relevant document tied with two irrelevant ones at the top.
    y_true, y_score, qid = [1, 0, 0], [1.0, 1.0, 1.0], [0, 0, 0]
    mean_rr = (1 + 1 / 2 + 1 / 3) / 3
    assert mean_reciprocal_rank_score(y_true, y_score, qid) == pytest.approx(mean_rr)
    assert mean_average_precision_score(y_true, y_score, qid) == pytest.approx(mean_rr)
    mean_discount = (1 + 1 / np.log2(3) + 1 / np.log2(4)) / 3
    assert ndcg_score(y_true, y_score, qid) == pytest.approx(mean_discount)
    # Tied documents with equal grades change nothing.
    assert ndcg_score([2, 2, 0], [1.0, 1.0, 0.0], qid) == pytest.approx(1.0)
    assert mean_average_precision_score([2, 2, 0], [1.0, 1.0, 0.0], qid) == 1.0
    assert mean_reciprocal_rank_score([2, 2, 0], [1.0, 1.0, 0.0], qid) == 1.0


def test_k_larger_than_the_queries_is_k_none():
    rng = np.random.default_rng(1)
    qid = np.repeat(np.arange(20), rng.integers(1, 8, size=20))
    y_true = rng.integers(0, 3, size=qid.size).astype(float)
    y_score = rng.integers(0, 3, size=qid.size).astype(float)
    assert ndcg_score(y_true, y_score, qid, k=8) == ndcg_score(y_true, y_score, qid, k=None)
    assert mean_average_precision_score(
        y_true, y_score, qid, k=100
    ) == mean_average_precision_score(y_true, y_score, qid, k=None)


def test_groups_of_one_document():
    y_true = [0.0, 3.0, 1.0, 0.0]
    qid = [0, 1, 2, 3]
    scores = [0.5, -1.0, 2.0, 0.0]
    for metric in METRICS:
        assert metric(y_true, scores, qid) == 1.0
        assert metric(y_true, scores, qid, no_relevant="one") == 1.0
        assert metric(y_true, scores, qid, no_relevant="zero") == 0.5


def test_no_relevant_rules():
    # Query 0: nothing relevant; query 1 ranked worst possible.
    y_true = [0, 0, 0, 1]
    y_score = [1.0, 2.0, 2.0, 1.0]
    qid = [0, 0, 1, 1]
    for metric in METRICS:
        per_query = metric(y_true, y_score, qid)  # query 1 alone
        assert 0 < per_query < 1
        assert metric(y_true, y_score, qid, no_relevant="one") == pytest.approx(
            (per_query + 1) / 2
        )
        assert metric(y_true, y_score, qid, no_relevant="zero") == pytest.approx(
            per_query / 2
        )


def test_relevant_documents_all_beyond_k_count_as_zero():
    y_true, y_score, qid = [0, 0, 1], [3.0, 2.0, 1.0], [0, 0, 0]
    assert ndcg_score(y_true, y_score, qid, k=2) == 0.0
    assert mean_average_precision_score(y_true, y_score, qid, k=2) == 0.0


@pytest.mark.parametrize("metric", METRICS)
def test_every_query_skipped_warns_and_returns_zero(metric):
    with pytest.warns(UndefinedMetricWarning, match="no query has a relevant document"):
        assert metric([0, 0, 0], [0.1, 0.2, 0.3], [1, 1, 2]) == 0.0
    # The only query that counts has weight 0.
    with pytest.warns(UndefinedMetricWarning, match="zero sample_weight"):
        assert metric([0, 1, 0], [0.1, 0.2, 0.3], [1, 1, 2], sample_weight=[0, 1]) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metric([0, 0, 0], [0.1, 0.2, 0.3], [1, 1, 2], no_relevant="one") == 1.0


def test_sample_weight_per_query_is_in_unique_order():
    y_true = [1, 0, 0, 1]
    y_score = [1.0, 0.0, 1.0, 0.0]  # query 7 perfect, query 3 RR 1/2
    qid = [7, 7, 3, 3]
    assert mean_reciprocal_rank_score(y_true, y_score, qid, sample_weight=[1, 0]) == 0.5
    assert mean_reciprocal_rank_score(y_true, y_score, qid, sample_weight=[0, 1]) == 1.0
    assert mean_reciprocal_rank_score(
        y_true, y_score, qid, sample_weight=[3, 3, 1, 1]
    ) == pytest.approx((3 * 1 + 0.5) / 4)


def test_sample_weight_per_document_wins_when_lengths_coincide():
    # One document per query: the weights follow the rows, not np.unique(qid).
    y_true, y_score, qid = [1, 0], [0.0, 0.0], [9, 2]
    got = mean_reciprocal_rank_score(y_true, y_score, qid, no_relevant="zero", sample_weight=[1, 0])
    assert got == 1.0


@pytest.mark.parametrize(
    "sample_weight, match",
    [
        ([1, 2, 1, 1], "constant within each query"),
        ([1, 1, 1], "length n_queries=2"),
        ([[1, 1]], "got shape"),
        ([-1, 1], "non-negative"),
        ([0, 0], "all zero"),
        ([np.nan, 1], "NaN"),
    ],
)
def test_sample_weight_errors(sample_weight, match):
    for metric in METRICS:
        with pytest.raises(ValueError, match=match):
            metric([1, 0, 1, 0], [1, 2, 3, 4], [0, 0, 1, 1], sample_weight=sample_weight)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(
    "args, match",
    [
        (([1, 0], [1.0, 2.0, 3.0], [0, 0]), "same length"),
        (([1, 0], [1.0, 2.0], [0, 0, 0]), "same length"),
        (([1, np.nan], [1.0, 2.0], [0, 0]), "y_true contains NaN"),
        (([1, 0], [1.0, np.inf], [0, 0]), "y_score contains infinity"),
        (([1, 0], [1.0, np.nan], [0, 0]), "y_score contains NaN"),
        (([[1, 0]], [[1.0, 2.0]], [[0, 0]]), "y_true must be a 1-D array"),
        (([1, 0], [[1.0], [2.0]], [0, 0]), "y_score must be a 1-D array"),
        (([1, 0], [1.0, 2.0], [[0, 0]]), "qid must be a 1-D array"),
        (([1, 0], [1.0, 2.0], [0.0, np.nan]), "qid must not contain NaN"),
        (([], [], []), "at least one document"),
        (([1, 0], [1.0, 2.0], 3), "'qid' parameter"),
    ],
)
def test_input_errors(metric, args, match):
    with pytest.raises(ValueError, match=match):
        metric(*args)


@pytest.mark.parametrize(
    "metric, kwargs, match",
    [
        (ndcg_score, {"k": 0}, "'k' parameter"),
        (ndcg_score, {"k": 2.5}, "'k' parameter"),
        (ndcg_score, {"gain": "log"}, "'gain' parameter"),
        (ndcg_score, {"no_relevant": "nan"}, "'no_relevant' parameter"),
        (mean_average_precision_score, {"k": 0}, "'k' parameter"),
        (mean_average_precision_score, {"threshold": "high"}, "'threshold' parameter"),
        (mean_reciprocal_rank_score, {"no_relevant": "skipped"}, "'no_relevant' parameter"),
    ],
)
def test_option_errors(metric, kwargs, match):
    with pytest.raises(ValueError, match=match):
        metric([1, 0], [1.0, 2.0], [0, 0], **kwargs)


def test_ndcg_grade_errors():
    with pytest.raises(ValueError, match="non-negative relevance grades"):
        ndcg_score([1, -1], [1.0, 2.0], [0, 0])
    with pytest.raises(ValueError, match="overflows"):
        ndcg_score([1, 2000], [1.0, 2.0], [0, 0])
    assert ndcg_score([1, 2000], [1.0, 2.0], [0, 0], gain="linear") == 1.0
    assert ndcg_score([1, 2000], [2.0, 1.0], [0, 0], gain="linear") < 1.0
    # MAP and MRR take any real grades.
    assert mean_reciprocal_rank_score([-2, -1], [1.0, 2.0], [0, 0], threshold=-1.5) == 1.0


def test_million_documents_run():
    # Smoke test at the documented scale (the timing is in the report, not
    # asserted: the test machines are shared).
    rng = np.random.default_rng(0)
    n = 10**6
    qid = np.repeat(np.arange(n // 25), 25)
    y_true = rng.integers(0, 5, size=n).astype(float)
    y_score = rng.standard_normal(n)
    value = ndcg_score(y_true, y_score, qid)
    # Random scores on 25 documents: far from 0 and 1.
    assert 0.2 < value < 0.6


# Properties ------------------------------------------------------------------


@st.composite
def _documents(draw, max_docs=40):
    n = draw(st.integers(1, max_docs))
    grades = st.lists(st.integers(0, 4), min_size=n, max_size=n)
    y_true = np.array(draw(grades), dtype=float)
    scores = st.lists(st.integers(-3, 3), min_size=n, max_size=n)  # ties likely
    y_score = np.array(draw(scores), dtype=float) / 2
    qid = np.array(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)))
    return y_true, y_score, qid


SETTINGS = settings(max_examples=60, deadline=None)


@SETTINGS
@given(_documents(), st.sampled_from([1, 3, None]), st.sampled_from(NO_RELEVANT))
def test_metrics_lie_in_unit_interval(docs, k, no_relevant):
    y_true, y_score, qid = docs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        values = [
            ndcg_score(y_true, y_score, qid, k=k, no_relevant=no_relevant),
            mean_average_precision_score(y_true, y_score, qid, k=k, no_relevant=no_relevant),
            mean_reciprocal_rank_score(y_true, y_score, qid, no_relevant=no_relevant),
        ]
    for value in values:
        assert 0.0 <= value <= 1.0
    _, per_query = _per_query_ndcg(y_true, y_score, qid, k=k)
    defined = per_query[~np.isnan(per_query)]
    assert np.all((defined >= 0) & (defined <= 1))


@SETTINGS
@given(_documents(), st.sampled_from([1, 3, None]))
def test_perfect_scores_give_one(docs, k):
    y_true, _, qid = docs
    if not np.any(y_true > 0):
        return
    # The grades themselves as scores: ties only between equal grades.
    assert ndcg_score(y_true, y_true, qid, k=k) == pytest.approx(1.0, abs=1e-14)
    assert mean_average_precision_score(y_true, y_true, qid, k=k) == pytest.approx(1.0)
    assert mean_reciprocal_rank_score(y_true, y_true, qid) == pytest.approx(1.0)


@SETTINGS
@given(_documents(), st.randoms(use_true_random=False))
def test_invariant_to_row_order_and_qid_relabelling(docs, random):
    y_true, y_score, qid = docs
    if not np.any(y_true > 0):
        return
    rows = list(range(qid.size))
    random.shuffle(rows)
    labels = list(range(100))
    random.shuffle(labels)
    relabelled = np.array([labels[q] for q in qid])  # any bijection of the ids
    for metric in METRICS:
        reference = metric(y_true, y_score, qid)
        assert metric(y_true[rows], y_score[rows], qid[rows]) == pytest.approx(reference, rel=1e-12)
        assert metric(y_true, y_score, relabelled) == pytest.approx(reference, rel=1e-12)


@SETTINGS
@given(_documents(max_docs=7))  # the reference lists every order of a tie
def test_per_query_ndcg_matches_naive(docs):
    y_true, y_score, qid = docs
    ids, values = _per_query_ndcg(y_true, y_score, qid, k=3)
    np.testing.assert_array_equal(ids, np.unique(qid))
    for q, value in zip(ids, values):
        expected = ndcg_per_query_naive(y_true[qid == q], y_score[qid == q], k=3)
        if expected is None:
            assert np.isnan(value)
        else:
            assert value == pytest.approx(expected, rel=1e-12)


# Scorer ----------------------------------------------------------------------


def test_ndcg_scorer_under_metadata_routing_in_cross_validate():
    from sk_perturbed.datasets import make_ranking_groups

    X, y, qid = make_ranking_groups(n_queries=60, n_features=5, random_state=0)
    cv = GroupKFold(n_splits=3)
    with config_context(enable_metadata_routing=True):
        result = cross_validate(
            Ridge(), X, y, cv=cv, scoring=make_ndcg_scorer(k=5),
            params={"qid": qid, "groups": qid},
        )
    expected = []
    for train, test in cv.split(X, y, groups=qid):
        model = Ridge().fit(X[train], y[train])
        expected.append(ndcg_score(y[test], model.predict(X[test]), qid[test], k=5))
    np.testing.assert_allclose(result["test_score"], expected, rtol=1e-12)
    assert np.all((result["test_score"] > 0.3) & (result["test_score"] <= 1))


def test_ndcg_scorer_passes_its_options():
    X = np.arange(6.0)[:, None]
    y = np.array([0.0, 0.0, 0.0, 2.0, 1.0, 0.0])
    qid = np.array([0, 0, 0, 1, 1, 1])
    model = Ridge(alpha=1e-8).fit(X, -X[:, 0])  # ranks by decreasing x
    with config_context(enable_metadata_routing=True):
        for k, no_relevant in [(10, "skip"), (1, "zero"), (None, "one")]:
            scorer = make_ndcg_scorer(k, gain="linear", no_relevant=no_relevant)
            expected = ndcg_score(
                y, model.predict(X), qid, k=k, gain="linear", no_relevant=no_relevant
            )
            assert scorer(model, X, y, qid=qid) == pytest.approx(expected)
    with pytest.raises(ValueError, match="'k' parameter"):
        make_ndcg_scorer(k=0)


# Docstrings --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "sk_perturbed.metrics.ndcg_score",
        "sk_perturbed.metrics.mean_average_precision_score",
        "sk_perturbed.metrics.mean_reciprocal_rank_score",
        "sk_perturbed.metrics.make_ndcg_scorer",
        "sk_perturbed.datasets.make_ranking_groups",
        "sk_perturbed.datasets.load_learning_to_rank",
        "sk_perturbed.datasets.load_svmlight_ranking",
    ],
)
def test_numpydoc(name):
    # The codes tests/test_docstrings.py ignores for public functions.
    validate = pytest.importorskip("numpydoc.validate")
    errors = [
        (code, message)
        for code, message in validate.validate(name)["errors"]
        if code not in {"ES01", "SA01", "RT02"}
    ]
    assert not errors, errors
