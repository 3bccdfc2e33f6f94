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


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_quick_run_writes_table_and_plot(name, tmp_path):
    module = _load(name)
    md, png = module.main(["--quick", "--out", str(tmp_path)])
    md, png = Path(md), Path(png)
    assert md.exists() and png.exists()
    assert md.parent == tmp_path and png.parent == tmp_path
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
