"""winoeval.distributed: ``--num-processes`` workers and torchrun ranks give the single-process results
(also when the ranks share no filesystem: rank 0 gathers the others' records through torch.distributed's
gather_object, not by reading their cache files), and workers never outlive their parent."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TORCHRUN = Path(sys.executable).parent / "torchrun"
ARGS = ["run", "--model", "analytic:0.4", "--task", "colors:0.4", "--n-samples", "8", "--limit", "12", "-q",
        "--device", "cpu", "--log-samples"]

# each rank writes under its own --output-path, as on machines without a shared filesystem
WRAPPER = """
import os, sys
from winoeval.cli import cli
base = sys.argv.pop(1)
sys.argv += ["-o", os.path.join(base, "rank" + os.environ["RANK"])]
cli()
"""


def _comparable(path: Path) -> dict:
    data = json.loads(path.read_text())
    for volatile in ("run", "git_hash"):  # date and wall time; HEAD moves while other work commits
        data.pop(volatile, None)
    data["config"].pop("output_path", None)
    return data


@pytest.mark.slow  # a single run, then two torchrun ranks: 25 s at load ~9
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")
def test_torchrun_ranks_with_separate_output_paths_gather_the_single_process_results(tmp_path, cli_env):
    single = subprocess.run([sys.executable, "-m", "winoeval", *ARGS, "-o", str(tmp_path / "single")],
                            env={**cli_env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    wrapper = tmp_path / "launch.py"
    wrapper.write_text(WRAPPER)
    # `python -m torch.distributed.run` is torchrun run by this interpreter (a venv's torchrun script may
    # name another interpreter in its first line, and with it another installation of winoeval)
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", str(wrapper),
                          str(tmp_path / "multi"), *ARGS], env={**cli_env, "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    # rank 0 reports what every rank computed (it was 6, its own half)
    assert "12 example(s) computed, 0 reused" in res.stderr, res.stderr[-3000:]
    [expected] = sorted((tmp_path / "single").glob("*/results_*.json"))
    [gathered] = sorted((tmp_path / "multi" / "rank0").glob("*/results_*.json"))
    assert not list((tmp_path / "multi" / "rank1").glob("*/results_*.json"))  # only rank 0 writes results
    # each rank cached only its own half, in its own folder: rank 0 never saw rank 1's file
    parts0 = sorted(p.name for p in (tmp_path / "multi" / "rank0").glob("*/.cache/*/part-*.jsonl"))
    parts1 = sorted(p.name for p in (tmp_path / "multi" / "rank1").glob("*/.cache/*/part-*.jsonl"))
    assert parts0 == ["part-000-of-002.jsonl"] and parts1 == ["part-001-of-002.jsonl"]
    assert _comparable(gathered) == _comparable(expected)
    run = json.loads(gathered.read_text())["run"]
    assert (run["examples_computed"], run["examples_reused"]) == (12, 0)
    [s1] = (tmp_path / "single").glob("*/samples_*.jsonl")
    [s2] = (tmp_path / "multi" / "rank0").glob("*/samples_*.jsonl")
    assert s1.read_bytes() == s2.read_bytes()


@pytest.mark.slow  # two interpreters, then three: 25 s at load ~9
def test_two_processes_gather_the_same_results_as_one(tmp_path, run_winoeval, run_files):
    args = ["run", "--model", "analytic:0.4", "--task", "colors:0.4", "--n-samples", "8", "--limit", "30", "-q",
            "-o", str(tmp_path), "--log-samples"]
    res = run_winoeval(args)
    assert res.returncode == 0, res.stderr
    one = {p.name.split("_")[0]: run_files.comparable(p) for p in tmp_path.glob("*/*_*.json*")}
    for p in tmp_path.glob("*/*_*.json*"):
        p.unlink()
    shutil.rmtree(tmp_path / "analytic_0.4" / ".cache")
    res = run_winoeval([*args, "--num-processes", "2"])
    assert res.returncode == 0, res.stderr
    assert len(list(tmp_path.glob("*/.cache/*/part-*-of-002.jsonl"))) == 2  # each process cached its own
    two = {p.name.split("_")[0]: run_files.comparable(p) for p in tmp_path.glob("*/*_*.json*")}
    assert one == two and set(one) == {"results", "samples"}


@pytest.mark.slow  # a single run, then torchrun and two ranks: 16 s at load ~9
@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_torchrun_launch_shards_and_rank0_gathers(tmp_path, cli_env, run_winoeval, run_files):
    args = ["run", "--model", "analytic:0.4", "--task", "colors:0.4", "--n-samples", "8", "--limit", "20", "-q",
            "--device", "cpu", "-o", str(tmp_path)]
    res = run_winoeval(args)
    [single] = run_files.results(tmp_path)
    expected = run_files.comparable(single)
    single.unlink()
    shutil.rmtree(tmp_path / "analytic_0.4" / ".cache")
    torchrun = str(Path(sys.executable).parent / "torchrun")
    res = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29517", "-m", "winoeval", *args],
                         env=cli_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    [gathered] = run_files.results(tmp_path)
    assert run_files.comparable(gathered) == expected


@pytest.mark.slow  # a run with two workers: 20 s at load ~9
def test_num_processes_run_section_counts_the_workers(tmp_path, run_winoeval):
    res = run_winoeval(["run", "-m", "analytic", "-t", "colors", "--n-samples", "2", "--limit", "10",
                        "--num-processes", "2", "-q", "-o", str(tmp_path)])
    assert res.returncode == 0, res.stderr
    assert "10 example(s) computed, 0 reused" in res.stderr
    [results] = tmp_path.glob("*/results_*.json")
    run = json.loads(results.read_text())["run"]
    assert (run["examples_computed"], run["examples_reused"], run["device"], run["dtype"]) == (10, 0, "cpu", "float32")


@pytest.mark.slow  # three interpreters, and 3 s of computing before the kill
def test_workers_exit_when_the_parent_dies(tmp_path, cli_env):
    proc = subprocess.Popen([sys.executable, "-m", "winoeval", "run", "-m", "analytic:0.3", "-t", "colors:0.3",
                             "--n-samples", "400", "--batch-size", "2", "--num-processes", "2", "-q",
                             "-o", str(tmp_path)], env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children() -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    deadline = time.time() + 120
    while len(children()) < 2 and time.time() < deadline:
        time.sleep(0.2)
    workers = children()
    assert len(workers) == 2
    time.sleep(3)  # let them start computing
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    alive = workers
    while alive and time.time() < deadline:
        time.sleep(0.3)
        alive = [p for p in workers if Path(f"/proc/{p}").exists()
                 and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]]
    assert not alive, f"orphaned workers still running: {alive}"
