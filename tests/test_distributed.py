"""torchrun ranks that share no filesystem: rank 0 gathers the others' records through
torch.distributed (gather_object), not by reading their cache files."""

from __future__ import annotations

import json
import subprocess
import sys
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
