"""winoeval.storage: locks only their owner removes, clean-up of only what a run created, cache records
checked against a schema on load (every rank's part repaired), damaged lines skipped and cleaned, stale
temporary files removed, and a killed run resumed to the same bytes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from winoeval.config import ConfigError, RunConfig
from winoeval.runner import evaluate, prepare, remove_if_empty
from winoeval.storage import RecordCache, RunLock, ShardedCache, remove_stale_tmp, valid_record

GOOD = {"id": "a", "scores": [[-1.0, -2.0]], "errors": [[1.0, 2.0]], "n_evals": 4,
        "verdicts": {"prediction": 0, "correct": True}, "label": 0, "meta": {}}


@pytest.mark.parametrize("change", [
    {"scores": 1}, {"verdicts": None}, {"scores": [[1.0], [1.0, 2.0]]}, {"scores": [["x", 1.0]]},
    {"n_evals": "4"}, {"n_evals": -1}, {"label": "0"}, {"label": True}, {"meta": []}, {"texts": "ab"},
    {"verdicts": {"text": "yes"}}, {"id": ""}, {"skipped": 3},
])
def test_records_of_the_wrong_types_are_not_records(change):
    assert valid_record(GOOD)
    assert not valid_record({**GOOD, **change})


def test_a_nan_literal_or_a_wrong_typed_line_is_dropped_and_the_part_rewritten(tmp_path):
    part = tmp_path / "part-000-of-001.jsonl"
    good = json.dumps(GOOD) + "\n"
    part.write_text(good + '{"id": "b", "scores": [[NaN, 1.0]], "errors": [[1.0, 1.0]], "n_evals": 2, '
                    '"verdicts": {"correct": false, "prediction": 1}}\n' + json.dumps({**GOOD, "id": "c", "scores": 1})
                    + "\n" + json.dumps({**GOOD, "id": "d", "verdicts": None}) + "\n")
    cache = ShardedCache(tmp_path, 0, 1)
    assert list(cache.load(repair=True)) == ["a"] and cache.damaged == 3
    assert part.read_text() == json.dumps(GOOD, sort_keys=True) + "\n"


def test_garbage_in_another_ranks_part_is_repaired_when_its_lock_is_free(tmp_path):
    other = tmp_path / "part-001-of-002.jsonl"
    other.write_text(json.dumps(GOOD) + "\n" + "garbage\n")
    ShardedCache(tmp_path, 0, 2).load(repair=True)
    assert other.read_text() == json.dumps(GOOD, sort_keys=True) + "\n"
    # held by a live process: left alone
    other.write_text(json.dumps(GOOD) + "\n" + "garbage\n")
    holder = RunLock(tmp_path / "part-001-of-002.lock")
    holder.acquire()
    try:
        ShardedCache(tmp_path, 0, 2).load(repair=True)
    finally:
        holder.release()
    assert other.read_text().endswith("garbage\n")


def test_a_refused_second_run_leaves_the_first_runs_lock_and_folder(tmp_path):
    config = RunConfig("analytic", "colors", scorer_args={"n_samples": (2,)}, limit=2, output_path=str(tmp_path))
    first = evaluate(config, progress=False, write=False)  # makes the cache folder, as a running first run has
    key_dir = first.cache_path.parent
    holder = RunLock(first.cache_path.with_suffix(".lock"))
    holder.acquire()  # the first run, still running
    try:
        second = prepare(config)
        with pytest.raises(ConfigError, match=rf"pid {os.getpid()}"):
            evaluate(config, prepared=second, progress=False)
        remove_if_empty(second)  # what the CLI does after a failure
        assert holder.path.exists() and key_dir.is_dir()
        with pytest.raises(ConfigError, match="another winoeval process"):  # a third run is refused too
            evaluate(config, progress=False)
    finally:
        holder.release()


def test_a_failed_run_removes_only_the_empty_folders_it_created(tmp_path):
    config = RunConfig("analytic", "colors", scorer_args={"n_samples": (2,)}, limit=2,
                       output_path=str(tmp_path / "new" / "out"))
    prep = prepare(config)
    keep = tmp_path / "new" / "out" / "analytic" / "mine.txt"
    keep.write_text("a user's file")
    remove_if_empty(prep)
    assert keep.exists()
    keep.unlink()
    remove_if_empty(prep)
    assert not (tmp_path / "new").exists()


def test_the_owner_removes_its_lock_while_holding_it_and_a_new_lock_is_a_new_file(tmp_path):
    a = RunLock(tmp_path / "x.lock")
    a.acquire()
    inode = os.stat(a.path).st_ino
    a.release(remove=True)
    assert not a.path.exists()
    b = RunLock(tmp_path / "x.lock")
    b.acquire()
    try:
        assert b.path.exists() and Path(b.path).read_text() == str(os.getpid())
        assert os.stat(b.path).st_ino == os.fstat(b.fd).st_ino and inode is not None
    finally:
        b.release()


def test_record_cache_append_then_load_round_trips(tmp_path):
    cache = RecordCache(tmp_path / "p.jsonl")
    cache.append(GOOD)
    assert cache.load() == {"a": GOOD} and cache.damaged == 0


@pytest.mark.parametrize("garbage", [b"garbage\n", b"42\n", b'{"foo": 1}\n', b"\xff\xfe\xfa invalid utf-8\n",
                                     b"\x00\x00\x00\n"])
def test_a_damaged_cache_line_is_skipped_counted_and_cleaned(tmp_path, garbage):
    config = RunConfig("analytic:0.2", "colors:0.2", scorer_args={"n_samples": (2,)}, limit=6,
                       output_path=str(tmp_path))
    evaluate(config, progress=False)
    [part] = tmp_path.glob("*/.cache/*/part-*.jsonl")
    lines = part.read_bytes().splitlines(keepends=True)
    part.write_bytes(b"".join(lines[:2]) + garbage + b"".join(lines[3:]))  # record 3 replaced by damage
    with pytest.warns(UserWarning, match="1 damaged line"):
        out = evaluate(config, progress=False)
    assert (out.computed, out.reused) == (1, 5)  # the records after the damage were used
    assert garbage not in part.read_bytes() and len(part.read_bytes().splitlines()) == 6
    again = evaluate(config, progress=False)
    assert (again.computed, again.reused) == (0, 6)


def test_a_second_identical_run_is_refused_with_the_first_ones_pid(tmp_path):
    config = RunConfig("analytic:0.2", "colors:0.2", scorer_args={"n_samples": (2,)}, limit=2,
                       output_path=str(tmp_path))
    evaluate(config, progress=False)
    [lock_path] = tmp_path.glob("*/.cache/*/part-000-of-001.lock")
    holder = RunLock(lock_path)
    holder.acquire()
    try:
        with pytest.raises(ConfigError, match=rf"another winoeval process \(pid {os.getpid()}\)"):
            evaluate(config, progress=False)
    finally:
        holder.release()
    assert evaluate(config, progress=False).reused == 2


def test_temporary_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".results_x.json.{dead.stdout.strip()}.abc.tmp"
    live = tmp_path / f".results_y.json.{os.getpid()}.abc.tmp"
    stale.write_text("{")
    live.write_text("{")
    assert remove_stale_tmp(tmp_path) == 1 and not stale.exists() and live.exists()


KILLED_RUN = ["run", "--model", "analytic:0.3", "--task", "colors:0.3", "--n-samples", "96", "--batch-size", "2",
              "-q"]


@pytest.mark.slow  # three interpreters, one run of 80 examples computed twice: 32 s at load ~9
def test_kill_and_resume_gives_a_byte_identical_results_file(tmp_path, cli_env, run_winoeval, run_files):
    out = tmp_path / "out"
    res = run_winoeval([*KILLED_RUN, "-o", str(out)])
    assert res.returncode == 0, res.stderr
    [reference] = run_files.results(out)
    reference_bytes = run_files.comparable(reference)
    reference.unlink()
    shutil.rmtree(out / "analytic_0.3" / ".cache")

    proc = subprocess.Popen([sys.executable, "-m", "winoeval", *KILLED_RUN, "-o", str(out)], env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while run_files.cache_lines(out) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = run_files.cache_lines(out)
    assert 5 <= killed_at < 80, f"the run was not killed mid-way ({killed_at} examples cached)"
    assert not run_files.results(out), "a killed run must not leave a results file"

    res = run_winoeval([*KILLED_RUN, "-o", str(out)])
    assert res.returncode == 0, res.stderr
    computed = int(re.search(r"\((\d+) example\(s\) computed", res.stderr).group(1))
    assert computed <= 80 - killed_at + 1  # at most the torn example is recomputed
    [resumed] = run_files.results(out)
    assert run_files.comparable(resumed) == reference_bytes


def test_trainer_checkpoints_and_exports_are_0644_not_safetensors_0600(tmp_path):
    """Every durable file goes through winoeval.storage: ordinary permissions (0666 minus the umask)."""
    import torch

    from winoeval.plugins import _winodigits_train as wt

    old = os.umask(0o022)
    try:
        wt.save_state(tmp_path / "checkpoint.safetensors", {"w": torch.zeros(2)}, {"epoch": 1})
        wt._write_json(tmp_path / "recipe.json", {"a": 1})
    finally:
        os.umask(old)
    for name in ("checkpoint.safetensors", "recipe.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    assert not list(tmp_path.glob(".*.tmp")) and not list(tmp_path.glob("*.tmp"))
