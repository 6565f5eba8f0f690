"""How fast the codemod reads, ports and checks Python files. Prints figures; asserts nothing.

    python benchmarks/codemod_speed.py                  # the bundled projects and fixtures
    python benchmarks/codemod_speed.py PATH [--limit N] # any tree, e.g. a site-packages/torch

Figures: files and MB per second for the whole pass, the share of files the byte pre-filter lets
through to the rules, and per-file latency (median, 95th percentile, worst) of those that ran.
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
    args = parser.parse_args()

    files = list(discover(args.paths, suffixes=(".py",)))
    if args.limit:
        files = files[: args.limit]
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

    print(f"files: {len(files)}  ({total_bytes / 1e6:.2f} MB)  changed: {changed}  errors: {errors}")
    print(f"whole pass: {elapsed:.2f} s  ->  {len(files) / elapsed:.1f} files/s, {total_bytes / 1e6 / elapsed:.2f} MB/s")
    print(f"pre-filter: {triggered}/{len(files)} files ran the rules ({100 * triggered / max(len(files), 1):.0f}%)")
    if latencies:
        secs = sorted(s for s, _ in latencies)
        p95 = secs[min(len(secs) - 1, int(0.95 * len(secs)))]
        worst, worst_file = max(latencies)
        print(f"per ported file: median {1000 * statistics.median(secs):.0f} ms, p95 {1000 * p95:.0f} ms, "
              f"worst {1000 * worst:.0f} ms ({worst_file.name}, {worst_file.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
