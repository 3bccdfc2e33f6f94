"""Ranking data: the synthetic "perfect ranks" task and label ranking benchmarks."""

from importlib import resources
from numbers import Integral, Real

import numpy as np
from scipy.stats import rankdata
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, validate_params

LABEL_RANKING_DATASETS = (
    "authorship",
    "bodyfat",
    "cpu",
    "elevators",
    "glass",
    "housing",
    "iris",
    "vehicle",
    "vowel",
)

_DATA_DIR = "data/label_ranking"

_DESCR = """\
Label ranking benchmark: {name}
{underline}

{n_samples} samples, {n_features} features, {n_labels} labels.

One of the label ranking data sets of Cheng, Hühn & Hüllermeier (2009), built
from a UCI/Statlog classification or regression data set: features are scaled,
and each sample carries a complete ranking (no ties) of the labels. `target`
holds ranks in this library's convention: the most preferred label gets rank
n_labels (as scipy.stats.rankdata would give its highest score). The usual
protocol is 10-fold cross-validation with the mean Kendall tau as metric
(see sk_perturbed.metrics.kendall_tau_score).

Reference: W. Cheng, J. Hühn and E. Hüllermeier, "Decision tree and
instance-based learning for label ranking", ICML 2009.

The files were taken from the git history of the scikit-lr project
(alfaro96/scikit-lr) and are distributed under the MIT licence, whose text
is in the LICENSE file beside them
(sk_perturbed/datasets/data/label_ranking/LICENSE).
"""


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "n_labels": [Interval(Integral, 2, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "return_coef": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_perfect_ranks(
    n_samples=1000,
    n_features=20,
    n_labels=5,
    noise=0.0,
    *,
    random_state=None,
    return_coef=False,
):
    """Generate the synthetic "perfect ranks" label ranking problem.

    This is the synthetic ranking experiment of Berthet et al. (2020), §5:
    ``x_i ~ N(0, I)``, a fixed random weight matrix ``W0`` with standard
    normal entries, and ``y_i = rank(x_i W0 + noise * z_i)`` with
    ``z_i ~ N(0, I)``.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples.

    n_features : int, default=20
        Number of features ``p``.

    n_labels : int, default=5
        Number of labels ``d`` to rank, at least 2.

    noise : float, default=0.0
        Standard deviation ``sigma`` of the Gaussian noise added to the scores
        before ranking. With 0, the linear model ``X @ W0`` ranks perfectly.

    random_state : int, RandomState instance or None, default=None
        Seed of the draws of ``W0``, ``X`` and the noise. ``W0`` is drawn
        first, so for a fixed seed it does not depend on ``n_samples``.

    return_coef : bool, default=False
        If True, also return ``W0``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Input samples.

    Y : ndarray of shape (n_samples, n_labels)
        Float64 ranks 1..d of each row of the scores, d for the highest
        score (the convention of :func:`scipy.stats.rankdata`).

    coef : ndarray of shape (n_features, n_labels)
        The weights ``W0``; only returned if ``return_coef`` is True.

    References
    ----------
    Q. Berthet, M. Blondel, O. Teboul, M. Cuturi, J.-P. Vert and F. Bach,
    "Learning with Differentiable Perturbed Optimizers", NeurIPS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.datasets import make_perfect_ranks
    >>> X, Y = make_perfect_ranks(n_samples=3, n_features=4, n_labels=3,
    ...                           random_state=0)
    >>> X.shape, Y.shape
    ((3, 4), (3, 3))
    >>> np.sort(Y[0])
    array([1., 2., 3.])
    """
    rng = check_random_state(random_state)
    coef = rng.standard_normal((n_features, n_labels))
    X = rng.standard_normal((n_samples, n_features))
    scores = X @ coef
    if noise > 0:
        scores += noise * rng.standard_normal((n_samples, n_labels))
    Y = rankdata(scores, axis=1)
    if return_coef:
        return X, Y, coef
    return X, Y


@validate_params(
    {"name": [str], "return_X_y": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def load_label_ranking(name, *, return_X_y=True):
    """Load one of the nine shipped label ranking benchmark data sets.

    The data sets of Cheng, Hühn & Hüllermeier (2009), built from UCI/Statlog
    data; every ranking is complete (no ties). They ship with the package
    under the MIT licence (see the ``LICENSE`` file beside the data).

    ===========  =========  ==========  ========
    name         n_samples  n_features  n_labels
    ===========  =========  ==========  ========
    authorship   841        70          4
    bodyfat      252        7           7
    cpu          8192       6           5
    elevators    16599      9           9
    glass        214        9           6
    housing      506        6           6
    iris         150        4           3
    vehicle      846        18          4
    vowel        528        10          11
    ===========  =========  ==========  ========

    Parameters
    ----------
    name : str
        One of ``LABEL_RANKING_DATASETS``.

    return_X_y : bool, default=True
        If True return ``(X, Y)``, otherwise a :class:`~sklearn.utils.Bunch`.

    Returns
    -------
    (X, Y) : tuple of ndarrays
        Returned if ``return_X_y`` is True. ``X`` is float64 of shape
        (n_samples, n_features); ``Y`` is float64 of shape
        (n_samples, n_labels), each row a permutation of 1..n_labels where
        the most preferred label has rank n_labels (higher = better, as in
        :func:`scipy.stats.rankdata`). The files store rank positions
        (1 = most preferred); ``Y = n_labels + 1 - position``.

    data : :class:`~sklearn.utils.Bunch`
        Returned if ``return_X_y`` is False, with attributes ``data`` (X),
        ``target`` (Y), ``feature_names`` (``"feature_0"``, ...),
        ``target_names`` (``"label_0"``, ...) and ``DESCR``.

    Examples
    --------
    >>> from sk_perturbed.datasets import load_label_ranking
    >>> X, Y = load_label_ranking("iris")
    >>> X.shape, Y.shape
    ((150, 4), (150, 3))
    >>> bunch = load_label_ranking("iris", return_X_y=False)
    >>> bunch.target_names
    ['label_0', 'label_1', 'label_2']
    """
    if name not in LABEL_RANKING_DATASETS:
        raise ValueError(
            f"Unknown label ranking data set {name!r}; valid names are "
            f"{', '.join(LABEL_RANKING_DATASETS)}."
        )
    path = resources.files(__package__) / _DATA_DIR / f"{name}.csv"
    with path.open("r", encoding="ascii") as f:
        n_samples, n_features, n_labels = (int(v) for v in f.readline().split(","))
        table = np.loadtxt(f, delimiter=",", ndmin=2)
    if table.shape != (n_samples, n_features + n_labels):
        # Guards against a truncated or hand-edited package data file.
        raise ValueError(
            f"{name}.csv is corrupt: its header announces "
            f"{(n_samples, n_features + n_labels)} values, found {table.shape}."
        )
    X = np.ascontiguousarray(table[:, :n_features])
    Y = n_labels + 1 - table[:, n_features:]
    if return_X_y:
        return X, Y
    return Bunch(
        data=X,
        target=Y,
        feature_names=[f"feature_{k}" for k in range(n_features)],
        target_names=[f"label_{k}" for k in range(n_labels)],
        DESCR=_DESCR.format(
            name=name,
            underline="=" * (len("Label ranking benchmark: ") + len(name)),
            n_samples=n_samples,
            n_features=n_features,
            n_labels=n_labels,
        ),
    )
