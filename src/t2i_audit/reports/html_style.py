"""The report pages' shared look: the Content-Security-Policy, the style sheet and the escaped
HTML table, kept below every section module so that sections (robustness, compare) can use them
without importing the run report itself."""

from __future__ import annotations

from t2i_audit.reports.html_images import esc

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;color:#222;
padding:0 16px;line-height:1.4}
h1{font-size:1.6em;margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:2px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#18794e;font-weight:600}.fail{color:#c62828;font-weight:600}
.verdict{display:inline-block;padding:4px 14px;border-radius:4px;color:#fff;font-weight:700}
.verdict.pass{background:#18794e;color:#fff}.verdict.fail{background:#c62828;color:#fff}
.grid{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;width:120px;font-size:.75em}
figure.pair{width:190px}figure img{border:1px solid #ccc;margin-right:2px}
.noimg{display:inline-flex;align-items:center;justify-content:center;background:#eee;color:#777;
font-size:.8em;border:1px dashed #bbb}
.prompt h4{margin:14px 0 4px;font-weight:500}.missing{color:#8a6d3b;background:#fcf8e3;padding:6px 10px}
.note{color:#666;font-size:.85em}code{background:#f5f5f5;padding:0 3px}
"""


def _table(header: list[str], rows: list[list], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    th = "".join(f"<th>{esc(h)}</th>" for h in header)
    thead = f"<thead><tr>{th}</tr></thead>" if any(header) else ""
    body = []
    for r in rows:
        tds = "".join(f"<td class='num'>{esc(c)}</td>" if i in numeric else f"<td>{esc(c)}</td>"
                      for i, c in enumerate(r))
        body.append(f"<tr>{tds}</tr>")
    return f"<table>{thead}<tbody>{''.join(body)}</tbody></table>"
