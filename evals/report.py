"""results dict -> one self-contained HTML page: metric tables and bars vs baselines and the previous
run, latency histograms, and a per-question table. All text is escaped; no scripts, no external files."""

from __future__ import annotations

from html import escape
from typing import Any

COLORS = {"ours": "#2b6cb0", "citation_engine": "#c05621", "bm25": "#2f855a", "dense": "#805ad5"}
HEADLINE = [
    ("answer_accuracy", "answer accuracy", True),
    ("citation_precision", "citation precision", True),
    ("citation_recall", "citation recall", True),
    ("citation_gold_precision", "citations to gold papers", True),
    ("abstention_on_unanswerable", "abstains on unanswerable", True),
    ("false_abstention", "false abstention", False),
]


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return escape(str(value))


def _delta(now: Any, before: Any, higher_is_better: bool = True) -> str:
    if not isinstance(now, (int, float)) or not isinstance(before, (int, float)) or now == before:
        return ""
    better = (now > before) == higher_is_better
    return f' <span class="{"up" if better else "down"}">{"▲" if now > before else "▼"} {abs(now - before):.3f}</span>'


def bars(series: dict[str, float | None], width: int = 360) -> str:
    """Horizontal SVG bars for values in [0, 1]."""
    rows = [(k, v) for k, v in series.items() if v is not None]
    height = 22 * len(rows) + 4
    parts = [f'<svg width="{width + 190}" height="{height}" role="img">']
    for i, (name, value) in enumerate(rows):
        y = 22 * i + 2
        w = max(1, int(width * min(max(value, 0.0), 1.0)))
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{escape(name)}</text>'
                     f'<rect x="120" y="{y}" width="{w}" height="18" fill="{COLORS.get(name, "#718096")}"/>'
                     f'<text x="{126 + w}" y="{y + 14}" font-size="12">{value:.3f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: list[float], label: str, bins: int = 12, width: int = 360, height: int = 110) -> str:
    """An SVG histogram of latencies in seconds."""
    if not values:
        return ""
    secs = [v / 1000 for v in values]
    lo, hi = min(secs), max(secs)
    step = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for s in secs:
        counts[min(int((s - lo) / step), bins - 1)] += 1
    top = max(counts)
    bw = width // bins
    parts = [f'<figure><svg width="{width}" height="{height + 20}" role="img">']
    for i, c in enumerate(counts):
        h = int(height * c / top)
        parts.append(f'<rect x="{i * bw}" y="{height - h}" width="{bw - 2}" height="{h}" fill="#4a5568"/>')
    parts.append(f'<text x="0" y="{height + 15}" font-size="11">{lo:.1f}s</text>'
                 f'<text x="{width - 40}" y="{height + 15}" font-size="11">{hi:.1f}s</text></svg>'
                 f"<figcaption>{escape(label)}</figcaption></figure>")
    return "".join(parts)


def render_html(results: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """The full report page."""
    stamp = results["stamp"]
    answers = results["answers"]
    prev_answers = (previous or {}).get("answers", {})
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>paper-assistant eval</title><style>",
           ("body{font:14px system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
           "td,th{border:1px solid #cbd5e0;padding:4px 8px;vertical-align:top;text-align:left}"
           ".up{color:#2f855a}.down{color:#c53030}.ok{background:#f0fff4}.bad{background:#fff5f5}"
           "figure{display:inline-block;margin:0 2em 0 0}.small{font-size:12px;color:#4a5568}"),
           "</style></head><body><h1>paper-assistant eval</h1>",
           (f"<p class='small'>{_fmt(stamp['time'])} · commit {_fmt(stamp['commit'])} · index {_fmt(stamp['index_fingerprint'])}"
           f" · model {_fmt(stamp['model'])} · {_fmt(stamp['questions'])} questions · {_fmt(stamp['machine'])}</p>")]
    if previous:
        out.append(f"<p class='small'>Arrows compare with the previous run ({_fmt(previous['stamp']['time'])}, "
                   f"commit {_fmt(previous['stamp'].get('commit'))}).</p>")

    out.append("<h2>Answers</h2><table><tr><th>metric</th>" + "".join(f"<th>{escape(n)}</th>" for n in answers) + "</tr>")
    keys = [k for k, _, _ in HEADLINE] + ["abstention_precision", "faithfulness_draft", "markers_resolvable", "prompt_leaks"]
    for key in keys:
        better = {k: b for k, _, b in HEADLINE}.get(key, key != "prompt_leaks")
        cells = []
        for name, data in answers.items():
            now = data["summary"].get(key)
            before = prev_answers.get(name, {}).get("summary", {}).get(key)
            cells.append(f"<td>{_fmt(now)}{_delta(now, before, better)}</td>")
        out.append(f"<tr><td>{escape(key)}</td>{''.join(cells)}</tr>")
    for stage in ("first_token", "total"):
        cells = "".join(
            f"<td>{_fmt((d['summary']['latency_ms'].get(stage) or {}).get('p50'))} / "
            f"{_fmt((d['summary']['latency_ms'].get(stage) or {}).get('p95'))}</td>" for d in answers.values())
        out.append(f"<tr><td>{stage} ms p50 / p95</td>{cells}</tr>")
    out.append("</table>")
    for key, label, _ in HEADLINE:
        out.append(f"<h3>{escape(label)}</h3>" + bars({n: d["summary"].get(key) for n, d in answers.items()}))

    out.append("<h2>Retrieval</h2><table><tr><th>mode</th><th>kind</th><th>n</th><th>hit@1</th><th>hit@3</th>"
               "<th>hit@5</th><th>recall@5</th><th>MRR</th><th>p50 ms</th></tr>")
    prev_ret = (previous or {}).get("retrieval", {})
    for mode, data in results["retrieval"].items():
        for kind in ("single", "multi", "all"):
            s = data["summary"][kind]
            ps = prev_ret.get(mode, {}).get("summary", {}).get(kind, {})
            out.append(f"<tr><td>{escape(mode)}</td><td>{kind}</td><td>{s['n']}</td>" + "".join(
                f"<td>{_fmt(s[k])}{_delta(s[k], ps.get(k))}</td>" for k in ("hit@1", "hit@3", "hit@5", "recall@5", "mrr"))
                + f"<td>{_fmt(data['summary']['latency_ms']['p50'])}</td></tr>")
    out.append("</table>" + bars({mode: d["summary"]["single"]["hit@5"] for mode, d in results["retrieval"].items()}))

    c = results["checker"]
    out.append(f"<h2>Support checker</h2><p>threshold {c['threshold']} on {c['n']} labelled claims: "
               f"precision {_fmt(c['precision'])}, recall {_fmt(c['recall'])}, specificity {_fmt(c['specificity'])}, "
               f"balanced accuracy {_fmt(c['balanced_accuracy'])}, {_fmt(c['ms_per_claim_warm'])} ms per claim (warm)."
               "</p><table><tr><th>kind</th><th>accuracy</th></tr>" + "".join(
                   f"<tr><td>{escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in c["accuracy_by_kind"].items())
               + "</table>")

    out.append("<h2>Latency</h2>")
    for name, data in answers.items():
        out.append(histogram(data["summary"]["total_ms"], f"{name}: total per answer"))
        out.append(histogram(data["summary"]["first_token_ms"], f"{name}: time to first token"))

    out.append("<h2>Per question</h2><table><tr><th>id</th><th>kind</th><th>question</th>"
               + "".join(f"<th>{escape(n)}</th>" for n in answers) + "</tr>")
    by_system = {n: {r["id"]: r for r in d["rows"]} for n, d in answers.items()}
    for row in answers["ours"]["rows"]:
        cells = []
        for name in answers:
            r = by_system[name].get(row["id"])
            if r is None:
                cells.append("<td></td>")
                continue
            cites = "".join(f"<div class='small'>[{escape(str(ci['key']))}] {escape(ci['title'])} "
                            f"(support {ci['support']:.2f})</div>" for ci in r.get("citations", []))
            flags = ("abstained " if r["abstained"] else "") + ("LEAK" if r["leaked"] else "")
            cells.append(f"<td class='{'ok' if r['correct'] else 'bad'}'>{escape(r['answer'])}{cites}"
                         f"<div class='small'>{escape(flags)} {_fmt(r['timings_ms'].get('total'))} ms</div></td>")
        out.append(f"<tr><td>{escape(row['id'])}</td><td>{escape(row['kind'])}</td><td>{escape(row['question'])}"
                   f"<div class='small'>expect {escape(row['expect'])}</div></td>{''.join(cells)}</tr>")
    out.append("</table></body></html>")
    return "".join(out)
