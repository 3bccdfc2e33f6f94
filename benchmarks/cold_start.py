"""Cold start: ``python -m sk_perturbed.demo`` on an empty numba cache, then warm.

A fresh install compiles the numba kernels on first use. This runs the
README demo in a subprocess with ``NUMBA_CACHE_DIR`` pointing to an empty
temporary folder (so nothing compiled earlier is found), then once more with
that folder now filled, and records the wall time of each run from process
start to exit, and when the demo printed its first line (how long a user
waits in silence) and the compile notice on stderr.

Usage: ``python benchmarks/cold_start.py [--out DIR] [--runs N]``; writes
``cold_start.txt`` to ``DIR`` (default ``benchmarks/results``).
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def run_demo(cache_dir):
    """``(wall seconds, seconds to the first stdout line, stderr)`` of one demo run."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sk_perturbed.demo"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    first_line = proc.stdout.readline()
    first = time.perf_counter() - start if first_line else float("nan")
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"the demo failed (exit {proc.returncode}):\n{err[-2000:]}")
    return wall, first, err


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--runs", type=int, default=1, help="cold runs (each on a new cache)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("n/a",)
    lines = [
        "Cold start of `python -m sk_perturbed.demo` (benchmarks/cold_start.py)",
        f"date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average at start {load}",
        f"interpreter: {sys.executable}",
        "",
    ]
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="sk_perturbed_numba_cache_") as cache:
            cold, cold_first, err = run_demo(cache)
            warm, warm_first, _ = run_demo(cache)
        notices = [line for line in err.splitlines() if line.startswith("sk_perturbed:")]
        lines += [
            f"run {run}: cold {cold:.1f} s (first output line after {cold_first:.1f} s), "
            f"warm {warm:.1f} s (first line after {warm_first:.1f} s)",
            *(f"  stderr: {line}" for line in notices),
        ]
    lines.append(f"load average at end {os.getloadavg() if hasattr(os, 'getloadavg') else 'n/a'}")
    text = "\n".join(lines) + "\n"
    (out / "cold_start.txt").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
