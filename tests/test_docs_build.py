"""Build the documentation with warnings as errors, as docs/README.md says.

The sources are copied to a temporary directory first, so the build (which
runs the gallery examples and writes generated pages next to the sources)
leaves the checkout untouched and never reuses a stale gallery cache.
Intersphinx stays off (no network; see docs/conf.py). Skipped unless Sphinx,
numpydoc, sphinx-gallery, the PyData theme and Matplotlib are installed (the
``test`` and ``docs`` extras install them). A full build takes about a
minute on two cores.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REQUIRED = ["sphinx", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme", "matplotlib"]
MISSING = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
DOCS = Path(__file__).resolve().parents[1] / "docs"
GENERATED = ("_build", "auto_examples", "gen_modules", "generated", "sg_execution_times.rst")

pytestmark = pytest.mark.skipif(
    bool(MISSING) or not DOCS.is_dir(), reason=f"the docs build needs {', '.join(MISSING)}"
)


def test_docs_build_without_warnings(tmp_path):
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns(*GENERATED))
    html = tmp_path / "html"
    env = {k: v for k, v in os.environ.items() if k != "SK_PERTURBED_DOCS_INTERSPHINX"}
    env["MPLBACKEND"] = "agg"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(source), str(html)],
        capture_output=True, text=True, env=env, timeout=1200,
    )
    assert result.returncode == 0, (
        f"sphinx -W failed:\n{result.stderr[-20000:]}\n{result.stdout[-5000:]}"
    )
    assert (html / "index.html").is_file()
    assert (html / "api" / "generated" / "sk_perturbed.PerturbedRankingRegressor.html").is_file()
    examples = sorted(p.stem for p in (DOCS / "examples").glob("plot_*.py"))
    built = sorted(p.stem for p in (html / "auto_examples").glob("plot_*.html"))
    assert built == examples
