"""
====================================================
Shortest paths on Warcraft-like terrain maps
====================================================

The shortest-path experiment of Berthet et al. (2020), after Vlastelica et al.
(2019): each map is a grid of cells with a hidden terrain type (road, grass,
forest, mountain, water) and a traversal cost. The model sees noisy features of
every cell, never the costs, and is trained **only from the optimal paths**:
it must predict cell costs whose shortest path (Dijkstra, 8 neighbours, top-left
to bottom-right) is the true one.

:class:`~sk_perturbed.PerturbedStructuredClassifier` learns the costs θ =
``g_w(x)`` with the perturbed Fenchel–Young loss around
:class:`~sk_perturbed.solvers.GridShortestPath`. Dijkstra needs non-negative
costs, so the perturbation is multiplicative, ``θ ⊙ exp(εZ − ε²/2)``, which keeps
every cost's sign. Maps are 8×8 (the paper's are 12×12) to keep the example
fast.
"""

# %%
# Data
# ----
# :func:`~sk_perturbed.datasets.make_warcraft_like` returns per-cell features
# ``X`` of shape (n_maps, n_cells, 16), the true costs and the shortest paths.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge

from sk_perturbed import PerturbedStructuredClassifier
from sk_perturbed.datasets import TERRAIN_COSTS, TERRAIN_TYPES, make_warcraft_like
from sk_perturbed.metrics import normalized_regret
from sk_perturbed.solvers import GridShortestPath

shape = (8, 8)
X, costs, paths = make_warcraft_like(600, shape=shape, random_state=0)
n_maps, n_cells, n_features = X.shape
n_train = 500

# %%
# One model for every cell
# ------------------------
# Each map is one sample whose row holds the 16 features of each of its cells
# side by side. With ``n_item_features=16`` the estimator applies one model,
# shared by all cells, to each cell's own features (the weight sharing of the
# paper's convolutional network) and reads its outputs as the map's costs.
X_rows = X.reshape(n_maps, -1)
X_train, X_test = X_rows[:n_train], X_rows[n_train:]

# %%
# The solver
# ----------
# ``GridShortestPath`` minimizes: θ is read as cell costs. Dijkstra needs
# non-negative costs, so the solver declares ``requires_positive`` and the
# estimator predicts costs through a softplus; the multiplicative perturbation
# ``θ ⊙ exp(εZ − ε²/2)`` keeps them positive.
dijkstra = GridShortestPath(shape=shape, neighborhood=8)
print("positive costs required:", dijkstra.requires_positive)

# %%
# Training from paths only
# ------------------------
# For comparison, the same model trained with the ``'squared'`` loss regresses
# the path indicators directly (no solver in training).
warnings.filterwarnings("ignore", category=ConvergenceWarning)  # short budget
models = {}
for loss in ["fenchel_young", "squared"]:
    models[loss] = PerturbedStructuredClassifier(
        solver=dijkstra, loss=loss, n_item_features=n_features, hidden_layer_sizes=(32,),
        perturbation="multiplicative", epsilon=0.1, n_samples=1, batch_size=32,
        learning_rate_init=1e-3, max_iter=30, tol=0.0, n_iter_no_change=30, random_state=0,
    ).fit(X_train, paths[:n_train])

# A reference with more information: ridge regression of each cell's true cost
# on its features ("predict, then optimize").
ridge = Ridge(alpha=1.0).fit(X[:n_train].reshape(-1, n_features), costs[:n_train].ravel())
ridge_costs = ridge.predict(X[n_train:].reshape(-1, n_features)).reshape(-1, n_cells)

predictions = {
    "FY loss, from paths": models["fenchel_young"].predict(X_test),
    "squared loss, from paths": models["squared"].predict(X_test),
    "ridge, from costs": dijkstra(np.maximum(ridge_costs, 0.0)),
}
for name, P in predictions.items():
    regret = normalized_regret(costs[n_train:], P, Y_true=paths[n_train:])
    exact = np.mean(np.all(P == paths[n_train:], axis=1))
    print(f"{name:>25}: normalized regret {regret:.3f}, exact paths {exact:.0%}")

# %%
# The Fenchel–Young loss turns the paths into a training signal for the costs:
# trained from paths alone, its regret is below that of ridge regression,
# which sees the true cost of every cell, and far below the squared loss on the
# same supervision (which can only push the costs of path cells towards zero).
#
# Drawing the predicted path
# --------------------------


def path_cells(mask):
    """(row, col) of the cells of a path, in order from the top-left corner."""
    mask = mask.reshape(shape).astype(bool)
    cell, visited = (0, 0), [(0, 0)]
    while cell != (shape[0] - 1, shape[1] - 1):
        r, c = cell
        cell = next((r + dr, c + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
                    if 0 <= r + dr < shape[0] and 0 <= c + dc < shape[1]
                    and mask[r + dr, c + dc] and (r + dr, c + dc) not in visited)
        visited.append(cell)
    return np.array(visited)


terrain_colours = ListedColormap(["#bfa27a", "#9ccc65", "#2e7d32", "#8d8d8d", "#4f83cc"])
terrain = np.searchsorted(TERRAIN_COSTS, costs[n_train:])
predicted_costs = models["fenchel_young"].predict_scores(X_test)
fig, axes = plt.subplots(2, 3, figsize=(9, 6.2))
for k in range(3):
    ax = axes[0, k]
    ax.imshow(terrain[k].reshape(shape), cmap=terrain_colours, vmin=0, vmax=4)
    for label, path, style in [("true path", paths[n_train + k], "w-"),
                               ("predicted", predictions["FY loss, from paths"][k], "r--")]:
        cells = path_cells(path)
        ax.plot(cells[:, 1], cells[:, 0], style, lw=2.5, label=label)
    ax.set_axis_off()
    ax.set_title(f"test map {k}")
    axes[1, k].imshow(predicted_costs[k].reshape(shape), cmap="viridis")
    axes[1, k].set_axis_off()
    axes[1, k].set_title("predicted costs")
axes[0, 0].legend(fontsize="x-small", loc="lower left")
handles = [plt.Rectangle((0, 0), 1, 1, color=terrain_colours(i)) for i in range(5)]
fig.legend(handles, [f"{t} ({c:g})" for t, c in zip(TERRAIN_TYPES, TERRAIN_COSTS)],
           loc="lower center", ncol=5, fontsize="small")
fig.tight_layout(rect=(0, 0.05, 1, 1))
