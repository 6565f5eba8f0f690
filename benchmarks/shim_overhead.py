"""How much a runtime_shim call costs next to the call it replaces, on this machine's backend.

Usage: python benchmarks/shim_overhead.py [--repeat N]

For each pair it prints the best per-call time of the shim call and of the direct call
(torch's own, or the psutil / perf_counter code a hand port would write), and their ratio.
Then the import time of runtime_shim (in fresh interpreters, torch already imported) and the
cost of the first call, which resolves the backend. Nothing here asserts: it reports.
"""

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import timeit

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import runtime_shim as shim  # noqa: E402


def _vm_hwm_direct():
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1]) * 1024


def _pairs(backend):
    """(label, shim callable, direct callable) for the chosen backend."""
    a, b = shim.Event(enable_timing=True), shim.Event(enable_timing=True)
    pc = time.perf_counter_ns

    def shim_event():
        a.record()
        b.record()
        return a.elapsed_time(b)

    def direct_event():
        t0 = pc()
        t1 = pc()
        return (t1 - t0) / 1e6

    def shim_event_new():
        e = shim.Event(enable_timing=True)
        e.record()
        return e

    pairs = [
        ("device()", shim.device, lambda: torch.device(backend)),
        ("device('cuda:1')", lambda: shim.device("cuda:1"), lambda: torch.device(backend)),
        ("device_string('cuda')", lambda: shim.device_string("cuda"), lambda: str(backend)),
        ("empty(16, device=device('cuda'))",
         lambda: torch.empty(16, device=shim.device("cuda")),
         lambda: torch.empty(16, device=backend)),
        ("is_available()", shim.is_available, torch.cuda.is_available),
        ("worker_count()", shim.worker_count, torch.cuda.device_count),
    ]
    x = torch.ones(16)
    if backend == "cpu":
        import psutil
        proc = psutil.Process()
        pairs += [
            # where a CPU-only torch answered, the shim answers the same: compare with that call
            ("manual_seed(0) vs torch.cuda.manual_seed(0)", lambda: shim.manual_seed(0),
             lambda: torch.cuda.manual_seed(0)),
            ("get_rng_state_all() vs torch.cuda's", shim.get_rng_state_all,
             torch.cuda.get_rng_state_all),
            ("memory_allocated() vs torch.cuda's (both 0)", shim.memory_allocated,
             torch.cuda.memory_allocated),
            ("to_device(x) vs x.clone() (a CPU copy)", lambda: shim.to_device(x), x.clone),
            ("is_cuda(x) vs x.is_cuda", lambda: shim.is_cuda(x), lambda: x.is_cuda),
            ("device_count()", shim.device_count, torch.cpu.device_count),
            ("current_device()", shim.current_device, torch.cpu.current_device),
            ("current_stream()", shim.current_stream, torch.cpu.current_stream),
            ("synchronize()", shim.synchronize, torch.cpu.synchronize),
            ("Event record x2 + elapsed_time vs perf_counter_ns x2", shim_event, direct_event),
            ("Event() + record vs perf_counter_ns", shim_event_new, pc),
            ("mem_get_info() vs psutil.virtual_memory", shim.mem_get_info,
             lambda: psutil.virtual_memory()[1:0:-1]),
        ]
        if os.path.exists("/proc/self/status"):
            pairs.append(("memory_summary() vs psutil rss + reading VmHWM", shim.memory_summary,
                          lambda: (proc.memory_info().rss, _vm_hwm_direct())))
    else:
        mod = torch.get_device_module(backend)
        pairs += [
            ("manual_seed(0)", lambda: shim.manual_seed(0), lambda: mod.manual_seed(0)),
            ("get_rng_state()", shim.get_rng_state, mod.get_rng_state),
            ("to_device(x)", lambda: shim.to_device(x), (lambda: x.cuda()) if backend == "cuda"
             else (lambda: x.to(backend))),
            ("is_cuda(x)", lambda: shim.is_cuda(x), lambda: x.is_cuda),
            ("device_count()", shim.device_count, mod.device_count),
            ("synchronize()", shim.synchronize, mod.synchronize),
            ("memory_allocated()", shim.memory_allocated,
             getattr(mod, "memory_allocated", getattr(mod, "current_allocated_memory", None))),
        ]
    return pairs


def _best_pair_ns(shim_fn, direct_fn, repeat):
    """Best per-call ns of each, timed alternately so drift affects both alike."""
    timers = [timeit.Timer(shim_fn), timeit.Timer(direct_fn)]
    number = max(1000, min(t.autorange()[0] for t in timers))
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for i, timer in enumerate(timers):
            best[i] = min(best[i], timer.timeit(number) / number * 1e9)
    return best


def _fresh_python(code, env):
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True, env=env)
    return out.stdout.strip()


def _import_times(runs, cached_bytecode):
    """Median ms of `import runtime_shim` after torch, and of the first call, in fresh
    interpreters. cached_bytecode=False compiles the source each time (as under
    PYTHONDONTWRITEBYTECODE=1); True uses a .pyc written to a private cache prefix."""
    code = ("import time, torch\n"
            "t0 = time.perf_counter(); import runtime_shim; t1 = time.perf_counter()\n"
            "runtime_shim.device(); t2 = time.perf_counter()\n"
            "print(t1 - t0, t2 - t1)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHDEVICE_")}
    with tempfile.TemporaryDirectory() as cache:
        if cached_bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = cache
            _fresh_python("import runtime_shim", env)  # writes the .pyc
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        samples = [tuple(map(float, _fresh_python(code, env).split())) for _ in range(runs)]
    return (statistics.median(s[0] for s in samples) * 1e3,
            statistics.median(s[1] for s in samples) * 1e3)


def _importtime_line():
    """(self us, cumulative us) of the runtime_shim line of `python -X importtime`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHDEVICE_")}
    out = subprocess.run([sys.executable, "-X", "importtime", "-c",
                          "import torch; import runtime_shim"],
                         cwd=REPO, capture_output=True, text=True, check=True, env=env)
    for line in out.stderr.splitlines():
        if line.rstrip().endswith("| runtime_shim"):
            self_us, cumulative_us = (int(x) for x in line.split(":", 1)[1].split("|")[:2])
            return self_us, cumulative_us
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timing repeats (best is kept)")
    args = parser.parse_args()

    backend = shim.device_type()
    print(f"runtime_shim overhead on backend {backend!r} (torch {torch.__version__}, "
          f"python {sys.version.split()[0]}); best of {args.repeat}")
    print(f"{'call':<55} {'shim ns':>10} {'direct ns':>10} {'ratio':>7}")
    for label, shim_fn, direct_fn in _pairs(backend):
        s, d = _best_pair_ns(shim_fn, direct_fn, args.repeat)
        print(f"{label:<55} {s:>10.0f} {d:>10.0f} {s / d:>7.2f}")

    print()
    print("import runtime_shim after torch, median of 5 fresh interpreters:")
    for cached in (True, False):
        import_ms, first_call_ms = _import_times(5, cached)
        how = "cached .pyc      " if cached else "source compiled  "
        print(f"  {how} import {import_ms:6.2f} ms   first call (resolution) {first_call_ms:5.2f} ms")
    line = _importtime_line()
    if line:
        print(f"python -X importtime (this environment), runtime_shim: self {line[0]} us, "
              f"cumulative {line[1]} us")


if __name__ == "__main__":
    main()
