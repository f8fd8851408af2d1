"""Rendering the analytics report (flows/analytics.py) as a text table, CSV, JSON or HTML
with matplotlib charts embedded as base64 PNG, so a trend is visible at a glance."""

from __future__ import annotations

import base64
import csv
import io
import json
from html import escape

from flows.chronology import category_label
from flows.triage import DECISIONS

DECISION_LABELS = {c.value: c.label for c in DECISIONS}
STEP_LABELS = {"sc_acknowledgement": "Social care acknowledgement", "sc_decision": "Social care initial decision",
               "strategy_discussion": "Strategy discussion", "section47": "Section 47 enquiries",
               "icpc": "Initial child protection conference"}


def _label(section: str, key: str) -> str:
    if section == "by_category":
        return category_label(key, None)
    if section == "decisions":
        return DECISION_LABELS.get(key, key)
    if section == "statutory_missed":
        return STEP_LABELS.get(key, key)
    return key.replace("_", " ")


def _scope(sc: dict) -> str:
    if sc.get("school"):
        return sc["school"]
    return f"trust {sc['trust']}" if sc.get("trust") else "all schools"


def flat_rows(report: dict) -> list[tuple[str, str, object]]:
    """(section, key, value) rows: the CSV and the text table."""
    rows = [("total", "concerns", report["concerns"])]
    for section in ("by_category", "by_month", "by_school", "decisions", "overdue", "statutory_missed", "checkins"):
        for k, v in report[section].items():
            rows.append((section, k, v))
    for section in ("time_to_acknowledge_hours", "time_to_decision_hours"):
        for k, v in report[section].items():
            rows.append((section, k, v))
    rows.append(("repeated_concerns", "children", report["repeated_concerns"]["children"]))
    for item in report["repeated_concerns"]["list"]:
        rows.append(("repeated_concerns", f"child {item['child_id']}", item["concerns"]))
    for row in report["trust_rollup"]:
        for k, v in row.items():
            if k == "school":
                continue
            if k == "by_category":
                for cat, n in v.items():
                    rows.append(("trust_rollup", f"{row['school']}.category.{cat}", n))
            else:
                rows.append(("trust_rollup", f"{row['school']}.{k}", v))
    return rows


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, default=str)


def to_csv(report: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "key", "value"])
    for row in flat_rows(report):
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def to_table(report: dict) -> str:
    sc = report["scope"]
    lines = [f"Safeguarding report — {_scope(sc)}; from {sc['from'] or 'the start'} "
             f"to {sc['to'] or 'now'}" + (f"; counts under {sc['suppressed_below']} shown as <{sc['suppressed_below']}"
                                          if sc["suppressed_below"] else "")]
    current = None
    for section, key, value in flat_rows(report):
        if section != current:
            lines.append("")
            lines.append(section.replace("_", " ").upper())
            current = section
        lines.append(f"  {_label(section, key):<58} {'—' if value is None else value}")
    return "\n".join(lines) + "\n"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _num(v) -> float:
    return 0 if isinstance(v, str) else float(v or 0)  # "<5" plots as nothing rather than a guess


def charts(report: dict) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    months = list(report["by_month"])
    if months:
        fig, ax = plt.subplots(figsize=(8, 3))
        values = [_num(report["by_month"][m]) for m in months]
        ax.bar(months, values, color="#3b6ea5")
        ax.plot(months, values, color="#c0392b", marker="o")
        ax.set_title("Concerns by month")
        ax.set_ylabel("concerns")
        ax.tick_params(axis="x", rotation=45)
        out["by_month"] = _png(fig)
    cats = sorted(report["by_category"].items(), key=lambda kv: _num(kv[1]))
    if cats:
        fig, ax = plt.subplots(figsize=(8, max(2, 0.35 * len(cats))))
        ax.barh([category_label(k, None)[:40] for k, _ in cats], [_num(v) for _, v in cats], color="#5b8c5a")
        ax.set_title("Concerns by category")
        out["by_category"] = _png(fig)
    decisions = report["decisions"]
    if decisions:
        fig, ax = plt.subplots(figsize=(8, max(2, 0.35 * len(decisions))))
        ax.barh([DECISION_LABELS.get(k, k)[:40] for k in decisions], [_num(v) for v in decisions.values()],
                color="#8e6c8a")
        ax.set_title("Decisions")
        out["decisions"] = _png(fig)
    return out


def to_html(report: dict) -> str:
    sc = report["scope"]
    imgs = charts(report)
    parts = ["<!doctype html><html lang=\"en-GB\"><head><meta charset=\"utf-8\"><title>Safeguarding report</title>",
             "<style>body{font-family:Arial,sans-serif;margin:2em;color:#111} table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left} h2{border-bottom:1px solid #999}"
             "img{max-width:100%} @media print{h2{page-break-after:avoid} img,table{page-break-inside:avoid}}</style>",
             "</head><body>",
             f"<h1>Safeguarding report — {escape(_scope(sc))}</h1>",
             f"<p>From {escape(sc['from'] or 'the start')} to {escape(sc['to'] or 'now')}. "
             f"Generated {escape(sc['generated_at'][:16])}. {report['concerns']} concerns.</p>"]
    if sc["suppressed_below"]:
        parts.append(f"<p>Counts from 1 to {sc['suppressed_below'] - 1} are shown as &lt;{sc['suppressed_below']} "
                     "so that no child can be identified.</p>")
    titles = {"by_month": "Trend by month", "by_category": "By category", "decisions": "Decisions"}
    for key, data in imgs.items():
        parts.append(f"<h2>{titles[key]}</h2><img alt=\"{titles[key]} chart\" src=\"data:image/png;base64,{data}\">")
    parts.append("<h2>Figures</h2><table><thead><tr><th>Section</th><th>Item</th><th>Value</th></tr></thead><tbody>")
    for section, key, value in flat_rows(report):
        parts.append(f"<tr><td>{escape(section.replace('_', ' '))}</td><td>{escape(_label(section, key))}</td>"
                     f"<td>{escape('—' if value is None else str(value))}</td></tr>")
    parts.append("</tbody></table></body></html>")
    return "\n".join(parts)


def render(report: dict, fmt: str) -> str:
    return {"table": to_table, "csv": to_csv, "json": to_json, "html": to_html}[fmt](report)
