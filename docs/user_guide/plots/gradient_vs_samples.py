"""Variance and bias of the Monte Carlo estimators as the number of samples M grows.

R independent estimates come from one call: θ is repeated on R rows and each
row draws its own noise (its row key), so statistics over rows are statistics
over independent runs.
"""

import matplotlib.pyplot as plt
import numpy as np

from sk_perturbed.perturbed import (
    PerturbedOptimizer,
    fenchel_young_loss,
    perturbed_squared_loss,
)
from sk_perturbed.solvers import Ranking

theta = np.array([0.0, 0.3, 1.0, 1.2, 2.5])
y = np.array([2.0, 1.0, 3.0, 5.0, 4.0])  # target ranking
R = 4000  # independent runs
Theta, Y = np.tile(theta, (R, 1)), np.tile(y, (R, 1))
Ms = np.array([2, 4, 8, 16, 32, 64])


def po(M, **kw):
    return PerturbedOptimizer(Ranking(), epsilon=0.5, n_samples=M, random_state=1, **kw)


fig, (ax_var, ax_bias) = plt.subplots(1, 2, figsize=(9.5, 3.6))

# Left: variance of three estimators, summed over the d coordinates.
variance = {
    "FY gradient  $\\bar y_{ε,M} - y$": lambda M: fenchel_young_loss(Theta, Y, po(M))[1],
    "VJP $v^T J y_ε$, plain": lambda M: po(M, control_variate=False).vjp(Theta, Y),
    "VJP, control variate": lambda M: po(M).vjp(Theta, Y),
    "VJP, antithetic": lambda M: po(M, antithetic=True).vjp(Theta, Y),
}
for label, estimate in variance.items():
    ax_var.loglog(Ms, [estimate(M).var(axis=0).sum() for M in Ms], "o-", label=label)
ax_var.set(xlabel="M (n_samples)", ylabel="variance (sum over coordinates)",
           title="Variance ∝ 1/M")
ax_var.legend(fontsize="x-small")

# Right: bias of the gradient of two losses, against a long reference run.
for label, loss in [("Fenchel–Young", fenchel_young_loss),
                    ("perturbed squared", perturbed_squared_loss)]:
    reference = loss(Theta[:500], Y[:500], po(4000))[1].mean(axis=0)
    bias, noise = [], []
    for M in Ms:
        g = loss(Theta, Y, po(M))[1]
        bias.append(np.linalg.norm(g.mean(axis=0) - reference))
        noise.append(np.sqrt(g.var(axis=0).sum() / R))  # MC error of the mean
    line, = ax_bias.loglog(Ms, bias, "o-", label=label)
    ax_bias.loglog(Ms, noise, ":", color=line.get_color(), label=f"{label}: noise floor")
ax_bias.set(xlabel="M (n_samples)", ylabel="‖mean gradient − reference‖",
            title="Bias: FY unbiased, perturbed squared O(1/M)")
ax_bias.legend(fontsize="x-small")
for ax in (ax_var, ax_bias):
    ax.set_xticks(Ms, [str(M) for M in Ms])
    ax.xaxis.set_minor_locator(plt.NullLocator())
fig.tight_layout()
