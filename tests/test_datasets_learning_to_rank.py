"""Learning-to-rank data sets: the query-group generator and the loaders."""

import gzip
import io
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_svmlight_file

from sk_perturbed.datasets import (
    load_learning_to_rank,
    load_svmlight_ranking,
    make_ranking_groups,
)
from sk_perturbed.metrics import ndcg_score

DATA = resources.files("sk_perturbed.datasets") / "data" / "learning_to_rank"
RAW = Path("/work/shared/data/learning_to_rank")  # the uncompressed originals


def _make_ranking_groups_naive(n_queries, n_features, group_size, n_levels, noise, m, seed):
    """The generative model of make_ranking_groups' docstring, one document
    at a time (same draws, in the documented order)."""
    rng = np.random.RandomState(seed)
    w = rng.standard_normal(m)
    w = w / math.sqrt(sum(v * v for v in w))
    low, high = (group_size, group_size) if isinstance(group_size, int) else group_size
    sizes = rng.randint(low, high + 1, size=n_queries)
    offsets = rng.standard_normal(n_queries)
    X = rng.standard_normal((int(sizes.sum()), n_features))
    e = rng.standard_normal(X.shape[0])
    qid = [q for q in range(n_queries) for _ in range(sizes[q])]
    n_pairs = m // 2
    utility = []
    for i, x in enumerate(X):
        s = sum(w[j] * x[j] for j in range(m))
        if n_pairs:
            c = 1.5 / math.sqrt(n_pairs)
            s += c * sum(math.tanh(2 * x[2 * p] * x[2 * p + 1]) for p in range(n_pairs))
        utility.append(s + offsets[qid[i]] + noise * e[i])
    thresholds = np.quantile(utility, [1 - 2.0**-level for level in range(1, n_levels)])
    y = [sum(u > t for t in thresholds) for u in utility]
    return X, np.array(y, dtype=float), np.array(qid), w


@pytest.mark.parametrize(
    "n_queries, n_features, group_size, n_levels, noise, n_informative, seed",
    [
        (12, 6, (1, 9), 5, 0.5, None, 0),
        (7, 3, 4, 2, 0.0, 3, 1),
        (9, 10, (2, 3), 4, 2.0, 1, 2),
    ],
)
def test_make_ranking_groups_follows_its_documented_model(
    n_queries, n_features, group_size, n_levels, noise, n_informative, seed
):
    X, y, qid = make_ranking_groups(
        n_queries, n_features, group_size, n_levels, noise, n_informative, seed
    )
    m = min(10, n_features) if n_informative is None else n_informative
    X_ref, y_ref, qid_ref, _ = _make_ranking_groups_naive(
        n_queries, n_features, group_size, n_levels, noise, m, seed
    )
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(qid, qid_ref)


def test_make_ranking_groups_shapes_and_dtypes():
    X, y, qid = make_ranking_groups(n_queries=200, n_features=7, random_state=0)
    assert X.dtype == np.float64 and X.flags.c_contiguous
    assert y.dtype == np.float64
    assert qid.dtype == np.int64
    assert X.shape == (qid.size, 7) and y.shape == qid.shape
    # Contiguous, sorted query ids 0..n_queries-1.
    assert qid[0] == 0 and qid[-1] == 199
    assert set(np.diff(qid)) <= {0, 1}
    sizes = np.bincount(qid)
    assert sizes.min() >= 5 and sizes.max() <= 50
    np.testing.assert_array_equal(np.unique(y), np.arange(5.0))


def test_make_ranking_groups_group_sizes():
    _, _, qid = make_ranking_groups(n_queries=300, n_features=2, group_size=(1, 3), random_state=0)
    assert set(np.bincount(qid)) == {1, 2, 3}  # both ends of the range are drawn
    _, _, qid = make_ranking_groups(n_queries=30, n_features=2, group_size=4, random_state=0)
    np.testing.assert_array_equal(np.bincount(qid), np.full(30, 4))
    _, _, qid = make_ranking_groups(n_queries=5, n_features=2, group_size=(6, 6), random_state=0)
    assert qid.size == 30


def test_make_ranking_groups_grade_proportions():
    _, y, _ = make_ranking_groups(n_queries=400, n_features=4, random_state=0)
    np.testing.assert_allclose(np.bincount(y.astype(int)) / y.size, [0.5, 0.25, 0.125, 0.0625, 0.0625], atol=1e-3)
    _, y, _ = make_ranking_groups(n_queries=100, n_features=4, n_levels=2, random_state=0)
    assert np.mean(y) == pytest.approx(0.5, abs=1e-3)


def test_make_ranking_groups_random_state():
    a = make_ranking_groups(n_queries=20, random_state=3)
    b = make_ranking_groups(n_queries=20, random_state=np.random.RandomState(3))
    c = make_ranking_groups(n_queries=20, random_state=4)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0][:10], c[0][:10])


def test_make_ranking_groups_is_learnable_and_nonlinear():
    n_queries, n_features = 300, 10
    X, y, qid = make_ranking_groups(n_queries, n_features, noise=0.5, random_state=5)
    _, _, _, w = _make_ranking_groups_naive(1, n_features, 1, 2, 0.5, 10, 5)
    linear = X @ w
    interaction = sum(np.tanh(2 * X[:, 2 * p] * X[:, 2 * p + 1]) for p in range(5))
    oracle = ndcg_score(y, linear + 1.5 / np.sqrt(5) * interaction, qid)
    linear_only = ndcg_score(y, linear, qid)
    chance = ndcg_score(y, np.random.default_rng(0).standard_normal(y.size), qid)
    # The documented utility ranks well, its linear part alone clearly worse.
    assert oracle > 0.9
    assert chance + 0.2 < linear_only < oracle - 0.1
    # The per-query offset leaves some queries without a relevant document.
    assert 0 < np.mean(np.bincount(qid, weights=y > 0) == 0) < 0.1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"group_size": (0, 5)}, "group_size"),
        ({"group_size": (6, 5)}, "group_size"),
        ({"group_size": (1, 2, 3)}, "group_size"),
        ({"group_size": (1.0, 2)}, "group_size"),
        ({"group_size": 0}, "group_size"),
        ({"group_size": 2.5}, "group_size"),
        ({"n_informative": 21}, "n_informative"),
        ({"n_levels": 1}, "n_levels"),
        ({"noise": -1.0}, "noise"),
        ({"n_queries": 0}, "n_queries"),
        ({"n_features": 0}, "n_features"),
    ],
)
def test_make_ranking_groups_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_ranking_groups(**kwargs)


# Shipped LightGBM sample ---------------------------------------------------------


@pytest.mark.parametrize(
    "split, n_documents, n_queries", [("train", 3005, 201), ("test", 768, 50)]
)
def test_load_learning_to_rank(split, n_documents, n_queries):
    X, y, qid = load_learning_to_rank(split)
    assert sp.issparse(X) and X.format == "csr"
    assert X.shape == (n_documents, 300) and X.dtype == np.float64
    assert y.shape == qid.shape == (n_documents,)
    assert y.dtype == np.float64 and qid.dtype == np.int64
    np.testing.assert_array_equal(np.unique(y), np.arange(5.0))
    np.testing.assert_array_equal(np.unique(qid), np.arange(n_queries))
    assert np.all(np.diff(qid) >= 0)
    with gzip.open(DATA / f"rank.{split}.query.gz", "rt") as f:
        sizes = [int(line) for line in f]
    np.testing.assert_array_equal(np.bincount(qid), sizes)


@pytest.mark.parametrize("split", ["train", "test"])
def test_load_learning_to_rank_matches_the_original_files(split):
    if not (RAW / f"rank.{split}").exists():
        pytest.skip("the uncompressed originals are not on this machine")
    X, y, qid = load_learning_to_rank(split)
    X_raw, y_raw = load_svmlight_file(str(RAW / f"rank.{split}"), n_features=300, zero_based=False)
    assert (X != X_raw).nnz == 0
    np.testing.assert_array_equal(y, y_raw)
    sizes = np.loadtxt(RAW / f"rank.{split}.query", dtype=int)
    np.testing.assert_array_equal(qid, np.repeat(np.arange(sizes.size), sizes))


def test_learning_to_rank_package_files():
    names = {p.name for p in DATA.iterdir()}
    expected = {
        "rank.train.gz", "rank.test.gz", "rank.train.query.gz", "rank.test.query.gz",
        "LICENSE", "README.md",
    }
    assert expected <= names
    assert "MIT License" in (DATA / "LICENSE").read_text(encoding="utf-8")
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    for fact in ("lambdarank", "MIT", "3005", "201", "768", "50", "300", "0 to 4"):
        assert fact in readme


def test_load_learning_to_rank_split_error():
    with pytest.raises(ValueError, match="'split' parameter"):
        load_learning_to_rank("valid")


# svmlight loader -------------------------------------------------------------


SVM_WITH_QID = b"2 qid:3 1:0.5 3:1\n0 qid:3 2:0.25\n1 qid:1 1:0.125\n"
SVM_NO_QID = b"2 1:0.5 3:1\n0 2:0.25\n1 1:0.125\n"


def test_load_svmlight_ranking_reads_qid_fields():
    X, y, qid = load_svmlight_ranking(io.BytesIO(SVM_WITH_QID), zero_based=False)
    np.testing.assert_array_equal(X.toarray(), [[0.5, 0, 1], [0, 0.25, 0], [0.125, 0, 0]])
    np.testing.assert_array_equal(y, [2, 0, 1])
    np.testing.assert_array_equal(qid, [3, 3, 1])
    assert qid.dtype == np.int64


def test_load_svmlight_ranking_query_file(tmp_path):
    data = tmp_path / "rank.svm"
    data.write_bytes(SVM_NO_QID)
    sizes = tmp_path / "rank.svm.query"
    sizes.write_text("1\n2\n")
    X, _, qid = load_svmlight_ranking(data, query_file=sizes, n_features=5)
    assert X.shape == (3, 5)
    np.testing.assert_array_equal(qid, [0, 1, 1])
    # A gzipped query file (by path) and a file object work too.
    with gzip.open(tmp_path / "q.gz", "wt") as f:
        f.write("2\n1\n")
    _, _, qid = load_svmlight_ranking(str(data), query_file=tmp_path / "q.gz")
    np.testing.assert_array_equal(qid, [0, 0, 1])
    _, _, qid = load_svmlight_ranking(data, query_file=io.StringIO("3\n"))
    np.testing.assert_array_equal(qid, [0, 0, 0])


def test_load_svmlight_ranking_query_file_wins_over_qid_fields():
    _, _, qid = load_svmlight_ranking(io.BytesIO(SVM_WITH_QID), query_file=io.StringIO("2\n1\n"))
    np.testing.assert_array_equal(qid, [0, 0, 1])


@pytest.mark.parametrize(
    "data, query_file, match",
    [
        (SVM_NO_QID, None, "no 'qid:' fields and no query_file"),
        (b"2 qid:1 1:0.5\n0 2:0.25\n", None, "Only 1 of the 2 lines"),
        (SVM_NO_QID, "1\n1\n", "sum to 2, but the data has 3 rows"),
        (SVM_NO_QID, "4\n", "sum to 4"),
        (SVM_NO_QID, "1.5\n1.5\n", "one non-negative integer"),
        (SVM_NO_QID, "4\n-1\n", "negative group sizes"),
        (SVM_NO_QID, "1 2\n", "one group size per line"),
    ],
)
def test_load_svmlight_ranking_errors(data, query_file, match):
    query_file = None if query_file is None else io.StringIO(query_file)
    with pytest.raises(ValueError, match=match):
        load_svmlight_ranking(io.BytesIO(data), query_file=query_file)


def test_load_svmlight_ranking_option_errors():
    with pytest.raises(ValueError, match="'n_features' parameter"):
        load_svmlight_ranking(io.BytesIO(SVM_WITH_QID), n_features=0)
    with pytest.raises(ValueError, match="'query_file' parameter"):
        load_svmlight_ranking(io.BytesIO(SVM_WITH_QID), query_file=[1, 2])
