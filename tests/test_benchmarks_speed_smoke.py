"""Smoke runs of the speed benchmarks on tiny settings: the scripts still run and print.

Their numbers are measured by hand on an idle machine (benchmarks/README.md);
here only that every mode works, so a refactoring cannot silently break them.
"""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_speed_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_fit_speed_and_scaling_modes(capsys, monkeypatch):
    bench_fit = _load("bench_fit")
    # Smaller data than --quick: the modes, not the timings, are under test.
    make_case = bench_fit.make_case
    monkeypatch.setattr(bench_fit, "make_case", lambda name, n: make_case(name, min(n, 600)))
    results = bench_fit.run_speed(True, 1, "ranking:mlp:10,argmax:mlp:10,paths:linear:1")
    assert set(results) == {"ranking:mlp:10", "argmax:mlp:10", "paths:linear:1"}
    assert all(row["ours"] > 0 and row["ratio_1blas"] > 0 for row in results.values())
    slopes = bench_fit.run_scaling(True, 1)
    assert {"n 2500-40000", "M 8-128", "M 64-1024"} <= set(slopes)
    out = capsys.readouterr().out
    assert "affine fit" in out and "Monte Carlo kernels" in out


def test_bench_fit_rejects_unknown_cases():
    bench_fit = _load("bench_fit")
    try:
        bench_fit.run_speed(True, 1, "ranking:mlp:7")
    except SystemExit as exc:
        assert "unknown case" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("an unknown case name must stop the script")


def test_bench_core_quick(capsys):
    bench_core = _load("bench_core")
    bench_core.main(["--quick", "--repeats", "5"])
    assert "target" in capsys.readouterr().out


def test_ranker_fit_time_quick(tmp_path):
    path = _load("ranker_fit_time").main(["--quick", "--out", str(tmp_path)])
    text = Path(path).read_text()
    assert Path(path).parent == tmp_path
    # One row per method, each with a fit time in seconds.
    for method in ("PerturbedRanker defaults, n_jobs=1", "float32 X", "not adopted"):
        row = next(line for line in text.splitlines() if method in line)
        assert float(row.split("|")[3]) > 0


def test_linear_program_pool_compares_every_pool_on_the_same_solutions(tmp_path):
    md = _load("linear_program_pool").main(["--quick", "--out", str(tmp_path)])
    rows = [line for line in md.read_text().splitlines()
            if line.startswith("| knapsack MILP") or line.startswith("| LP relaxation")]
    assert len(rows) == 6  # 2 problems x (n_jobs=1, threads, processes)
    assert all(float(row.split("|")[4]) > 0 for row in rows)
