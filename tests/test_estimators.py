"""Behaviour of PerturbedRankingRegressor and PerturbedStructuredClassifier."""

import pickle
import warnings

import numba
import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sk_perturbed import PerturbedRankingRegressor, PerturbedStructuredClassifier
from sk_perturbed.datasets import make_perfect_ranks, make_shortest_path
from sk_perturbed.metrics import normalized_regret
from sk_perturbed.solvers import CallableSolver, DAGShortestPath, GridShortestPath, TopK

LOSSES = ["fenchel_young", "perturbed_squared", "squared", "blackbox"]


@pytest.fixture(scope="module")
def ranks():
    X, Y = make_perfect_ranks(n_samples=2500, n_features=20, n_labels=5, random_state=0)
    return X[:2000], Y[:2000], X[2000:], Y[2000:]


@pytest.fixture(scope="module")
def blobs():
    X, y = make_classification(
        n_samples=600, n_features=8, n_informative=5, n_classes=3, flip_y=0.1, random_state=0
    )
    return StandardScaler().fit_transform(X), y


# ------------------------------------------------------------------ quality
def test_linear_ranker_perfect_ranks(ranks):
    X, Y, X_test, Y_test = ranks
    model = PerturbedRankingRegressor(model="linear", random_state=0).fit(X, Y)
    assert model.score(X_test, Y_test) >= 0.95


@pytest.mark.parametrize("loss, floor", [
    ("fenchel_young", 0.93), ("perturbed_squared", 0.93), ("squared", 0.88),
    # The paper's blackbox baseline learns, but far less well on this task.
    ("blackbox", 0.3),
])
def test_every_loss_learns_rankings(ranks, loss, floor):
    X, Y, X_test, Y_test = ranks
    model = PerturbedRankingRegressor(loss=loss, model="linear", max_iter=100, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:600], Y[:600])
    # A constant ranking scores 0 on this symmetric task.
    assert model.score(X_test, Y_test) > floor


def test_mlp_argmax_matches_mlpclassifier_on_digits():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, random_state=0)
    ours = PerturbedStructuredClassifier(model="mlp", random_state=0).fit(X_train, y_train)
    reference = MLPClassifier(random_state=0, max_iter=500).fit(X_train, y_train)
    assert ours.score(X_test, y_test) >= reference.score(X_test, y_test) - 0.01


def test_gumbel_linear_classifier_is_logistic_regression(blobs):
    X, y = blobs
    ours = PerturbedStructuredClassifier(
        noise="gumbel", model="linear", alpha=0.0, max_iter=2000, tol=1e-7, n_iter_no_change=50,
        learning_rate_init=0.01, random_state=0,
    ).fit(X, y)
    reference = LogisticRegression(C=np.inf, max_iter=5000).fit(X, y)  # no penalty
    np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X), atol=0.02)


@pytest.mark.parametrize("loss", LOSSES)
def test_structured_classifier_learns_shortest_paths(loss):
    X, costs, paths = make_shortest_path(600, deg=2, noise_width=0.5, random_state=0)
    model = PerturbedStructuredClassifier(
        solver=DAGShortestPath(), loss=loss, model="linear", n_samples=5, max_iter=30,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:500], paths[:500])
    pred = model.predict(X[500:])
    assert pred.dtype.kind == "i" and set(np.unique(pred)) <= {0, 1}
    regret = normalized_regret(costs[500:], pred, solver=DAGShortestPath())
    # Random paths on this grid have a regret of roughly 0.5-0.8.
    assert regret < 0.25


def test_grid_search_pipelines_beat_baselines(ranks, blobs):
    X, Y, X_test, Y_test = ranks
    grid = {"est__epsilon": [0.1, 1.0], "est__n_samples": [1, 5]}
    search = GridSearchCV(
        Pipeline([("scale", StandardScaler()), ("est", PerturbedRankingRegressor(max_iter=30, random_state=0))]),
        grid, cv=2, n_jobs=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X[:600], Y[:600])
    # A constant ranking has Spearman 0 on average on this symmetric task.
    assert search.score(X_test, Y_test) > 0.8

    Xc, yc = blobs
    search = GridSearchCV(
        Pipeline([("scale", StandardScaler()), ("est", PerturbedStructuredClassifier(max_iter=30, random_state=0))]),
        grid, cv=2, n_jobs=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(Xc, yc)
    baseline = DummyClassifier().fit(Xc, yc).score(Xc, yc)
    assert search.best_score_ > baseline + 0.2
    assert set(search.best_params_) == set(grid)


def test_solver_params_are_searchable(blobs):
    X, y = blobs
    Y = TopK(k=2)(X[:, :3])  # two-hot rows: TopK(k=2) structures
    model = PerturbedStructuredClassifier(solver=TopK(k=1), max_iter=5, random_state=0)
    search = GridSearchCV(model, {"solver__k": [1, 2]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # Two-hot targets are not in the hull of TopK(k=1): those fits fail by name.
        with pytest.warns(FitFailedWarning, match="summing to k = 1"):
            search.fit(X, Y)
    assert search.best_params_ == {"solver__k": 2}
    assert np.isnan(search.cv_results_["mean_test_score"][0])


# ------------------------------------------------------------- attributes
def test_fitted_attributes_and_marginals(ranks):
    X, Y, X_test, _ = ranks
    model = PerturbedRankingRegressor(model="mlp", hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        model.fit(X, Y)
    assert [W.shape for W in model.coefs_] == [(20, 16), (16, 5)]
    assert model.n_iter_ == 5 == len(model.loss_curve_)
    assert model.t_ == 5 * len(X)
    assert model.loss_ == model.loss_curve_[-1]
    soft = model.predict_marginals(X_test)
    np.testing.assert_allclose(soft.sum(axis=1), 15.0)
    np.testing.assert_array_equal(soft, model.predict_marginals(X_test))  # fixed seed
    pred = model.predict(X_test)
    assert pred.dtype == np.float64
    np.testing.assert_array_equal(np.sort(pred, axis=1), np.tile(np.arange(1.0, 6.0), (len(pred), 1)))
    np.testing.assert_array_equal(np.argsort(model.predict_scores(X_test), axis=1), np.argsort(pred, axis=1))


def test_classifier_labels_and_proba(blobs):
    X, y = blobs
    labels = np.array(["ant", "bee", "cat"])[y]
    model = PerturbedStructuredClassifier(max_iter=50, random_state=0).fit(X, labels)
    np.testing.assert_array_equal(model.classes_, ["ant", "bee", "cat"])
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(X))
    assert model.score(X, labels) > 0.7


def test_float32_is_kept(ranks):
    X, Y, X_test, _ = ranks
    model = PerturbedRankingRegressor(max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X.astype(np.float32), Y)
    assert all(W.dtype == np.float32 for W in model.coefs_ + model.intercepts_)
    assert model.predict_scores(X_test.astype(np.float32)).dtype == np.float32


def test_early_stopping_restores_best_weights(ranks):
    X, Y, _, _ = ranks
    model = PerturbedRankingRegressor(early_stopping=True, n_iter_no_change=3, max_iter=200, random_state=0)
    model.fit(X, Y)
    assert model.best_loss_ is None
    assert model.best_validation_score_ == max(model.validation_scores_)
    assert len(model.validation_scores_) == model.n_iter_ < 200
    assert model.score(X, Y) > 0.9


def test_partial_fit_equals_one_epoch_of_fit(ranks):
    X, Y, X_test, _ = ranks
    params = dict(max_iter=1, shuffle=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full = PerturbedRankingRegressor(**params).fit(X, Y)
    partial = PerturbedRankingRegressor(**params).partial_fit(X, Y)
    for a, b in zip(full.coefs_, partial.coefs_):
        np.testing.assert_array_equal(a, b)
    partial.partial_fit(X, Y)
    assert partial.n_iter_ == 2


def test_partial_fit_refuses_early_stopping(ranks):
    X, Y, _, _ = ranks
    with pytest.raises(ValueError, match="early_stopping"):
        PerturbedRankingRegressor(early_stopping=True).partial_fit(X, Y)


def test_partial_fit_classifier_needs_classes(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="classes must be passed"):
        PerturbedStructuredClassifier().partial_fit(X, y)
    model = PerturbedStructuredClassifier(random_state=0).partial_fit(X[:10], y[:10], classes=[0, 1, 2])
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])


def test_warm_start_continues(ranks):
    X, Y, _, _ = ranks
    model = PerturbedRankingRegressor(max_iter=2, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, Y)
        first = [W.copy() for W in model.coefs_]
        model.fit(X, Y)
    assert model.n_iter_ == 4 and len(model.loss_curve_) == 4
    assert not np.array_equal(first[0], model.coefs_[0])


def test_sample_weight_zero_drops_samples(blobs):
    X, y = blobs
    weights = np.ones(len(y))
    weights[::2] = 0
    params = dict(noise="gumbel", model="linear", max_iter=20, shuffle=False, batch_size=len(y), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        weighted = PerturbedStructuredClassifier(**params).fit(X, y, sample_weight=weights)
        dropped = PerturbedStructuredClassifier(**params).fit(X[1::2], y[1::2])
    # Full-batch, exact (Gumbel) gradients: zero weight is the same as absence.
    np.testing.assert_allclose(weighted.coefs_[0], dropped.coefs_[0], rtol=1e-6, atol=1e-8)


def test_verbose_prints_progress(ranks, capsys):
    X, Y, _, _ = ranks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        PerturbedRankingRegressor(max_iter=2, early_stopping=True, verbose=True, random_state=0).fit(X, Y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss =" in out and "Validation score:" in out


# ------------------------------------------------- determinism and pickling
def test_same_model_for_any_thread_count(ranks, monkeypatch):
    import sk_perturbed._numba_backend

    # Mini-batch kernels run on one thread unless the work is large; force
    # the parallel path so that both thread counts are really exercised.
    monkeypatch.setattr(sk_perturbed._numba_backend, "MIN_WORK_PER_THREAD", 1)
    X, Y, X_test, _ = ranks
    params = dict(max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = PerturbedRankingRegressor(n_jobs=1, **params).fit(X, Y)
        two = PerturbedRankingRegressor(n_jobs=2, **params).fit(X, Y)
    for a, b in zip(one.coefs_ + one.intercepts_, two.coefs_ + two.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one.predict_marginals(X_test), two.predict_marginals(X_test))


def test_n_jobs_restores_thread_count(ranks):
    X, Y, _, _ = ranks
    before = numba.get_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        PerturbedRankingRegressor(max_iter=1, n_jobs=1).fit(X, Y)
    assert numba.get_num_threads() == before


@pytest.mark.parametrize("Estimator", [PerturbedRankingRegressor, PerturbedStructuredClassifier])
def test_pickle_round_trip(Estimator, ranks, blobs):
    X, Y = (ranks[0], ranks[1]) if Estimator is PerturbedRankingRegressor else blobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = Estimator(model="mlp", hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, Y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(model.predict(X), restored.predict(X))
    np.testing.assert_array_equal(model.predict_marginals(X), restored.predict_marginals(X))


# ---------------------------------------------------------------- bad input
def test_nan_in_targets_is_rejected(ranks):
    X, Y, _, _ = ranks
    Y = Y.copy()
    Y[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PerturbedRankingRegressor().fit(X, Y)


def test_wrong_width_at_partial_fit_and_score(ranks):
    X, Y, _, _ = ranks
    model = PerturbedRankingRegressor(random_state=0).partial_fit(X, Y)
    with pytest.raises(ValueError, match="5"):
        model.partial_fit(X, Y[:, :4])
    with pytest.raises(ValueError, match=r"shape \(n_samples, 5\)"):
        model.score(X, Y[:, :4])


def test_one_row_and_one_item(ranks):
    X, Y, _, _ = ranks
    with pytest.raises(ValueError, match="n_samples = 1"):
        PerturbedRankingRegressor().fit(X[:1], Y[:1])
    with pytest.warns(UserWarning, match="single item"):
        PerturbedRankingRegressor(max_iter=1).fit(X[:50], Y[:50, :1])
    # Early stopping scores with the estimator's own score, which handles it.
    with pytest.warns(UserWarning, match="single item"):
        model = PerturbedRankingRegressor(max_iter=2, early_stopping=True).fit(X[:50], Y[:50, :1])
    assert model.validation_scores_ == [0.0, 0.0]


def test_unknown_solver_name(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="solver"):
        PerturbedStructuredClassifier(solver="simplex").fit(X, y)


def test_solver_returning_garbage_is_named(blobs):
    X, y = blobs

    def broken(theta):
        return np.full(theta.shape, np.nan)

    with pytest.raises(ValueError, match="broken"):
        PerturbedStructuredClassifier(solver=broken, max_iter=1).fit(X, y)


def test_callable_solver_trains(blobs):
    X, y = blobs

    def one_hot(theta):
        out = np.zeros_like(theta)
        out[np.argmax(theta)] = 1.0
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = PerturbedStructuredClassifier(solver=one_hot, max_iter=10, random_state=0).fit(X, y)
    assert isinstance(model.solver_, CallableSolver)
    assert model.score(X, y) > 0.6


def test_wrong_number_of_features_at_predict(ranks):
    X, Y, _, _ = ranks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = PerturbedRankingRegressor(max_iter=1).fit(X, Y)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :5])


def test_diverging_fit_raises(ranks):
    X, Y, _, _ = ranks
    model = PerturbedRankingRegressor(optimizer="sgd", learning_rate_init=1e6, momentum=0.99, max_iter=50)
    with pytest.raises(ValueError, match="diverged"):
        model.fit(X * 1e150, Y)


def test_invalid_parameters_are_named(ranks):
    X, Y, _, _ = ranks
    for params, name in [({"epsilon": 0}, "epsilon"), ({"n_samples": 0}, "n_samples"),
                         ({"noise": "cauchy"}, "noise"), ({"loss": "hinge"}, "loss")]:
        with pytest.raises(ValueError, match=name):
            clone(PerturbedRankingRegressor()).set_params(**params).fit(X, Y)


def test_grid_shortest_path_gets_positive_costs():
    from sk_perturbed.datasets import make_warcraft_like
    from sk_perturbed.solvers import GridShortestPath

    X, costs, paths = make_warcraft_like(60, shape=(6, 6), random_state=0)
    X = X.reshape(len(X), -1)
    model = PerturbedStructuredClassifier(
        solver=GridShortestPath(shape=(6, 6)), perturbation="multiplicative", model="linear",
        n_samples=2, max_iter=3, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, paths)
    assert model.out_activation_ == "softplus"
    assert np.all(model.predict_scores(X) > 0)
    pred = model.predict(X)
    # Every prediction is a path from the first to the last cell.
    assert np.all(pred[:, 0] == 1) and np.all(pred[:, -1] == 1)


def test_additive_noise_into_dijkstra_is_named():
    from sk_perturbed.datasets import make_warcraft_like
    from sk_perturbed.solvers import GridShortestPath

    X, costs, paths = make_warcraft_like(30, shape=(5, 5), random_state=0)
    model = PerturbedStructuredClassifier(
        solver=GridShortestPath(shape=(5, 5)), epsilon=5.0, model="linear", max_iter=2,
        random_state=0,
    )
    with pytest.raises(ValueError, match="multiplicative"):
        model.fit(X.reshape(len(X), -1), paths)


def test_item_features_share_one_model_across_items():
    # Listwise learning to rank: each item's relevance is a fixed linear
    # function of its own features, so one shared linear scorer suffices.
    rng = np.random.RandomState(0)
    X_items = rng.randn(600, 6, 4)
    Y = X_items @ rng.randn(4)
    X = X_items.reshape(600, -1)
    model = PerturbedRankingRegressor(n_item_features=4, model="linear", random_state=0)
    model.fit(X[:500], Y[:500])
    assert [W.shape for W in model.coefs_] == [(4, 1)]
    assert model.score(X[500:], Y[500:]) > 0.95
    # Permuting the items permutes the scores: the model is shared.
    perm = rng.permutation(6)
    permuted = X_items[:, perm].reshape(600, -1)
    np.testing.assert_allclose(model.predict_scores(permuted), model.predict_scores(X)[:, perm])
    with pytest.raises(ValueError, match="n_item_features=5"):
        PerturbedRankingRegressor(n_item_features=5).fit(X, Y)


# --------------------------------------------------------- bad inputs are named
@pytest.fixture(scope="module")
def small_ranks():
    return make_perfect_ranks(n_samples=40, n_features=3, n_labels=4, random_state=0)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("weights, match", [
    (-np.ones(40), "Negative values"),
    (np.r_[np.ones(20), -np.ones(20)], "Negative values"),
    (np.zeros(40), "at least one non-zero"),
])
def test_sample_weight_negative_or_all_zero_is_refused(small_ranks, method, weights, match):
    X, Y = small_ranks
    model = PerturbedRankingRegressor(model="linear", max_iter=2, random_state=0)
    with pytest.raises(ValueError, match=match):
        getattr(model, method)(X, Y, sample_weight=weights)


@pytest.mark.parametrize("split", ["training", "validation"])
def test_early_stopping_split_without_weight_is_named(small_ranks, split, monkeypatch):
    from sk_perturbed import _base

    X, Y = small_ranks
    params = dict(model="linear", max_iter=3, early_stopping=True, validation_fraction=0.5,
                  random_state=0)
    # A known split: the first half trains, the second validates.
    monkeypatch.setattr(_base, "train_test_split", lambda idx, **kwargs: (idx[:20], idx[20:]))
    weights = np.r_[np.zeros(20), np.ones(20)] if split == "training" else np.r_[np.ones(20), np.zeros(20)]
    with pytest.raises(ValueError, match=f"every sample of the {split} split has sample_weight 0"):
        PerturbedRankingRegressor(**params).fit(X, Y, sample_weight=weights)


def test_sparse_targets_are_refused(small_ranks, blobs):
    import scipy.sparse as sp

    X, Y = small_ranks
    with pytest.raises(TypeError, match="sparse y"):
        PerturbedRankingRegressor(max_iter=1).fit(X, sp.csr_matrix(Y))
    with pytest.raises(TypeError, match="sparse y"):
        PerturbedStructuredClassifier(solver="topk", max_iter=1).fit(X, sp.csr_matrix(Y > 2))


def test_partial_fit_classes_must_not_change(blobs):
    X, y = blobs
    model = PerturbedStructuredClassifier(model="linear", random_state=0)
    model.partial_fit(X, y, classes=[0, 1, 2])
    model.partial_fit(X, y, classes=[2, 1, 0])  # the same set, in any order
    for classes in ([0, 1, 2, 3], ["a", "b", "c"]):
        with pytest.raises(ValueError, match="is not the same as the classes of the fitted model"):
            model.partial_fit(X, y, classes=classes)
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])
    structures = TopK(k=2)(X[:, :4])
    with pytest.raises(ValueError, match="classes is for 1-D class labels"):
        PerturbedStructuredClassifier(solver="topk").partial_fit(X, structures, classes=[0, 1])


def test_callable_solver_for_labels_must_be_one_hot(blobs):
    X, y = blobs

    def top2(theta):
        out = np.zeros_like(theta)
        out[np.argsort(theta)[-2:]] = 1.0
        return out

    with pytest.raises(ValueError, match="one-hot rows"):
        PerturbedStructuredClassifier(solver=top2, max_iter=1).fit(X, y)

    def argmax_but_not_class_2(theta):  # a one-hot solver over a feasible subset
        out = np.zeros_like(theta)
        out[np.argmax(np.where(np.arange(theta.size) == 2, -np.inf, theta))] = 1.0
        return out

    model = PerturbedStructuredClassifier(solver=argmax_but_not_class_2, max_iter=1,
                                          model="linear", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    assert 2 not in model.predict(X)


def test_boolean_hidden_layer_sizes_are_refused(small_ranks):
    X, Y = small_ranks
    with pytest.raises(ValueError, match="hidden_layer_sizes must be positive integers"):
        PerturbedRankingRegressor(hidden_layer_sizes=(True,), max_iter=1).fit(X, Y)


@pytest.mark.parametrize("change", [
    dict(hidden_layer_sizes=(5,)), dict(model="linear"), dict(hidden_layer_sizes=(8, 8)),
])
def test_continuing_with_other_layers_is_refused(small_ranks, change):
    X, Y = small_ranks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm = PerturbedRankingRegressor(hidden_layer_sizes=(8,), max_iter=1, warm_start=True,
                                         random_state=0).fit(X, Y)
        partial = PerturbedRankingRegressor(hidden_layer_sizes=(8,), random_state=0)
        partial.partial_fit(X, Y)
        warm.set_params(activation="tanh").fit(X, Y)  # same layers: continues
    assert warm.n_iter_ == 2
    for model, method in ((warm, "fit"), (partial, "partial_fit")):
        model.set_params(**change)
        with pytest.raises(ValueError, match=r"layer sizes \[3, 8, 4\]"):
            getattr(model, method)(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fresh = clone(warm).set_params(warm_start=False).fit(X, Y)  # a new model is fine
    assert fresh.n_iter_ == 1


def test_noise_and_perturbation_combination_is_checked_at_fit(small_ranks):
    X, Y = small_ranks
    model = PerturbedRankingRegressor(noise="gumbel", perturbation="multiplicative", max_iter=1)
    with pytest.raises(ValueError, match="needs noise='gaussian'"):
        model.fit(X, Y)


@pytest.mark.parametrize("method", ["predict", "predict_scores", "predict_marginals",
                                    "predict_proba"])
def test_feature_name_warning_is_given_once(blobs, method):
    pd = pytest.importorskip("pandas")
    X, y = blobs
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = PerturbedStructuredClassifier(model="linear", max_iter=1, random_state=0)
        model.fit(frame, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        getattr(model, method)(X[:5])
    names = [w for w in caught if "feature names" in str(w.message)]
    assert len(names) == 1


def test_structure_targets_outside_the_solver_hull_are_named(blobs):
    X, _ = blobs
    Y = TopK(k=2)(X[:, :4])
    model = PerturbedStructuredClassifier(solver=TopK(k=2), max_iter=1, random_state=0)
    for bad in (np.ones_like(Y), 3 * Y):
        with pytest.raises(ValueError, match="Y row 0 is neither a structure of TopK"):
            clone(model).fit(X, bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, Y)
        model.fit(X, 0.5 * Y + 0.25)  # soft targets inside the hull are fine
    with pytest.raises(ValueError, match="Y row 0 is neither a structure of TopK"):
        model.set_params(warm_start=True).partial_fit(X, 3 * Y)


def test_assignment_by_name_needs_a_square_number_of_columns(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="n² columns"):
        PerturbedStructuredClassifier(solver="assignment").fit(X[:20], np.zeros((20, 5)))
    with pytest.raises(ValueError, match="Y has 5 columns, one per structure entry"):
        PerturbedStructuredClassifier(solver=TopK(k=6)).fit(X[:20], np.zeros((20, 5)))


def test_user_solver_subclass_targets_are_not_checked_and_stale_classes_are_dropped(blobs):
    from sk_perturbed.solvers import BaseSolver

    class Sign(BaseSolver):  # structures in {-1, +1}^d: not 0/1
        def _solve_batch(self, theta):
            return np.where(theta >= 0, 1.0, -1.0)

    X, y = blobs
    Y = Sign()(X[:, :4])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        PerturbedStructuredClassifier(solver=Sign(), backend="numpy", max_iter=2,
                                      random_state=0).fit(X, Y)
    # A failed first partial_fit leaves no classes behind for a later fit.
    model = PerturbedStructuredClassifier(model="linear", max_iter=2, random_state=0)
    with pytest.raises(ValueError, match="Negative values"):
        model.partial_fit(X, y, classes=[0, 1, 2, 3], sample_weight=-np.ones(len(y)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])


# ------------------------------------------- scikit-learn integration details
def _topk_problem(n=120, d=6, k=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    return X, TopK(k=k)(X @ rng.standard_normal((4, d))).astype(int)


def test_scorers_work_on_structures():
    # scikit-learn's scorers read classes_ of every classifier: with 2-D
    # structures it holds the column indices, as MLPClassifier's multilabel.
    from sklearn.model_selection import cross_val_score

    from sk_perturbed.metrics import hamming_score, hamming_scorer

    X, Y = _topk_problem()
    model = PerturbedStructuredClassifier(solver=TopK(k=2), max_iter=30, random_state=0)
    model.fit(X, Y)
    np.testing.assert_array_equal(model.classes_, np.arange(6))
    assert hamming_scorer(model, X, Y) == pytest.approx(hamming_score(Y, model.predict(X)))
    scores = cross_val_score(clone(model), X, Y, scoring="accuracy", cv=3, error_score="raise")
    assert np.all(scores > 0.5)
    assert not hasattr(model, "predict_proba") and not hasattr(model, "predict_log_proba")
    # Refitting on labels brings the label classes back.
    model.set_params(solver="argmax").fit(X, Y.argmax(axis=1) % 3)
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])


def test_predict_log_proba(blobs):
    X, y = blobs
    model = PerturbedStructuredClassifier(model="linear", max_iter=20, random_state=0).fit(X, y)
    np.testing.assert_allclose(np.exp(model.predict_log_proba(X)), model.predict_proba(X))
    # A Monte Carlo frequency of 0 is log 0 = -inf, without a warning.
    model = PerturbedStructuredClassifier(
        model="linear", perturbation="multiplicative", n_samples=2, max_iter=20, random_state=0
    ).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_proba = model.predict_log_proba(X)
    assert np.isneginf(log_proba).any()


def test_failed_fit_leaves_the_previous_model(blobs):
    X, Y = _topk_problem()
    Y_bad = TopK(k=3)(X @ np.ones((4, 6)) + np.arange(6))
    model = PerturbedStructuredClassifier(solver=TopK(k=2), max_iter=5, random_state=0)
    with pytest.raises(ValueError, match="k = 2"):
        model.fit(X, Y_bad)
    with pytest.raises(NotFittedError):
        model.predict(X)  # not a silently untrained model
    model.fit(X, Y)
    before = model.predict(X), [W.copy() for W in model.coefs_], model.n_iter_
    with pytest.raises(ValueError, match="k = 2"):
        model.fit(X, Y_bad)
    np.testing.assert_array_equal(model.predict(X), before[0])
    assert model.n_iter_ == before[2]
    # A continued fit that diverges puts back the weights and the optimizer.
    X_labels, y = blobs
    model = PerturbedStructuredClassifier(model="linear", max_iter=3, random_state=0)
    model.fit(X_labels, y)
    coefs, t, curve = [W.copy() for W in model.coefs_], model.t_, list(model.loss_curve_)
    model.set_params(warm_start=True, learning_rate_init=1e300)
    with pytest.raises(ValueError, match="diverged"):
        model.fit(X_labels, y)
    for W, W0 in zip(model.coefs_, coefs):
        np.testing.assert_array_equal(W, W0)
    assert (model.t_, model.loss_curve_) == (t, curve)
    assert model._optimizer.params[0] is model.coefs_[0]


def test_warm_start_follows_a_changed_solver():
    X, Y2 = _topk_problem(k=2)
    _, Y3 = _topk_problem(k=3)
    model = PerturbedStructuredClassifier(
        solver=TopK(k=2), warm_start=True, max_iter=5, random_state=0
    ).fit(X, Y2)
    model.set_params(solver__k=3).fit(X, Y3)
    assert model.solver_.k == 3
    assert np.all(model.predict(X).sum(axis=1) == 3)
    with pytest.raises(ValueError, match="positive costs"):
        model.set_params(solver=GridShortestPath(shape=(2, 3))).partial_fit(X, Y3)
    assert model.solver_.k == 3


def test_warm_start_follows_changed_optimizer_and_stopping_parameters(blobs):
    X, y = blobs
    model = PerturbedStructuredClassifier(model="linear", max_iter=2, warm_start=True,
                                          random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
        adam = model._optimizer
        model.fit(X, y)
        assert model._optimizer is adam  # unchanged settings: the state carries on
        model.set_params(optimizer="sgd", learning_rate_init=0.05).fit(X, y)
        assert type(model._optimizer).__name__ == "SGDOptimizer"
        assert model._optimizer.lr == 0.05
        model.set_params(early_stopping=True).fit(X, y)
    assert len(model.validation_scores_) == 2 and model.best_loss_ is None
    assert model.n_iter_ == 8


def test_keyboard_interrupt_keeps_the_model(ranks, monkeypatch):
    X, Y = ranks[0][:300], ranks[1][:300]
    params = dict(model="linear", tol=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ten_epochs = PerturbedRankingRegressor(max_iter=10, **params).fit(X, Y)
    run_epoch = PerturbedRankingRegressor._run_epoch

    def interrupted(self, *args):
        if self.n_iter_ == 10:
            raise KeyboardInterrupt
        return run_epoch(self, *args)

    monkeypatch.setattr(PerturbedRankingRegressor, "_run_epoch", interrupted)
    model = PerturbedRankingRegressor(max_iter=50, **params)
    with pytest.warns(UserWarning, match="interrupted by user"):
        model.fit(X, Y)
    # As scikit-learn's MLPs: the epochs done so far are kept.
    assert model.n_iter_ == 10 and model.loss_curve_ == ten_epochs.loss_curve_
    for W, W_ten in zip(model.coefs_, ten_epochs.coefs_):
        np.testing.assert_array_equal(W, W_ten)


@pytest.mark.parametrize("Estimator", [PerturbedRankingRegressor, PerturbedStructuredClassifier])
def test_sparse_X_gives_the_dense_fit(Estimator, ranks, blobs):
    import scipy.sparse as sp

    X, Y = (ranks[0][:300], ranks[1][:300]) if Estimator is PerturbedRankingRegressor else blobs
    X = np.where(np.abs(X) < 0.8, 0.0, X)
    params = dict(max_iter=5, early_stopping=True, random_state=0)
    dense = Estimator(**params).fit(X, Y)
    for X_sparse in (sp.csr_matrix(X), sp.csc_array(X)):
        model = Estimator(**params).fit(X_sparse, Y)
        for W, W_dense in zip(model.coefs_, dense.coefs_):
            np.testing.assert_allclose(W, W_dense, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(model.predict(X_sparse), dense.predict(X))
        np.testing.assert_allclose(
            model.predict_marginals(X_sparse), dense.predict_marginals(X), atol=1e-12
        )


def test_ranker_predicts_average_ranks_for_tied_scores(small_ranks):
    X, Y = small_ranks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = PerturbedRankingRegressor(model="linear", max_iter=2, random_state=0).fit(X, Y)
    model.coefs_[0][:, 1] = model.coefs_[0][:, 0]
    model.intercepts_[0][1] = model.intercepts_[0][0]  # items 0 and 1 always tie
    ranks = model.predict(X)
    np.testing.assert_array_equal(ranks[:, 0], ranks[:, 1])
    np.testing.assert_array_equal(ranks, rankdata(model.predict_scores(X), axis=1))
    # A constant model ranks nothing: Spearman 0, not an order made up from columns.
    model.coefs_[0][:] = 0
    model.intercepts_[0][:] = 0.5
    assert model.score(X, Y) == 0.0


@pytest.mark.parametrize("n_batches", [1, 4])
def test_reported_loss_counts_the_l2_term_of_every_batch(small_ranks, n_batches):
    from sk_perturbed.perturbed import squared_loss

    X, Y = small_ranks
    # A step too small to move the weights: the epoch's loss is at the initial ones.
    model = PerturbedRankingRegressor(
        loss="squared", alpha=3.0, batch_size=len(X) // n_batches, learning_rate_init=1e-300,
        max_iter=1, shuffle=False, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, Y)
    data_term = squared_loss(model.predict_scores(X), rankdata(Y, axis=1))[0].mean()
    l2 = 0.5 * 3.0 * sum(np.vdot(W, W) for W in model.coefs_)
    # Each batch's objective has its own L2 term, as in scikit-learn's MLPs.
    assert model.loss_curve_[0] == pytest.approx(data_term + n_batches * l2 / len(X), rel=1e-12)


def test_multiplicative_fenchel_young_is_taken_scale_free():
    from sk_perturbed._loss import FenchelYoungLoss
    from sk_perturbed.perturbed import PerturbedOptimizer, fenchel_young_loss

    rng = np.random.default_rng(3)
    theta = rng.uniform(0.5, 2.0, (5, 6))
    y = TopK(k=2)(-theta + rng.normal(size=theta.shape))
    po = PerturbedOptimizer(TopK(k=2), epsilon=0.5, n_samples=20, perturbation="multiplicative")
    loss = FenchelYoungLoss(po)
    keys = np.arange(5)
    values, grad = loss.loss_gradient(theta, y, keys, seed=7)
    # The value is the public loss at θ / mean|θ|, the same for any scale of θ.
    normalized = theta / theta.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(
        values, fenchel_young_loss(normalized, y, po, row_keys=keys, seed=7)[0], rtol=1e-12
    )
    np.testing.assert_allclose(loss.loss_gradient(3.0 * theta, y, keys, seed=7)[0], values,
                               rtol=1e-12)
    # No component along θ (shrinking θ cannot lower it); elsewhere the
    # chain rule, checked by central differences with the same noise.
    np.testing.assert_allclose((grad * theta).sum(axis=1), 0, atol=1e-12)
    step = 1e-6 * rng.standard_normal(theta.shape)
    change = (loss.loss_gradient(theta + step, y, keys, seed=7)[0]
              - loss.loss_gradient(theta - step, y, keys, seed=7)[0])
    np.testing.assert_allclose(change, 2 * (grad * step).sum(axis=1), rtol=1e-5, atol=1e-12)


def test_multiplicative_fit_does_not_shrink_costs_to_zero():
    from sk_perturbed.datasets import make_warcraft_like
    from sk_perturbed.solvers import GridShortestPath

    X, costs, paths = make_warcraft_like(200, shape=(6, 6), random_state=0)
    X = X.reshape(len(X), -1)
    model = PerturbedStructuredClassifier(
        solver=GridShortestPath(shape=(6, 6)), perturbation="multiplicative", epsilon=0.1,
        n_item_features=X.shape[1] // 36, hidden_layer_sizes=(16,), random_state=0,
    )
    regrets = []
    for epoch in range(1, 61):
        model.partial_fit(X[:150], paths[:150])
        if epoch in (10, 60):
            regrets.append(normalized_regret(costs[150:], model.predict(X[150:]),
                                             Y_true=paths[150:]))
    # Measured: mean cost 1.8, regret 0.076 -> 0.047. The plain loss shrank
    # the mean cost to 0.065 and the regret went up, 0.082 -> 0.101.
    assert model.predict_scores(X).mean() > 0.5
    assert regrets[1] < regrets[0]


def test_early_stopping_scores_a_dataframe_without_warnings(blobs):
    pd = pytest.importorskip("pandas")
    X, y = blobs
    X = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model = PerturbedStructuredClassifier(
            model="linear", early_stopping=True, max_iter=5, random_state=0
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
    assert len(model.validation_scores_) == 5
    assert not hasattr(model, "_scoring_validated_input")


def test_early_stopping_needs_two_validation_samples(small_ranks):
    X, Y = small_ranks
    model = PerturbedRankingRegressor(early_stopping=True, validation_fraction=0.02)
    with pytest.raises(ValueError, match="1 validation samples of 40"):
        model.fit(X, Y)


def test_warm_fits_hold_out_the_same_validation_rows(blobs, monkeypatch):
    from sk_perturbed import _base

    X, y = blobs
    splits = []
    split = _base.train_test_split

    def recording(*args, **kwargs):
        out = split(*args, **kwargs)
        splits.append(out[1])
        return out

    monkeypatch.setattr(_base, "train_test_split", recording)
    model = PerturbedStructuredClassifier(model="linear", early_stopping=True, warm_start=True,
                                          max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y).fit(X, y)
    np.testing.assert_array_equal(splits[0], splits[1])


def test_partial_fit_tracks_the_best_loss(small_ranks):
    X, Y = small_ranks
    model = PerturbedRankingRegressor(model="linear", random_state=0)
    for _ in range(3):
        model.partial_fit(X, Y)
    assert model.best_loss_ == min(model.loss_curve_)


def test_string_targets_are_refused_by_the_ranker(small_ranks):
    # Ranked as text, "5" would beat "20".
    X, Y = small_ranks
    with pytest.raises(ValueError, match="Y must hold numbers, got an array of dtype <U"):
        PerturbedRankingRegressor(model="linear", max_iter=2).fit(X, (Y * 5).astype(int).astype(str))


def test_partial_fit_after_an_early_stopped_fit(small_ranks):
    X, Y = small_ranks
    model = PerturbedRankingRegressor(model="linear", early_stopping=True, validation_fraction=0.25,
                                      max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, Y)
    assert model.best_loss_ is None
    model.set_params(early_stopping=False).partial_fit(X, Y)
    assert model.best_loss_ == model.loss_curve_[-1]


def test_partial_fit_validates_the_parameters_of_every_call(small_ranks):
    X, Y = small_ranks
    model = PerturbedRankingRegressor(model="linear", random_state=0).partial_fit(X, Y)
    before = [W.copy() for W in model.coefs_]
    for name, value in [("alpha", -1.0), ("loss", "bogus"), ("batch_size", 0), ("tol", np.nan)]:
        with pytest.raises(ValueError, match=f"'{name}' parameter"):
            model.set_params(**{name: value}).partial_fit(X, Y)
        model.set_params(**{name: PerturbedRankingRegressor().get_params()[name]})
    np.testing.assert_array_equal(model.coefs_[0], before[0])


def test_parameters_set_after_fit_are_validated_at_predict(blobs):
    # exact_marginals with epsilon < 0 would give the classes' probabilities reversed.
    X, y = blobs
    model = PerturbedStructuredClassifier(model="linear", max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    for name, value in [("epsilon", -1.0), ("noise", "bogus"), ("n_samples", 0), ("n_jobs", 0)]:
        model.set_params(**{name: value})
        for method in ("predict", "predict_proba", "predict_marginals"):
            with pytest.raises(ValueError, match=f"{name}"):
                getattr(model, method)(X)
        model.set_params(**{name: PerturbedStructuredClassifier().get_params()[name]})
    model.set_params(noise="gumbel", perturbation="multiplicative")
    with pytest.raises(ValueError, match="multiplicative"):
        model.predict_proba(X)


def _structure_model():
    X, Y = _topk_problem()
    model = PerturbedStructuredClassifier(solver=TopK(k=2), model="linear", max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, Y), X, Y


@pytest.mark.parametrize("change, match", [
    (lambda Y: (np.full(Y.shape, np.nan), None), "Y contains NaN"),
    (lambda Y: (Y[:-1], None), "Y and the predictions must have the same shape"),
    (lambda Y: (Y.astype(str), None), "bytes/strings"),
    (lambda Y: (Y, np.r_[-1000.0, np.ones(len(Y) - 1)]), "sample_weight must be non-negative"),
    (lambda Y: (Y, np.zeros(len(Y))), "sample_weight must not be all zero"),
    (lambda Y: (Y, np.ones(3)), "sample_weight must be a 1-D array of length"),
])
def test_structure_score_validates_targets_and_weights(change, match):
    # An exact-match ratio above 1 (a negative weight) or of 0 (NaN targets) came out silently.
    model, X, Y = _structure_model()
    Y_bad, weights = change(Y)
    with pytest.raises(ValueError, match=match):
        model.score(X, Y_bad, sample_weight=weights)


def test_label_score_refuses_negative_weights(blobs):
    X, y = blobs
    model = PerturbedStructuredClassifier(model="linear", max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        model.score(X, y, sample_weight=-np.ones(len(y)))
    assert model.score(X, y, sample_weight=np.ones(len(y))) == model.score(X, y)


@pytest.mark.parametrize("early_stopping, n_train", [(False, 40), (True, 30)])
def test_batch_size_warning_is_given_once_per_fit(small_ranks, early_stopping, n_train):
    X, Y = small_ranks
    model = PerturbedRankingRegressor(model="linear", max_iter=4, batch_size=1000,
                                      early_stopping=early_stopping, validation_fraction=0.25)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, Y)
    messages = [str(w.message) for w in caught if "batch_size" in str(w.message)]
    assert len(messages) == 1 and f"number of training samples {n_train}" in messages[0]


def test_predict_proba_after_structures_says_why():
    model, X, _ = _structure_model()
    with pytest.raises(AttributeError, match="only available after fitting 1-D class labels"):
        model.predict_proba(X)
    assert hasattr(PerturbedStructuredClassifier(), "predict_proba")
    # The class attribute is the documented method.
    assert PerturbedStructuredClassifier.predict_proba.__doc__.startswith("Probability")


def test_labels_outside_partial_fit_classes_and_tiny_stratified_splits_are_named(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=r"Y contains labels not in classes: array\(\[0, 1, 2\]\)"):
        PerturbedStructuredClassifier().partial_fit(X, y, classes=[5, 6, 7])
    with pytest.raises(ValueError, match="early_stopping with validation_fraction=0.1 cannot split 10"):
        PerturbedStructuredClassifier(early_stopping=True).fit(X[:10], y[:10])


def test_float64_input_beyond_a_float32_model_is_named(small_ranks):
    X, Y = small_ranks
    model = PerturbedRankingRegressor(model="linear", max_iter=2).fit(X.astype(np.float32), Y)
    with pytest.raises(ValueError, match="beyond the range of float32"):
        model.predict(np.full((1, X.shape[1]), 1e300))


def test_negative_zero_rows_get_the_noise_of_zero_rows(small_ranks):
    X, Y = small_ranks
    model = PerturbedRankingRegressor(model="linear", max_iter=2, random_state=0).fit(X, Y)
    rows = np.zeros((2, X.shape[1]))
    rows[1] = -0.0
    marginals = model.predict_marginals(rows)
    np.testing.assert_array_equal(marginals[0], marginals[1])


def test_skip_parameter_validation_is_honoured_at_predict(small_ranks):
    from sklearn import config_context

    X, Y = small_ranks
    model = PerturbedRankingRegressor(model="linear", max_iter=2, random_state=0).fit(X, Y)
    expected = model.predict(X)
    model.set_params(alpha=-1.0)  # not read by predict
    with pytest.raises(ValueError, match="'alpha' parameter"):
        model.predict(X)
    with config_context(skip_parameter_validation=True):
        np.testing.assert_array_equal(model.predict(X), expected)
