"""The self-contained HTML report of ``winoeval compare --html``.

One file, no network: images are embedded as data URIs, the style and the script inline. The page holds

* a compact summary: one row per subset, one column per metric × model, the best value of each
  metric and subset in bold; the calibration table when ``--calibrate`` was given;
* for each pair of models, the paired differences per subset and metric with the ids of the examples
  one model gets right and the other wrong (links to the examples);
* every example as ``<section class="example" data-id="...">``: its images (shown at their own size up
  to 256 px, a copy of up to 384 px opens on click), captions (Winoground) or true label
  (classification), and each model's scores and verdicts; an orange stripe marks the examples where
  the models disagree.

Without JavaScript every example is shown and the page says that the filter needs JavaScript. With it,
a select box shows only some examples (the models disagree, on any verdict or on one; every model
wrong; every model right) and a search box filters by id or tag; the state lives in the URL fragment
(``report.html#show=disagree``, ``#show=all-wrong&q=relation``), so a link opens a filtered view.

Images come from the task itself (``registry.resolve("task", name)`` with the run's ``data_dir`` or
``--data-dir``): the samples files hold scores, not pixels. PIL is imported inside the functions.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any, Sequence

from .metrics import pct
from .plot import short_labels
from .results import BINARY, METRIC_TITLES

DISPLAY = 256  # longest side shown in the page, CSS pixels
SMALL_TARGET = 160  # small images (WinoDigits' 32 px, MNIST's 28 px) are shown upscaled by a whole factor to about this
STORED = 384  # longest side stored (what click-to-enlarge shows); photos as JPEG (~45 KiB), small images as PNG

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em;color:#222;max-width:1300px}
h1{font-size:1.4em}h2{font-size:1.1em;margin:1.2em 0 .4em}h3{font-size:1em;margin:.2em 0}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:.85em;
text-align:right;vertical-align:top}th{background:#f4f4f4}td.l,th.l{text-align:left}
td.best,b.best{font-weight:700}.ci{color:#666;font-size:.85em;font-weight:400}
.legend{font-size:.85em;color:#444;background:#fafafa;border:1px solid #e4e4e4;padding:.4em .7em;border-radius:4px}
.legend .stripe{display:inline-block;width:5px;height:1em;background:#e69500;vertical-align:middle}
.ids a{margin-right:.4em}
.controls{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd;z-index:1}
.nojs{background:#fff7e0;padding:.4em;border-left:4px solid #e69500}
section.example{border:1px solid #ddd;border-radius:6px;padding:.6em;margin:.8em 0}
section.example[hidden]{display:none}
section.example.disagree{border-left:6px solid #e69500}
section.example h3 a{color:inherit;text-decoration:none}
.row{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
figure{margin:0;text-align:center;font-size:.8em}
figure img{display:block;max-width:256px;max-height:256px;border:1px solid #aaa;cursor:zoom-in}
figure img.small{image-rendering:pixelated}
.noimg{width:96px;height:96px;display:flex;align-items:center;justify-content:center;background:#eee;color:#777}
.model{border:1px solid #eee;padding:.3em .5em;border-radius:4px}
.ok{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}
.tags{color:#666;font-size:.8em}.captions{margin:.2em 0;font-size:.95em;list-style:none;padding-left:0}
.note{background:#fff7e0;padding:.4em;border-left:4px solid #e69500}
.scale{color:#555;font-size:.75em;max-width:24em;margin:.2em 0}
details.same{margin:.3em 0}details.same summary{cursor:pointer;color:#444;font-size:.9em}
#zoom{position:fixed;inset:0;background:rgba(0,0,0,.8);display:flex;align-items:center;justify-content:center;
z-index:9;cursor:zoom-out}#zoom[hidden]{display:none}#zoom img{background:#fff;image-rendering:auto}
#zoom img.small{image-rendering:pixelated}
"""

JS = """
(function(){
  var sel=document.getElementById('show'), q=document.getElementById('q'), count=document.getElementById('count');
  var secs=document.querySelectorAll('section.example');
  document.getElementById('controls').hidden=false;
  function state(){
    var h=location.hash.replace(/^#/,''), out={};
    h.split('&').forEach(function(kv){var i=kv.indexOf('=');
      if(i>0){out[kv.slice(0,i)]=decodeURIComponent(kv.slice(i+1).replace(/\\+/g,' '));}});
    return out;
  }
  function apply(){
    var v=sel.value, t=q.value.toLowerCase().trim(), n=0;
    for(var i=0;i<secs.length;i++){
      var s=secs[i], ok=(v==='all')||s.getAttribute('data-'+v)==='1';
      if(ok&&t){ok=(s.getAttribute('data-search')||'').indexOf(t)>=0;}
      s.hidden=!ok; if(ok){n++;}
    }
    count.textContent=n+' of '+secs.length+' examples shown';
  }
  function fromHash(){
    var st=state();
    if(st.show!==undefined||st.q!==undefined){
      var known=false;
      for(var i=0;i<sel.options.length;i++){if(sel.options[i].value===st.show){known=true;}}
      sel.value=known?st.show:'all'; q.value=st.q||'';
      apply();
    } else if(location.hash.indexOf('#ex-')===0){
      sel.value='all'; q.value=''; apply();
      var target=document.getElementById(location.hash.slice(1)); if(target){target.scrollIntoView();}
    } else {apply();}
  }
  function toHash(){
    var parts=['show='+encodeURIComponent(sel.value)];
    if(q.value.trim()){parts.push('q='+encodeURIComponent(q.value.trim()));}
    history.replaceState(null,'','#'+parts.join('&'));
    apply();
  }
  sel.addEventListener('change',toHash); q.addEventListener('input',toHash);
  window.addEventListener('hashchange',fromHash); fromHash();
  var zoom=document.getElementById('zoom'), big=document.createElement('img'); zoom.appendChild(big);
  document.addEventListener('click',function(e){
    var im=e.target;
    if(im.tagName==='IMG'&&im.closest('figure')){
      big.src=im.src; big.alt=im.alt; big.className=im.className;
      var w=im.naturalWidth||1, h=im.naturalHeight||1;
      var fit=Math.min(0.9*innerWidth/w,0.9*innerHeight/h);
      var k=(w<DISPLAY&&h<DISPLAY)?Math.min(fit,16):Math.min(fit,1);
      big.style.width=Math.round(w*k)+'px'; big.style.height='auto';
      zoom.hidden=false;
    } else if(e.target===zoom||e.target===big){zoom.hidden=true;}
  });
  document.addEventListener('keydown',function(e){if(e.key==='Escape'){zoom.hidden=true;}});
})();
""".replace("DISPLAY", str(DISPLAY))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def image_uri(image, size: int = STORED) -> str:
    """A PIL image as a data URI, shrunk (never enlarged) to at most ``size`` pixels on its longest side:
    JPEG (quality 88) for photos over 128 px without transparency, PNG otherwise (lossless; small images
    and drawings)."""
    im = image.copy()
    if im.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        im = im.convert("RGB")
    im.thumbnail((size, size))
    buf = io.BytesIO()
    if max(im.size) > 128 and im.mode in ("RGB", "L"):
        im.save(buf, format="JPEG", quality=88)
        kind = "jpeg"
    else:
        im.save(buf, format="PNG", optimize=True)
        kind = "png"
    return f"data:image/{kind};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def load_images(run, ids: Sequence[str], data_dir: str | None = None
                ) -> tuple[dict[str, list[tuple[str, int, int]]], list[str] | None, str | None]:
    """The images of the examples ``ids`` of the run's task as (data URI, width, height), the class
    names, and a warning.

    Failures never stop the report: what could not be loaded is named in the warning and shown as
    "no image".
    """
    from . import registry
    from .config import RunConfig

    wanted = set(ids)
    found: dict[str, list[tuple[str, int, int]]] = {}
    class_names = None
    failed: list[str] = []
    cfg = run.config
    try:
        entry, arg = registry.resolve("task", run.task)
        config = RunConfig(model=str(cfg.get("model") or run.results["model"]["name"]), task=run.task,
                           data_dir=data_dir or cfg.get("data_dir"), task_args=dict(cfg.get("task_args") or {}))
        task = entry.loader(arg, config)
        class_names = list(task.class_names or task.texts or []) or None
        mismatch = data_mismatch(run, config, task, data_dir)
        if mismatch is not None and mismatch[0]:
            return found, class_names, mismatch[1]  # another dataset: no images rather than wrong ones
        note = mismatch[1] if mismatch is not None else None
        for example in task.examples():
            eid = str(example.id)
            if eid not in wanted or eid in found:
                continue
            try:
                images = example.images() if callable(example.images) else example.images
                found[eid] = [(image_uri(im), *im.size) for im in images]
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
        return found, class_names, f"{missing} example(s) have no image in the HTML report{detail}" + \
            (f"; {note}" if note else "")
    return found, class_names, note


def data_mismatch(run, config, task, data_dir: str | None) -> tuple[bool, str] | None:
    """Whether the data the report would show is the data the run evaluated, by the task fingerprint
    the run recorded (``task.fingerprint``: the task's own and the content hash of its ``--data-dir``)
    against the same fingerprint of the data found now. ``(True, why)``: it differs (show no images);
    ``(False, note)``: it cannot be checked (nothing recorded in common); None: it matches."""
    from .fingerprint import of_task as task_fingerprint

    recorded = run.results.get("task", {}).get("fingerprint")
    try:
        current = task_fingerprint(config, task)
    except OSError as exc:
        return True, f"could not fingerprint the data to check it ({exc}); no images shown"
    if recorded == current:
        return None
    if not isinstance(recorded, dict) or not recorded:
        return False, "the run recorded no task fingerprint, so the images' data could not be checked against it"
    shared = sorted(set(recorded) & set(current))
    if not shared:
        return False, (f"the data could not be checked against the run (it recorded {', '.join(sorted(recorded))}, "
                       f"this data has {', '.join(sorted(current)) or 'no fingerprint'})")
    differ = [k for k in shared if recorded[k] != current[k]]
    if differ:
        where = f"--data-dir {data_dir}" if data_dir else f"the run's data folder {config.data_dir!r}"
        detail = "; ".join(f"{k}: recorded {str(recorded[k])[:20]}…, now {str(current[k])[:20]}…" for k in differ)
        return True, (f"no images in the HTML report: {where} is not the data the run evaluated (the task "
                      f"fingerprint differs: {detail}); pass the folder the run used, or --no-images")
    return None


def _score(v: float | None) -> str:
    return "pruned" if v is None else f"{v:.4g}"


def _mark(ok: bool) -> str:
    return '<span class="ok">✓</span>' if ok else '<span class="bad">✗</span>'


def _pp(v: float) -> str:
    """A difference in percentage points, signed; no "-0.0"."""
    text = f"{100 * v:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def _anchor(eid: str) -> str:
    return "ex-" + "".join(c if c.isalnum() or c in "-_." else f"_{ord(c):x}" for c in str(eid))


def display_scale(width: int, height: int) -> float:
    """How much an image is scaled in the page: large ones shrink to :data:`DISPLAY` px, small ones grow by
    a whole factor (nearest neighbour: pixels stay sharp squares) to about :data:`SMALL_TARGET` px."""
    longest = max(width, height)
    if longest > DISPLAY:
        return DISPLAY / longest
    return float(max(1, SMALL_TARGET // longest))


def _figures(images: list | None, count: int, names: list[str]) -> str:
    out = []
    for k in range(count):
        item = images[k] if images and k < len(images) else None
        if item:
            uri, w, h = item if isinstance(item, (tuple, list)) else (item, None, None)
            scale = display_scale(w, h) if w and h else None
            size = f' width="{round(w * scale)}" height="{round(h * scale)}"' if scale else ""
            small = ' class="small"' if w and h and max(w, h) < DISPLAY else ""
            body = f'<img src="{uri}"{size}{small} alt="{_e(names[k])}" title="click to enlarge">'
        else:
            body = '<div class="noimg">no image</div>'
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
        rows = []
        for i, row in enumerate(r["scores"]):
            best = strict_best(row)
            cells = "".join(f'<td class="{"best" if k == best else ""}">{_score(v)}</td>' for k, v in enumerate(row))
            rows.append(f"<tr><th>I{i}</th>{cells}</tr>")
        verdicts = " ".join(f"{m} {_mark(r['verdicts'][m])}" for m in metrics)
        parts.append(f'<div class="model"><h3>{_e(run.label)}</h3><table class="scores"><tr><th></th><th>C0</th>'
                     f'<th>C1</th></tr>{"".join(rows)}</table><div class="scale">{_e(score_meaning(r))}</div>'
                     f'<div>{verdicts}</div></div>')
    parts.append("</div>")
    flags["all-wrong"] = all(not r["verdicts"]["group"] for r in records)
    flags["all-right"] = all(r["verdicts"]["group"] for r in records)
    return "".join(parts), flags


def strict_best(values: Sequence[float | None]) -> int | None:
    """The index of the one largest value, or None when nothing is strictly best (a tie, or no value)."""
    finite = [(v, k) for k, v in enumerate(values) if v is not None and not math.isnan(v)]
    if not finite:
        return None
    top = max(v for v, _ in finite)
    at_top = [k for v, k in finite if v == top]
    return at_top[0] if len(at_top) == 1 else None


def score_meaning(record: dict[str, Any]) -> str:
    """One line saying what a record's scores are, so that their scale is not a puzzle: a diffusion model's
    score is minus a denoising error (errors ~0.005 show as −0.005), a matcher's is a similarity (~0.8)."""
    if record.get("uncond_errors") is not None:
        return ("score = −(denoising error − the image's unconditional error): the error is lower for a better "
                "match, so the score is higher (better) for a better match")
    if record.get("n_evals"):
        return ("score = −(denoising error, mean over the Monte-Carlo samples): error lower = better match, "
                "so score higher = better")
    return "score = the model's image–text similarity (e.g. CLIP's cosine): higher = better match"


def class_name(k: int | None, class_names: list[str] | None) -> str:
    """A class as the user knows it: its name, with the index only when the name is not just the index."""
    if k is None:
        return "—"
    if class_names and 0 <= int(k) < len(class_names):
        name = str(class_names[k])
        return name if name.strip() == str(k) else f"{name} ({k})"
    return str(k)


def _classification_block(eid: str, runs, images, class_names) -> tuple[str, dict[str, bool]]:
    records = [run.records[eid] for run in runs]
    label = records[0].get("label")
    class_names = records[0].get("texts") or class_names  # a choice example: its own captions
    flags = {"disagree-correct": len({bool(r["verdicts"]["correct"]) for r in records}) > 1,
             "disagree-prediction": len({r["verdicts"].get("prediction") for r in records}) > 1}
    flags["all-wrong"] = all(not r["verdicts"]["correct"] for r in records)
    flags["all-right"] = all(r["verdicts"]["correct"] for r in records)
    parts = [f'<div class="row">{_figures(images.get(eid), 1, ["image"])}'
             f'<div><b>true label:</b> {_e(class_name(label, class_names))}<div class="row">']
    for run, r in zip(runs, records):
        scores = r["scores"][0]
        pred = r["verdicts"].get("prediction")
        true_score = scores[label] if label is not None and 0 <= label < len(scores) else None
        pred_score = scores[pred] if pred is not None and 0 <= pred < len(scores) else None
        detail = (f"score {_score(pred_score)}" if pred == label
                  else f"score {_score(pred_score)}; true label's {_score(true_score)}")
        parts.append(f'<div class="model"><h3>{_e(run.label)}</h3>predicts {_e(class_name(pred, class_names))} '
                     f'{_mark(r["verdicts"]["correct"])}<br><span class="tags">{detail}</span>'
                     f'<div class="scale">{_e(score_meaning(r))}</div></div>')
    parts.append("</div></div></div>")
    return "".join(parts), flags


def summary_table(comp: dict[str, Any], names: dict[str, str]) -> str:
    """Rows = subsets, columns = metric × model; the best value of each (subset, metric) in bold."""
    labels = [r["label"] for r in comp["runs"]]
    metrics = list(dict.fromkeys(row["metric"] for row in comp["scores"]))
    by: dict[str, dict[str, dict]] = {}
    n_of: dict[str, int] = {}
    for row in comp["scores"]:
        by.setdefault(row["subset"], {})[row["metric"]] = row
        n_of[row["subset"]] = row["n"]
    head1 = "".join(f'<th colspan="{len(labels)}">{_e(METRIC_TITLES[m])}</th>' for m in metrics)
    head2 = "".join(f'<th title="{_e(x)}">{_e(names[x])}</th>' for _ in metrics for x in labels)
    out = [f'<table class="summary"><tr><th class="l" rowspan="2">subset</th><th rowspan="2">n</th>{head1}</tr>'
           f"<tr>{head2}</tr>"]
    for subset, rows in by.items():
        cells = []
        for m in metrics:
            values = rows[m]["values"]
            best = strict_best([values[x]["value"] for x in labels]) if len(labels) > 1 else None
            for k, x in enumerate(labels):
                v = values[x]
                cls = ' class="best"' if k == best else ""
                cells.append(f'<td{cls}>{pct(v["value"])}<br><span class="ci">[{pct(v["ci95"][0])}, '
                             f'{pct(v["ci95"][1])}]</span></td>')
        out.append(f'<tr><td class="l">{_e(subset)}</td><td>{n_of[subset]}</td>{"".join(cells)}</tr>')
    out.append("</table>")
    return "".join(out)


def _id_links(ids: Sequence[str]) -> str:
    if not ids:
        return "—"
    return "".join(f'<a href="#{_anchor(i)}">{_e(i)}</a>' for i in ids)


def pairs_tables(comp: dict[str, Any], names: dict[str, str]) -> str:
    """One table per pair of models: Δ = B − A per subset and metric, CI, McNemar p, discordant ids."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in comp["pairs"]:
        groups.setdefault((row["a"], row["b"]), []).append(row)
    boot = comp["bootstrap"]
    out = []
    for (a, b), rows in groups.items():
        A, B = _e(names[a]), _e(names[b])
        head = (f'<tr><th class="l">subset</th><th>n</th><th class="l">metric</th><th>Δ (points)</th>'
                f'<th>95 % CI</th><th>McNemar p</th><th class="l">{A} ✓ {B} ✗</th><th class="l">{A} ✗ {B} ✓</th></tr>')
        lines = {True: [], False: []}
        for r in rows:
            p = "—" if r["mcnemar_p"] is None else (f"{r['mcnemar_p']:.4f}" if r["mcnemar_p"] >= 1e-4
                                                    else f"{r['mcnemar_p']:.1e}")
            if r["metric"] in BINARY:
                ids = (f'<td class="l ids">{r["a_only"]}: {_id_links(r["a_only_ids"])}</td>'
                       f'<td class="l ids">{r["b_only"]}: {_id_links(r["b_only_ids"])}</td>')
            else:
                ids = '<td class="l">—</td><td class="l">—</td>'
            lines[no_difference(r)].append(
                f'<tr><td class="l">{_e(r["subset"])}</td><td>{r["n"]}</td>'
                f'<td class="l">{_e(METRIC_TITLES[r["metric"]])}</td><td>{_pp(r["diff"])}</td>'
                f'<td>[{_pp(r["ci95"][0])}, {_pp(r["ci95"][1])}]</td><td>{p}</td>{ids}</tr>')
        out.append(f"<h3>{B} − {A}</h3>")
        if lines[False]:
            out.append(f'<table class="pairs">{head}{"".join(lines[False])}</table>')
        else:
            out.append('<p class="legend">The two models give the same verdict on every example of every subset.</p>')
        if lines[True]:  # rows of 0.0 with no discordant example: behind a toggle, not 30 rows of zeros
            out.append(f'<details class="same"><summary>{len(lines[True])} more row(s) with no difference at all '
                       f'(the models agree on every example of the subset): show</summary>'
                       f'<table class="pairs">{head}{"".join(lines[True])}</table></details>')
    out.append(f'<p class="legend">Δ = B − A in percentage points on the same examples; 95 % interval from '
               f'{boot["resamples"]:,} paired bootstrap resamples (seed {boot["seed"]}); exact McNemar p on the '
               f'discordant examples, per row, not corrected for multiple comparisons. The ids link to the '
               f'examples below.</p>')
    return "".join(out)


def no_difference(row: dict[str, Any]) -> bool:
    """A paired row where nothing differs: no discordant example (binary metrics), or Δ and its interval 0."""
    if row["metric"] in BINARY:
        return row["a_only"] == 0 and row["b_only"] == 0
    return row["diff"] == 0 and list(row["ci95"]) == [0.0, 0.0]


def calibration_table(calibration: dict[str, dict]) -> str:
    def f(v):
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

    out = ['<table class="calibration"><tr><th class="l">model</th><th>τ</th><th>n fit / held out</th>'
           '<th>held-out accuracy</th><th>ECE τ=1</th><th>ECE τ fitted</th><th>NLL τ=1</th><th>NLL τ fitted</th></tr>']
    notes = []
    for name, r in calibration.items():
        tau = f"{r['tau']:.4g}" if r.get("tau") is not None and r.get("status", "fitted") == "fitted" \
            else f"none ({r.get('status', 'not fitted')}, see note)"
        out.append(f'<tr><td class="l">{_e(name)}</td><td>{tau}</td><td>{r["n_fit"]} / {r["n_eval"]}</td>'
                   f'<td>{pct(r["accuracy_eval"])}</td><td>{f(r["ece_before"])}</td><td>{f(r["ece_after"])}</td>'
                   f'<td>{f(r["nll_before"])}</td><td>{f(r["nll_after"])}</td></tr>')
        notes += [f"{name}: {n}" for n in r.get("notes", [])]
    out.append("</table>")
    out += [f'<p class="note">{_e(n)}</p>' for n in notes]
    out.append('<p class="legend">p = softmax(score / τ); τ fitted on a seeded half of the shared examples '
               '(NLL over log τ); expected calibration error (equal-width bins) and NLL on the other half.</p>')
    return "".join(out)


def render_html(comp: dict[str, Any], runs, ids: Sequence[str], images: dict[str, list],
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
    names = short_labels([r["label"] for r in comp["runs"]])
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
        if not winoground:  # a tag that only repeats the true label (mnist's digit=7): the label is shown once
            label = runs[0].records[eid].get("label")
            same = {str(label), class_name(label, class_names)}
            meta = {k: v for k, v in meta.items() if str(v) not in same}
        tags = _tags(meta)
        attrs = " ".join(f'data-{k}="{int(v)}"' for k, v in flags.items())
        search = f"{eid} {tags}".lower()
        sections.append(f'<section id="{_anchor(eid)}" class="example{" disagree" if flags["disagree"] else ""}" '
                        f'data-id="{_e(eid)}" {attrs} data-search="{_e(search)}">'
                        f'<h3><a href="#{_anchor(eid)}">{_e(eid)}</a></h3>'
                        + (f'<div class="tags">{_e(tags)}</div>' if tags else "") + body + "</section>")
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in comp.get("notes", []))
    runs_list = "".join(f"<li><b>{_e(names[r['label']])}</b>"
                        + (f" ({_e(r['label'])})" if names[r["label"]] != r["label"] else "")
                        + f": <code>{_e(r['results'])}</code></li>" for r in comp["runs"])
    select = "".join(f'<option value="{v}">{_e(t)}</option>' for v, t in options)
    score_legend = ("each row of a model's 2×2 table is one image; its score for each caption (higher = better "
                    "match); <b class=\"best\">bold</b>: the caption that model prefers for that image (none on a tie)"
                    if winoground else "the score of the predicted class (higher = better match), and the true "
                    "label's score when the prediction is wrong")
    legend = (f'<p class="legend"><b class="best">Bold</b> in the summary: the best model for that subset and metric '
              f'(only a strict best: a tie bolds nothing). Per example: {score_legend}. '
              f'<span class="stripe"></span> Orange stripe on the left: the models disagree on this example '
              f'(on any verdict{"" if winoground else ": one right, one wrong"}). '
              f'Click an image to enlarge it; the filter state is in the address (e.g. <code>#show=disagree</code>), '
              f'so a link opens the same view.</p>')
    calibration = ""
    if comp.get("calibration"):
        calibration = "<h2>Calibration</h2>" + calibration_table(comp["calibration"])
    same = comp.get("same_as_all") or []
    same_note = (f'<p class="legend">Not shown: {_e(", ".join(same))} (the same examples as <i>all</i>).</p>'
                 if same else "")
    title = f"winoeval compare: {comp['task']}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1>"
            f"<p>{comp['n_shared']} shared examples; the models disagree on {n_disagree}.</p><ul>{runs_list}</ul>"
            f"{notes}<h2>Summary</h2><p>Scores in % with 95 % intervals (Wilson; bootstrap for mean per-class).</p>"
            f"{summary_table(comp, names)}{same_note}{calibration}"
            f"<h2>Paired differences</h2>{pairs_tables(comp, names)}"
            f"<h2>Examples</h2>{legend}"
            f'<noscript><p class="nojs">Every example is shown: the filter needs JavaScript.</p></noscript>'
            f'<div class="controls" id="controls" hidden><label>show <select id="show">{select}</select></label> '
            f'<label>filter <input id="q" type="search" placeholder="id or tag"></label> '
            f'<span id="count"></span></div>'
            + "\n".join(sections)
            + '<div id="zoom" hidden></div>'
            + f"<script>{JS}</script></body></html>\n")


def write_html(path: str | Path, comp: dict[str, Any], runs, ids: Sequence[str],
               images: dict[str, list] | None = None, class_names: list[str] | None = None) -> None:
    Path(path).write_text(render_html(comp, runs, ids, images or {}, class_names), encoding="utf-8")


__all__ = ["image_uri", "load_images", "render_html", "write_html"]
