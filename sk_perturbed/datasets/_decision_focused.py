"""Decision-focused learning data: PyEPO's synthetic multi-dimensional knapsack."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

from ..solvers import Knapsack


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "n_items": [Interval(Integral, 1, None, closed="left")],
        "dim": [Interval(Integral, 1, None, closed="left")],
        "deg": [Interval(Integral, 1, None, closed="left")],
        "noise_width": [Interval(Real, 0, None, closed="left")],
        "capacity": [Interval(Real, 0, None, closed="left"), "array-like"],
        "random_state": ["random_state"],
        "return_solver": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_knapsack(
    n_samples,
    n_features=5,
    n_items=32,
    dim=2,
    deg=1,
    noise_width=0.0,
    capacity=20,
    random_state=135,
    return_solver=False,
):
    """Generate PyEPO's synthetic multi-dimensional 0/1 knapsack problem.

    Reproduces ``pyepo.data.knapsack.genData`` (Tang & Khalil, PyEPO 2.2):
    with ``rng = np.random.RandomState(seed)``, draw in this order

    1. the item weights ``W ~ U{3.00, 3.01, ..., 7.99}``, shape (dim, m),
       shared by all samples (``rng.choice(range(300, 800)) / 100``);
    2. ``B ~ Bernoulli(0.5)`` of shape (m, p), m items and p features;
    3. ``x_i ~ N(0, I_p)``, shape (n, p);
    4. the item values ``c_i = 5 ((B x_i / √p + 3)^deg + 1) / 3.5^deg``;
    5. multiplicative noise ``c_ij *= U(1 − noise_width, 1 + noise_width)``;

    then the values are rounded up to integers. Each sample asks for the most
    valuable set of items with ``W y ≤ capacity``: a maximization, solved by
    :class:`~sk_perturbed.solvers.Knapsack` (PyEPO builds its knapsack model
    from ``weights`` and a capacity of its user's choice; its tutorials use
    20 per dimension, the default here).

    Parameters
    ----------
    n_samples : int
        Number of samples n (PyEPO's ``num_data``).

    n_features : int, default=5
        Number of features p (``num_features``).

    n_items : int, default=32
        Number of items m (``num_items``).

    dim : int, default=2
        Number of knapsack constraints (``dim``).

    deg : int, default=1
        Degree of the polynomial link from features to values; higher
        degrees make a linear model of the values more misspecified.

    noise_width : float, default=0.0
        Half-width of the multiplicative uniform noise, ≥ 0 as in PyEPO
        (above 1 some multipliers are negative).

    capacity : float or array-like of shape (dim,), default=20
        Capacity of each constraint; a scalar applies to every dimension.
        Not drawn: it does not change the random draws.

    random_state : int, RandomState instance or None, default=135
        Seed of the draws. An int ``s`` gives the data of PyEPO's
        ``genData(..., seed=s)``; the default is PyEPO's.

    return_solver : bool, default=False
        Also return the matching solver
        ``Knapsack(weights=weights, capacity=capacity)``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Features, float64: PyEPO's second output ``x``, bit for bit.

    costs : ndarray of shape (n_samples, n_items)
        Item values (integers), float64: PyEPO's third output ``c`` (float32
        there) converted to float64, so ``costs.astype(np.float32)`` equals
        it bit for bit. They are values to maximize, although PyEPO (and
        this name) call them costs.

    weights : ndarray of shape (dim, n_items)
        Item weights, float64: PyEPO's first output, bit for bit.

    capacity : ndarray of shape (dim,)
        The capacity of each constraint, float64.

    solver : Knapsack
        Only with ``return_solver=True``: the oracle of these problems, so
        that ``solver(costs)`` gives the optimal selections. With PyEPO's
        decimal weights and capacity 20 it solves each problem as a MILP
        with HiGHS (about 20-30 ms each; see
        :class:`~sk_perturbed.solvers.Knapsack`).

    References
    ----------
    B. Tang and E. B. Khalil, "PyEPO: A PyTorch-based end-to-end
    predict-then-optimize library for linear and integer programming",
    Mathematical Programming Computation, 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_perturbed.datasets import make_knapsack
    >>> X, costs, weights, capacity, solver = make_knapsack(
    ...     3, n_features=5, n_items=32, dim=2, deg=4, noise_width=0.5,
    ...     return_solver=True)
    >>> X.shape, costs.shape, weights.shape, capacity
    ((3, 5), (3, 32), (2, 32), array([20., 20.]))
    >>> selections = solver(costs)
    >>> bool(np.all(selections @ weights.T <= capacity))
    True
    """
    rng = check_random_state(random_state)
    capacity = np.asarray(capacity, dtype=np.float64)
    if capacity.ndim == 0:
        capacity = np.full(dim, float(capacity))
    if capacity.shape != (dim,) or not np.all(np.isfinite(capacity) & (capacity >= 0)):
        raise ValueError(
            f"make_knapsack: capacity must be a non-negative number or {dim} of them "
            f"(one per dimension), got {capacity!r}."
        )
    weights = rng.choice(range(300, 800), size=(dim, n_items)) / 100
    B = rng.binomial(1, 0.5, (n_items, n_features))
    X = rng.normal(0, 1, (n_samples, n_features))
    # The operations of PyEPO's genData, in its order, for bitwise equality.
    costs = (X @ B.T / np.sqrt(n_features) + 3) ** deg + 1
    costs *= 5
    costs /= 3.5**deg
    costs *= rng.uniform(1 - noise_width, 1 + noise_width, (n_samples, n_items))
    costs = np.ceil(costs).astype(np.float32).astype(np.float64)
    if return_solver:
        return X, costs, weights, capacity, Knapsack(weights=weights, capacity=capacity)
    return X, costs, weights, capacity
