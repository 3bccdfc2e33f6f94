"""Soft ranks y_ε(θ) of a fixed score vector as the noise scale ε grows."""

import matplotlib.pyplot as plt
import numpy as np

from sk_perturbed.perturbed import PerturbedOptimizer
from sk_perturbed.solvers import Ranking

theta = np.array([[0.0, 0.3, 1.0, 1.2, 2.5]])
epsilons = np.geomspace(0.01, 20, 40)
soft_ranks = np.vstack([
    PerturbedOptimizer(Ranking(), epsilon=eps, n_samples=2000, random_state=0)(theta)
    for eps in epsilons
])

fig, ax = plt.subplots(figsize=(6, 3.5))
for j in range(theta.shape[1]):
    ax.semilogx(epsilons, soft_ranks[:, j], label=f"θ = {theta[0, j]:g}")
ax.axhline(3.0, color="grey", lw=0.8, ls="--")
ax.set_xlabel("ε")
ax.set_ylabel("soft rank  $y_ε(θ)_j$")
ax.set_title("Ranking: from hard ranks (ε → 0) to the centre (ε → ∞)")
ax.legend(fontsize="small", loc="upper left")
fig.tight_layout()
