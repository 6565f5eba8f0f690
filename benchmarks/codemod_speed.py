"""How fast the codemod reads, ports and checks Python files. Prints figures; asserts nothing.

    python benchmarks/codemod_speed.py                  # the bundled projects and fixtures
    python benchmarks/codemod_speed.py PATH [--limit N] # any tree, e.g. a site-packages/torch
    python benchmarks/codemod_speed.py PATH --repeat 3  # several passes; figures are their medians

Figures: files and MB per second for the whole pass, the share of files the byte pre-filter lets
through to the rules, and per-file latency (median, 95th percentile, worst) of those that ran.
On a shared machine, use ``--repeat`` and compare medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from torchdevice_migrate.engine import discover  # noqa: E402
from torchdevice_migrate.transform import TRIGGER, Options, SourceError, migrate_source  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[REPO / "fixtures", REPO / "examples"])
    parser.add_argument("--limit", type=int, default=0, help="at most N files (0: all)")
    parser.add_argument("--repeat", type=int, default=1, help="passes over the files; figures are medians")
    args = parser.parse_args()

    files = list(discover(args.paths, suffixes=(".py",)))
    if args.limit:
        files = files[: args.limit]
    runs = [one_pass(files) for _ in range(max(args.repeat, 1))]
    if len(runs) > 1:
        for i, run in enumerate(runs, 1):
            print(f"pass {i}: {run['elapsed']:.2f} s, median {1000 * run['median']:.0f} ms, p95 {1000 * run['p95']:.0f} ms, "
                  f"worst {1000 * run['worst']:.0f} ms")
    elapsed = statistics.median(r["elapsed"] for r in runs)
    last = runs[-1]
    total_bytes, triggered, changed, errors = last["bytes"], last["triggered"], last["changed"], last["errors"]
    label = f" (median of {len(runs)} passes)" if len(runs) > 1 else ""

    print(f"files: {len(files)}  ({total_bytes / 1e6:.2f} MB)  changed: {changed}  errors: {errors}")
    print(f"whole pass{label}: {elapsed:.2f} s  ->  {len(files) / elapsed:.1f} files/s, {total_bytes / 1e6 / elapsed:.2f} MB/s")
    print(f"pre-filter: {triggered}/{len(files)} files ran the rules ({100 * triggered / max(len(files), 1):.0f}%)")
    if last["latencies"]:
        worst_file = last["worst_file"]
        print(f"per ported file{label}: median {1000 * statistics.median(r['median'] for r in runs):.0f} ms, "
              f"p95 {1000 * statistics.median(r['p95'] for r in runs):.0f} ms, "
              f"worst {1000 * statistics.median(r['worst'] for r in runs):.0f} ms "
              f"({worst_file.name}, {worst_file.stat().st_size / 1e3:.0f} kB)")


def one_pass(files) -> dict:
    options = Options()
    total_bytes, triggered, changed, errors = 0, 0, 0, 0
    latencies = []
    start = time.perf_counter()
    for f in files:
        data = f.read_bytes()
        total_bytes += len(data)
        t = time.perf_counter()
        try:
            result = migrate_source(data, str(f), options)
        except SourceError:
            errors += 1
            continue
        if TRIGGER.search(data):
            triggered += 1
            latencies.append((time.perf_counter() - t, f))
        changed += result.new != data
    elapsed = time.perf_counter() - start
    run = {"elapsed": elapsed, "bytes": total_bytes, "triggered": triggered, "changed": changed, "errors": errors,
           "latencies": latencies, "median": 0.0, "p95": 0.0, "worst": 0.0, "worst_file": None}
    if latencies:
        secs = sorted(s for s, _ in latencies)
        run["median"] = statistics.median(secs)
        run["p95"] = secs[min(len(secs) - 1, int(0.95 * len(secs)))]
        run["worst"], run["worst_file"] = max(latencies)
    return run


if __name__ == "__main__":
    main()
