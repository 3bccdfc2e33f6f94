"""Smoke tests of the benchmark scripts: each ``--quick`` run writes a table and a plot."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = {
    "perfect_ranks": "perfect_ranks",
    "shortest_path": "shortest_path",
    "warcraft": "warcraft",
    "classification": "classification",
    "label_ranking": "label_ranking",
    "defaults_scale": "defaults_scale",
    "decision_focused": "decision_focused",
    "decision_focused_defaults": "decision_focused_defaults",
    "learning_to_rank": "learning_to_rank",
}

pytest.importorskip("matplotlib")


def _load(name):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def _committed_results():
    """Bytes and modification time of every committed result file."""
    results = BENCH / "results"
    return {
        path.name: (path.read_bytes(), path.stat().st_mtime_ns)
        for pattern in ("*.md", "*.txt", "*.png")
        for path in results.glob(pattern)
    }


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_quick_run_writes_table_and_plot(name):
    # Without --out a quick run writes to results/quick (git-ignored) and
    # leaves the committed full results as they were.
    module = _load(name)
    before = _committed_results()
    md, png = module.main(["--quick"])
    md, png = Path(md), Path(png)
    assert _committed_results() == before
    assert md.exists() and png.exists()
    assert md.parent == BENCH / "results" / "quick" and png.parent == md.parent
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = md.read_text()
    assert "|---" in text
    assert not re.search(r"\bnan\b", text, flags=re.IGNORECASE)
    # Every table has at least one numeric cell per data row.
    rows = [line for line in text.splitlines()
            if line.startswith("|") and not line.startswith("|---")]
    data_rows = rows[1:]
    assert data_rows
    assert any(re.search(r"\d+\.\d+", row) for row in data_rows)


def test_out_folder_defaults_to_quick_for_quick_runs_and_obeys_out(tmp_path):
    common = _load("_common")
    assert common.parse_args(["--quick"], "d").out == BENCH / "results" / "quick"
    assert common.parse_args([], "d").out == BENCH / "results"
    assert common.parse_args(["--quick", "--out", str(tmp_path)], "d").out == tmp_path
    md, png = _load("label_ranking").main(["--quick", "--out", str(tmp_path)])
    assert Path(md).parent == tmp_path and Path(png).parent == tmp_path


def test_quick_results_folder_is_git_ignored():
    ignored = (BENCH.parent / ".gitignore").read_text().split()
    assert "benchmarks/results/quick/" in ignored
