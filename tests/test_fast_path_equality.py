"""The fast path gives exactly what the straightforward path gives, over a large real tree.

The fast path is what a run does: the byte pre-filter (``trigger.py``) leaves a file it does not
match unparsed, a large file is sliced (``slicing.py``; here every file, as finely as it can be), and the parallel runner pre-filters in the parent and ports only the candidates in
workers. The reference is ``migrate_source(..., prefilter=False)`` without slicing: every file parsed
whole by LibCST and every rule run on it. Over a deterministic sample of the installed torch package's own sources
(CUDA-heavy code, and much that is not), the output bytes and the findings must be identical. The one
allowed difference is documented behaviour: a file that the pre-filter does not match and that does
not parse is not this tool's business, so the fast path leaves it alone instead of raising.
No timings here (see ``benchmarks/repo_scale.py``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from torchdevice_migrate import engine
from torchdevice_migrate.findings import FileState
from torchdevice_migrate.options import Options, SourceError
from torchdevice_migrate.transform import migrate_source
from torchdevice_migrate.trigger import is_candidate

# A fixed spread over the package: every trigger candidate is ported twice (reference and fast
# path), every non-candidate parsed by LibCST once (reference): the sizes keep it within ~20 s on
# a loaded CI core, with enough of both kinds (and of files that change) to catch a difference.
CANDIDATES = 40
OTHERS = 24
MAX_BYTES = 12_000
PARALLEL = 24  # files of the parallel-runner comparison (each one ported twice more)


def _torch_sources():
    spec = importlib.util.find_spec("torch")  # finds the package; does not import torch
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the torch package is part of the test environment")
    root = Path(list(spec.submodule_search_locations)[0])
    files = sorted(p for p in root.rglob("*.py") if p.stat().st_size <= MAX_BYTES)
    candidates = [p for p in files if is_candidate(p.read_bytes())]
    others = [p for p in files if not is_candidate(p.read_bytes())]

    def every(items, n):  # a spread over the whole package, the same on every run
        step = max(len(items) // n, 1)
        return items[::step][:n]

    return every(candidates, CANDIDATES) + every(others, OTHERS)


FILES = _torch_sources()


def _fingerprint(findings):
    return [(f.line, f.column, f.code, f.api, f.status, f.message, f.hint) for f in findings]


def _reference(source: bytes, path: str):
    try:
        result = migrate_source(source, path, Options(slice_min_bytes=None), prefilter=False)
    except SourceError as e:
        return ("error", e.line, e.reason)
    return ("ok", result.new, _fingerprint(result.findings))


def test_the_sample_is_large_and_mixed():
    assert len(FILES) == CANDIDATES + OTHERS
    assert sum(is_candidate(p.read_bytes()) for p in FILES) == CANDIDATES


def test_pre_filtered_path_equals_the_reference_on_every_file():
    differences = []
    changed = 0
    for path in FILES:
        source = path.read_bytes()
        expected = _reference(source, str(path))
        try:
            result = migrate_source(source, str(path), Options(slice_min_bytes=0))  # sliced as finely as can be
            got = ("ok", result.new, _fingerprint(result.findings))
            changed += result.new != source
        except SourceError as e:
            got = ("error", e.line, e.reason)
        if got != expected:
            unparsable_non_candidate = (expected[0] == "error" and not is_candidate(source)
                                        and got == ("ok", source, []))
            if not unparsable_non_candidate:
                differences.append(str(path))
    assert differences == []
    assert changed >= 10  # the comparison covers real ports, not only files left as they are


def test_parallel_runner_equals_one_process(tmp_path):
    files = FILES[:CANDIDATES:CANDIDATES // (PARALLEL // 2)][:PARALLEL // 2] + FILES[CANDIDATES:][:PARALLEL // 2]
    sequential = engine.run(files, Options(), jobs=1)
    parallel = engine.run(files, Options(), jobs=2, progress=False)
    assert [r.path for r in parallel.results] == [str(p) for p in files]
    for a, b in zip(sequential.results, parallel.results):
        assert (a.state, a.new, a.error, _fingerprint(a.findings)) == (b.state, b.new, b.error, _fingerprint(b.findings))
        assert a.original == b.original and a.read_stat == b.read_stat
    assert any(r.state is FileState.CHANGED for r in parallel.results)
