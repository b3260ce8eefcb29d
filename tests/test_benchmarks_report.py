"""BENCHMARKS.md generation: withdrawn figures are shown as withdrawn, their targets dropped, and every
target row names the section, date and git hash that made it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import report  # noqa: E402


def _result(name, data, date="2026-11-23T15:00:00", git="abc1234"):
    return {"name": name, "command": f"python -m benchmarks --only {name}", "date": date, "git": git,
            "wall_seconds": 1.0, "data": data,
            "machine": {"cpu": "cpu", "cores": 2, "torch_threads": 1, "memory_gib": 1.0, "torch": "t",
                        "load_average_at_start": [1.0, 2.0, 3.0], "gpu": "none (no GPU)"}}


def test_withdrawn_memory_timings_and_targets(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    memory = {"tiny_sd_8": "T8", "tiny_sd_32": "T32", "wino6": "W6",
              "runs": [{"command": "winoeval run x", "peak_rss_mib": 978.4, "seconds": 22.4}],
              "targets": [{"name": "fast", "target": "< 1 s", "measured": "0.5 s", "met": True},
                          {"name": "kept", "target": "< 1 s", "measured": "0.7 s", "met": True}],
              "withdrawn": {"date": "2026-12-01", "what": "the wall-seconds column", "why": "too fast.",
                            "targets": ["fast"]}}
    (results / "memory.json").write_text(json.dumps(_result("memory", memory)))
    monkeypatch.setattr(report, "RESULTS", results)
    monkeypatch.setattr(report, "ROOT", tmp_path)
    text = report.write_report(["memory"]).read_text()
    assert "**Withdrawn on 2026-12-01: the wall-seconds column.** too fast." in text
    assert "22.4" not in text and "| `winoeval run x` | 978 | withdrawn |" in text
    assert "| fast |" not in text
    assert "| kept | < 1 s | 0.7 s | met | memory (2026-11-23, git abc1234) |" in text
    assert "git abc1234" in text and "load average at start [1.0, 2.0, 3.0]" in text and "1 threads" in text


def test_early_decision_timing_columns_withdrawn():
    from benchmarks import early_decision

    path = REPO / "benchmarks" / "results" / "early_decision.json"
    data = json.loads(path.read_text())["data"]
    assert "| 1.20 |" in early_decision.render(data)
    data = dict(data, withdrawn={"date": "2026-12-01", "what": "timings", "why": "not reproduced."})
    text = early_decision.render(data)
    assert "| 1.20 |" not in text and "withdrawn | withdrawn | withdrawn |" in text


def test_notes_are_dated_and_rendered(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    memory = {"tiny_sd_8": "T8", "tiny_sd_32": "T32", "wino6": "W6",
              "runs": [{"command": "winoeval run x", "peak_rss_mib": 978.4, "seconds": 22.4}],
              "notes": [{"date": "2026-12-01", "text": "checked against CPU time."}]}
    (results / "memory.json").write_text(json.dumps(_result("memory", memory)))
    monkeypatch.setattr(report, "RESULTS", results)
    monkeypatch.setattr(report, "ROOT", tmp_path)
    text = report.write_report(["memory"]).read_text()
    assert "*Note (2026-12-01):* checked against CPU time." in text and "| 22.4 |" in text
