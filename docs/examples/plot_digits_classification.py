"""
=====================================================
Classification with a perturbed argmax: predict_proba
=====================================================

With 1-D labels, :class:`~sk_perturbed.PerturbedStructuredClassifier` is a
multiclass classifier: scores θ = ``g_w(x)`` go through the argmax solver, and
``predict_proba`` is the perturbed argmax ``y_ε(θ)``, the probability that
each class wins when the scores are perturbed by noise of scale ε.

* With **Gumbel** noise, ``y_ε(θ) = softmax(θ/ε)`` and the Fenchel–Young loss
  is the logistic loss: the classifier is multinomial logistic regression.
* With **Gaussian** noise (the default), ``y_ε`` has no closed form as a
  softmax; the library computes it exactly by one-dimensional quadrature. The
  Gaussian tails are lighter than the Gumbel's, so for the same scores the
  probabilities are more peaked than the softmax's.

We fit both on the digits data set and compare their probabilities with a
softmax of the same scores.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from scipy.special import softmax
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sk_perturbed import PerturbedStructuredClassifier

digits = load_digits()
X, y = StandardScaler().fit_transform(digits.data), digits.target
X_train, X_test, y_train, y_test, _, images_test = train_test_split(
    X, y, digits.images, test_size=0.3, random_state=0
)

common = dict(model="linear", epsilon=1.0, n_samples=10, max_iter=60, alpha=1e-3, random_state=0)
gauss = PerturbedStructuredClassifier(noise="gaussian", **common).fit(X_train, y_train)
gumbel = PerturbedStructuredClassifier(noise="gumbel", **common).fit(X_train, y_train)
logreg = LogisticRegression(max_iter=1000).fit(X_train, y_train)
for name, clf in [("Gaussian noise", gauss), ("Gumbel noise", gumbel),
                  ("LogisticRegression", logreg)]:
    print(f"{name:>18}: test accuracy {clf.score(X_test, y_test):.3f}")

# %%
# Gumbel noise: predict_proba is the softmax of the scores
# ---------------------------------------------------------
theta = gumbel.predict_scores(X_test)
proba = gumbel.predict_proba(X_test)
print("max |predict_proba - softmax(θ/ε)| =",
      np.abs(proba - softmax(theta / gumbel.epsilon, axis=1)).max())

# %%
# Gaussian noise: predict_proba vs softmax of the same scores
# -----------------------------------------------------------
# Each point is one (test sample, class) pair. The Gaussian perturbed argmax is
# a sharper function of the scores than the softmax: it puts probabilities
# closer to 0 and 1.
theta = gauss.predict_scores(X_test)
proba = gauss.predict_proba(X_test)
soft = softmax(theta / gauss.epsilon, axis=1)
fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.scatter(soft.ravel(), proba.ravel(), s=4, alpha=0.4)
ax.plot([0, 1], [0, 1], "k--", lw=1)
ax.set(xlabel="softmax(θ/ε)", ylabel="predict_proba (Gaussian noise)", aspect="equal")
fig.tight_layout()

# %%
# Quality of the probabilities
# ----------------------------
# The test log-loss (lower is better) scores the probabilities themselves, not
# only their argmax.
from sklearn.metrics import log_loss

for name, clf in [("Gaussian noise", gauss), ("Gumbel noise", gumbel),
                  ("LogisticRegression", logreg)]:
    print(f"{name:>18}: test log-loss {log_loss(y_test, clf.predict_proba(X_test)):.3f}")

# %%
# The least confident test digits
# -------------------------------
# The four test digits with the lowest top probability under Gaussian noise,
# and the probabilities of both classifiers.
hardest = np.argsort(gauss.predict_proba(X_test).max(axis=1))[:4]
fig, axes = plt.subplots(2, 4, figsize=(9, 3.8))
for k, i in enumerate(hardest):
    axes[0, k].imshow(images_test[i], cmap="gray_r")
    axes[0, k].set_axis_off()
    axes[0, k].set_title(f"label {y_test[i]}")
    axes[1, k].bar(gauss.classes_ - 0.2, gauss.predict_proba(X_test[i : i + 1])[0],
                   width=0.4, label="Gaussian")
    axes[1, k].bar(gumbel.classes_ + 0.2, gumbel.predict_proba(X_test[i : i + 1])[0],
                   width=0.4, label="Gumbel")
    axes[1, k].set(xticks=range(10), ylim=(0, 1))
axes[1, 0].legend(fontsize="x-small")
fig.tight_layout()
