"""PerturbedRanker and its ragged kernel: naive references, invariants, sklearn integration."""

import pickle
import warnings

import naive
import numpy as np
import pytest
import sklearn
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_perturbed import PerturbedRanker
from sk_perturbed._groups import QueryLayout, check_qid
from sk_perturbed._ragged import (
    ragged_fenchel_young,
    ragged_fenchel_young_kernel,
    ranking_targets,
)
from sk_perturbed._threads import numba_threads
from sk_perturbed.datasets import make_ranking_groups
from sk_perturbed.metrics import ndcg_score

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _ragged(sizes, seed=0):
    rng = np.random.default_rng(seed)
    offsets = np.r_[0, np.cumsum(sizes)]
    n = offsets[-1]
    qid = np.repeat(np.arange(len(sizes)), sizes)
    theta = rng.normal(size=n)
    relevance = rng.integers(0, 3, size=n).astype(float)  # small grades: many ties
    keys = rng.permutation(10 * n)[:n]
    return theta, relevance, qid, offsets, keys


SIZES = [3, 1, 5, 2, 7, 4]


# ---------------------------------------------------------------- kernel
@pytest.mark.parametrize("rank_weights", ["dcg", "ranks"])
def test_targets_match_naive_reference(rank_weights):
    _, relevance, qid, offsets, _ = _ragged(SIZES)
    got = ranking_targets(relevance, offsets, rank_weights)
    for q in range(len(SIZES)):
        rows = slice(offsets[q], offsets[q + 1])
        want = naive.ranking_targets_naive(list(relevance[rows]), rank_weights)
        np.testing.assert_allclose(got[rows], want, rtol=1e-14)


@pytest.mark.parametrize("rank_weights", ["dcg", "ranks"])
@pytest.mark.parametrize("noise", ["gaussian", "gumbel"])
# Groups up to 64 documents are sorted by insertion in the kernel, larger ones by argsort.
@pytest.mark.parametrize("sizes", [SIZES, [2, 64, 65, 150]])
def test_kernel_matches_naive_reference(rank_weights, noise, sizes):
    theta, relevance, qid, offsets, keys = _ragged(sizes, seed=1)
    y = ranking_targets(relevance, offsets, rank_weights)
    kwargs = dict(seed=123, n_samples=7, epsilon=0.7, noise=noise, rank_weights=rank_weights)
    got = ragged_fenchel_young(theta, y, offsets, keys, **kwargs)
    want = naive.ragged_fenchel_young_naive(theta, y, qid, keys, **kwargs)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rank_weights", ["dcg", "ranks"])
def test_soft_weights_and_targets_sum_to_sum_of_weights(rank_weights):
    theta, relevance, qid, offsets, keys = _ragged(SIZES, seed=2)
    y = ranking_targets(relevance, offsets, rank_weights)
    values, grad, y_eps = ragged_fenchel_young(
        theta, y, offsets, keys, seed=5, n_samples=9, epsilon=1.0, rank_weights=rank_weights
    )
    for q, n in enumerate(SIZES):
        rows = slice(offsets[q], offsets[q + 1])
        total = sum(naive.position_weights(n, rank_weights))
        assert y_eps[rows].sum() == pytest.approx(total, rel=1e-12)
        assert y[rows].sum() == pytest.approx(total, rel=1e-12)
        assert grad[rows].sum() == pytest.approx(0.0, abs=1e-12)
    # Soft weights lie between the smallest and the largest weight.
    assert np.all(y_eps > 0)


def test_one_document_query_has_no_signal():
    theta, relevance, qid, offsets, keys = _ragged([1, 3, 1])
    y = ranking_targets(relevance, offsets, "dcg")
    values, grad, y_eps = ragged_fenchel_young(
        theta, y, offsets, keys, seed=0, n_samples=4, epsilon=1.0
    )
    for i in (0, 4):
        assert values[i] == grad[i] == 0.0
        assert y_eps[i] == 1.0  # w_1 = 1 / log2(2)


def test_two_documents_closed_form():
    # Ranks of two documents: y_eps(θ)_0 = 1 + P(θ0 + εZ0 > θ1 + εZ1) = 1 + Φ(Δ / (ε√2)).
    theta = np.array([0.3, -0.2])
    eps, m = 0.8, 20000
    _, _, y_eps = ragged_fenchel_young(
        theta, np.zeros(2), np.array([0, 2]), np.array([11, 12]), seed=3, n_samples=m,
        epsilon=eps, rank_weights="ranks",
    )
    p = norm.cdf((theta[0] - theta[1]) / (eps * np.sqrt(2)))
    assert abs(y_eps[0] - (1 + p)) < 5 * np.sqrt(p * (1 - p) / m)
    assert y_eps.sum() == pytest.approx(3.0)


def test_gradient_is_the_derivative_of_the_loss():
    # With the noise fixed, F̂ is piecewise linear in θ: its derivative is
    # y_eps, so finite differences of the per-query loss give y_eps - y.
    theta, relevance, qid, offsets, keys = _ragged(SIZES, seed=4)
    y = ranking_targets(relevance, offsets, "dcg")
    kwargs = dict(seed=9, n_samples=5, epsilon=1.0)
    _, grad, _ = ragged_fenchel_young(theta, y, offsets, keys, **kwargs)
    h = 1e-7
    for j in range(len(theta)):
        e = np.zeros_like(theta)
        e[j] = h
        up = ragged_fenchel_young(theta + e, y, offsets, keys, **kwargs)[0].sum()
        down = ragged_fenchel_young(theta - e, y, offsets, keys, **kwargs)[0].sum()
        assert (up - down) / (2 * h) == pytest.approx(grad[j], abs=1e-6)


def test_kernel_does_not_depend_on_threads():
    # The raw kernel: its wrapper runs batches this small on one thread.
    theta, relevance, qid, offsets, keys = _ragged([40] * 30 + [3] * 50, seed=5)
    y = ranking_targets(relevance, offsets, "dcg")
    runs = []
    for n_jobs in (1, 2):
        with numba_threads(n_jobs):
            runs.append(ragged_fenchel_young_kernel(
                theta, y, offsets, keys.astype(np.int64), np.uint64(1), 8, 1.0, 0, 1
            ))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_kernel_is_equivariant_to_query_and_document_order():
    theta, relevance, qid, offsets, keys = _ragged(SIZES, seed=6)
    y = ranking_targets(relevance, offsets, "ranks")
    kwargs = dict(seed=2, n_samples=6, epsilon=0.5, rank_weights="ranks")
    base = ragged_fenchel_young(theta, y, offsets, keys, **kwargs)
    rng = np.random.default_rng(0)
    # New query order, and a new document order inside each query.
    new_queries = rng.permutation(len(SIZES))
    rows = np.concatenate([rng.permutation(np.arange(offsets[q], offsets[q + 1]))
                           for q in new_queries])
    new_offsets = np.r_[0, np.cumsum(np.asarray(SIZES)[new_queries])]
    moved = ragged_fenchel_young(theta[rows], y[rows], new_offsets, keys[rows], **kwargs)
    for a, b in zip(base, moved):
        np.testing.assert_array_equal(a[rows], b)


def test_query_layout_groups_non_contiguous_rows():
    query, n_queries = check_qid(np.array(["b", "a", "b", "c", "a"]), 5)
    np.testing.assert_array_equal(query, [1, 0, 1, 2, 0])
    layout = QueryLayout(query, n_queries)
    np.testing.assert_array_equal(layout.rows, [1, 4, 0, 2, 3])
    np.testing.assert_array_equal(layout.offsets, [0, 2, 4, 5])
    np.testing.assert_array_equal(layout.rows_of(np.array([2, 0])), [3, 1, 4])


# ------------------------------------------------------------- estimator
@pytest.fixture(scope="module")
def data():
    X, y, qid = make_ranking_groups(n_queries=120, n_features=6, group_size=(1, 20),
                                    random_state=0)
    return X, y, qid


FAST = dict(model="linear", learning_rate_init=0.02, max_iter=15, random_state=0)


def test_learns_to_rank(data):
    X, y, qid = data
    ranker = PerturbedRanker(**FAST).fit(X, y, qid=qid)
    untrained = PerturbedRanker(**{**FAST, "max_iter": 1, "learning_rate_init": 1e-9})
    untrained.fit(X, y, qid=qid)
    assert ranker.score(X, y, qid) > untrained.score(X, y, qid) + 0.1
    assert ranker.score(X, y, qid) == pytest.approx(ndcg_score(y, ranker.predict(X), qid))
    assert ranker.predict(X).shape == (X.shape[0],)
    np.testing.assert_array_equal(ranker.predict(X), ranker.predict_scores(X))


@pytest.mark.parametrize("rank_weights", ["dcg", "ranks"])
def test_both_polytopes_learn(data, rank_weights):
    X, y, qid = data
    ranker = PerturbedRanker(rank_weights=rank_weights, **FAST).fit(X, y, qid=qid)
    assert ranker.score(X, y, qid) > 0.8
    assert ranker.solver_.rank_weights == rank_weights


def test_fit_is_deterministic_across_n_jobs(data):
    X, y, qid = data
    fits = [PerturbedRanker(n_jobs=n, **FAST).fit(X, y, qid=qid) for n in (1, 2)]
    for a, b in zip(fits[0].coefs_ + fits[0].intercepts_, fits[1].coefs_ + fits[1].intercepts_):
        np.testing.assert_array_equal(a, b)


def test_query_ids_are_labels_only(data):
    # Renaming the queries (strings, other integers, in the same sorted
    # order: it orders the shuffles) does not change the fit.
    X, y, qid = data
    a = PerturbedRanker(**FAST).fit(X, y, qid=qid)
    for renamed in (7 * qid - 50, np.char.add("q", np.char.zfill(qid.astype(str), 4))):
        b = PerturbedRanker(**FAST).fit(X, y, qid=renamed)
        np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])


def test_non_contiguous_queries(data):
    X, y, qid = data
    ranker = PerturbedRanker(**FAST).fit(X, y, qid=qid)
    order = np.random.default_rng(0).permutation(len(y))
    shuffled = PerturbedRanker(**FAST).fit(X[order], y[order], qid=qid[order])
    # Same queries, rows spread out: a model of the same quality.
    assert shuffled.score(X, y, qid) == pytest.approx(ranker.score(X, y, qid), abs=0.03)
    # The metrics and positions group non-contiguous rows.
    assert ranker.score(X[order], y[order], qid[order]) == pytest.approx(ranker.score(X, y, qid))
    np.testing.assert_array_equal(
        ranker.predict_ranks(X[order], qid[order]), ranker.predict_ranks(X, qid)[order]
    )


def test_predict_ranks_are_positions_within_queries(data):
    X, y, qid = data
    ranker = PerturbedRanker(**FAST).fit(X, y, qid=qid)
    positions = ranker.predict_ranks(X, qid)
    scores = ranker.predict(X)
    for q in np.unique(qid)[:10]:
        rows = np.flatnonzero(qid == q)
        want = np.empty(len(rows))
        want[np.argsort(-scores[rows])] = np.arange(1, len(rows) + 1)
        np.testing.assert_array_equal(positions[rows], want)
    # Ties share their mean position.
    tied = PerturbedRanker(**FAST).fit(X, y, qid=qid)
    tied.coefs_[0][:] = 0.0
    np.testing.assert_array_equal(tied.predict_ranks(X[:4], np.zeros(4)), [2.5] * 4)


def test_predict_marginals_sum_and_reproducibility(data):
    X, y, qid = data
    ranker = PerturbedRanker(**FAST).fit(X, y, qid=qid)
    soft = ranker.predict_marginals(X, qid)
    for q in np.unique(qid)[:10]:
        rows = qid == q
        total = sum(naive.position_weights(rows.sum(), "dcg"))
        assert soft[rows].sum() == pytest.approx(total)
    # Keyed by content: one query alone gives the same soft weights.
    rows = qid == qid[0]
    np.testing.assert_array_equal(ranker.predict_marginals(X[rows], qid[rows]), soft[rows])


def test_early_stopping_holds_out_whole_queries(data):
    X, y, qid = data
    ranker = PerturbedRanker(early_stopping=True, **FAST).fit(X, y, qid=qid)
    assert len(ranker.validation_scores_) == ranker.n_iter_
    assert 0 < ranker.best_validation_score_ <= 1


def test_sample_weight_zero_query_is_ignored(data):
    # A query of weight 0 adds nothing to the gradient: with its relevance
    # reversed, the fit is unchanged.
    X, y, qid = data
    w = np.where(qid == qid[0], 0.0, 1.0)
    flipped = y.copy()
    flipped[qid == qid[0]] = flipped[qid == qid[0]].max() - flipped[qid == qid[0]]
    a = PerturbedRanker(**FAST).fit(X, y, qid=qid, sample_weight=w)
    b = PerturbedRanker(**FAST).fit(X, flipped, qid=qid, sample_weight=w)
    np.testing.assert_allclose(a.coefs_[0], b.coefs_[0], rtol=1e-12)


def test_partial_fit_and_pickle(data):
    X, y, qid = data
    ranker = PerturbedRanker(**FAST)
    for _ in range(3):
        ranker.partial_fit(X, y, qid=qid)
    assert ranker.n_iter_ == 3
    clone = pickle.loads(pickle.dumps(ranker))
    np.testing.assert_array_equal(clone.predict(X), ranker.predict(X))


def test_mlp_on_sparse_input():
    from sk_perturbed.datasets import load_learning_to_rank

    X, y, qid = load_learning_to_rank("test")
    ranker = PerturbedRanker(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    ranker.fit(X, y, qid=qid)
    assert 0 < ranker.score(X, y, qid) <= 1


# ------------------------------------------------------------- bad input
@pytest.mark.parametrize("method", ["fit", "score", "predict_ranks", "predict_marginals"])
def test_qid_of_wrong_length(data, method):
    X, y, qid = data
    ranker = PerturbedRanker(**FAST).fit(X, y, qid=qid)
    args = {"fit": (X, y), "score": (X, y), "predict_ranks": (X,),
            "predict_marginals": (X,)}[method]
    with pytest.raises(ValueError, match="qid has 10 entries but X has"):
        getattr(ranker, method)(*args, qid=qid[:10])


def test_bad_qid_values(data):
    X, y, qid = data
    with pytest.raises(ValueError, match="qid must be a 1-D array"):
        PerturbedRanker(**FAST).fit(X, y, qid=qid[:, None])
    with pytest.raises(ValueError, match="qid must not contain NaN"):
        PerturbedRanker(**FAST).fit(X, y, qid=np.where(qid == 0, np.nan, qid))


def test_nan_relevance(data):
    X, y, qid = data
    y = y.copy()
    y[3] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        PerturbedRanker(**FAST).fit(X, y, qid=qid)


def test_only_one_document_queries(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="single document: there is no ranking to learn"):
        PerturbedRanker(**FAST).fit(X[:20], y[:20], qid=np.arange(20))


def test_sample_weight_must_be_constant_within_queries(data):
    X, y, qid = data
    w = np.ones(len(y))
    w[np.flatnonzero(qid == qid[0])[1]] = 2.0
    with pytest.raises(ValueError, match="sample_weight must be constant within each query"):
        PerturbedRanker(**FAST).fit(X, y, qid=qid, sample_weight=w)


def test_score_needs_non_negative_grades(data):
    X, y, qid = data
    ranker = PerturbedRanker(**FAST).fit(X, y - 1.0, qid=qid)  # any reals fit
    with pytest.raises(ValueError, match="non-negative grades"):
        ranker.score(X, y - 1.0, qid)


@pytest.mark.parametrize("param, value", [("backend", "cupy"), ("perturbation", "multiplicative"),
                                          ("rank_weights", "ndcg"), ("loss", "squared")])
def test_unsupported_parameters(data, param, value):
    X, y, qid = data
    with pytest.raises(ValueError, match=param):
        PerturbedRanker(**{**FAST, param: value}).fit(X, y, qid=qid)


# ------------------------------------------------------ metadata routing
@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def test_qid_is_requested_by_default():
    routing = PerturbedRanker().get_metadata_routing()
    assert routing.fit.requests["qid"] is True
    assert routing.score.requests["qid"] is True
    assert routing.fit.requests["sample_weight"] is None


def test_routing_through_pipeline(data, routing):
    X, y, qid = data
    pipe = make_pipeline(StandardScaler(), PerturbedRanker(**FAST))
    pipe.fit(X, y, qid=qid)
    direct = PerturbedRanker(**FAST).fit(StandardScaler().fit_transform(X), y, qid=qid)
    np.testing.assert_allclose(pipe[-1].coefs_[0], direct.coefs_[0])
    assert pipe.score(X, y, qid=qid) == pytest.approx(
        direct.score(StandardScaler().fit(X).transform(X), y, qid)
    )


def test_routing_through_grid_search(data, routing):
    X, y, qid = data
    search = GridSearchCV(PerturbedRanker(**FAST), {"epsilon": [0.5, 2.0]}, cv=GroupKFold(3))
    search.fit(X, y, qid=qid, groups=qid)
    # The scores are per-query NDCG@10 of the held-out queries: recompute one.
    train, test = next(GroupKFold(3).split(X, y, groups=qid))
    est = PerturbedRanker(**{**FAST, "epsilon": 0.5}).fit(X[train], y[train], qid=qid[train])
    assert search.cv_results_["split0_test_score"][0] == pytest.approx(
        est.score(X[test], y[test], qid[test])
    )


def test_routing_through_cross_validate(data, routing):
    X, y, qid = data
    ranker = PerturbedRanker(**FAST).set_fit_request(sample_weight=True).set_score_request(
        sample_weight=True
    )
    w = np.ones(len(y))
    result = cross_validate(ranker, X, y, cv=GroupKFold(3),
                            params={"qid": qid, "groups": qid, "sample_weight": w})
    train, test = next(GroupKFold(3).split(X, y, groups=qid))
    est = PerturbedRanker(**FAST).fit(X[train], y[train], qid=qid[train])
    assert result["test_score"][0] == pytest.approx(est.score(X[test], y[test], qid[test]))


@pytest.mark.parametrize("method", ["fit", "partial_fit", "score", "predict_ranks",
                                    "predict_marginals"])
def test_missing_qid_is_an_error_not_one_query(data, method):
    # A meta-estimator that does not route qid must not silently rank every
    # row as one query.
    X, y, qid = data
    ranker = PerturbedRanker(**FAST).fit(X, y, qid=qid)
    args = (X, y) if method in ("fit", "partial_fit", "score") else (X,)
    with pytest.raises(ValueError, match="qid is required.*enable_metadata_routing"):
        getattr(ranker, method)(*args)


def test_search_without_routing_names_the_missing_qid(data):
    X, y, qid = data
    search = GridSearchCV(PerturbedRanker(**FAST), {"epsilon": [0.5, 1.0]},
                          cv=GroupKFold(2), error_score="raise")
    with pytest.raises(ValueError, match="qid is required"):
        search.fit(X, y, groups=qid)


def test_convergence_warning_at_max_iter(data):
    X, y, qid = data
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning):
            PerturbedRanker(**{**FAST, "max_iter": 2}).fit(X, y, qid=qid)
