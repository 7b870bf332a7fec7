"""A gate's decision for a CI pipeline: a Markdown summary for a pull-request comment and JUnit XML.

Both render a :class:`~eval_platform.gates.waiting.GateStatus` (read from the registry or the HTTP API).
Every piece of text that came from a user (metric names, slice values, suite and dataset ids in run labels,
an override's reason, rule messages) is escaped for its format: in Markdown a ``|`` cannot break the table,
``<``/``&`` cannot open HTML, ``*``/``_``/`` ` ``/``[`` cannot format or link and ``@`` cannot mention
anyone; in XML, characters XML 1.0 cannot hold at all (control characters) are replaced by ``\\xNN``.

JUnit mapping: one ``testsuite`` per eval run, one ``testcase`` per rule reason (per slice value for a
guardrail). ``fail`` is a ``failure``; ``no_decision`` is an ``error`` (the gate could not decide:
neither a pass nor a regression); ``not_applicable`` is ``skipped``. An override does not rewrite the
evidence: the cases stay as measured and the override is recorded in the suites' ``properties``.
"""

from __future__ import annotations

import html
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

from eval_platform.gates.waiting import GateStatus

_VERDICT_MARK = {"pass": "✅ pass", "fail": "❌ fail", "no_decision": "⚠️ no_decision", "not_applicable": "➖ not applicable",
                 "overridden": "✅ overridden"}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#!])")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def md_text(value: Any) -> str:
    """User text as literal Markdown inside a table cell or a list item (one line: newlines become ``<br>``)."""
    text = html.escape(str(value), quote=False)  # & < > first: nothing below produces them from user text
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("@", "&#64;")
    return "<br>".join(part.strip() for part in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def xml_text(value: Any) -> str:
    """User text XML 1.0 can hold (ElementTree escapes ``<&"``, but writes a control character as is)."""
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def _number(value: Any, signed: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isnan(value):
            return "undefined"
        return f"{value:+.4g}" if signed else f"{value:.4g}"
    return md_text(value)  # "inf" as the API writes it, or anything unexpected: shown, never interpreted


def rule_groups(status: GateStatus) -> list[tuple[str, str, list[dict]]]:
    """``(run label, run outcome, rule reasons)`` per eval run; a decision without runs is one group ``gate``."""
    groups = []
    for entry in status.reasons:
        if "run" in entry:
            rules = list(entry.get("reasons") or [])
            if entry.get("redacted"):  # the API withholds a run of a dataset the caller's team may not know of
                rules = [{"rule": "(withheld)", "outcome": entry.get("outcome"), "message": "a run this token may not see"}]
            groups.append((str(entry["run"]), str(entry.get("outcome", "")), rules))
        else:
            groups.append(("gate", str(entry.get("outcome", "")), [entry]))
    return groups


def _what(reason: dict) -> str:
    metric = reason.get("metric") or reason.get("measure") or ""
    return f"{metric} ({reason['slice']})" if reason.get("slice") else str(metric)


def _delta(reason: dict) -> str:
    if reason.get("delta") is None:
        return "–"
    interval = reason.get("interval")
    if isinstance(interval, list) and len(interval) == 2:
        return f"{_number(reason['delta'], signed=True)} [{_number(interval[0], True)}, {_number(interval[1], True)}]"
    return _number(reason["delta"], signed=True)


def headline(status: GateStatus, timeout: float | None = None) -> str:
    if not status.settled:
        waited = f" within {timeout:g} s" if timeout is not None else ""
        now = status.decision or "nothing recorded yet"
        return f"not decided{waited} ({status.pending_runs} eval run(s) pending; current: {now})"
    return (status.decision or "").upper()


def markdown_summary(status: GateStatus, timeout: float | None = None) -> str:
    """The comparison table per rule and metric (candidate, baseline, delta with its interval, rule, verdict),
    then each rule's reason, then any override."""
    lines = [f"### Release gate for {md_text(status.model_key)}: {md_text(headline(status, timeout))}", ""]
    if status.override is not None:
        lines += [f"> Overridden by {md_text(status.override.approver)} (recorded decision: "
                  f"{md_text(status.override.overridden_decision)}): {md_text(status.override.reason)}", ""]
    groups = rule_groups(status)
    if not groups:
        return "\n".join([*lines, "No gate decision has been recorded yet."]) + "\n"
    lines += ["| Eval run | Metric | Candidate | Baseline | Delta [interval] | Rule | Verdict |",
              "|---|---|---:|---:|---:|---|---|"]
    for run, _, rules in groups:
        for reason in rules:
            lines.append("| " + " | ".join([
                md_text(run), md_text(_what(reason)) or "–", _number(reason.get("observed")), _number(reason.get("baseline")),
                _delta(reason), md_text(reason.get("rule", "")), md_text(_VERDICT_MARK.get(str(reason.get("outcome")),
                                                                                          reason.get("outcome")))]) + " |")
    lines += ["", "**Reasons**", ""]
    for run, outcome, rules in groups:
        lines.append(f"- {md_text(run)}: **{md_text(outcome)}**")
        lines += [f"  - {md_text(reason.get('outcome', ''))}: {md_text(reason.get('rule', ''))}: {md_text(reason.get('message', ''))}"
                  for reason in rules]
    return "\n".join(lines) + "\n"


def junit_xml(status: GateStatus, timeout: float | None = None) -> bytes:
    """The gate as JUnit XML (see the module's docstring for the mapping), UTF-8 with its declaration."""
    root = ET.Element("testsuites", name=xml_text(f"release gate {status.model_key}"))
    totals: Counter[str] = Counter()
    for run, outcome, rules in rule_groups(status):
        totals += _run_suite(root, status, run, outcome, rules)
    if not status.settled:  # the waiter gave up: one error says what it waited for
        suite = ET.SubElement(root, "testsuite", name="gate wait", tests="1", failures="0", errors="1", skipped="0")
        case = ET.SubElement(suite, "testcase", classname=xml_text(f"gate.{status.model_key}"), name="decision")
        ET.SubElement(case, "error", message=xml_text(headline(status, timeout)), type="gate_timeout")
        totals.update(tests=1, errors=1)
    for name in _COUNTS:
        root.set(name, str(totals[name]))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


_COUNTS = ("tests", "failures", "errors", "skipped")
#: a rule's outcome as a JUnit case's child element (a passed case has none)
_CASE_ELEMENT = {"fail": ("failures", "failure", "gate_fail"), "no_decision": ("errors", "error", "gate_no_decision"),
                 "not_applicable": ("skipped", "skipped", None)}


def _run_suite(root: ET.Element, status: GateStatus, run: str, outcome: str, rules: list[dict]) -> Counter[str]:
    """One eval run's ``testsuite``: its properties (the override among them), one case per rule reason."""
    suite = ET.SubElement(root, "testsuite", name=xml_text(run))
    properties = ET.SubElement(suite, "properties")
    named = [("model_version", status.model_key), ("run_outcome", outcome), ("gate_decision", status.decision or ""),
             ("settled", str(status.settled).lower())]
    if status.override is not None:
        named += [("override.approver", status.override.approver), ("override.reason", status.override.reason),
                  ("override.overridden_decision", status.override.overridden_decision)]
    for name, value in named:
        ET.SubElement(properties, "property", name=name, value=xml_text(value))
    counts: Counter[str] = Counter()
    for reason in rules:
        name = " / ".join(p for p in (str(reason.get("rule", "")), str(reason.get("slice") or "")) if p)
        case = ET.SubElement(suite, "testcase", classname=xml_text(f"gate.{status.model_key}"), name=xml_text(name))
        counts["tests"] += 1
        if (element := _CASE_ELEMENT.get(str(reason.get("outcome")))) is not None:
            counter, tag, kind = element
            counts[counter] += 1
            child = ET.SubElement(case, tag, message=xml_text(reason.get("message", "")))
            if kind is not None:
                child.set("type", kind)
                child.text = _case_detail(reason)
    for name in _COUNTS:
        suite.set(name, str(counts[name]))
    return counts


def _case_detail(reason: dict) -> str:
    """The figures behind a case's outcome, one per line."""
    keys = ("metric", "slice", "observed", "baseline", "delta", "interval", "threshold", "n_examples")
    return xml_text("\n".join(f"{k}: {reason[k]}" for k in keys if reason.get(k) is not None))
