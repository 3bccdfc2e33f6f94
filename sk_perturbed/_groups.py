"""Query groups of learning-to-rank data: checking ``qid`` and laying rows out by query."""

import numpy as np


def check_qid_values(qid, row):
    """``qid`` as a 1-D array of finite ids (shared by the ranker and the metrics).

    ``row`` names what each entry belongs to in the error message.
    """
    qid = np.asarray(qid)
    if qid.ndim != 1:
        raise ValueError(
            f"qid must be a 1-D array with the query id of each {row}; got an array of "
            f"shape {qid.shape}."
        )
    if qid.dtype.kind in "fc" and not np.all(np.isfinite(qid)):
        raise ValueError("qid must not contain NaN or infinity.")
    return qid


def check_qid(qid, n_documents):
    """The query index (0..n_queries-1, in the order of ``np.unique(qid)``) of each row.

    The rows of a query need not be contiguous: rows with equal ids are one
    query wherever they are. A missing ``qid`` is an error, not one query: the
    usual cause is a meta-estimator that did not route it, and ranking all
    rows as one query would score a wrong model without a word.
    """
    if qid is None:
        raise ValueError(
            "qid is required: pass the query id of each row of X (qid=np.zeros(len(X)) "
            "if all rows are one query). Inside Pipeline, GridSearchCV or cross_validate, "
            "enable scikit-learn's metadata routing (sklearn.set_config("
            "enable_metadata_routing=True)) and pass qid=... to their fit or params, so that "
            "it reaches PerturbedRanker's fit and score."
        )
    qid = check_qid_values(qid, "row of X")
    if qid.shape[0] != n_documents:
        raise ValueError(
            f"qid has {qid.shape[0]} entries but X has {n_documents} rows: pass one query id "
            "per document (row of X)."
        )
    if qid.dtype.kind == "O":
        try:
            qid = qid.astype(str)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"qid must hold integers or strings: {exc}") from exc
    _, query = np.unique(qid, return_inverse=True)
    query = query.astype(np.int64, copy=False).reshape(-1)
    return query, int(query.max()) + 1 if n_documents else 0


class QueryLayout:
    """Rows grouped by query: ``rows[offsets[q]:offsets[q + 1]]`` are the rows of query ``q``.

    Within a query the rows keep their order in X.
    """

    def __init__(self, query, n_queries):
        self.query = query
        self.rows = np.argsort(query, kind="stable")
        self.sizes = np.bincount(query, minlength=n_queries)
        self.offsets = np.concatenate(([0], np.cumsum(self.sizes)))

    @property
    def n_queries(self):
        return self.sizes.shape[0]

    def rows_of(self, queries):
        """The rows of ``queries`` (an array of query indices), query after query."""
        sizes = self.sizes[queries]
        ends = np.cumsum(sizes)
        # Position k of the output belongs to the query whose slice spans it.
        shift = np.repeat(self.offsets[queries] - (ends - sizes), sizes)
        return self.rows[np.arange(ends[-1] if len(ends) else 0) + shift]
