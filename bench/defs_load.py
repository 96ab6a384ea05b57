"""What loading this code location costs against an empty Dagster project, side by side (issue #14, P4).

Every run pod, code server start and UI launch loads the definitions, so their import cost is paid over and
over. Both projects are loaded the way a code server loads them (`dagster definitions validate -m MODULE`, in
a fresh interpreter), alternating, `--rounds` times each; CPU (user + system) and peak RSS come from the
child's rusage. Prints the medians and the ratios; the target is at most 1.3x on both. Noisy shared machines
move single runs by tens of percent, so read the medians.

    .venv/bin/python bench/defs_load.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

EMPTY = """import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions()
"""


def measure(module: str, cwd: Path, home: Path) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of one `dagster definitions validate -m module` in a fresh interpreter."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(cwd)}
    cmd = [sys.executable, "-m", "dagster", "definitions", "validate", "-m", module]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{module} did not load:\n{out.decode(errors='replace')[-2000:]}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux: ru_maxrss is in KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="loads of each project (default 5)")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "empty_project.py").write_text(EMPTY)
        home = tmp_path / "home"
        home.mkdir()
        runs: dict[str, list[tuple[float, float]]] = {"empty": [], "llmplat": []}
        for i in range(args.rounds):
            runs["empty"].append(measure("empty_project", tmp_path, home))
            runs["llmplat"].append(measure("llmplat_dagster.definitions", root, home))
            e, p = runs["empty"][-1], runs["llmplat"][-1]
            print(f"round {i + 1}: empty {e[0]:.2f} s CPU {e[1]:.0f} MiB | llmplat {p[0]:.2f} s CPU {p[1]:.0f} MiB")
    med = {k: (statistics.median(c for c, _ in v), statistics.median(m for _, m in v)) for k, v in runs.items()}
    cpu_ratio, mem_ratio = med["llmplat"][0] / med["empty"][0], med["llmplat"][1] / med["empty"][1]
    print(f"median empty project:   {med['empty'][0]:.2f} s CPU, {med['empty'][1]:.0f} MiB peak")
    print(f"median llmplat_dagster: {med['llmplat'][0]:.2f} s CPU, {med['llmplat'][1]:.0f} MiB peak")
    print(f"ratio: CPU {cpu_ratio:.2f}x, peak memory {mem_ratio:.2f}x (target: at most 1.3x each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
