"""The self-contained HTML report of ``winoeval compare --html``.

One file, no network: images are small PNG thumbnails in base64 data URIs, the style and the filter
are inline. Every example is one ``<section class="example" data-id="...">`` block holding its images,
its captions (Winoground) or true label (classification), and each model's scores and verdicts. A
select box shows only the examples where the models disagree (on any verdict, or on one metric), or
that every model gets wrong or right; a search box filters by id or tag.

Images come from the task itself (``registry.resolve("task", name)`` with the run's ``data_dir`` or
``--data-dir``): the samples files hold scores, not pixels.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any, Sequence

THUMBNAIL = 128  # longest side in pixels, before CSS scaling

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.4em}h2{font-size:1.05em;margin:.2em 0}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:.85em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
.controls{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd;z-index:1}
section.example{border:1px solid #ddd;border-radius:6px;padding:.6em;margin:.8em 0}
section.example[hidden]{display:none}
section.example.disagree{border-left:5px solid #e69500}
.row{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
figure{margin:0;text-align:center;font-size:.8em}
figure img{width:96px;height:auto;image-rendering:pixelated;border:1px solid #aaa}
.noimg{width:96px;height:96px;display:flex;align-items:center;justify-content:center;background:#eee;color:#777}
.model{border:1px solid #eee;padding:.3em .5em;border-radius:4px}
.model h3{font-size:.9em;margin:0 0 .2em 0}
.ok{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}
td.best{font-weight:700}.tags{color:#666;font-size:.8em}.captions{margin:.2em 0;font-size:.9em}
.note{background:#fff7e0;padding:.4em;border-left:4px solid #e69500}
"""

JS = """
(function(){
  var sel=document.getElementById('show'), q=document.getElementById('q'), count=document.getElementById('count');
  var secs=document.querySelectorAll('section.example');
  function apply(){
    var v=sel.value, t=q.value.toLowerCase().trim(), n=0;
    for(var i=0;i<secs.length;i++){
      var s=secs[i], ok=(v==='all')||s.getAttribute('data-'+v)==='1';
      if(ok&&t){ok=(s.getAttribute('data-search')||'').indexOf(t)>=0;}
      s.hidden=!ok; if(ok){n++;}
    }
    count.textContent=n+' of '+secs.length+' examples shown';
  }
  sel.addEventListener('change',apply); q.addEventListener('input',apply); apply();
})();
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def thumbnail_uri(image, size: int = THUMBNAIL) -> str:
    """A PIL image as a PNG data URI, shrunk to at most ``size`` pixels on its longest side."""
    im = image.copy()
    if im.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        im = im.convert("RGB")
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def load_images(run, ids: Sequence[str], data_dir: str | None = None
                ) -> tuple[dict[str, list[str]], list[str] | None, str | None]:
    """Thumbnails (data URIs) of the examples ``ids`` of the run's task, the class names, and a warning.

    Failures never stop the report: what could not be loaded is named in the warning and shown as
    "no image".
    """
    from . import registry
    from .config import RunConfig

    wanted = set(ids)
    found: dict[str, list[str]] = {}
    class_names = None
    failed: list[str] = []
    cfg = run.config
    try:
        entry, arg = registry.resolve("task", run.task)
        config = RunConfig(model=str(cfg.get("model") or run.results["model"]["name"]), task=run.task,
                           data_dir=data_dir or cfg.get("data_dir"), task_args=dict(cfg.get("task_args") or {}))
        task = entry.loader(arg, config)
        class_names = list(task.class_names or task.texts or []) or None
        for example in task.examples():
            eid = str(example.id)
            if eid not in wanted or eid in found:
                continue
            try:
                images = example.images() if callable(example.images) else example.images
                found[eid] = [thumbnail_uri(im) for im in images]
            except Exception as exc:  # one unreadable image must not lose the others
                failed.append(f"{eid} ({type(exc).__name__}: {exc})")
            if len(found) + len(failed) >= len(wanted):
                break
    except Exception as exc:
        return found, class_names, (f"no images for the HTML report: task {run.task!r} could not be loaded "
                                    f"({type(exc).__name__}: {exc}); pass --data-dir, or --no-images")
    missing = len(wanted) - len(found)
    if missing:
        detail = f"; unreadable: {', '.join(failed[:3])}" if failed else ""
        return found, class_names, f"{missing} example(s) have no image in the HTML report{detail}"
    return found, class_names, None


def _score(v: float | None) -> str:
    return "pruned" if v is None else f"{v:.4g}"


def _mark(ok: bool) -> str:
    return '<span class="ok">✓</span>' if ok else '<span class="bad">✗</span>'


def _figures(uris: list[str] | None, count: int, names: list[str]) -> str:
    out = []
    for k in range(count):
        uri = uris[k] if uris and k < len(uris) else None
        body = f'<img src="{uri}" alt="{_e(names[k])}">' if uri else '<div class="noimg">no image</div>'
        out.append(f"<figure>{body}<figcaption>{_e(names[k])}</figcaption></figure>")
    return "".join(out)


def _tags(meta: dict[str, Any]) -> str:
    parts = []
    for k, v in meta.items():
        if v in (None, "", [], ()):
            continue
        parts.append(f"{k}={', '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}")
    return "; ".join(parts)


def _winoground_block(eid: str, runs, images, metrics) -> tuple[str, dict[str, bool]]:
    records = [run.records[eid] for run in runs]
    flags = {m: len({bool(r["verdicts"][m]) for r in records}) > 1 for m in metrics}
    texts = next((r.get("texts") for r in records if r.get("texts")), None) or ["caption 0", "caption 1"]
    parts = [f'<div class="row">{_figures(images.get(eid), 2, ["I0", "I1"])}'
             f'<ol class="captions" start="0">' + "".join(f"<li>C{k}: {_e(t)}</li>" for k, t in enumerate(texts))
             + "</ol></div><div class=\"row\">"]
    for run, r in zip(runs, records):
        S = r["scores"]
        rows = []
        for i, row in enumerate(S):
            finite = [v for v in row if v is not None]
            best = max(finite) if finite else None
            cells = "".join(f'<td class="{"best" if v is not None and v == best else ""}">{_score(v)}</td>'
                            for v in row)
            rows.append(f"<tr><th>I{i}</th>{cells}</tr>")
        verdicts = " ".join(f"{m} {_mark(r['verdicts'][m])}" for m in metrics)
        parts.append(f'<div class="model"><h3>{_e(run.label)}</h3><table class="scores"><tr><th></th><th>C0</th>'
                     f'<th>C1</th></tr>{"".join(rows)}</table><div>{verdicts}</div></div>')
    parts.append("</div>")
    flags["all-wrong"] = all(not r["verdicts"]["group"] for r in records)
    flags["all-right"] = all(r["verdicts"]["group"] for r in records)
    return "".join(parts), flags


def _classification_block(eid: str, runs, images, class_names) -> tuple[str, dict[str, bool]]:
    records = [run.records[eid] for run in runs]

    def name(k) -> str:
        if k is None:
            return "—"
        return f"{class_names[k]} ({k})" if class_names and 0 <= int(k) < len(class_names) else str(k)

    label = records[0].get("label")
    flags = {"disagree-correct": len({bool(r["verdicts"]["correct"]) for r in records}) > 1,
             "disagree-prediction": len({r["verdicts"].get("prediction") for r in records}) > 1}
    flags["all-wrong"] = all(not r["verdicts"]["correct"] for r in records)
    flags["all-right"] = all(r["verdicts"]["correct"] for r in records)
    parts = [f'<div class="row">{_figures(images.get(eid), 1, ["image"])}'
             f'<div><b>true label:</b> {_e(name(label))}<div class="row">']
    for run, r in zip(runs, records):
        scores = r["scores"][0]
        pred = r["verdicts"].get("prediction")
        true_score = scores[label] if label is not None and 0 <= label < len(scores) else None
        pred_score = scores[pred] if pred is not None and 0 <= pred < len(scores) else None
        parts.append(f'<div class="model"><h3>{_e(run.label)}</h3>prediction: {_e(name(pred))} '
                     f'{_mark(r["verdicts"]["correct"])}<br><span class="tags">score {_score(pred_score)}; '
                     f'true label {_score(true_score)}</span></div>')
    parts.append("</div></div></div>")
    return "".join(parts), flags


def _summary_tables(comp: dict[str, Any]) -> str:
    from .compare import BINARY, METRIC_TITLES

    labels = [r["label"] for r in comp["runs"]]

    def pct(v):
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"

    out = ['<table><tr><th class="l">subset</th><th>n</th><th class="l">metric</th>'
           + "".join(f"<th>{_e(x)}</th>" for x in labels) + "</tr>"]
    for row in comp["scores"]:
        cells = "".join(f"<td>{pct(v['value'])} [{pct(v['ci95'][0])}, {pct(v['ci95'][1])}]</td>"
                        for v in (row["values"][x] for x in labels))
        out.append(f'<tr><td class="l">{_e(row["subset"])}</td><td>{row["n"]}</td>'
                   f'<td class="l">{_e(METRIC_TITLES[row["metric"]])}</td>{cells}</tr>')
    out.append("</table>")
    out.append('<h2>Paired differences (B − A, points; bootstrap 95 % CI; exact McNemar p)</h2><table><tr>'
               '<th class="l">A</th><th class="l">B</th><th class="l">subset</th><th class="l">metric</th><th>Δ</th>'
               '<th>95 % CI</th><th>p</th><th>A ✓ B ✗</th><th>A ✗ B ✓</th></tr>')
    for r in comp["pairs"]:
        if r["subset"] != "all":
            continue
        p = "—" if r["mcnemar_p"] is None else f"{r['mcnemar_p']:.4g}"
        counts = (f'<td>{r["a_only"]}</td><td>{r["b_only"]}</td>' if r["metric"] in BINARY
                  else "<td>—</td><td>—</td>")
        out.append(f'<tr><td class="l">{_e(r["a"])}</td><td class="l">{_e(r["b"])}</td><td class="l">all</td>'
                   f'<td class="l">{_e(METRIC_TITLES[r["metric"]])}</td><td>{100 * r["diff"]:+.1f}</td>'
                   f'<td>[{100 * r["ci95"][0]:+.1f}, {100 * r["ci95"][1]:+.1f}]</td><td>{p}</td>{counts}</tr>')
    out.append("</table>")
    return "".join(out)


def render_html(comp: dict[str, Any], runs, ids: Sequence[str], images: dict[str, list[str]],
                class_names: list[str] | None = None) -> str:
    """The report as one HTML string."""
    winoground = comp["metric"] == "winoground"
    metrics = ("text", "image", "group")
    if winoground:
        options = [("all", "all examples"), ("disagree", "models disagree (any verdict)"),
                   *[(f"disagree-{m}", f"models disagree on {m}") for m in metrics],
                   ("all-wrong", "every model fails group"), ("all-right", "every model passes group")]
    else:
        options = [("all", "all examples"), ("disagree", "models disagree (right vs wrong)"),
                   ("disagree-prediction", "models predict different classes"),
                   ("all-wrong", "every model wrong"), ("all-right", "every model right")]
    sections = []
    n_disagree = 0
    for eid in ids:
        meta = runs[0].records[eid].get("meta", {}) or {}
        if winoground:
            body, flags = _winoground_block(eid, runs, images, metrics)
            flags = {**{f"disagree-{m}": flags[m] for m in metrics}, "all-wrong": flags["all-wrong"],
                     "all-right": flags["all-right"], "disagree": any(flags[m] for m in metrics)}
        else:
            body, flags = _classification_block(eid, runs, images, class_names)
            flags["disagree"] = flags["disagree-correct"]
        n_disagree += flags["disagree"]
        tags = _tags(meta)
        attrs = " ".join(f'data-{k}="{int(v)}"' for k, v in flags.items())
        search = f"{eid} {tags}".lower()
        sections.append(f'<section class="example{" disagree" if flags["disagree"] else ""}" data-id="{_e(eid)}" '
                        f'{attrs} data-search="{_e(search)}"><h2>{_e(eid)}</h2>'
                        + (f'<div class="tags">{_e(tags)}</div>' if tags else "") + body + "</section>")
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in comp.get("notes", []))
    runs_list = "".join(f"<li>{_e(r['label'])}: <code>{_e(r['results'])}</code></li>" for r in comp["runs"])
    select = "".join(f'<option value="{v}">{_e(t)}</option>' for v, t in options)
    title = f"winoeval compare: {comp['task']}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1>"
            f"<p>{comp['n_shared']} shared examples; the models disagree on {n_disagree}.</p><ul>{runs_list}</ul>"
            f"{notes}{_summary_tables(comp)}"
            f'<div class="controls"><label>show <select id="show">{select}</select></label> '
            f'<label>filter <input id="q" type="search" placeholder="id or tag"></label> '
            f'<span id="count"></span></div>'
            + "\n".join(sections)
            + f"<script>{JS}</script></body></html>\n")


def write_html(path: str | Path, comp: dict[str, Any], runs, ids: Sequence[str],
               images: dict[str, list[str]] | None = None, class_names: list[str] | None = None) -> None:
    Path(path).write_text(render_html(comp, runs, ids, images or {}, class_names), encoding="utf-8")


__all__ = ["load_images", "render_html", "thumbnail_uri", "write_html"]
