"""Linear and mixed-integer programs as solvers, solved by SciPy's HiGHS."""

import math
import numbers
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from joblib import effective_n_jobs
from scipy import sparse
from scipy.optimize import Bounds

from ._base import TARGET_TOL, BaseSolver
from ._utils import check_int

#: Values of continuous variables this close to an integer are set to it, so
#: that vertex solutions are exact structures (HiGHS returns 0.9999999...).
INTEGER_SNAP_TOL = 1e-9

#: The private HiGHS bindings bundled with SciPy: a model is loaded once per
#: chunk of rows and only its costs change between problems (about 5x less
#: overhead per LP than ``scipy.optimize.milp``). Public ``milp`` is the
#: fallback when a SciPy release moves them.
try:
    import scipy.optimize._highspy._core as _highs_core

    _HAS_HIGHS_CORE = all(
        hasattr(_highs_core._Highs, name)
        for name in ("passModel", "changeColsCost", "clearSolver", "run", "getRunTime")
    )
except (ImportError, AttributeError):  # pragma: no cover - depends on the SciPy release
    _highs_core, _HAS_HIGHS_CORE = None, False

# Tests flip this to check that both code paths give the same answers.
_USE_HIGHS_CORE = _HAS_HIGHS_CORE


class _Model:
    """The arrays HiGHS needs, built once from the parameters; plain data, so it pickles.

    Rows are ``row_lower <= A x <= row_upper`` (A in CSC form): the inequality
    rows first (lower bound -inf), then the equality rows.
    """

    def __init__(self, d, A, row_lower, row_upper, col_lower, col_upper, integrality,
                 sign, time_limit, options, n_ub):
        self.d = d
        self.A = A
        self.row_lower, self.row_upper = row_lower, row_upper
        self.col_lower, self.col_upper = col_lower, col_upper
        self.integrality = integrality  # bool (d,)
        self.sign = sign  # HiGHS minimizes sign * θ · x
        self.time_limit = time_limit
        self.options = options
        self.n_ub = n_ub
        self.token = uuid.uuid4().hex  # names this model in the worker processes


# --------------------------------------------------------------------------
# Solving rows (runs in the caller, in threads, or in worker processes)
# --------------------------------------------------------------------------


class _Failure(Exception):
    """A row HiGHS could not solve to optimality: ``kind`` and HiGHS's status."""

    def __init__(self, kind, status, row):
        super().__init__(kind, status, row)
        self.kind, self.status, self.row = kind, status, row


def _classify(status_name):
    """'optimal', 'infeasible', 'unbounded', 'limit' or 'error' from a HiGHS status."""
    if status_name in ("kOptimal", "kModelEmpty"):
        return "optimal"
    if status_name == "kInfeasible":
        return "infeasible"
    if status_name in ("kUnbounded", "kUnboundedOrInfeasible"):
        return "unbounded"
    if status_name in ("kTimeLimit", "kIterationLimit", "kSolutionLimit", "kInterrupt",
                       "kHighsInterrupt", "kObjectiveBound", "kObjectiveTarget"):
        return "limit"
    return "error"


class _CoreSolver:
    """One HiGHS instance holding the model; solves one cost vector at a time."""

    def __init__(self, model):
        h = _highs_core._Highs()
        h.setOptionValue("output_flag", False)  # first: later calls would log
        _set_options(h, {"mip_rel_gap": 0.0, **model.options})
        lp = _highs_core.HighsLp()
        A = model.A
        lp.num_col_, lp.num_row_ = model.d, A.shape[0]
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = model.d, A.shape[0]
        lp.a_matrix_.format_ = _highs_core.MatrixFormat.kColwise
        lp.a_matrix_.start_ = A.indptr
        lp.a_matrix_.index_ = A.indices
        lp.a_matrix_.value_ = A.data
        lp.col_cost_ = np.zeros(model.d)
        lp.col_lower_, lp.col_upper_ = model.col_lower, model.col_upper
        lp.row_lower_, lp.row_upper_ = model.row_lower, model.row_upper
        if model.integrality.any():
            kinds = (_highs_core.HighsVarType.kContinuous, _highs_core.HighsVarType.kInteger)
            lp.integrality_ = [kinds[int(i)] for i in model.integrality]
        status = h.passModel(lp)
        if status == _highs_core.HighsStatus.kError:
            raise ValueError("LinearProgram: HiGHS refused the model (passModel failed).")
        self.h = h
        self.model = model
        self.columns = np.arange(model.d, dtype=np.int32)

    def solve(self, cost):
        h, model = self.h, self.model
        h.changeColsCost(model.d, self.columns, cost)
        h.clearSolver()  # solve from scratch: the answer must not depend on history
        if model.time_limit is not None:
            # HiGHS's time limit counts the instance's total run time.
            h.setOptionValue("time_limit", h.getRunTime() + model.time_limit)
        h.run()
        status = h.getModelStatus().name
        if _classify(status) != "optimal":
            return None, status
        return np.asarray(h.getSolution().col_value, dtype=np.float64), status


class _MilpSolver:
    """The same solves through the public ``scipy.optimize.milp``."""

    def __init__(self, model):
        from scipy.optimize import LinearConstraint

        self.model = model
        self.constraints = (
            [LinearConstraint(model.A, model.row_lower, model.row_upper)]
            if model.A.shape[0] else []
        )
        self.bounds = Bounds(model.col_lower, model.col_upper)
        options = {"disp": False, "mip_rel_gap": 0.0}
        for key, value in model.options.items():
            if key == "presolve" and isinstance(value, str):
                value = value != "off"
            options[key] = value
        if model.time_limit is not None:
            options["time_limit"] = model.time_limit
        self.options = options

    def solve(self, cost):
        from scipy.optimize import milp

        res = milp(cost, integrality=self.model.integrality.astype(np.int64),
                   bounds=self.bounds, constraints=self.constraints, options=self.options)
        # milp's codes: 0 optimal, 1 iteration or time limit, 2 infeasible, 3 unbounded.
        status = {0: "kOptimal", 1: "kTimeLimit", 2: "kInfeasible", 3: "kUnbounded"}.get(
            res.status, f"status {res.status}: {res.message}"
        )
        if res.status != 0:
            return None, status
        return np.asarray(res.x, dtype=np.float64), status


def _set_options(h, options):
    for key, value in options.items():
        if h.setOptionValue(key, value) == _highs_core.HighsStatus.kError:
            raise ValueError(
                f"LinearProgram: HiGHS rejected the option {key}={value!r} (unknown name "
                "or a value of the wrong type or range)."
            )


def _row_solver(model):
    return _CoreSolver(model) if _USE_HIGHS_CORE else _MilpSolver(model)


def _clean(x, integrality):
    """Round integer variables; snap near-integer continuous ones; no negative zeros."""
    rounded = np.rint(x)
    snap = integrality | (np.abs(x - rounded) <= INTEGER_SNAP_TOL)
    x[snap] = rounded[snap]
    x += 0.0  # -0.0 -> 0.0
    return x


def _solve_rows(model, theta, start, solver=None):
    """Solve the rows of ``theta``; row ``i`` is row ``start + i`` of the batch."""
    solver = _row_solver(model) if solver is None else solver
    out = np.empty(theta.shape)
    for i in range(theta.shape[0]):
        x, status = solver.solve(model.sign * theta[i])
        if x is None:
            raise _Failure(_classify(status), status, start + i)
        out[i] = _clean(x, model.integrality)
    return out


# Worker processes keep the last few models they were sent, keyed by token,
# so a batch split in many chunks loads each model once per process.
_WORKER_SOLVERS = OrderedDict()
_WORKER_CACHE_SIZE = 4


def _solve_rows_in_worker(model, theta, start):
    solver = _WORKER_SOLVERS.get(model.token)
    if solver is None:
        solver = _WORKER_SOLVERS[model.token] = _row_solver(model)
        while len(_WORKER_SOLVERS) > _WORKER_CACHE_SIZE:
            _WORKER_SOLVERS.popitem(last=False)
    return _solve_rows(model, theta, start, solver)


# --------------------------------------------------------------------------
# Parameter checks
# --------------------------------------------------------------------------


def _check_matrix(A, name, d):
    if sparse.issparse(A):
        A = sparse.csr_array(A, dtype=np.float64)
        values = A.data
    else:
        try:
            A = np.asarray(A, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"LinearProgram: {name} must be a numeric matrix ({exc}).") from exc
        if A.ndim == 1:
            A = A[None, :]  # a single constraint
        if A.ndim != 2:
            raise ValueError(f"LinearProgram: {name} must be a 2-D matrix, got {A.ndim}-D.")
        values = A
    if A.shape[1] != d:
        raise ValueError(
            f"LinearProgram: {name} must have d = {d} columns (one per entry of θ), "
            f"got shape {A.shape}."
        )
    if not np.isfinite(values).all():
        raise ValueError(f"LinearProgram: {name} contains NaN or infinite values.")
    return sparse.csr_array(A)


def _check_rhs(b, name, matrix_name, m, allow_inf):
    try:
        b = np.atleast_1d(np.asarray(b, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"LinearProgram: {name} must be a numeric vector ({exc}).") from exc
    if b.shape != (m,):
        raise ValueError(
            f"LinearProgram: {name} must have shape ({m},), one entry per row of "
            f"{matrix_name}, got shape {b.shape}."
        )
    bad = np.isnan(b) if allow_inf else ~np.isfinite(b)
    if bad.any():
        raise ValueError(
            f"LinearProgram: {name} contains {'NaN' if allow_inf else 'NaN or infinite'} values."
        )
    return b


def _constraint_pair(A, b, names, d, allow_inf):
    A_name, b_name = names
    if (A is None) != (b is None):
        given, missing = (A_name, b_name) if b is None else (b_name, A_name)
        raise ValueError(f"LinearProgram: {given} is given without {missing}.")
    if A is None:
        return sparse.csr_array((0, d)), np.zeros(0)
    A = _check_matrix(A, A_name, d)
    return A, _check_rhs(b, b_name, A_name, A.shape[0], allow_inf)


def _bound_values(values, name, d):
    try:
        array = np.asarray(
            [np.nan if v is None else v for v in np.ravel(np.asarray(values, dtype=object))],
            dtype=np.float64,
        ).reshape(np.shape(values))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"LinearProgram: {name} must be numbers or None ({exc}).") from exc
    if array.ndim > 1 or (array.ndim == 1 and array.shape[0] != d):
        raise ValueError(
            f"LinearProgram: {name} must be a scalar, None or a vector of length d = {d}, "
            f"got shape {array.shape}."
        )
    return np.broadcast_to(array, (d,))


def _is_scalar_pair(bounds):
    return (
        isinstance(bounds, (tuple, list, np.ndarray)) and len(bounds) == 2
        and all(v is None or np.ndim(v) == 0 for v in bounds)
    )


def _check_bounds(bounds, d):
    """``(lower, upper)`` arrays of length d from the ``bounds`` parameter."""
    if bounds is None:
        bounds = (0, None)  # SciPy's default
    if isinstance(bounds, Bounds):
        lower = _bound_values(bounds.lb, "bounds.lb", d)
        upper = _bound_values(bounds.ub, "bounds.ub", d)
    elif _is_scalar_pair(bounds):
        lower = _bound_values(bounds[0], "bounds[0]", d)
        upper = _bound_values(bounds[1], "bounds[1]", d)
    else:
        if (isinstance(bounds, (tuple, list)) and len(bounds) == 2
                and any(isinstance(v, np.ndarray) for v in bounds)):
            # linprog reads a sequence as per-variable pairs: say so rather
            # than guess what a pair of vectors means.
            raise ValueError(
                "LinearProgram: bounds must be a pair (lower, upper) of scalars or None or "
                "an array of d (lower, upper) pairs; for vectors of lower and upper bounds "
                "use scipy.optimize.Bounds(lb, ub)."
            )
        try:
            pairs = np.asarray(bounds, dtype=object)
        except ValueError:
            pairs = None
        if pairs is None or pairs.shape != (d, 2):
            raise ValueError(
                "LinearProgram: bounds must be a pair (lower, upper) of scalars or None, "
                f"an array of shape (d, 2) = ({d}, 2) of per-variable pairs, or "
                f"scipy.optimize.Bounds; got {bounds!r}."
            )
        lower = _bound_values(pairs[:, 0], "bounds[:, 0]", d)
        upper = _bound_values(pairs[:, 1], "bounds[:, 1]", d)
    lower = np.where(np.isnan(lower), -np.inf, lower)
    upper = np.where(np.isnan(upper), np.inf, upper)
    bad = (lower > upper) | (lower == np.inf) | (upper == -np.inf)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"LinearProgram: bounds of variable {j} are empty: lower {lower[j]} > upper {upper[j]}."
        )
    return np.ascontiguousarray(lower), np.ascontiguousarray(upper)


def _check_integrality(integrality, d):
    if integrality is None:
        return np.zeros(d, dtype=bool)
    array = np.asarray(integrality)
    if array.dtype.kind not in "biuf" or array.ndim > 1 or (array.ndim == 1 and array.size != d):
        raise ValueError(
            f"LinearProgram: integrality must be None, 0, 1 or a vector of length d = {d} "
            f"of 0 (continuous) and 1 (integer), got {integrality!r}."
        )
    if not np.isin(array, (0, 1)).all():
        raise ValueError(
            "LinearProgram: integrality must hold 0 (continuous) or 1 (integer) only; "
            "SciPy's semi-continuous kinds 2 and 3 are not supported."
        )
    return np.ascontiguousarray(np.broadcast_to(array.astype(bool), (d,)))


def _check_c_shape(c_shape):
    if isinstance(c_shape, numbers.Integral) and not isinstance(c_shape, (bool, np.bool_)):
        return check_int(c_shape, "c_shape", "LinearProgram", min_value=1)
    if isinstance(c_shape, (tuple, list)) and c_shape:
        dims = [check_int(s, "c_shape entries", "LinearProgram", min_value=1) for s in c_shape]
        return math.prod(dims)
    raise ValueError(
        f"LinearProgram: c_shape must be a positive int or a tuple of them, got {c_shape!r}."
    )


def _check_options(options):
    if options is None:
        return {}
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise ValueError(
            f"LinearProgram: options must be None or a dict of HiGHS option names, got {options!r}."
        )
    reserved = {"output_flag", "time_limit"} & set(options)
    if reserved:
        raise ValueError(
            f"LinearProgram: set {sorted(reserved)} through the parameters, not options "
            "(time_limit is a parameter; output is always off)."
        )
    if _USE_HIGHS_CORE:
        h = _highs_core._Highs()
        h.setOptionValue("output_flag", False)
        _set_options(h, options)
    return dict(options)


def _model_cache_get(owner, attribute, params, build):
    """``build()`` cached on ``owner`` while the parameter objects are the same objects.

    Parameters are compared by identity: ``set_params`` (or a new object)
    invalidates the cache; arrays changed in place are not noticed.
    """
    cached = owner.__dict__.get(attribute)
    if cached is not None:
        key, value = cached
        if len(key) == len(params) and all(a is b for a, b in zip(key, params)):
            return value
    value = build()
    owner.__dict__[attribute] = (tuple(params), value)
    return value


# --------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------


class LinearProgram(BaseSolver):
    """A linear or mixed-integer program over x ∈ R^d, with θ as its objective.

    ``y*(θ) = argmin {θ·x : A_ub x ≤ b_ub, A_eq x = b_eq, lower ≤ x ≤ upper,
    x_j integer where integrality_j = 1}`` (``argmax`` with ``sense='max'``),
    solved by HiGHS as bundled with SciPy (no licence needed). Each row of θ
    is one problem; the constraints are shared by all rows. Use it for
    decision-focused learning over any polytope (shortest paths as flows,
    assignments, knapsacks, ...) when no dedicated solver exists: θ are then
    predicted costs and the structures are the decisions.

    Parameters
    ----------
    c_shape : int or tuple of int
        The length d of θ, or a shape whose product is d (θ is then the
        flattened, C-order, cost array).
    A_ub : array-like or sparse matrix of shape (m_ub, d), default=None
        Inequality constraints ``A_ub x <= b_ub`` (a 1-D array is one row).
    b_ub : array-like of shape (m_ub,), default=None
        Right-hand sides of the inequalities (``inf`` drops a row).
    A_eq : array-like or sparse matrix of shape (m_eq, d), default=None
        Equality constraints ``A_eq x = b_eq``.
    b_eq : array-like of shape (m_eq,), default=None
        Right-hand sides of the equalities.
    bounds : tuple, array of shape (d, 2) or scipy.optimize.Bounds, default=(0, None)
        Bounds of the variables: one pair ``(lower, upper)`` for all (None
        meaning unbounded), a pair per variable (as in ``linprog``), or
        ``Bounds(lb, ub)`` with vectors. The default is SciPy's: x ≥ 0.
        ``None`` is read as that default.
    integrality : None, {0, 1} or array-like of shape (d,), default=None
        1 for an integer variable, 0 for a continuous one; a scalar applies
        to all. None: a pure LP.
    sense : {'min', 'max'}, default='min'
        Minimize θ·x (θ are costs) or maximize it (θ are values).
    n_jobs : int, default=None
        Workers solving the rows of a batch: None means 1 unless in a
        :func:`joblib.parallel_config` context, -1 all CPUs (joblib's
        convention). Rows are split in contiguous chunks, a few per worker.
    pool : {'thread', 'process'}, default='thread'
        Kind of workers when ``n_jobs`` asks for more than one. HiGHS
        releases the GIL, so threads scale and cost nothing to start;
        processes (joblib's loky executor, kept alive between calls) pay
        a start-up on the first call but isolate a solver crash. Measured
        on 2 cores (``benchmarks/linear_program_pool.py``, 400 knapsack
        MILPs): 1.95 times faster than one worker with threads, 1.88 with
        processes, whose first call took 2.2 times as long as the threads'.
    time_limit : float, default=None
        Seconds HiGHS may spend on one problem; reaching it without a proven
        optimum raises ``ValueError``. None: no limit.
    options : dict, default=None
        Further HiGHS options by name, e.g. ``{'presolve': 'off'}`` or
        ``{'mip_rel_gap': 1e-4}`` (the default gap here is 0: structures are
        proven optimal). Checked when the solver is first used.

    Attributes
    ----------
    sense : str
        The ``sense`` parameter.

    Notes
    -----
    **Solutions.** Integer variables are rounded to the nearest integer
    (HiGHS returns 0.9999999...). Continuous variables are HiGHS's vertex
    (basic) solution, with values within 1e-9 of an integer set to it, so
    that vertices of integral polytopes are exact 0/1 structures. Ties
    (several optimal x) are broken by HiGHS: the same input always gives the
    same answer, whatever the batch, its order, ``n_jobs`` or ``pool`` (each
    problem is solved from scratch), but the rule is HiGHS's, not one of
    this library's rules, so it may differ from the dedicated solvers' on
    ties. Random continuous costs have no ties.

    **Errors.** The model is checked once, at first use, by solving it with
    θ = 0: an infeasible model raises ``ValueError`` at once. A row whose
    problem is unbounded (e.g. a negative cost on a variable without upper
    bound) raises ``ValueError`` naming the row.

    **Speed.** A model is loaded into HiGHS once per chunk of rows; only
    the costs change between problems. HiGHS releases the GIL while it
    solves (LPs and MIPs alike: two threads keep 1.8-1.9 cores busy), so
    threads scale like processes without their start-up (about a second,
    the first time; the workers are then reused) or the pickling of every
    chunk: ``pool='thread'`` is the default. Measured on 2 cores shared with
    other jobs (SciPy 1.17, HiGHS 1.12), ms per problem in batches of 1000:

    =========================================== ======== ========= ===========
    problem                                     1 worker 2 threads 2 processes
    =========================================== ======== ========= ===========
    5×5 grid shortest path, flow LP (40 arcs)   0.44     0.21      0.24
    2-D 0/1 knapsack, 32 items (MILP)           22       11        8-12
    =========================================== ======== ========= ===========

    Calling ``scipy.optimize.milp`` per problem takes 1.4 ms on the LP.
    ``options={'presolve': 'off'}`` takes the knapsack MILP to 16 ms.

    The dedicated solvers (:class:`DAGShortestPath`, :class:`Assignment`,
    :class:`Knapsack`, ...) run in compiled kernels and are far faster
    (0.3 µs per 5×5 shortest path, 8 µs per 2-D knapsack of 32 items with
    integer weights and capacity 20): prefer them where they apply. :class:`LinearProgram` has no numba
    kernel, so :class:`~sk_perturbed.perturbed.PerturbedOptimizer` runs it
    through its NumPy backend (``backend='auto'`` chooses it).

    HiGHS 1.12 (SciPy 1.17) may print ``HighsMipSolverData::
    transformNewIntegerFeasibleSolution tmpSolver.run();`` on a few MIPs; it
    is a stray debug line of HiGHS (not an error) that no option silences
    except ``options={'presolve': 'off'}``.

    Examples
    --------
    The shortest path from node 0 to node 2 of a triangle, as a flow LP over
    the arcs (0→1, 1→2, 0→2):

    >>> import numpy as np
    >>> from sk_perturbed.solvers import LinearProgram
    >>> A_eq = np.array([[-1, 0, -1], [1, -1, 0], [0, 1, 1]])  # in-flow - out-flow
    >>> solver = LinearProgram(3, A_eq=A_eq, b_eq=[-1, 0, 1], bounds=(0, 1))
    >>> solver([[1.0, 1.0, 3.0], [2.0, 2.0, 3.0]])
    array([[1., 1., 0.],
           [0., 0., 1.]])

    A 0/1 knapsack as a MILP, maximizing the value:

    >>> knapsack = LinearProgram(4, A_ub=[[3, 4, 2, 5]], b_ub=[7], bounds=(0, 1),
    ...                          integrality=1, sense="max")
    >>> knapsack([[4.0, 5.0, 3.0, 7.0]])
    array([[0., 0., 1., 1.]])
    """

    def __init__(self, c_shape, A_ub=None, b_ub=None, A_eq=None, b_eq=None, bounds=(0, None),
                 integrality=None, sense="min", n_jobs=None, pool="thread", time_limit=None,
                 options=None):
        self.c_shape = c_shape
        self.A_ub = A_ub
        self.b_ub = b_ub
        self.A_eq = A_eq
        self.b_eq = b_eq
        self.bounds = bounds
        self.integrality = integrality
        self.sense = sense
        self.n_jobs = n_jobs
        self.pool = pool
        self.time_limit = time_limit
        self.options = options

    def __getstate__(self):
        # The cached model is rebuilt (and re-checked) after unpickling.
        state = super().__getstate__()
        state.pop("_model_cache", None)
        return state

    def _model_params(self):
        return (self.c_shape, self.A_ub, self.b_ub, self.A_eq, self.b_eq, self.bounds,
                self.integrality, self.sense, self.time_limit, self.options)

    def _model(self):
        """The checked, feasibility-tested model (cached while the parameters stay the same)."""
        return _model_cache_get(self, "_model_cache", self._model_params(), self._build_model)

    def _build_model(self):
        if self.sense not in ("min", "max"):
            raise ValueError(f"LinearProgram: sense must be 'min' or 'max', got {self.sense!r}.")
        if self.time_limit is not None and not (
            isinstance(self.time_limit, numbers.Real) and self.time_limit > 0
        ):
            raise ValueError(
                f"LinearProgram: time_limit must be None or a positive number of seconds, "
                f"got {self.time_limit!r}."
            )
        d = _check_c_shape(self.c_shape)
        A_ub, b_ub = _constraint_pair(self.A_ub, self.b_ub, ("A_ub", "b_ub"), d, allow_inf=True)
        A_eq, b_eq = _constraint_pair(self.A_eq, self.b_eq, ("A_eq", "b_eq"), d, allow_inf=False)
        lower, upper = _check_bounds(self.bounds, d)
        integrality = _check_integrality(self.integrality, d)
        options = _check_options(self.options)
        A = sparse.csc_array(sparse.vstack([A_ub, A_eq], format="csc"))
        A.eliminate_zeros()
        A.sort_indices()
        A.indptr = A.indptr.astype(np.int32)
        A.indices = A.indices.astype(np.int32)
        model = _Model(
            d, A,
            row_lower=np.concatenate([np.full(b_ub.size, -np.inf), b_eq]),
            row_upper=np.concatenate([b_ub, b_eq]),
            col_lower=lower, col_upper=upper, integrality=integrality,
            sign=1.0 if self.sense == "min" else -1.0,
            time_limit=None if self.time_limit is None else float(self.time_limit),
            options=options, n_ub=b_ub.size,
        )
        # With θ = 0 every feasible point is optimal: this tests feasibility.
        x, status = _row_solver(model).solve(np.zeros(d))
        if x is None:
            kind = _classify(status)
            if kind == "limit":
                raise ValueError(
                    f"LinearProgram: HiGHS found no feasible point within time_limit = "
                    f"{self.time_limit} s (status {status}); raise time_limit."
                )
            raise ValueError(
                f"LinearProgram: the problem is infeasible (HiGHS status {status}): no x "
                "satisfies the constraints, bounds and integrality."
            )
        return model

    def _validate_params(self):
        self._model()
        if self.pool not in ("thread", "process"):
            raise ValueError(
                f"LinearProgram: pool must be 'thread' or 'process', got {self.pool!r}."
            )
        if self.n_jobs is not None and (
            isinstance(self.n_jobs, (bool, np.bool_))
            or not isinstance(self.n_jobs, numbers.Integral) or self.n_jobs == 0
        ):
            raise ValueError(
                f"LinearProgram: n_jobs must be None or a non-zero integer, got {self.n_jobs!r}."
            )

    def dimension(self):
        """Length d of θ and of the solutions x.

        Returns
        -------
        d : int
            The product of ``c_shape``.
        """
        return _check_c_shape(self.c_shape)

    def _target_rule(self, Y):
        model = self._model()
        tol = TARGET_TOL * np.maximum(1.0, np.abs(np.where(
            np.isfinite(model.row_upper), model.row_upper, model.row_lower)))
        activity = (model.A @ Y.T).T  # (n, m)
        bad = (activity > model.row_upper + tol).any(axis=1)
        bad |= (activity < model.row_lower - tol).any(axis=1)
        col_tol = TARGET_TOL * np.maximum(1.0, np.abs(np.concatenate([model.col_lower,
                                                                      model.col_upper])))
        bad |= (Y < model.col_lower - col_tol[: model.d]).any(axis=1)
        bad |= (Y > model.col_upper + col_tol[model.d:]).any(axis=1)
        return bad, "A_ub y <= b_ub, A_eq y = b_eq and the bounds of y (the LP relaxation)"

    def _n_workers(self, n_rows):
        return max(1, min(n_rows, effective_n_jobs(self.n_jobs)))

    def _solve_batch(self, theta):
        self._validate_params()
        model = self._model()
        n = theta.shape[0]
        n_workers = self._n_workers(n)
        try:
            if n_workers == 1:
                return _solve_rows(model, theta, 0)
            # A few chunks per worker balance uneven solve times.
            edges = np.linspace(0, n, min(n, 4 * n_workers) + 1).astype(np.int64)
            chunks = list(zip(edges[:-1].tolist(), edges[1:].tolist()))
            if self.pool == "process":
                # joblib's public loky backend (workers kept alive between
                # calls); a bare loky executor would break joblib.Parallel's
                # later reuse of the same pool.
                from joblib import Parallel, delayed

                parts = Parallel(n_jobs=n_workers, backend="loky")(
                    delayed(_solve_rows_in_worker)(model, theta[a:b], a) for a, b in chunks
                )
                return np.concatenate(parts)
            with ThreadPoolExecutor(max_workers=n_workers) as executor:
                futures = [executor.submit(_solve_rows, model, theta[a:b], a) for a, b in chunks]
                try:
                    return np.concatenate([f.result() for f in futures])
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
        except _Failure as failure:
            raise self._failure_error(failure) from None

    def _failure_error(self, failure):
        where = f"for row {failure.row} of the batch"
        if failure.kind == "unbounded":
            return ValueError(
                f"LinearProgram: the problem is unbounded (HiGHS status {failure.status}) "
                f"{where}: θ·x has no finite {'minimum' if self.sense == 'min' else 'maximum'}. "
                "Bound the variables (bounds=(0, 1) for 0/1 structures) or add constraints."
            )
        if failure.kind == "infeasible":
            # The feasible set does not depend on θ, and it held a point at θ = 0.
            return ValueError(
                f"LinearProgram: HiGHS reports the problem infeasible (HiGHS status "
                f"{failure.status}) {where}, although it was feasible with θ = 0: a "
                "numerical failure (rescale θ or the constraints) or an unbounded problem; "
                "bound the variables."
            )
        if failure.kind == "limit":
            return ValueError(
                f"LinearProgram: HiGHS stopped without a proven optimum (HiGHS status "
                f"{failure.status}) {where}; time_limit = {self.time_limit} s. Raise time_limit."
            )
        return ValueError(
            f"LinearProgram: HiGHS failed (status {failure.status}) {where}."
        )
