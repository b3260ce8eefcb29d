"""winoeval.storage: locks only their owner removes, clean-up of only what a run created, cache records
checked against a schema on load (every rank's part repaired)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from winoeval.config import ConfigError, RunConfig
from winoeval.runner import evaluate, prepare, remove_if_empty
from winoeval.storage import RecordCache, RunLock, ShardedCache, valid_record

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
