"""``--report``: the findings of a run as text, JSON, SARIF 2.1.0, Markdown or CSV.

The report is built from the same ``FileResult``/``Finding`` objects that rewrite mode, ``--diff``
and ``--check`` use, so its counts are the changes a rewrite makes. ``build_report`` turns a run
into one plain dictionary (the JSON format, described by ``docs/report-schema.json``); every other
format renders that dictionary. Nothing here writes to the sources.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence
from urllib.parse import quote

from . import __version__
from .findings import FileResult, FileState, Finding, FindingStatus
from .registry import REASONS, Reason

SCHEMA_VERSION = 1
FORMATS = ("text", "json", "sarif", "markdown", "csv")
TOOL = "torchdevice-migrate"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
STATUSES = tuple(s.value for s in FindingStatus)  # rewritten, review, unsupported
SARIF_LEVEL = {"rewritten": "note", "review": "warning", "unsupported": "error"}
CSV_COLUMNS = ("path", "cell", "line", "column", "end_line", "end_column", "api", "status", "code", "title",
               "message", "original", "replacement", "hint", "doc")
MARKDOWN_MAX_ROWS = 300  # a GitHub comment holds at most 65,536 characters
_ERROR_RE = re.compile(r"(?P<line>\d+): (?P<message>.*)", re.DOTALL)


# ---------------------------------------------------------------------------------------------
# The report as data
# ---------------------------------------------------------------------------------------------

def printable(text: str) -> str:
    """``text`` that every format can encode: a file name's undecodable bytes (surrogate escapes, as
    ``os.fsdecode`` gives them) become ``\\xNN``, any other lone surrogate ``\\udXXX``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    return text.encode("utf-8", "surrogateescape" if _only_escapes(text) else "backslashreplace").decode(
        "utf-8", "backslashreplace")


def _only_escapes(text: str) -> bool:
    return all(not 0xD800 <= ord(ch) <= 0xDFFF or 0xDC80 <= ord(ch) <= 0xDCFF for ch in text)


def _reason(code: str) -> Reason:
    return REASONS.get(code) or Reason(code, code, "", "")


def doc_link(code: str, docs_base: str = "") -> str:
    """``docs/reason-codes.md#tdm101``, under ``docs_base`` when one is given (for absolute links)."""
    anchor = _reason(code).doc_anchor
    return docs_base.rstrip("/") + "/" + anchor if docs_base else anchor


def _finding(f: Finding, docs_base: str) -> Dict[str, Any]:
    return {
        "path": printable(f.path),
        "cell": f.cell,
        "line": f.line,
        "column": f.column,
        "end_line": f.end_line,
        "end_column": f.end_column,
        "api": f.api,
        "status": f.status.value,
        "code": f.code,
        "title": _reason(f.code).title,
        "message": f.message,
        "original": f.original,
        "replacement": f.replacement,
        "hint": f.hint,
        "doc": doc_link(f.code, docs_base),
    }


def _split_error(result: FileResult) -> Dict[str, Any]:
    """``{"path", "line", "message"}``: the typed error, else parsed from the engine's ``path:line: reason``."""
    f = result.failure
    if f is not None:
        message = f.reason if f.cell is None else f"[cell {f.cell}] {f.reason}"
        return {"path": printable(f.path), "line": f.line, "message": printable(message)}
    text = result.error or f"{result.path}:0: cannot be read"
    m = _ERROR_RE.match(text[len(result.path) + 1:]) if text.startswith(result.path + ":") else None
    if m:
        return {"path": printable(result.path), "line": int(m.group("line")), "message": printable(m.group("message"))}
    return {"path": printable(result.path), "line": 0, "message": printable(text)}


def _percent(rewritten: int, review: int, unsupported: int) -> Optional[float]:
    total = rewritten + review + unsupported
    return round(100.0 * rewritten / total, 1) if total else None


def build_report(results: Sequence[FileResult], config: Optional[Dict[str, Any]] = None,
                 docs_base: str = "") -> Dict[str, Any]:
    """The report of a run (the JSON format, ``schema_version`` 1)."""
    findings = [f for r in results for f in r.findings]
    by_status = Counter(f.status.value for f in findings)
    rewritten, review, unsupported = (by_status.get(s, 0) for s in STATUSES)

    per_api: Dict[str, Counter] = defaultdict(Counter)
    per_code: Dict[str, Counter] = defaultdict(Counter)
    for f in findings:
        per_api[f.api][f.status.value] += 1
        per_code[f.code][f.status.value] += 1

    def counts(c: Counter) -> Dict[str, int]:
        return {**{s: c.get(s, 0) for s in STATUSES}, "total": sum(c.values())}

    by_api: List[Dict[str, Any]] = [{"api": api, **counts(c)} for api, c in per_api.items()]
    by_api.sort(key=lambda e: (-e["total"], e["api"]))
    by_code: List[Dict[str, Any]] = [{"code": code, "title": _reason(code).title, "doc": doc_link(code, docs_base), **counts(c)}
               for code, c in per_code.items()]
    by_code.sort(key=lambda e: (-e["total"], e["code"]))

    effort_counts: Counter = Counter()
    for f in findings:
        if f.status is not FindingStatus.REWRITTEN:
            effort_counts[(f.code, f.status.value)] += 1
    effort = [{"code": code, "title": _reason(code).title, "status": status, "count": n,
               "hint": _reason(code).hint, "doc": doc_link(code, docs_base)}
              for (code, status), n in effort_counts.items()]
    effort.sort(key=lambda e: (-e["count"], e["code"], e["status"]))

    files = [{"path": printable(r.path), "state": r.state.value, "findings": len(r.findings),
              "rewritten": sum(f.status is FindingStatus.REWRITTEN for f in r.findings),
              "review": sum(f.status is FindingStatus.REVIEW for f in r.findings),
              "unsupported": sum(f.status is FindingStatus.UNSUPPORTED for f in r.findings)}
             for r in results if r.findings or r.state is not FileState.UNCHANGED]

    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": TOOL, "version": __version__},
        "config": config or {},
        "summary": {
            "files_scanned": len(results),
            "files_would_change": sum(r.state is FileState.CHANGED for r in results),
            "files_with_errors": sum(r.state is FileState.ERROR for r in results),
            "rewritten": rewritten,
            "review": review,
            "unsupported": unsupported,
            "needs_person": review + unsupported,
            "percent_automatic": _percent(rewritten, review, unsupported),
        },
        "effort": effort,
        "by_api": by_api,
        "by_code": by_code,
        "files": files,
        "findings": [_finding(f, docs_base) for f in findings],
        "errors": [_split_error(r) for r in results if r.state is FileState.ERROR],
    }


def default_docs_base() -> str:
    """The ``Documentation`` project URL of the installed package, if it declares one (for absolute links)."""
    try:
        from importlib.metadata import PackageNotFoundError, metadata

        for entry in metadata(TOOL).get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() in ("documentation", "docs") and url.strip().startswith(("http://", "https://")):
                return url.strip()
    except (ImportError, PackageNotFoundError):  # pragma: no cover - running from a source tree
        pass
    return ""


def render(report: Dict[str, Any], fmt: str, *, color: bool = False, width: Optional[int] = None,
           base_dir: Optional[Path] = None, docs_base: str = "") -> str:
    """``report`` in format ``fmt`` (one of ``FORMATS``), as a string ending with a newline."""
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if fmt == "sarif":
        return json.dumps(to_sarif(report, base_dir=base_dir, docs_base=docs_base), indent=2, ensure_ascii=False) + "\n"
    if fmt == "markdown":
        return to_markdown(report)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "text":
        return to_text(report, color=color, width=width)
    raise ValueError(f"unknown report format {fmt!r} (choose from {', '.join(FORMATS)})")


# ---------------------------------------------------------------------------------------------
# Text (rich)
# ---------------------------------------------------------------------------------------------

def _location(f: Dict[str, Any]) -> str:
    cell = f"[cell {f['cell']}]" if f.get("cell") is not None else ""
    return f"{cell}{f['line']}:{f['column']}"


def _percent_text(value: Optional[float]) -> str:
    return "n/a (no CUDA use found)" if value is None else f"{value:.1f}%"


def to_text(report: Dict[str, Any], color: bool = False, width: Optional[int] = None) -> str:
    from rich import box
    from rich.console import Console, Group
    from rich.table import Table
    from rich.text import Text

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, color_system="standard" if color else None,
                      width=width or 100, highlight=False, markup=False, emoji=False, soft_wrap=False)
    s = report["summary"]
    style = {"rewritten": "green", "review": "yellow", "unsupported": "red"}

    summary = Table(title="torchdevice-migrate report", title_justify="left", box=box.SIMPLE, show_header=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    for label, value in (("files scanned", s["files_scanned"]), ("files that would change", s["files_would_change"]),
                         ("files that could not be read or parsed", s["files_with_errors"]),
                         ("call sites rewritten", s["rewritten"]), ("call sites needing review", s["review"]),
                         ("unsupported uses", s["unsupported"]),
                         ("ported automatically", _percent_text(s["percent_automatic"]))):
        summary.add_row(label, str(value))
    console.print(summary)

    by_file: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for f in report["findings"]:
        by_file[f["path"]].append(f)
    for path, findings in by_file.items():
        console.print(Text(path, style="bold underline"))
        for f in findings:
            head = Text("  ")
            head.append(f"{_location(f):<9} ", style="cyan")
            head.append(f"{f['status']:<11} ", style=style.get(f["status"], ""))
            head.append(f"{f['code']} ", style="bold")
            head.append(f"{f['api']}: {f['title']}")
            console.print(head)
            console.print(Text("      " + _one_line(f["original"]), style="red" if f["replacement"] else ""))
            if f["replacement"]:
                console.print(Text("    → " + _one_line(f["replacement"]), style="green"))
            else:
                if f["message"]:
                    console.print(Text("      " + f["message"]))
                if f["hint"]:
                    console.print(Text("      hint: " + f["hint"], style="italic"))
            console.print(Text("      see " + f["doc"], style="dim"))
        console.print()
    for e in report["errors"]:
        console.print(Text(f"error: {e['path']}:{e['line']}: {e['message']}", style="bold red"))
    if report["errors"]:
        console.print()

    if report["by_api"]:
        t = Table(title="Per API", title_justify="left", box=box.SIMPLE_HEAD)
        t.add_column("API")
        for col in ("rewritten", "review", "unsupported", "total"):
            t.add_column(col, justify="right")
        for e in report["by_api"]:
            t.add_row(e["api"], *(str(e[c]) for c in ("rewritten", "review", "unsupported", "total")))
        console.print(t)
        t = Table(title="Per reason code", title_justify="left", box=box.SIMPLE_HEAD)
        t.add_column("code")
        t.add_column("title")
        for col in ("rewritten", "review", "unsupported", "total"):
            t.add_column(col, justify="right")
        for e in report["by_code"]:
            t.add_row(e["code"], e["title"], *(str(e[c]) for c in ("rewritten", "review", "unsupported", "total")))
        console.print(t)

    if report["effort"]:
        t = Table(title=f"Effort: {s['needs_person']} site(s) need a person", title_justify="left",
                  box=box.SIMPLE_HEAD)
        for col in ("sites", "code", "kind", "status", "what to do"):
            t.add_column(col, justify="right" if col == "sites" else "left")
        for e in report["effort"]:
            t.add_row(str(e["count"]), e["code"], e["title"], e["status"], e["hint"])
        console.print(t)
    else:
        console.print(Group(Text("Effort: no site needs a person.", style="bold")))
    text = buf.getvalue()
    return text if color else "\n".join(line.rstrip() for line in text.split("\n"))


def _one_line(code: str, limit: int = 200) -> str:
    text = " ".join(code.split()) if "\n" in code else code
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Markdown (a pull-request comment)
# ---------------------------------------------------------------------------------------------

_HTML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", "`": "&#96;", "\\": "&#92;",
                 "*": "&#42;", "_": "&#95;", "[": "&#91;", "]": "&#93;"}


def md_escape(text: str) -> str:
    """Text safe inside a GitHub Markdown table cell: no HTML, no cell breaks, no emphasis or links."""
    text = "".join(_HTML_ESCAPES.get(ch, ch) for ch in text)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def md_code(code: str, limit: int = 160) -> str:
    """``code`` as inline code in a table cell; ``|``, backticks, ``<``, ``>`` and ``&`` escaped."""
    if not code:
        return ""
    return f"<code>{md_escape(_one_line(code, limit))}</code>"


_CODE_SPAN_RE = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)


def md_prose(text: str, in_table: bool = False) -> str:
    """Registry prose (hints, messages) as Markdown: its `code spans` kept, HTML characters escaped outside them.

    In a table cell ``|`` is escaped too (``\\|`` inside a code span, as GitHub's tables need).
    """
    out, pos = [], 0
    text = " ".join(text.split())

    def plain(chunk: str) -> str:
        chunk = chunk.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return chunk.replace("|", "&#124;") if in_table else chunk

    for m in _CODE_SPAN_RE.finditer(text):
        out.append(plain(text[pos:m.start()]))
        span = m.group(0)
        out.append(span.replace("|", "\\|") if in_table else span)
        pos = m.end()
    out.append(plain(text[pos:]))
    return "".join(out)


def _md_prose(text: str) -> str:
    return md_prose(text, in_table=True)


def _md_link(code: str, doc: str) -> str:
    return f"[{md_escape(code)}]({doc.replace(' ', '%20').replace(')', '%29')})"


def _md_table(header: Sequence[str], rows: List[Sequence[str]], what: str) -> List[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows[:MARKDOWN_MAX_ROWS]:
        out.append("| " + " | ".join(row) + " |")
    if len(rows) > MARKDOWN_MAX_ROWS:
        out.append("")
        out.append(f"… and {len(rows) - MARKDOWN_MAX_ROWS} more {what} (see the JSON or SARIF report).")
    return out


def to_markdown(report: Dict[str, Any]) -> str:
    s = report["summary"]
    lines = ["## torchdevice-migrate report", "",
             "| files scanned | would change | errors | rewritten | review | unsupported | ported automatically |",
             "|---:|---:|---:|---:|---:|---:|---:|",
             f"| {s['files_scanned']} | {s['files_would_change']} | {s['files_with_errors']} | {s['rewritten']} "
             f"| {s['review']} | {s['unsupported']} | {_percent_text(s['percent_automatic'])} |", ""]
    if report["effort"]:
        lines += [f"### {s['needs_person']} site(s) need a person", ""]
        lines += _md_table(("sites", "code", "kind", "status", "what to do"),
                           [(str(e["count"]), _md_link(e["code"], e["doc"]), _md_prose(e["title"]), e["status"],
                             _md_prose(e["hint"])) for e in report["effort"]], "kinds")
        lines.append("")
    left = [f for f in report["findings"] if f["status"] != "rewritten"]
    done = [f for f in report["findings"] if f["status"] == "rewritten"]

    def loc(f: Dict[str, Any]) -> str:
        return md_code(f["path"], 120) + " " + md_escape(_location(f))

    if left:
        lines += ["### Sites left for review", ""]
        lines += _md_table(("location", "status", "code", "API", "source", "hint"),
                           [(loc(f), f["status"], _md_link(f["code"], f["doc"]), md_code(f["api"]),
                             md_code(f["original"]), _md_prose(f["hint"])) for f in left], "sites")
        lines.append("")
    if done:
        lines += [f"<details><summary>{len(done)} site(s) rewritten automatically</summary>", ""]
        lines += _md_table(("location", "code", "API", "before", "after"),
                           [(loc(f), _md_link(f["code"], f["doc"]), md_code(f["api"]), md_code(f["original"]),
                             md_code(f["replacement"])) for f in done], "sites")
        lines += ["", "</details>", ""]
    if report["by_api"]:
        lines += ["<details><summary>Statistics per API and per reason code</summary>", ""]
        lines += _md_table(("API", "rewritten", "review", "unsupported", "total"),
                           [(md_code(e["api"]), str(e["rewritten"]), str(e["review"]), str(e["unsupported"]),
                             str(e["total"])) for e in report["by_api"]], "APIs")
        lines.append("")
        lines += _md_table(("code", "title", "rewritten", "review", "unsupported", "total"),
                           [(_md_link(e["code"], e["doc"]), _md_prose(e["title"]), str(e["rewritten"]),
                             str(e["review"]), str(e["unsupported"]), str(e["total"])) for e in report["by_code"]],
                           "codes")
        lines += ["", "</details>", ""]
    if report["errors"]:
        lines += ["### Files that could not be read or parsed", ""]
        lines += [f"- {md_code(e['path'], 200)} line {e['line']}: {md_escape(e['message'])}" for e in report["errors"]]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------

_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP: cells a spreadsheet may run as a formula


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: a string starting like a formula gets a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_CSV_FORMULA_START):
        return "'" + value
    return value


def to_csv(report: Dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for f in report["findings"]:
        writer.writerow({k: csv_cell(f.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# SARIF 2.1.0
# ---------------------------------------------------------------------------------------------

def _md_code_span(text: str) -> str:
    """CommonMark inline code that survives backticks in ``text``."""
    text = " ".join(text.split())
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _artifact_uri(path: str, base_dir: Path) -> Dict[str, str]:
    """A URI reference for ``path``: relative to ``base_dir`` (``%SRCROOT%``) when inside it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        rel = absolute.relative_to(base_dir)
    except ValueError:
        return {"uri": absolute.as_uri()}
    return {"uri": quote(rel.as_posix(), safe="/"), "uriBaseId": "%SRCROOT%"}


def _sarif_rule(reason: Reason, docs_base: str) -> Dict[str, Any]:
    level = "note" if reason.code.startswith("TDM1") else "error" if reason.code.startswith("TDM2") else "warning"
    rule: Dict[str, Any] = {
        "id": reason.code,
        "name": "".join(w[:1].upper() + w[1:] for w in re.findall(r"[A-Za-z0-9]+", reason.title)),
        "shortDescription": {"text": reason.title},
        "fullDescription": {"text": reason.description},
        "helpUri": doc_link(reason.code, docs_base),
        "defaultConfiguration": {"level": level},
        "properties": {"tags": ["portability", "pytorch", "cuda"]},
    }
    if reason.hint:
        rule["help"] = {"text": reason.hint, "markdown": md_prose(reason.hint)}
    return rule


def _sarif_message(f: Dict[str, Any]) -> Dict[str, str]:
    where = f"cell {f['cell']}, line {f['line']}: " if f.get("cell") is not None else ""
    text = f"{where}{f['api']}: {f['title']}."
    markdown = f"{where}{_md_code_span(f['api'])}: {md_prose(f['title'])}."
    if f["replacement"]:
        text += f" Rewritten: {_one_line(f['original'])} -> {_one_line(f['replacement'])}"
        markdown += f" Rewritten: {_md_code_span(f['original'])} → {_md_code_span(f['replacement'])}"
    else:
        text += f" {f['message']}" + (f" Hint: {f['hint']}" if f["hint"] else "")
        markdown += (f" {md_prose(f['message'])} Source: {_md_code_span(f['original'])}."
                     + (f" Hint: {md_prose(f['hint'])}" if f["hint"] else ""))
    return {"text": text, "markdown": markdown}


def _region(f: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    if f["line"] < 1 or f.get("cell") is not None:
        return None  # notebook lines count from the cell, not the .ipynb file: the message says where
    region: Dict[str, Any] = {"startLine": f["line"], "startColumn": max(f["column"], 1)}
    if f["end_line"] >= f["line"] and f["end_column"] >= 1:
        region["endLine"] = f["end_line"]
        region["endColumn"] = f["end_column"]
    if f["original"]:
        region["snippet"] = {"text": f["original"]}
    return region


def to_sarif(report: Dict[str, Any], base_dir: Optional[Path] = None, docs_base: str = "") -> Dict[str, Any]:
    """A SARIF 2.1.0 log with one run; ``tool.driver.rules`` are the registry's reasons."""
    base = Path(os.path.abspath(base_dir or Path.cwd()))
    codes = sorted(set(REASONS) | {f["code"] for f in report["findings"]})
    index = {code: i for i, code in enumerate(codes)}
    results = []
    for f in report["findings"]:
        location: Dict[str, Any] = {"physicalLocation": {"artifactLocation": _artifact_uri(f["path"], base)}}
        region = _region(f)
        if region:
            location["physicalLocation"]["region"] = region
        result: Dict[str, Any] = {
            "ruleId": f["code"],
            "ruleIndex": index[f["code"]],
            "level": SARIF_LEVEL.get(f["status"], "warning"),
            "message": _sarif_message(f),
            "locations": [location],
            "properties": {"api": f["api"], "status": f["status"]},
        }
        if f.get("cell") is not None:
            result["properties"]["cell"] = f["cell"]
        if f["replacement"] and region and "endLine" in region:
            deleted = {k: region[k] for k in ("startLine", "startColumn", "endLine", "endColumn")}
            result["fixes"] = [{
                "description": {"text": f"Port to {_one_line(f['replacement'])}"},
                "artifactChanges": [{"artifactLocation": _artifact_uri(f["path"], base),
                                     "replacements": [{"deletedRegion": deleted,
                                                       "insertedContent": {"text": f["replacement"]}}]}],
            }]
        results.append(result)
    notifications = [{"level": "error", "message": {"text": f"{e['path']}:{e['line']}: {e['message']}"},
                      "locations": [{"physicalLocation": {"artifactLocation": _artifact_uri(e["path"], base)}}]}
                     for e in report["errors"]]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": TOOL,
                "version": report["tool"]["version"],
                "semanticVersion": report["tool"]["version"],
                "rules": [_sarif_rule(_reason(c), docs_base) for c in codes],
            }},
            "invocations": [{"executionSuccessful": not report["errors"], "toolExecutionNotifications": notifications}],
            "originalUriBaseIds": {"%SRCROOT%": {"uri": base.as_uri().rstrip("/") + "/"}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }


def finding_counts(findings: Iterable[Finding]) -> Dict[str, int]:
    """``{"rewritten": n, "review": n, "unsupported": n}`` (shared with the CLI's summary line)."""
    c = Counter(f.status.value for f in findings)
    return {s: c.get(s, 0) for s in STATUSES}
