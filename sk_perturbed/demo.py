"""A one-minute tour of perturbed optimizers: ``python -m sk_perturbed.demo``.

Each section is a function printing one small experiment; :func:`main` runs
them all.
"""

import numpy as np
from scipy.special import softmax

from .perturbed import PerturbedOptimizer, fenchel_young_loss
from .solvers import Argmax, Ranking


def _row(values, fmt="{:6.2f}"):
    return " ".join(fmt.format(v) for v in np.ravel(values))


def soft_ranks_demo():
    """Ranks are piecewise constant in the scores; perturbed ranks are smooth."""
    theta = np.array([[0.0, 1.0, 1.2, 3.0]])
    print("Soft ranks of the scores", _row(theta))
    print(f"  hard ranks (the solver)    {_row(Ranking()(theta))}")
    for epsilon in (0.1, 0.5, 2.0, 50.0):
        po = PerturbedOptimizer(Ranking(), epsilon=epsilon, n_samples=2000, random_state=0)
        print(f"  epsilon = {epsilon:<5}          {_row(po(theta))}")
    print("  (small epsilon: the hard ranks; large epsilon: every rank tends to (d+1)/2)")
    # The vector-Jacobian product with v = e_1 is the gradient of soft rank 1.
    po = PerturbedOptimizer(Ranking(), epsilon=0.5, n_samples=2000, random_state=0)
    grad = po.vjp(theta, np.array([[0.0, 1.0, 0.0, 0.0]]))
    print(f"  d soft_rank[1] / d theta   {_row(grad)}  (epsilon = 0.5)")


def softmax_demo():
    """With Gumbel noise the perturbed argmax is exactly the softmax."""
    theta = np.array([[2.0, 1.0, 0.0, -1.0]])
    po = PerturbedOptimizer(Argmax(), epsilon=1.0, n_samples=20_000, noise="gumbel", random_state=0)
    print("\nPerturbed argmax with Gumbel noise (M = 20000) against softmax(theta)")
    print(f"  Monte Carlo  {_row(po(theta), '{:6.3f}')}")
    print(f"  softmax      {_row(softmax(theta), '{:6.3f}')}")


def gradient_demo():
    """Gradients flow through the perturbed solver, so scores can be learned."""
    target = np.array([[4.0, 1.0, 3.0, 2.0]])
    po = PerturbedOptimizer(Ranking(), epsilon=0.5, n_samples=100, random_state=0)
    theta = np.zeros((1, 4))
    print("\nLearning scores whose ranking is", _row(target, "{:.0f}"), "(Fenchel-Young loss)")
    for step in range(61):
        _, grad = fenchel_young_loss(theta, target, po)
        if step % 20 == 0:
            print(f"  step {step:2d}: soft ranks {_row(po(theta))}")
        theta -= 0.5 * grad
    print(f"  learned scores {_row(theta)}, hard ranks {_row(Ranking()(theta), '{:.0f}')}")


def label_ranking_demo():
    """The main job: learn to rank labels with the estimator, on shipped data."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from . import PerturbedRankingRegressor
    from .datasets import load_label_ranking
    from .metrics import kendall_tau_score

    X, Y = load_label_ranking("vehicle")
    X_train, X_test, Y_train, Y_test = train_test_split(X, Y, test_size=0.25, random_state=0)
    print(f"\nLabel ranking on the shipped 'vehicle' data ({X.shape[0]} rows, "
          f"{Y.shape[1]} labels), held-out Kendall tau:")
    ranker = make_pipeline(StandardScaler(), PerturbedRankingRegressor(random_state=0))
    ranker.fit(X_train, Y_train)
    tau = kendall_tau_score(Y_test, ranker.predict(X_test))
    print(f"  PerturbedRankingRegressor (defaults)  {tau:.3f}")
    ridge = make_pipeline(StandardScaler(), Ridge()).fit(X_train, Y_train)
    print(f"  per-label ridge regression, ranked    {kendall_tau_score(Y_test, ridge.predict(X_test)):.3f}")
    soft = ranker[-1].predict_marginals(ranker[0].transform(X_test[:1]))
    print(f"  soft ranks of the first test row      {_row(soft)}  (true {_row(Y_test[0], '{:.0f}')})")


def main():
    """Run every section of the demo."""
    soft_ranks_demo()
    softmax_demo()
    gradient_demo()
    label_ranking_demo()


if __name__ == "__main__":
    main()
