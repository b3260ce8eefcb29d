"""winoeval.fingerprint: content hashes of weights and data, remembered per file and never stale."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from winoeval import fingerprint
from winoeval.config import RunConfig
from winoeval.runner import evaluate


@pytest.mark.slow
def test_weights_rewritten_in_place_are_never_served_from_the_cache(tmp_path, file_sigma_model):
    """The README's workflow: evaluate a checkpoint, retrain into the same path, evaluate again."""
    weights = tmp_path / "weights.txt"
    weights.write_text("0.0")  # the exact ideal denoiser: every colour right
    config = RunConfig(file_sigma_model, "colors:0", scorer_args={"n_samples": (4,)}, limit=8,
                       output_path=str(tmp_path / "out"), model_args={"weights": str(weights)})
    first = evaluate(config, progress=False)
    weights.write_text("5.0")  # "retrained": a much worse model, same path
    second = evaluate(config, progress=False)
    third = evaluate(config, progress=False)
    assert (first.computed, second.computed, second.reused, third.reused) == (8, 8, 0, 8)
    assert first.results["model"]["fingerprint"] != second.results["model"]["fingerprint"]
    assert first.records[0]["scores"] != second.records[0]["scores"]


def test_a_file_is_hashed_once_and_a_same_size_rewrite_with_its_mtime_restored_is_seen(tmp_path, monkeypatch):
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 1000)
    first = fingerprint.hash_path(f)

    class Unread:  # a memo hit reads nothing: hashing again must not even start
        def __call__(self):
            raise AssertionError("the file was read again")

    with monkeypatch.context() as m:
        m.setattr(fingerprint.hashlib, "sha256", Unread())
        assert fingerprint.hash_path(f) == first
    st = f.stat()
    time.sleep(0.01)
    f.write_bytes(b"b" * 1000)  # same size, mtime restored (cp -p, tar, os.utime): the ctime still moves
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_mtime_ns == st.st_mtime_ns and f.stat().st_size == st.st_size
    second = fingerprint.hash_path(f)
    assert second != first and second == fingerprint.hash_text("b" * 1000)
    replacement = tmp_path / "other.bin"  # replaced by another file moved into place: a new inode
    replacement.write_bytes(b"c" * 1000)
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, f)
    assert fingerprint.hash_path(f) == fingerprint.hash_text("c" * 1000)
    memo = json.loads(Path(os.environ["WINOEVAL_HASH_CACHE"]).read_text())
    assert [k for k in memo if k.startswith(str(f.resolve()) + "\0")] == [
        fingerprint.memo_key(f.resolve(), f.stat())]  # one entry per path: earlier versions are dropped


def test_rehash_reads_every_file_again(tmp_path, monkeypatch):
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 10)
    first = fingerprint.hash_path(f)
    monkeypatch.setattr(fingerprint, "_fresh", set())  # a new process: nothing read yet
    reads = []
    real = fingerprint.hashlib.sha256
    monkeypatch.setattr(fingerprint.hashlib, "sha256", lambda *a: reads.append(1) or real(*a))
    assert fingerprint.hash_path(f) == first and reads == []  # remembered
    monkeypatch.setenv("WINOEVAL_REHASH", "1")
    assert fingerprint.hash_path(f) == first and len(reads) == 1  # read again
    assert fingerprint.hash_path(f) == first and len(reads) == 1  # once per process, not once per call


def test_data_dir_and_task_arg_files_are_fingerprinted_by_content(tmp_path):
    from winoeval.api import TaskData
    from winoeval.fingerprint import of_task as task_fingerprint
    from winoeval.testing.data import make_classification_dataset

    data = make_classification_dataset(tmp_path / "data", ["red", "blue"], per_class=2, fmt="parquet")
    templates = tmp_path / "templates.txt"
    templates.write_text("a photo of {}.\n")
    config = RunConfig("analytic", "colors", data_dir=data, task_args={"templates": str(templates), "n": "3"})
    task = TaskData("t", "classification", lambda: iter(()), 0)
    before = task_fingerprint(config, task)
    assert set(before) == {"data_dir", "task_args"} and set(before["task_args"]) == {"templates"}
    templates.write_text("a picture of {}.\n")
    after_templates = task_fingerprint(config, task)
    assert after_templates["task_args"] != before["task_args"] and after_templates["data_dir"] == before["data_dir"]
    make_classification_dataset(tmp_path / "data", ["red", "green"], per_class=2, fmt="parquet")  # re-downloaded
    assert task_fingerprint(config, task)["data_dir"] != before["data_dir"]
