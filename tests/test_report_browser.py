"""The ``compare --html`` page in a real browser (headless Debian ``chromium``).

The test runs the page's own script in chromium and reads back the DOM after it ran (``--dump-dom``):
the ``#show=disagree`` view shows exactly the examples the models disagree on (from the samples files),
every embedded image decodes (a probe script appended to a copy of the page records each image's
``naturalWidth``), small images are shown at their own size and click-to-enlarge opens one larger.
Without JavaScript (the HTML as written) every example is shown with a note that the filter needs it.

Chromium is installed by ``.ci/run`` (``apt-get install chromium`` when missing); where it is not
installed, the test is skipped and says how to install it.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,2000", "--virtual-time-budget=5000"]

PROBE = """<script>
window.addEventListener('load', function(){
  var out = {};
  out.visible = Array.prototype.filter.call(document.querySelectorAll('section.example'),
    function(s){ return !s.hidden && s.offsetParent !== null; }).map(function(s){ return s.getAttribute('data-id'); });
  var imgs = document.querySelectorAll('section.example figure img');
  out.images = Array.prototype.map.call(imgs, function(im){
    return {complete: im.complete, natural: im.naturalWidth, shown: im.getBoundingClientRect().width}; });
  out.count = document.getElementById('count').textContent;
  out.select = document.getElementById('show').value;
  imgs[0].click();
  var zoom = document.getElementById('zoom');
  out.zoom = {open: !zoom.hidden, width: zoom.querySelector('img').getBoundingClientRect().width};
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script></body>"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def dump_dom(browser: str, page: Path, fragment: str, tmp_path: Path, *extra: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    url = page.resolve().as_uri() + fragment
    proc = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *extra, "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class Sections(HTMLParser):
    """Example sections of a dumped DOM: id → hidden or not; and the text of the page."""

    def __init__(self):
        super().__init__()
        self.hidden: dict[str, bool] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "example" in (attrs.get("class") or "").split():
            self.hidden[attrs["data-id"]] = "hidden" in attrs

    def handle_data(self, data):
        self.text.append(data)


def parse(dom: str) -> Sections:
    parser = Sections()
    parser.feed(dom)
    return parser


@pytest.fixture(scope="module")
def browser():
    path = find_browser()
    if path is None:
        pytest.skip("no headless browser: install Debian's chromium (`apt-get install -y chromium`; .ci/run does)")
    return path


@pytest.fixture
def report(tmp_path):
    """Two real toy-winoground runs (the closed-form denoiser, sharp and blurred) and their HTML report."""
    from winoeval.compare import compare_command
    from winoeval.config import RunConfig
    from winoeval.runner import evaluate

    paths = []
    for k, model in enumerate(("analytic", "analytic:10")):
        out = evaluate(RunConfig(model=model, task="toy-winoground", scorer_args={"n_samples": (5,)},
                                 log_samples=True, output_path=str(tmp_path / f"run{k}")), progress=False)
        paths.append(out.results_path)
    page = tmp_path / "report.html"
    result = CliRunner().invoke(compare_command, [*map(str, paths), "--html", str(page)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    verdicts = []
    for path in paths:
        samples = path.with_name(path.name.replace("results_", "samples_").replace(".json", ".jsonl"))
        verdicts.append({r["id"]: r["verdicts"] for r in map(json.loads, samples.read_text().splitlines())})
    disagree = sorted(i for i in verdicts[0] if any(verdicts[0][i][m] != verdicts[1][i][m]
                                                    for m in ("text", "image", "group")))
    return page, disagree, sorted(verdicts[0])


def test_disagree_view_and_images_in_chromium(browser, report, tmp_path):
    page, disagree, every = report
    assert 0 < len(disagree) < len(every)  # the filter has something to hide
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE), encoding="utf-8")

    dom = dump_dom(browser, probed, "#show=disagree", tmp_path)
    probe = json.loads(html.unescape(re.search(r"<pre id=\"probe\">(.*?)</pre>", dom, re.S).group(1)))
    assert probe["select"] == "disagree"
    assert sorted(probe["visible"]) == disagree
    sections = parse(dom).hidden
    assert sorted(i for i, hidden in sections.items() if not hidden) == disagree
    assert probe["count"] == f"{len(disagree)} of {len(every)} examples shown"
    images = probe["images"]
    assert len(images) == 2 * len(every)
    assert all(im["complete"] and im["natural"] > 0 for im in images), images
    # the toy images are 16 px: shown enlarged 10× to 160 px (+ a 1 px border each side), 0 wide in the
    # hidden sections; a click enlarges one
    for im, eid in zip(images, [i for i in every for _ in range(2)]):
        assert im["shown"] == (10 * im["natural"] + 2 if eid in disagree else 0), (eid, im)
    assert probe["zoom"]["open"] and probe["zoom"]["width"] >= 4 * images[0]["natural"]

    dom_all = dump_dom(browser, probed, "", tmp_path)  # no fragment: every example
    assert not any(parse(dom_all).hidden.values())


def test_without_javascript_every_example_is_shown(report):
    """Without JavaScript the page is its HTML as written (chromium's --dump-dom needs scripts, so this
    reads the file): no example hidden, the filter controls hidden, a note that the filter needs JavaScript."""
    page, disagree, every = report
    text = page.read_text(encoding="utf-8")
    parsed = parse(text)
    assert sorted(parsed.hidden) == every and not any(parsed.hidden.values())
    assert re.search(r'<div class="controls" id="controls" hidden>', text)
    assert re.search(r"<noscript>[^<]*<p[^>]*>[^<]*the filter needs JavaScript", text)
