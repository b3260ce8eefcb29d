"""The GPU benchmark script's machinery (failures, timeouts, partial results, interleaving) and its CPU
dry run, which runs every section's code at toy sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the benchmarks folder is not installed

from benchmarks import gpu  # noqa: E402


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_run_command_ok_reads_the_section_output(tmp_path):
    out = tmp_path / "s.json"
    rec = gpu.run_command(_py(f"import json; open({str(out)!r}, 'w').write(json.dumps({{'x': 3}}))"), out, 60)
    assert rec["status"] == "ok" and rec["returncode"] == 0 and rec["data"] == {"x": 3}
    assert "stderr_tail" not in rec


def test_run_command_failure_keeps_exit_code_stderr_tail_and_partial_output(tmp_path):
    out = tmp_path / "s.json"
    code = (f"import json, sys; open({str(out)!r}, 'w').write(json.dumps({{'done': 1}})); "
            "sys.stderr.write('x' * 5000 + 'CUDA error: device-side assert'); sys.exit(3)")
    rec = gpu.run_command(_py(code), out, 60)
    assert rec["status"] == "failed" and rec["returncode"] == 3
    assert rec["stderr_tail"].endswith("CUDA error: device-side assert")
    assert len(rec["stderr_tail"]) == gpu.TAIL  # only the tail is kept
    assert rec["partial"] == {"done": 1} and "data" not in rec


def test_run_command_exit_0_without_output_is_a_failure(tmp_path):
    rec = gpu.run_command(_py("pass"), tmp_path / "s.json", 60)
    assert rec["status"] == "failed" and "no section output" in rec["stderr_tail"]


def test_run_command_timeout_kills_the_group_and_keeps_partial_results(tmp_path):
    out, pid_file = tmp_path / "s.json", tmp_path / "grandchild.pid"
    # the section starts a grandchild (as a CLI run would) and hangs: both must be killed
    code = (f"import json, subprocess, sys, time; open({str(out)!r}, 'w').write(json.dumps({{'rows': [1]}})); "
            f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    rec = gpu.run_command(_py(code), out, 3)
    assert rec["status"] == "timeout" and rec["timeout_s"] == 3 and rec["seconds"] < 30
    assert rec["partial"] == {"rows": [1]} and "returncode" not in rec
    pid = int(pid_file.read_text())
    import time

    for _ in range(50):  # the grandchild is gone (reaped by init once killed)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().split()[2] == "Z":
                break
        time.sleep(0.1)
    else:
        pytest.fail("the timed-out section's child process survived")


def test_run_saves_after_every_section_and_respects_the_budget(monkeypatch):
    calls, saved = [], []

    def fake_run_section(name, timeout, dry):
        calls.append((name, timeout))
        if name == "b":
            return {"status": "failed", "returncode": 1, "stderr_tail": "boom"}
        return {"status": "ok", "seconds": 0.0, "data": {"n": name}}

    monkeypatch.setattr(gpu, "SECTIONS", [("a", None, 10), ("b", None, 10), ("c", None, 10)])
    monkeypatch.setattr(gpu, "run_section", fake_run_section)
    res = gpu.run(dry_run=True, save=lambda d: saved.append(json.loads(json.dumps(d))))
    assert [n for n, _ in calls] == ["a", "b", "c"]  # a failed section does not stop the others
    assert [list(d["sections"]) for d in saved] == [["a"], ["a", "b"], ["a", "b", "c"]]
    assert res["sections"]["b"]["status"] == "failed" and res["sections"]["c"]["data"] == {"n": "c"}

    calls.clear()
    monkeypatch.setattr(gpu, "BUDGET_S", 0)
    res = gpu.run(dry_run=True)
    assert calls == [] and all(r["status"] == "skipped" for r in res["sections"].values())
    assert "budget" in res["sections"]["a"]["why"]


def test_run_only_some_sections_and_unknown_names(monkeypatch):
    monkeypatch.setattr(gpu, "SECTIONS", [("a", None, 10), ("b", None, 10)])
    monkeypatch.setattr(gpu, "run_section", lambda n, t, d: {"status": "ok", "data": {}})
    monkeypatch.setenv("WINOEVAL_GPU_SECTIONS", "b")
    assert list(gpu.run(dry_run=True)["sections"]) == ["b"]
    monkeypatch.setenv("WINOEVAL_GPU_SECTIONS", "b,zz")
    with pytest.raises(ValueError, match="zz"):
        gpu.run(dry_run=True)


def test_run_without_cuda_and_without_dry_run_is_recorded_as_not_run(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = gpu.run()
    assert "skipped" in res and "--dry-run" in res["skipped"]
    assert "Prepared, not run" in gpu.render(res)


def test_alternate_rotates_the_order_after_an_untimed_warmup():
    order = []
    times = gpu.alternate({"A": lambda: order.append("A"), "B": lambda: order.append("B")}, repeats=3, device="cpu")
    assert order == ["A", "B", "A", "B", "B", "A", "A", "B"]  # warm-up, then AB, BA, AB
    assert [len(v) for v in times.values()] == [3, 3]


def test_cli_records_a_failed_run_with_its_exit_code_and_message(tmp_path):
    rec = gpu.cli(["--model", "no-such-model", "--task", "mnist"], 120, tmp_path)
    assert rec["status"] == "failed" and rec["returncode"] == 2
    assert "no-such-model" in rec["stderr_tail"]


def test_cli_records_a_timeout(tmp_path):
    rec = gpu.cli(["--model", "mnist-unet", "--task", "mnist"], 0.5, tmp_path)
    assert rec["status"] == "timeout" and rec["timeout_s"] == 0.5


@pytest.mark.slow
def test_gpu_dry_run_runs_every_section_on_the_cpu(tmp_path):
    """`python -m benchmarks --only gpu --dry-run`: every section's code at toy sizes (several minutes on
    a loaded 2-core machine: each section and each CLI run is its own process)."""
    bench_md = (REPO / "BENCHMARKS.md").read_bytes()
    env = dict(os.environ, WINOEVAL_BENCH_TMP=str(tmp_path), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "gpu", "--dry-run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "dry-run" / "gpu.json").read_text())
    assert result["dry_run"] is True
    data = result["data"]
    assert {n: r["status"] for n, r in data["sections"].items()} == {n: "ok" for n, _, _ in gpu.SECTIONS}
    sec = {n: r["data"] for n, r in data["sections"].items()}
    bare = sec["bare"]["rows"]
    assert {(r["batch"], r["dtype"]) for r in bare} == {(b, d) for b in (2, 4) for d in ("float16", "bfloat16")}
    assert all(len(r["seconds"]) == 3 and r["evals_per_s"] > 0 for r in bare)
    assert sec["scorer"]["evals"] == 2 * 2 * 3 * 8  # 2 examples × 2 images × (2 texts + ∅) × N = 8
    assert sec["original"]["max_rel_diff"] < 1e-4  # float32 on the CPU: the same errors
    for name in ("sd_plugin", "winodigits", "mnist"):
        runs = [r for rs in sec[name]["ab"]["runs"].values() for r in rs]
        assert runs and all(r["status"] == "ok" and r["returncode"] == 0 for r in runs), name
    assert all(v == 1.0 for v in sec["winodigits"]["agreement"].values())
    assert sec["sd3"]["rows"] and all(r["evals_per_s"] > 0 for r in sec["sd3"]["rows"])
    assert [len(p["rows"]) for p in sec["dit"]["sizes"]] == [2]
    text = gpu.render(data)
    assert "DRY RUN" in text and "SD3Transformer2DModel" in text
    assert (REPO / "BENCHMARKS.md").read_bytes() == bench_md  # a dry run leaves the report alone
