"""The HTML report of a study: one self-contained file (inline CSS, SVG and a little script).

Nothing is fetched: the figures are SVG drawn in Python and the only script (sorting and
filtering the trial table) is inlined, so the file opens offline, is mailed whole, and
works without JavaScript except for that table.
"""

from __future__ import annotations

import datetime
import os
from html import escape
from pathlib import Path

import optuna

from normnas.report import sections
from normnas.report.diagnostics import final_model_of
from normnas.report.study_data import FINAL_MODEL_ATTR, load
from normnas.text import plural

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
background:#fafafa}
header{background:#24364b;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;opacity:.85}nav{margin-top:8px}nav a{color:#cfe3ff;margin-right:14px}
main{max-width:1180px;margin:0 auto;padding:8px 24px 40px}
section{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:10px 18px 16px;
margin:16px 0}
h2{font-size:17px;margin:6px 0 10px}h3{font-size:15px;margin:16px 0 6px}
code{font:12px ui-monospace,Menlo,Consolas,monospace;background:#f3f3f3;padding:1px 3px;
word-break:break-all}
pre{font-size:12px;background:#f6f6f6;padding:8px;overflow:auto;max-height:320px}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.row.small{gap:6px}
svg.fig{max-width:100%;height:auto;background:#fff}
svg .axis{stroke:#444}svg .grid{stroke:#eee}svg text{font-size:11px;fill:#333}
svg .label{font-size:12px;fill:#222}svg .tick{font-size:10.5px}
svg .pt:hover,svg .curve:hover{stroke:#000;stroke-width:2.5}
svg .curve{opacity:.75}svg .chosen-curve{opacity:1}
.legend span{margin-right:14px;font-size:12px}.legend i{display:inline-block;width:10px;
height:10px;border-radius:50%;margin-right:4px}
.chip{display:inline-block;border:2px solid;border-radius:10px;padding:0 7px;margin:1px;
font-size:12px}
table{border-collapse:collapse}th,td{padding:3px 8px;text-align:left;vertical-align:top}
table.kv th{color:#555;font-weight:600;white-space:nowrap}
table.trials{font-size:12px;width:100%}table.trials th{cursor:pointer;background:#f0f3f7;
position:sticky;top:0;white-space:nowrap}table.trials td:last-child{font-family:ui-monospace,
Menlo,monospace;font-size:11px;word-break:break-all}
table.trials tr:nth-child(even){background:#fafbfc}tr.chosen-row{outline:2px solid #d62728}
table.costs td,table.costs th,table.bn td,table.bn th{border-bottom:1px solid #eee}
.scroll{max-height:480px;overflow:auto;border:1px solid #eee}
.headline{font-size:15px;background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px}
.note{color:#666;font-style:italic}
th.asc::after{content:" ▲"}th.desc::after{content:" ▼"}
"""

# sorts by a cell's data-v (numbers numerically, text alphabetically); filters rows by text
SCRIPT = """
(function () {
  var table = document.getElementById("trial-table");
  if (!table) { return; }
  var body = table.tBodies[0];
  var count = document.getElementById("trial-count");
  var filter = document.getElementById("trial-filter");
  function shown() {
    var n = 0;
    Array.prototype.forEach.call(body.rows, function (r) {
      if (r.style.display !== "none") { n++; }
    });
    count.textContent = n + " of " + body.rows.length + " trials";
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
        h.classList.remove("asc", "desc");
      });
      th.classList.add(asc ? "asc" : "desc");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
        var nx = parseFloat(x), ny = parseFloat(y), c;
        if (x === "" && y !== "") { return 1; }
        if (y === "" && x !== "") { return -1; }
        if (!isNaN(nx) && !isNaN(ny)) { c = nx - ny; } else { c = x < y ? -1 : x > y ? 1 : 0; }
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  filter.addEventListener("input", function () {
    var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    Array.prototype.forEach.call(body.rows, function (r) {
      var text = r.textContent.toLowerCase();
      r.style.display = words.every(function (w) { return text.indexOf(w) >= 0; }) ? "" : "none";
    });
    shown();
  });
  shown();
})();
"""

SECTIONS = (
    ("summary", "Summary"),
    ("cascade", "Cascade"),
    ("trajectory", "Trajectory"),
    ("pareto", "Pareto front"),
    ("choices", "Which choices matter"),
    ("trials", "Per trial"),
    ("best", "Best model"),
    ("slimming", "Slimming"),
)


def build_report(study: optuna.Study, storage: str, measure: bool = True) -> str:
    """The report's HTML. `measure`: when the study has a saved best model but no recorded
    diagnostics (an older study), measure them now (and store them when allowed)."""
    if measure and not isinstance(study.user_attrs.get(FINAL_MODEL_ATTR), dict):
        fm = final_model_of(study, storage)
        data = load(study, storage)
        if fm is not None:
            data.attrs[FINAL_MODEL_ATTR] = fm
    else:
        data = load(study, storage)
    parts = [
        sections.summary(data),
        sections.cascade(data),
        sections.trajectory(data),
        sections.pareto(data),
        sections.choices(data, study),
        sections.per_trial(data),
        sections.best_model(data),
    ]
    from normnas.report.slimming import find_results, slimming

    slim_results = find_results(study, storage)  # what `normnas slim` measured, if it ran
    parts.append(slimming(slim_results))
    nav = "".join(
        f'<a href="#{i}">{escape(t)}</a>'
        for i, t in SECTIONS
        if (i != "pareto" or len(data.objectives) > 1)
        and (i != "cascade" or data.funnel)
        and (i != "slimming" or slim_results)
    )
    made = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>normnas report: {escape(data.name)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>normnas report: {escape(data.name)}</h1>"
        f"<p>{plural(len(data.rows), 'trial')} · "
        f"{escape(', '.join(sections.objective_name(data, o) for o in data.objectives))} · "
        f"made {made} "
        f"from the storage alone</p><nav>{nav}</nav></header><main>"
        + "".join(parts)
        + f"</main><script>{SCRIPT}</script></body></html>\n"
    )


def write_report(study: optuna.Study, storage: str, out: str | Path) -> Path:
    """Write the report to `out` whole (a temporary file renamed over it); returns the path."""
    from normnas.errors import ExportError
    from normnas.search.final import prepare_out
    from normnas.search.study import safe_file_stem

    # a folder: suggest the file (the name made safe, as the default report path is)
    path = prepare_out(out, f"{safe_file_stem(study.study_name)}-report.html")
    html = build_report(study, storage)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"{path}: cannot write the report ({e.strerror or e})") from None
    return path


def default_report_path(study_name: str, storage: str) -> Path:
    """Where `normnas search` puts a study's report: beside its storage, NAME-report.html."""
    from normnas.search.study import study_file

    return study_file(storage, study_name, "-report.html")
