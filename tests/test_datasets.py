from importlib import resources

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.utils import Bunch

from sk_perturbed.datasets import (
    LABEL_RANKING_DATASETS,
    load_label_ranking,
    make_perfect_ranks,
)
from sk_perturbed.metrics import perfect_rank_score

# Shapes documented in data/label_ranking/README.md.
SHAPES = {
    "authorship": (841, 70, 4),
    "bodyfat": (252, 7, 7),
    "cpu": (8192, 6, 5),
    "elevators": (16599, 9, 9),
    "glass": (214, 9, 6),
    "housing": (506, 6, 6),
    "iris": (150, 4, 3),
    "vehicle": (846, 18, 4),
    "vowel": (528, 10, 11),
}

DATA = resources.files("sk_perturbed.datasets") / "data" / "label_ranking"


def _assert_rows_are_permutations(Y):
    d = Y.shape[1]
    expected = np.tile(np.arange(1, d + 1), (len(Y), 1))
    np.testing.assert_array_equal(np.sort(Y, axis=1), expected)


def test_dataset_names():
    assert isinstance(LABEL_RANKING_DATASETS, tuple)
    assert set(LABEL_RANKING_DATASETS) == set(SHAPES)


def test_package_data_ships_licence():
    assert "MIT License" in (DATA / "LICENSE").read_text(encoding="utf-8")
    assert (DATA / "README.md").is_file()


@pytest.mark.parametrize("name", LABEL_RANKING_DATASETS)
def test_load_label_ranking_shapes_and_ranks(name):
    n_samples, n_features, n_labels = SHAPES[name]
    X, Y = load_label_ranking(name)
    assert X.shape == (n_samples, n_features) and X.dtype == np.float64
    assert Y.shape == (n_samples, n_labels) and Y.dtype == np.float64
    assert np.all(np.isfinite(X))
    _assert_rows_are_permutations(Y)


@pytest.mark.parametrize("name", ["iris", "vowel"])
def test_load_label_ranking_converts_positions_to_ranks(name):
    lines = (DATA / f"{name}.csv").read_bytes().split(b"\r\n")
    n_samples, n_features, n_labels = map(int, lines[0].split(b","))
    first = [float(v) for v in lines[1].split(b",")]
    positions = np.array(first[n_features:])

    X, Y = load_label_ranking(name)
    np.testing.assert_array_equal(X[0], first[:n_features])
    np.testing.assert_array_equal(Y[0], n_labels + 1 - positions)
    # The most preferred label (position 1) gets the highest rank.
    assert Y[0, np.argmin(positions)] == n_labels


def test_load_label_ranking_bunch():
    X, Y = load_label_ranking("glass")
    bunch = load_label_ranking("glass", return_X_y=False)
    assert isinstance(bunch, Bunch)
    np.testing.assert_array_equal(bunch.data, X)
    np.testing.assert_array_equal(bunch.target, Y)
    assert bunch.feature_names == [f"feature_{k}" for k in range(9)]
    assert bunch.target_names == [f"label_{k}" for k in range(6)]
    assert "Cheng" in bunch.DESCR and "MIT" in bunch.DESCR
    assert "214 samples, 9 features, 6 labels" in bunch.DESCR


def test_load_label_ranking_unknown_name():
    with pytest.raises(ValueError, match="Unknown .* 'iri'; valid names are .*iris"):
        load_label_ranking("iri")
    with pytest.raises(ValueError, match="'name' parameter .* instance of 'str'"):
        load_label_ranking(3)


def test_make_perfect_ranks_shapes_and_ranks():
    X, Y = make_perfect_ranks(
        n_samples=50, n_features=7, n_labels=6, noise=0.5, random_state=0
    )
    assert X.shape == (50, 7) and Y.shape == (50, 6)
    assert Y.dtype == np.float64
    _assert_rows_are_permutations(Y)


def test_make_perfect_ranks_is_reproducible():
    a = make_perfect_ranks(n_samples=30, noise=1.0, random_state=42, return_coef=True)
    b = make_perfect_ranks(n_samples=30, noise=1.0, random_state=42, return_coef=True)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    c = make_perfect_ranks(n_samples=30, noise=1.0, random_state=43)
    assert not np.array_equal(a[0], c[0])
    # W0 is drawn first, so it does not depend on n_samples.
    _, _, coef = make_perfect_ranks(n_samples=5, random_state=42, return_coef=True)
    np.testing.assert_array_equal(coef, a[2])


def test_make_perfect_ranks_noise_free_is_linear():
    X, Y, coef = make_perfect_ranks(n_samples=200, random_state=0, return_coef=True)
    assert coef.shape == (20, 5)
    np.testing.assert_array_equal(Y, rankdata(X @ coef, axis=1))
    assert perfect_rank_score(Y, X @ coef) == 1.0

    X, Y, coef = make_perfect_ranks(
        n_samples=200, noise=2.0, random_state=0, return_coef=True
    )
    assert perfect_rank_score(Y, X @ coef) < 1.0


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_samples": 0}, "'n_samples' parameter"),
        ({"n_features": 0}, "'n_features' parameter"),
        ({"n_labels": 1}, "'n_labels' parameter"),
        ({"noise": -0.1}, "'noise' parameter"),
        ({"random_state": "seed"}, "'random_state' parameter"),
    ],
)
def test_make_perfect_ranks_invalid_params(params, match):
    with pytest.raises(ValueError, match=match):
        make_perfect_ranks(**params)
