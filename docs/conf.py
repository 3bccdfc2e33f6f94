"""Sphinx configuration of the sk_perturbed documentation.

Build (from the repository root; see docs/README.md)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Offline by default: intersphinx links to scikit-learn, NumPy, SciPy, numba,
Python and Matplotlib are configured below but only switched on when the
environment variable ``SK_PERTURBED_DOCS_INTERSPHINX=1`` is set, because
fetching the inventories needs the internet and a failed fetch is a warning,
which ``-W`` turns into an error. Without it, references such as
:class:`~sklearn.pipeline.Pipeline` render as plain code (``nitpicky`` is off,
so unresolved external references do not warn).
"""

import os
import sys
import warnings
from pathlib import Path

DOCS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS_DIR.parent))  # the checkout, when not installed

import sk_perturbed  # noqa: E402
from numba.core.errors import NumbaPerformanceWarning  # noqa: E402

# -- Project ----------------------------------------------------------------
project = "sk_perturbed"
author = "sk_perturbed developers"
copyright = "2026, sk_perturbed developers"
version = sk_perturbed.__version__
release = sk_perturbed.__version__

# -- Extensions -------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "examples/GALLERY_HEADER.rst"]  # the header is read by sphinx-gallery
root_doc = "index"
default_role = "literal"
pygments_style = "sphinx"

# -- autodoc / autosummary / numpydoc ------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
# Members are chosen per kind of object by the templates in _templates/.
autodoc_typehints = "none"
# Class members are listed by the autosummary class template; numpydoc's own
# member tables would duplicate them (and ask for a stub page per member).
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Docstring validation runs in tests/test_docstrings.py, not in the build.
numpydoc_validation_checks = set()

# -- intersphinx (opt-in, see the module docstring) -----------------------------
_INTERSPHINX_TARGETS = {
    "python": ("https://docs.python.org/3/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
    "numba": ("https://numba.readthedocs.io/en/stable/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
}
USE_INTERSPHINX = os.environ.get("SK_PERTURBED_DOCS_INTERSPHINX", "") not in ("", "0")
intersphinx_mapping = _INTERSPHINX_TARGETS if USE_INTERSPHINX else {}
intersphinx_timeout = 10

# -- HTML ---------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sk_perturbed {version}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "install": []}
html_show_sourcelink = False

# -- sphinx-gallery -------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("sk_perturbed",),
    "reference_url": {"sk_perturbed": None},
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_signature": False,
    "min_reported_time": 1,
    # A failing example fails the build.
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
}

# -- matplotlib plot directive (user guide figures) ----------------------------------
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
plot_rcparams = {"figure.dpi": 100}
plot_pre_code = "import numpy as np\nimport matplotlib.pyplot as plt\n"

# numba's parallelization hints would clutter the examples' output.
warnings.filterwarnings("ignore", category=NumbaPerformanceWarning)


# -- The scaling page -------------------------------------------------------------
# docs/scaling.rst is written separately. It is listed in the main toctree only
# when it exists, so the build passes (with -W) before and after it lands: a
# missing toctree entry and an orphan page would both be warnings.
HAS_SCALING = (DOCS_DIR / "scaling.rst").exists()
# Pages link to it as |scaling_page|.
rst_epilog = (
    "\n.. |scaling_page| replace:: :doc:`/scaling`\n"
    if HAS_SCALING
    else "\n.. |scaling_page| replace:: the scaling page (``docs/scaling.rst``, in preparation)\n"
)


def _add_scaling_page(app, docname, source):
    if docname == "index" and HAS_SCALING:
        source[0] = source[0].replace("   user_guide/index\n", "   user_guide/index\n   scaling\n", 1)


def setup(app):
    app.connect("source-read", _add_scaling_page)
