"""One model version's release evidence as files an auditor reads without the platform.

:func:`export_bundle` writes ``NAME@VERSION``'s facts twice: a JSON document, and one self-contained HTML
page (inline CSS, the ROC/PR plots of its runs embedded as base64 PNG from the stored artifacts, no script,
no external URL) showing the same facts: the gate decision with its reasons, the suites' gate rules, the
overrides, each run's lineage hashes, and every ledger entry of the version with its hashes plus the
chain's verification and head hash (which an auditor can compare with a later export). Every text that
came from a person or a file (reasons, names, messages) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

from eval_platform.core.errors import InvalidInput, NotFound
from eval_platform.core.keys import VersionedKey
from eval_platform.core.records import iso, json_safe
from eval_platform.core.store import PLOTS
from eval_platform.gates.ledger import check_model_name
from eval_platform.gates.releases import effective_decision
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import ReleaseLedgerEntry, ledger
from eval_platform.registry.access import Principal


@dataclass(frozen=True)
class Bundle:
    """Where :func:`export_bundle` wrote the evidence."""

    html_path: Path
    json_path: Path


def _entry_json(entry: ReleaseLedgerEntry) -> dict:
    return {"sequence": entry.sequence, "kind": entry.kind, "model_version": entry.model_version, "actor": entry.actor,
            "reason": entry.reason, "recorded_at": iso(entry.recorded_at), "evidence": entry.evidence,
            "previous_hash": entry.previous_hash, "entry_hash": entry.entry_hash}


def bundle_facts(platform: EvalPlatform, model_key: str, principal: Principal | None = None) -> tuple[dict, dict[str, bytes]]:
    """The bundle's facts (JSON-ready) and the plots they name (artifact hash -> PNG bytes)."""
    name, version = VersionedKey.parse(model_key, "model")
    check_model_name(platform, principal, name, "export its release evidence")
    model = platform.model(model_key)
    state, decision, override = effective_decision(platform, model.key)
    with platform.registry.session() as session:
        chain = ledger.entries(session, name)
        current = ledger.evidence_of(session, name, version, decision.id if decision else None)
    check = ledger.verify(name, chain)
    suites = {}
    for run in current.get("runs", []):
        suite = platform.suite(run["suite"])
        suites[suite.key] = {"purpose": suite.purpose, "definition_hash": suite.definition_hash,
                             "gate": (suite.metric_defs or {}).get("gate", {})}
    plots: dict[str, bytes] = {}
    for run in current.get("runs", []):
        digest = run.get("curves_png")
        if digest:
            try:
                plots[digest] = platform.store.get_blob(PLOTS, digest, ".png")
            except NotFound:
                run["curves_png_missing"] = True  # said, not hidden: the artifact is gone from the store
    facts = {
        "model": model.key, "model_file_hash": model.file_hash, "registered_at": iso(model.registered_at),
        "serving_now": platform.promoted_version(name) == version,
        "gate": {"effective": state, "decision_id": decision.id if decision else None,
                 "recorded_decision": decision.decision if decision else None,
                 "decided_at": iso(decision.decided_at) if decision else None, "reasons": decision.reasons if decision else []},
        "override": ({"approver": override.approver, "reason": override.reason, "overridden_decision": override.overridden_decision,
                      "suites": override.suites, "created_at": iso(override.created_at)} if override else None),
        "suites": suites,
        "evidence": current,
        "ledger": [_entry_json(e) for e in chain if e.model_version == version
                   or (e.kind == "demotion" and e.evidence.get("demoted_version") == version)],
        "chain": {"ok": check.ok, "entries": check.entries, "head_hash": check.head, "broken_at": check.broken_at,
                  "problem": check.problem},
    }
    return json_safe(facts), plots


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em;width:100%}td,th{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}code,pre{font-family:ui-monospace,monospace;font-size:.85em;word-break:break-all;white-space:pre-wrap}
.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}.other{color:#9a6700;font-weight:bold}
img{max-width:100%;border:1px solid #ddd}"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _pre(value) -> str:
    return f"<pre>{_e(json.dumps(value, indent=2, sort_keys=True, default=str))}</pre>"


def _verdict(value) -> str:
    css = "pass" if value in ("pass", "overridden") else "fail" if value == "fail" else "other"
    return f'<span class="{css}">{_e(value)}</span>'


def render_html(facts: dict, plots: dict[str, bytes]) -> str:
    """The bundle's HTML page: self-contained, every text escaped, plots inline."""
    gate, chain = facts["gate"], facts["chain"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>Release evidence: {_e(facts['model'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Release evidence: {_e(facts['model'])}</h1>",
        "<table>",
        f"<tr><th>model file hash</th><td><code>{_e(facts['model_file_hash'])}</code></td></tr>",
        f"<tr><th>registered</th><td>{_e(facts['registered_at'])}</td></tr>",
        f"<tr><th>serving when exported</th><td>{_e('yes' if facts['serving_now'] else 'no')}</td></tr>",
        f"<tr><th>gate (effective)</th><td>{_verdict(gate['effective'])} (recorded decision {_e(gate['recorded_decision'])}, "
        f"id {_e(gate['decision_id'])}, decided {_e(gate['decided_at'])})</td></tr>",
        f"<tr><th>ledger chain</th><td>{_verdict('pass' if chain['ok'] else 'fail')} {_e(chain['entries'])} entries, head "
        f"<code>{_e(chain['head_hash'])}</code> {_e(chain['problem'])}</td></tr>",
        "</table>",
        "<h2>Gate reasons</h2>",
    ]
    reasons = gate["reasons"] or []
    if not reasons:
        parts.append("<p>none recorded</p>")
    for group in reasons:
        parts.append(f"<h3>{_e(group.get('run', group.get('rule')))}: {_verdict(group.get('outcome'))}</h3>")
        rows = group.get("reasons") or []
        if rows:
            parts.append("<table><tr><th>rule</th><th>outcome</th><th>message</th></tr>")
            parts += [f"<tr><td>{_e(r.get('rule'))}</td><td>{_verdict(r.get('outcome'))}</td><td>{_e(r.get('message'))}</td></tr>"
                      for r in rows]
            parts.append("</table>")
        elif group.get("message"):
            parts.append(f"<p>{_e(group.get('message'))}</p>")
    parts.append("<h2>Override</h2>")
    override = facts["override"]
    parts.append(_pre(override) if override else "<p>none</p>")
    parts.append("<h2>Suites and their gate rules</h2>")
    for key, suite in facts["suites"].items():
        parts.append(f"<h3>{_e(key)} ({_e(suite['purpose'])})</h3><p>definition hash <code>{_e(suite['definition_hash'])}</code></p>")
        parts.append(_pre(suite["gate"]))
    parts.append("<h2>Runs and their lineage</h2>")
    for run in facts["evidence"].get("runs", []):
        parts.append(f"<h3>run {_e(run['run_id'])} ({_e(run['status'])})</h3><table>")
        for label in ("dataset", "dataset_content_hash", "suite", "suite_definition_hash", "metrics_hash", "predictions_hash", "curves_png"):
            parts.append(f"<tr><th>{_e(label)}</th><td><code>{_e(run.get(label))}</code></td></tr>")
        parts.append("</table>")
        png = plots.get(run.get("curves_png") or "")
        if png is not None:
            parts.append(f'<p><img alt="ROC and PR curves of run {_e(run["run_id"])}" '
                         f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"></p>')
    parts.append("<h2>Ledger entries</h2><table><tr><th>#</th><th>kind</th><th>version</th><th>actor</th><th>reason</th>"
                 "<th>time</th><th>evidence</th><th>previous hash</th><th>entry hash</th></tr>")
    for entry in facts["ledger"]:
        parts.append(f"<tr><td>{_e(entry['sequence'])}</td><td>{_e(entry['kind'])}</td><td>{_e(entry['model_version'])}</td>"
                     f"<td>{_e(entry['actor'])}</td><td>{_e(entry['reason'])}</td><td>{_e(entry['recorded_at'])}</td>"
                     f"<td>{_pre(entry['evidence'])}</td><td><code>{_e(entry['previous_hash'])}</code></td>"
                     f"<td><code>{_e(entry['entry_hash'])}</code></td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def export_bundle(platform: EvalPlatform, model_key: str, out: str | Path, principal: Principal | None = None) -> Bundle:
    """Write ``NAME@VERSION``'s evidence: ``out`` is a directory (``NAME@VERSION.html`` and ``.json`` in it)
    or an ``.html`` file (the JSON beside it)."""
    out = Path(out)
    facts, plots = bundle_facts(platform, model_key, principal)
    if out.is_dir() or not out.suffix:
        html_path = out / f"{facts['model']}.html"
    elif out.suffix.lower() in (".html", ".htm"):
        html_path = out
    else:
        raise InvalidInput("out", f"must be a directory or an .html file, got {str(out)!r}")
    json_path = html_path.with_suffix(".json")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    page = render_html(facts, plots)
    json_path.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    html_path.write_text(page, encoding="utf-8")
    return Bundle(html_path, json_path)
