"""numpydoc validation of every public docstring.

Each public class and function (the names of DESIGN.md §2, the loss
functions, ``PerturbedEstimate``, the scorers) and each public method they
define is checked with :func:`numpydoc.validate.validate`; every error outside
the excluded codes below fails the test. Methods inherited from scikit-learn
(``get_params``, ``set_params``, ...) are scikit-learn's to document and are not
checked. Skipped when numpydoc is not installed (it comes with the ``docs``
extra).

Excluded numpydoc codes, with the reason:

* ``ES01`` (no extended summary): a one-line summary is enough for small
  functions and methods.
* ``SA01`` (no See Also section): cross-references live in the user guide.
* ``RT02`` (the first line of Returns must hold only a type): the library
  follows scikit-learn's convention of named return values
  (``self : object``, ``score : float``).
* ``EX01`` (no Examples section), **for methods and the result record
  PerturbedEstimate only**: a class's Examples show its methods in use, and a
  named tuple has no behaviour to show. Public classes and functions must
  have Examples, which pytest runs as doctests.
"""

import importlib
import inspect

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

IGNORED_EVERYWHERE = {"ES01", "SA01", "RT02"}
IGNORED_FOR_METHODS = IGNORED_EVERYWHERE | {"EX01"}
NO_EXAMPLES_NEEDED = {"sk_perturbed.perturbed.PerturbedEstimate"}

PUBLIC = {
    "sk_perturbed": [
        "PerturbedRankingRegressor", "PerturbedStructuredClassifier", "DecisionFocusedRegressor"
    ],
    "sk_perturbed.perturbed": [
        "PerturbedOptimizer",
        "PerturbedEstimate",
        "fenchel_young_loss",
        "perturbed_squared_loss",
        "squared_loss",
        "blackbox_loss",
        "spo_plus_loss",
        "exact_marginals",
    ],
    "sk_perturbed.solvers": [
        "BaseSolver",
        "Argmax",
        "TopK",
        "Ranking",
        "DAGShortestPath",
        "GridShortestPath",
        "Assignment",
        "Knapsack",
        "SpanningTree",
        "CallableSolver",
        "LinearProgram",
    ],
    "sk_perturbed.metrics": [
        "spearman_score",
        "kendall_tau_score",
        "perfect_rank_score",
        "hamming_score",
        "normalized_regret",
        "normalized_regret_scorer",
        "ndcg_score",
        "mean_average_precision_score",
        "mean_reciprocal_rank_score",
        "make_ndcg_scorer",
    ],
    "sk_perturbed.datasets": [
        "make_perfect_ranks",
        "make_shortest_path",
        "make_knapsack",
        "make_warcraft_like",
        "load_label_ranking",
        "load_learning_to_rank",
        "load_svmlight_ranking",
        "make_ranking_groups",
    ],
}


def _own_methods(cls):
    """Public methods (and ``__call__``) of ``cls`` defined in sk_perturbed."""
    names = []
    for name in dir(cls):
        if name.startswith("_") and name != "__call__":
            continue
        attr = inspect.getattr_static(cls, name)
        func = attr.fget if isinstance(attr, property) else attr
        func = getattr(func, "__func__", func)  # staticmethod / classmethod
        if not callable(func) and not isinstance(attr, property):
            continue
        module = getattr(func, "__module__", None) or ""
        if module.startswith("sk_perturbed"):
            names.append(name)
    return names


def _public_names():
    names = []
    for module_name, members in PUBLIC.items():
        module = importlib.import_module(module_name)
        for member in members:
            obj = getattr(module, member)
            qualified = f"{module_name}.{member}"
            names.append((qualified, False))
            if inspect.isclass(obj) and qualified not in NO_EXAMPLES_NEEDED:
                names.extend((f"{qualified}.{m}", True) for m in _own_methods(obj))
    return names


@pytest.mark.parametrize(("name", "is_method"), _public_names(), ids=lambda v: str(v))
def test_docstring(name, is_method):
    ignored = IGNORED_FOR_METHODS if is_method or name in NO_EXAMPLES_NEEDED else IGNORED_EVERYWHERE
    result = numpydoc_validate.validate(name)
    errors = [(code, message) for code, message in result["errors"] if code not in ignored]
    assert not errors, f"{name}:\n" + "\n".join(f"  {c}: {m}" for c, m in errors)


def test_public_names_are_listed():
    # A public function or class added to a module's __all__ must be validated
    # here too (the scorer objects built by make_scorer have no docstring of
    # their own).
    for module_name, members in PUBLIC.items():
        module = importlib.import_module(module_name)
        public = {
            name for name in module.__all__
            if callable(getattr(module, name))
            and (inspect.isclass(getattr(module, name)) or inspect.isfunction(getattr(module, name)))
        }
        assert public <= set(members), f"{module_name}: {sorted(public - set(members))}"
