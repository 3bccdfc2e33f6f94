"""Learning-to-rank data: documents grouped by query, with graded relevance."""

import os
from importlib import resources
from numbers import Integral, Real

import numpy as np
from sklearn.datasets import load_svmlight_file
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_params,
)

_DATA_DIR = "data/learning_to_rank"
_N_FEATURES = 300

# Scale of the interaction term of make_ranking_groups: Var(tanh(2 x y)) is
# about 0.457 for independent standard normal x, y, so 1.5 / sqrt(n_pairs)
# gives the term a variance of about 1.03, on a par with the linear term.
_INTERACTION_SCALE = 1.5


def _group_sizes(group_size, n_queries, rng):
    if isinstance(group_size, Integral):
        low = high = int(group_size)
    else:
        if not (
            len(group_size) == 2
            and all(isinstance(v, Integral) and not isinstance(v, bool) for v in group_size)
        ):
            raise ValueError(
                "group_size must be an int or a (low, high) tuple of two ints; "
                f"got {group_size!r}."
            )
        low, high = (int(v) for v in group_size)
    if not 1 <= low <= high:
        raise ValueError(
            f"group_size must satisfy 1 <= low <= high; got {group_size!r}."
        )
    return rng.randint(low, high + 1, size=n_queries)


@validate_params(
    {
        "n_queries": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "group_size": [Interval(Integral, 1, None, closed="left"), tuple],
        "n_levels": [Interval(Integral, 2, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "n_informative": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_ranking_groups(
    n_queries=1000,
    n_features=20,
    group_size=(5, 50),
    n_levels=5,
    noise=0.5,
    n_informative=None,
    random_state=None,
):
    """Generate a synthetic learning-to-rank problem with query groups.

    Query ``q`` gets ``n_q`` documents. Each document has standard normal
    features ``x`` and a latent utility::

        s = x[:m] @ w + c * sum_{p < P} tanh(2 * x[2p] * x[2p + 1]) + b_q + noise * e

    with ``m = n_informative`` (the first ``m`` columns are informative, the
    others pure noise), ``w ~ N(0, I_m)`` rescaled to unit length (so the
    linear term is standard normal), ``P = m // 2`` disjoint pairs of
    informative features in an XOR-like interaction that no linear function
    of ``x`` can capture, ``c = 1.5 / sqrt(P)`` (the interaction term then
    has variance about 1), a per-query offset ``b_q ~ N(0, 1)`` shared by
    all documents of the query and ``e ~ N(0, 1)`` per document.

    The grade of a document is the number of thresholds ``t_1 < ... <
    t_{L-1}`` (``L = n_levels``) that ``s`` exceeds, where ``t_l`` is the
    empirical ``1 - 2**-l`` quantile of ``s`` over all documents: about half
    of the documents get grade 0, a quarter grade 1, an eighth grade 2, and so
    on, the top two grades sharing the last ``2**-(L-2)``.

    The offset ``b_q`` does not change the order of the documents of a query,
    but with the global thresholds it moves all their grades up or down (some
    queries have no relevant document at all). A method that compares
    documents within a query is unaffected by it; a pointwise regression of
    the grades on ``x`` sees it as extra label noise that ``x`` cannot
    explain.

    Parameters
    ----------
    n_queries : int, default=1000
        Number of queries.

    n_features : int, default=20
        Number of features.

    group_size : int or tuple of (int, int), default=(5, 50)
        Number of documents per query: an int fixes it, a ``(low, high)``
        tuple draws each query's size uniformly from the integers
        ``low..high`` (both included). ``1 <= low <= high``.

    n_levels : int, default=5
        Number of relevance grades ``L``, at least 2; grades are ``0..L-1``.

    noise : float, default=0.5
        Standard deviation of the per-document Gaussian noise on the latent
        utility.

    n_informative : int or None, default=None
        Number ``m`` of informative features, at most ``n_features``.
        ``None`` uses ``min(10, n_features)``.

    random_state : int, RandomState instance or None, default=None
        Seed of the draws, made in this order: ``w``, the group sizes, the
        offsets ``b``, ``X``, then ``e``. Fixed seed, fixed output.

    Returns
    -------
    X : ndarray of shape (n_documents, n_features)
        Float64 features, one row per document, queries in contiguous rows.

    y : ndarray of shape (n_documents,)
        Relevance grades, integers ``0..n_levels-1`` stored as float64.

    qid : ndarray of shape (n_documents,)
        Int64 query ids ``0..n_queries-1``, sorted (the rows of query ``q``
        are contiguous).

    Notes
    -----
    The memory used is about the size of the output (``X`` plus a few
    vectors of length ``n_documents``); 10**6 documents with 20 features
    take about a second.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.datasets import make_ranking_groups
    >>> X, y, qid = make_ranking_groups(n_queries=3, n_features=4,
    ...                                 group_size=(2, 5), random_state=0)
    >>> X.shape[0] == y.shape[0] == qid.shape[0]
    True
    >>> np.unique(qid)
    array([0, 1, 2])
    >>> set(np.unique(y)) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    True
    """
    if n_informative is None:
        n_informative = min(10, n_features)
    if n_informative > n_features:
        raise ValueError(
            f"n_informative must be at most n_features={n_features}; "
            f"got {n_informative}."
        )
    rng = check_random_state(random_state)
    coef = rng.standard_normal(n_informative)
    coef /= np.linalg.norm(coef)
    sizes = _group_sizes(group_size, n_queries, rng)
    offsets = rng.standard_normal(n_queries)
    n_documents = int(sizes.sum())
    X = rng.standard_normal((n_documents, n_features))

    utility = X[:, :n_informative] @ coef
    n_pairs = n_informative // 2
    if n_pairs:
        scale = _INTERACTION_SCALE / np.sqrt(n_pairs)
        term = np.empty(n_documents)
        for p in range(n_pairs):
            # In place: one temporary vector whatever the number of pairs.
            np.multiply(X[:, 2 * p], X[:, 2 * p + 1], out=term)
            term *= 2.0
            np.tanh(term, out=term)
            term *= scale
            utility += term
    utility += np.repeat(offsets, sizes)
    if noise > 0:
        utility += noise * rng.standard_normal(n_documents)

    levels = np.arange(1, n_levels)
    thresholds = np.quantile(utility, 1.0 - 2.0**-levels)
    y = np.searchsorted(thresholds, utility, side="left").astype(np.float64)
    qid = np.repeat(np.arange(n_queries, dtype=np.int64), sizes)
    return X, y, qid


def _read_group_sizes(query_file, n_rows, what):
    """Read LightGBM group sizes and expand them to int64 query ids."""
    try:
        sizes = np.loadtxt(query_file, dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise ValueError(
            f"{what} must hold one non-negative integer (a group size) per line: {exc}"
        ) from exc
    if sizes.size and sizes.shape[1] != 1:
        raise ValueError(
            f"{what} must hold one group size per line; got {sizes.shape[1]} "
            "values per line."
        )
    sizes = sizes.reshape(-1)
    if np.any(sizes < 0):
        raise ValueError(f"{what} holds negative group sizes.")
    if sizes.sum() != n_rows:
        raise ValueError(
            f"The group sizes in {what} sum to {sizes.sum()}, but the data has "
            f"{n_rows} rows."
        )
    return np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)


@validate_params(
    {"split": [StrOptions({"train", "test"})]},
    prefer_skip_nested_validation=True,
)
def load_learning_to_rank(split="train"):
    """Load the learning-to-rank sample data of LightGBM's lambdarank example.

    Web-search-like data shipped with the package (MIT licence, see the
    ``LICENSE`` and ``README.md`` files in
    ``sk_perturbed/datasets/data/learning_to_rank``), from the
    ``examples/lambdarank`` folder of LightGBM.

    =====  ===========  =========  ==========  ======
    split  n_documents  n_queries  n_features  grades
    =====  ===========  =========  ==========  ======
    train  3005         201        300         0..4
    test   768          50         300         0..4
    =====  ===========  =========  ==========  ======

    Parameters
    ----------
    split : {'train', 'test'}, default='train'
        Which file to load.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_documents, 300)
        Float64 features. The files number features 1..300; column ``j`` is
        feature ``j + 1``.

    y : ndarray of shape (n_documents,)
        Relevance grades 0..4 (float64), higher is more relevant.

    qid : ndarray of shape (n_documents,)
        Int64 query ids ``0..n_queries-1`` in file order (sorted, queries
        in contiguous rows), expanded from the group sizes of the
        ``.query`` file.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.datasets import load_learning_to_rank
    >>> X, y, qid = load_learning_to_rank("test")
    >>> X.shape, np.unique(qid).size
    ((768, 300), 50)
    """
    folder = resources.files(__package__) / _DATA_DIR
    # as_file: load_svmlight_file decompresses '.gz' only given a path.
    with resources.as_file(folder / f"rank.{split}.gz") as path:
        X, y = load_svmlight_file(
            os.fspath(path), n_features=_N_FEATURES, dtype=np.float64, zero_based=False
        )
    with resources.as_file(folder / f"rank.{split}.query.gz") as path:
        qid = _read_group_sizes(os.fspath(path), X.shape[0], f"rank.{split}.query.gz")
    return X, y, qid


@validate_params(
    {
        "path": [str, os.PathLike, Interval(Integral, 0, None, closed="left"), HasMethods("read")],
        "query_file": [str, os.PathLike, HasMethods("read"), None],
        "n_features": [Interval(Integral, 1, None, closed="left"), None],
        "dtype": "no_validation",
        "zero_based": ["boolean", StrOptions({"auto"})],
    },
    prefer_skip_nested_validation=True,
)
def load_svmlight_ranking(
    path, *, query_file=None, n_features=None, dtype=np.float64, zero_based="auto"
):
    """Load a learning-to-rank file in svmlight/libsvm format with its queries.

    A thin wrapper over :func:`sklearn.datasets.load_svmlight_file` that
    always returns query ids. They come from ``query_file`` when it is given
    (LightGBM's format: one group size per line, the number of consecutive
    rows of each query in file order), else from the ``qid:`` fields of the
    file (the SVMrank / XGBoost format).

    Parameters
    ----------
    path : str, path-like, int or file-like
        The svmlight file, as accepted by
        :func:`~sklearn.datasets.load_svmlight_file` (``.gz`` and ``.bz2``
        paths are decompressed).

    query_file : str, path-like or file-like, default=None
        Group sizes, one integer per line (a ``.gz`` path is decompressed).
        They must sum to the number of rows; group ``i`` gets query id ``i``.
        Takes precedence over ``qid:`` fields in ``path``.

    n_features : int or None, default=None
        Number of features (columns of ``X``); ``None`` infers it from the
        largest feature index in the file. Set it when loading a train and a
        test file, so that their widths agree.

    dtype : numpy dtype, default=np.float64
        Data type of ``X`` and ``y``.

    zero_based : bool or 'auto', default='auto'
        Whether the feature indices of the file start at 0 or 1, see
        :func:`~sklearn.datasets.load_svmlight_file`. Pass an explicit
        value when loading several files, so that ``'auto'`` cannot guess
        differently for each.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_documents, n_features)
        Features.

    y : ndarray of shape (n_documents,)
        Target (relevance grades).

    qid : ndarray of shape (n_documents,)
        Int64 query id of each row.

    Raises
    ------
    ValueError
        If neither ``query_file`` nor ``qid:`` fields give the queries, if
        only some lines have a ``qid:`` field, or if the group sizes do not
        sum to the number of rows.

    Examples
    --------
    >>> import io
    >>> from sk_perturbed.datasets import load_svmlight_ranking
    >>> data = io.BytesIO(b"2 qid:1 1:0.5 3:1\\n0 qid:1 2:0.2\\n1 qid:4 1:0.1\\n")
    >>> X, y, qid = load_svmlight_ranking(data, n_features=3, zero_based=False)
    >>> X.shape, y.tolist(), qid.tolist()
    ((3, 3), [2.0, 0.0, 1.0], [1, 1, 4])
    >>> data = io.BytesIO(b"2 1:0.5 3:1\\n0 2:0.2\\n1 1:0.1\\n")
    >>> _, _, qid = load_svmlight_ranking(data, query_file=io.StringIO("2\\n1\\n"))
    >>> qid.tolist()
    [0, 0, 1]
    """
    X, y, file_qid = load_svmlight_file(
        path, n_features=n_features, dtype=dtype, zero_based=zero_based, query_id=True
    )
    n_rows = X.shape[0]
    if query_file is not None:
        qid = _read_group_sizes(query_file, n_rows, f"query_file {query_file!r}")
    elif file_qid.size == n_rows and n_rows > 0:
        qid = np.asarray(file_qid, dtype=np.int64)
    elif file_qid.size == 0:
        raise ValueError(
            f"No query ids for {path!r}: the file has no 'qid:' fields and no "
            "query_file (one group size per line, LightGBM's format) was given."
        )
    else:
        raise ValueError(
            f"Only {file_qid.size} of the {n_rows} lines of {path!r} have a 'qid:' "
            "field; every line needs one (or pass query_file)."
        )
    return X, y, qid
