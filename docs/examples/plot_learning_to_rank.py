"""
=============================================
Learning to rank documents grouped by query
=============================================

In learning to rank each row is a document with its own features, ``qid``
says which query it answers, and the grades say how relevant it is. Queries
have different numbers of documents. :class:`~sk_perturbed.PerturbedRanker`
scores each document with one model and trains it, query by query, with
the Fenchel–Young loss of a perturbed ranking whose positions are weighted
by the DCG discounts.

Here we use the sample data of LightGBM's lambdarank example (shipped with
the package) and compare the ranker with a pointwise baseline, an
:class:`~sklearn.neural_network.MLPRegressor` fitted to the grades, on the
NDCG@k of the held-out queries.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.neural_network import MLPRegressor

from sk_perturbed import PerturbedRanker
from sk_perturbed.datasets import load_learning_to_rank
from sk_perturbed.metrics import ndcg_score

X, y, qid = load_learning_to_rank("train")
X_test, y_test, qid_test = load_learning_to_rank("test")
sizes = np.bincount(qid)
print(f"{X.shape[0]} documents, {sizes.size} queries of {sizes.min()} to {sizes.max()} documents")
print("grades:", np.unique(y))

# %%
# Fit
# ---
# ``qid`` goes to ``fit`` with the data (in a pipeline or a grid search it is
# routed there by scikit-learn's metadata routing; see the user guide). The
# pointwise model only sees the documents, not the queries.
ranker = PerturbedRanker(random_state=0).fit(X, y, qid=qid)
pointwise = MLPRegressor(random_state=0, max_iter=200).fit(X, y)

# %%
# NDCG@k on the test queries
# --------------------------
# ``ranker.score`` is the mean NDCG@10; :func:`~sk_perturbed.metrics.ndcg_score`
# gives any cut-off.
ks = np.arange(1, 11)
curves = {
    "PerturbedRanker": [ndcg_score(y_test, ranker.predict(X_test), qid_test, k=k) for k in ks],
    "pointwise MLPRegressor": [
        ndcg_score(y_test, pointwise.predict(X_test), qid_test, k=k) for k in ks
    ],
}
print(f"PerturbedRanker NDCG@10 = {ranker.score(X_test, y_test, qid_test):.3f}")

fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
for label, values in curves.items():
    ax.plot(ks, values, "o-", label=label)
ax.set_xlabel("k")
ax.set_ylabel("test NDCG@k")
ax.set_title("Held-out queries")
ax.legend()
ax.grid(alpha=0.3)

# %%
# Soft weights of one query
# -------------------------
# ``predict_marginals`` gives each document's expected DCG weight under the
# perturbations of its score (``w_1 = 1`` for a document always ranked
# first). A small ε is close to the hard ranking, a large one spreads the
# weights towards their mean; within the query they always sum to the sum of
# the weights.
query = qid_test == 0
order = np.argsort(-ranker.predict(X_test[query]))
for epsilon in (0.1, 1.0, 5.0):
    ranker.set_params(epsilon=epsilon)
    soft = ranker.predict_marginals(X_test[query], qid_test[query])
    ax2.plot(np.arange(1, query.sum() + 1), soft[order], "o-", label=f"ε = {epsilon}")
ax2.set_xlabel("predicted position")
ax2.set_ylabel("soft DCG weight")
ax2.set_title(f"Query 0 of the test split ({query.sum()} documents)")
ax2.legend()
ax2.grid(alpha=0.3)
fig.tight_layout()
plt.show()
