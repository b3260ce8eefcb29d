"""Adversarial and careless inputs (issue "No wrong number, ever"): each one ends in one clear line that
names the file, example or option (exit status 2 for usage errors, 1 for a bad example or file), never in
the last-resort "unexpected error" and never in a wrong number printed with exit status 0.

Most cases run ``winoeval.cli.main`` in this process (the same code path as the command, last-resort
guard included) on tiny built-in models and data.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from winoeval import fingerprint
from winoeval.hookspecs import hookimpl

UNEXPECTED = "unexpected error"


# ------------------------------------------------------------------------------------------- helpers

@pytest.fixture
def winoeval(capsys, monkeypatch, one_torch_thread):
    """Run ``winoeval ARGS`` in this process: (exit status, stdout, stderr). The environment is restored
    afterwards (``run`` sets variables for its worker processes)."""
    from winoeval.cli import main

    saved = dict(os.environ)

    def call(*args, env=None):
        for key, value in (env or {}).items():
            os.environ[key] = value
        monkeypatch.setattr(sys, "argv", ["winoeval", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    yield call
    os.environ.clear()
    os.environ.update(saved)


def refused(result, code, *words):
    """The command stopped with ``code`` and one message holding every word (case-insensitive)."""
    status, out, err = result
    text = out + err
    assert status == code, text
    assert UNEXPECTED not in text, text
    lower = " ".join(text.split()).lower()
    for word in words:
        assert word.lower() in lower, f"{word!r} not in: {text}"


def results_of(folder: Path) -> dict:
    (path,) = sorted(folder.glob("*/results_*.json"))
    return json.loads(path.read_text())


def png_bytes(value: int = 128, size=(28, 28), mode="L") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, value).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of width × height, all black, written chunk by chunk (a 20000² one
    is ~50 kB on disk and 400 M pixels decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" + b"\0" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def mnist_parquet(folder: Path, rows: list[tuple[object, object]]) -> Path:
    """A ``--data-dir`` for ``mnist:hub``: one parquet file of (image, label) rows, where an image is PNG
    bytes or a path (stored as written, also when it does not exist)."""
    import datasets
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    records = [{"image": {"bytes": im, "path": None} if isinstance(im, bytes) else {"bytes": None, "path": str(im)},
                "label": label} for im, label in rows]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    table = datasets.Dataset.from_list(records, features=features).data.table
    meta = {b"huggingface": json.dumps({"info": {"features": features.to_dict()}}).encode()}
    pq.write_table(table.replace_schema_metadata(meta), str(folder / "test-00000-of-00001.parquet"))
    return folder


MNIST = ["run", "-m", "mnist-unet", "--n-samples", "2", "-q", "--dtype", "float32"]
TOY = ["run", "-m", "analytic:0.2", "-t", "toy-winoground:0.2", "--n-samples", "2", "-q"]


# ------------------------------------------------------------------------ options and the command line

@pytest.mark.parametrize("args, words", [
    (["--model-arg", "checkpoint="], ["--model-arg", "checkpoint=", "empty value"]),
    (["--model-arg", "checkpoint=a", "--model-arg", "checkpoint=b"], ["--model-arg", "checkpoint", "twice"]),
    (["--model-arg", "=x"], ["--model-arg", "KEY=VALUE"]),
    (["--model-arg", "checkpoint"], ["--model-arg", "KEY=VALUE"]),
    (["--limit", "1e300"], ["--limit"]),
    (["--limit", "nan"], ["--limit"]),
    (["--limit", "inf"], ["--limit"]),
    (["--limit", "-1"], ["--limit"]),
    (["--limit", "0"], ["--limit"]),
    (["--limit", "2.5"], ["--limit"]),
    (["--n-samples", "abc"], ["--n-samples"]),
    (["--n-samples", "0"], ["--n-samples"]),
    (["--n-samples", "10,5", "--to-keep", "5,1"], ["--n-samples", "increase"]),
    (["--batch-size", "0"], ["--batch-size"]),
    (["--early-stop", "--confidence", "nan"], ["--confidence"]),
    (["--device", "cuda:99"], ["--device"]),
    (["--device", "gpu"], ["--device"]),
    (["--max-pixels", "-5"], ["--max-pixels"]),
])
def test_bad_run_options_are_usage_errors(winoeval, tmp_path, args, words):
    refused(winoeval(*MNIST, "-t", "mnist", "-o", tmp_path / "o", *args), 2, *words)
    assert not list(tmp_path.glob("o/*/results_*.json"))


def test_a_task_arg_given_twice_is_refused(winoeval, tmp_path):
    refused(winoeval(*MNIST, "-t", "cifar10", "-o", tmp_path, "--task-arg", "templates=a {}",
                     "--task-arg", "templates=b {}"), 2, "--task-arg", "templates", "twice")


def test_the_same_task_twice_after_normalisation_is_refused_before_computing(winoeval, tmp_path):
    refused(winoeval("run", "-m", "analytic:0.2", "-t", "toy-winoground:0.2,toy-winoground: 0.2", "--log-samples",
                     "-q", "-o", tmp_path), 2, "toy-winoground:0.2", "toy-winoground: 0.2", "same task")
    assert not list(tmp_path.rglob("*.jsonl"))  # nothing was computed, no cache line written
    refused(winoeval(*TOY[:3], "-t", "toy-winoground:0.2", "-t", " toy-winoground:0.2 ", "-o", tmp_path), 2,
            "same task")


@pytest.mark.parametrize("value", ["abc", "3/2", "-1/2", "0/0", "1"])
def test_a_bad_winoeval_shard_is_a_usage_error(winoeval, tmp_path, value):
    refused(winoeval(*TOY, "-o", tmp_path, env={"WINOEVAL_SHARD": value}), 2, "WINOEVAL_SHARD", value)


def test_bad_data_and_output_folders_are_usage_errors(winoeval, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    refused(winoeval(*MNIST, "-t", "mnist:hub", "-o", tmp_path, "--data-dir", tmp_path / "nope"), 2, "--data-dir",
            "does not exist")
    refused(winoeval(*MNIST, "-t", "mnist:hub", "-o", tmp_path, "--data-dir", a_file), 2, "--data-dir", "file")
    refused(winoeval(*TOY, "-o", a_file), 2, "--output-path", "file")
    refused(winoeval(*TOY, "-o", a_file / "below"), 2, "--output-path", "not writable")


@pytest.mark.parametrize("args, words", [
    (["-m", "analytic:abc", "-t", "toy-winoground:0.2"], ["analytic:SIGMA", "abc"]),
    (["-m", "analytic:nan", "-t", "toy-winoground:0.2"], ["analytic:SIGMA", "nan"]),
    (["-m", "analytic:0.2", "-t", "toy-winoground:inf"], ["toy-winoground", "inf"]),
    (["-m", "analytic:0.2", "-t", "nosuchtask"], ["unknown task", "nosuchtask"]),
    (["-m", "analytic:0.2", "-t", "mnist:wrong"], ["mnist", "wrong"]),
    (["-m", "analytic:0.2", "-t", "winoground", "--task-arg", "x=1"], ["winoground", "x"]),
])
def test_bad_names_and_arguments_are_usage_errors(winoeval, tmp_path, args, words):
    refused(winoeval("run", *args, "-q", "-o", tmp_path), 2, *words)


# ------------------------------------------------------------------------------------- weight files

def _mnist_weights(tmp_path: Path, name: str, edit) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    from winoeval.plugins.mnist_unet import WEIGHTS

    tensors = load_file(str(WEIGHTS))
    edit(tensors, torch)
    path = tmp_path / name
    save_file(tensors, str(path))
    return path


def _first(tensors):
    return sorted(tensors)[0]


@pytest.mark.parametrize("name, content", [
    ("garbage.safetensors", b"this is not a safetensors file at all"),
    ("empty.safetensors", b""),
    ("huge-header.safetensors", struct.pack("<Q", 10**12) + b"{}"),
    ("bad-json.safetensors", struct.pack("<Q", 6) + b"{nope}"),
    ("bad-offsets.safetensors", struct.pack("<Q", 64) + b'{"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 99]}}'
                                + b"\0" * 4),
    ("weights.pt", b"\x80\x04\x95 a pickle that would run code"),
])
def test_a_damaged_mnist_checkpoint_is_a_usage_error_naming_it(winoeval, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    refused(winoeval(*MNIST, "-t", "mnist", "--limit", "1", "-o", tmp_path / "o", "--model-arg",
                     f"checkpoint={path}"), 2, "checkpoint=", name)


@pytest.mark.parametrize("name, edit", [
    ("wrong-shape.safetensors", lambda t, torch: t.__setitem__(_first(t), torch.zeros(3, dtype=torch.float16))),
    ("missing-key.safetensors", lambda t, torch: t.pop(_first(t))),
    ("extra-key.safetensors", lambda t, torch: t.__setitem__("zzz.extra", torch.zeros(1, dtype=torch.float16))),
])
def test_a_checkpoint_of_another_model_is_a_usage_error_naming_it(winoeval, tmp_path, name, edit):
    path = _mnist_weights(tmp_path, name, edit)
    refused(winoeval(*MNIST, "-t", "mnist", "--limit", "1", "-o", tmp_path / "o", "--model-arg",
                     f"checkpoint={path}"), 2, "checkpoint=", name, "does not hold mnist-unet weights")


@pytest.mark.slow  # builds a tiny diffusers pipeline: 2.5 s at load ~1
def test_a_damaged_pipeline_folder_is_a_usage_error_naming_it(winoeval, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from winoeval.testing.models import make_tiny_sd_pipeline

    good = tmp_path / "sd"
    make_tiny_sd_pipeline(good)
    unet = "unet/diffusion_pytorch_model.safetensors"
    tensors = load_file(str(good / unet))
    key = sorted(tensors)[0]
    cases = {"missing": {k: v for k, v in tensors.items() if k != key},
             "shape": {**tensors, key: torch.zeros(3)}, "header": None}
    for case, content in cases.items():
        folder = tmp_path / f"sd-{case}"
        shutil.copytree(good, folder)
        if content is None:
            (folder / unet).write_bytes(b"garbage!" * 8)
        else:
            save_file(content, str(folder / unet), metadata={"format": "pt"})
        refused(winoeval(*TOY[:2], f"sd:{folder}", *TOY[3:], "--limit", "1", "-o", tmp_path / "o"), 2,
                "could not load the diffusers pipeline", str(folder.name))


def test_a_damaged_openclip_folder_is_a_usage_error_naming_it(winoeval, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from winoeval.testing.models import make_tiny_openclip

    good = tmp_path / "oc"
    make_tiny_openclip(good)
    weights = good / "open_clip_model.safetensors"
    for case in ("shape", "header"):
        folder = tmp_path / f"oc-{case}"
        shutil.copytree(good, folder)
        if case == "header":
            (folder / weights.name).write_bytes(b"garbage\n")
        else:
            tensors = load_file(str(weights))
            tensors[sorted(tensors)[0]] = torch.zeros(3)
            save_file(tensors, str(folder / weights.name))
        refused(winoeval("run", "-m", f"openclip:{folder}", "-t", "toy-winoground:0.2", "--limit", "1", "-q",
                         "-o", tmp_path / "o"), 2, "could not load OpenCLIP model", folder.name)


# ------------------------------------------------------------------------------------ task contract

class LabelTask:
    """A classification task whose second example has a label given by the test."""

    def __init__(self, label=None, text="red"):
        self.label, self.text = label, text

    @hookimpl
    def winoeval_register_tasks(self, register):
        from winoeval.api import Example, TaskData
        from winoeval.tasks.synthetic import render

        texts = ["red", "green"]

        def examples():
            yield Example("good", [render("red", 0.0, "good")], texts, 0)
            yield Example("bad", [render("green", 0.0, "bad")], [texts[0], self.text], self.label)

        register("label-task", lambda argument, config: TaskData("label-task", "classification", examples, 2,
                                                                 texts=texts, class_names=texts), options={})


@pytest.mark.parametrize("label", [-1, 2, 10, None, True, 1.0, "1"])
def test_a_classification_label_out_of_range_is_refused_naming_the_example(winoeval, tmp_path, register_plugin, label):
    register_plugin(LabelTask(label), name="adversarial-test-plugin")
    refused(winoeval("run", "-m", "analytic", "-t", "label-task", "-q", "-o", tmp_path), 2, "'bad'", "label",
            "0 … 1")
    assert not list(tmp_path.rglob("*.jsonl"))  # refused before anything was scored


def test_an_empty_candidate_text_is_refused_naming_the_example(winoeval, tmp_path, register_plugin):
    register_plugin(LabelTask(1, text=""), name="adversarial-test-plugin")
    refused(winoeval("run", "-m", "analytic", "-t", "label-task", "-q", "-o", tmp_path), 2, "'bad'", "text")


def test_mnist_hub_labels_none_or_out_of_range_name_the_example(winoeval, tmp_path):
    for label in (None, -1, 10):
        data = mnist_parquet(tmp_path / f"d{label}", [(png_bytes(), 3), (png_bytes(), label)])
        refused(winoeval(*MNIST, "-t", "mnist:hub", "--data-dir", data, "-o", tmp_path / "o"), 2, "'hub-1'", "label")


# ------------------------------------------------------------------------- confinement and images

def test_a_parquet_row_naming_an_absolute_path_is_not_read(winoeval, tmp_path):
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes(200))
    data = mnist_parquet(tmp_path / "data", [(png_bytes(), 3), (outside, 1), (tmp_path / "data" / ".." / "secret.png", 2)])
    refused(winoeval(*MNIST, "-t", "mnist:hub", "--data-dir", data, "-o", tmp_path / "o"), 1, "'hub-1'",
            "outside --data-dir", "--skip-bad")
    status, out, err = winoeval(*MNIST, "-t", "mnist:hub", "--data-dir", data, "-o", tmp_path / "o", "--skip-bad")
    assert status == 0, err
    skipped = {s["id"]: s["reason"] for s in results_of(tmp_path / "o")["skipped"]}
    assert set(skipped) == {"hub-1", "hub-2"} and all("outside --data-dir" in r for r in skipped.values())


def test_a_relative_image_path_resolves_against_the_data_folder_not_the_working_directory(winoeval, tmp_path,
                                                                                           monkeypatch):
    data = mnist_parquet(tmp_path / "data", [("images/a.png", 3)])
    (data / "images").mkdir()
    (data / "images" / "a.png").write_bytes(png_bytes(30))
    elsewhere = tmp_path / "cwd"
    (elsewhere / "images").mkdir(parents=True)
    (elsewhere / "images" / "a.png").write_bytes(b"not an image: reading it would fail")
    monkeypatch.chdir(elsewhere)
    status, out, err = winoeval(*MNIST, "-t", "mnist:hub", "--data-dir", data, "-o", tmp_path / "o")
    assert status == 0, err
    assert results_of(tmp_path / "o")["skipped"] == []


def test_the_confinement_helper_refuses_escapes(tmp_path):
    from winoeval.localdata import confined_path

    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "link").symlink_to(tmp_path)
    assert confined_path(root, "sub/a.png") == (root / "sub" / "a.png").resolve()
    for escape in ("/etc/passwd", "../x.png", "sub/../../x.png", "link/x.png", "~/x.png"):
        with pytest.raises(ValueError, match="outside --data-dir"):
            confined_path(root, escape, "image")


def test_a_decompression_bomb_is_a_bad_example_skippable_with_skip_bad(winoeval, tmp_path):
    data = mnist_parquet(tmp_path / "data", [(png_bytes(), 3), (bomb_png(20000, 20000), 1)])
    refused(winoeval(*MNIST, "-t", "mnist:hub", "--data-dir", data, "-o", tmp_path / "o"), 1, "'hub-1'",
            "pixel limit", "--max-pixels")
    status, _, err = winoeval(*MNIST, "-t", "mnist:hub", "--data-dir", data, "-o", tmp_path / "o", "--skip-bad")
    assert status == 0, err
    assert [s["id"] for s in results_of(tmp_path / "o")["skipped"]] == ["hub-1"]


def test_max_pixels_sets_the_limit_exactly(winoeval, tmp_path):
    data = mnist_parquet(tmp_path / "data", [(bomb_png(100, 100), 3)])
    refused(winoeval(*MNIST, "-t", "mnist:hub", "--data-dir", data, "-o", tmp_path / "a", "--max-pixels", "9999"),
            1, "'hub-0'", "pixel limit of 9,999")
    status, _, err = winoeval(*MNIST, "-t", "mnist:hub", "--data-dir", data, "-o", tmp_path / "b",
                              "--max-pixels", "10000")
    assert status == 0, err
    assert results_of(tmp_path / "b")["skipped"] == []


@pytest.mark.parametrize("error", [RuntimeError("decoder state broken"), MemoryError(), KeyError("tile"),
                                   AssertionError("bad chunk")])
def test_every_decoder_failure_is_a_bad_example(winoeval, tmp_path, monkeypatch, error):
    import datasets

    def fail(self, value, token_per_repo_id=None):
        raise error

    monkeypatch.setattr(datasets.Image, "decode_example", fail)
    data = mnist_parquet(tmp_path / "data", [(png_bytes(), 3)])
    refused(winoeval(*MNIST, "-t", "mnist:hub", "--data-dir", data, "-o", tmp_path / "o"), 1, "'hub-0'",
            "unreadable", type(error).__name__)
    status, _, err = winoeval(*MNIST, "-t", "mnist:hub", "--data-dir", data, "-o", tmp_path / "o", "--skip-bad")
    assert status == 0, err
    assert [s["id"] for s in results_of(tmp_path / "o")["skipped"]] == ["hub-0"]


def test_a_bad_max_pixels_variable_is_a_usage_error(winoeval, tmp_path):
    data = mnist_parquet(tmp_path / "data", [(png_bytes(), 3)])
    refused(winoeval(*MNIST, "-t", "mnist:hub", "--data-dir", data, "-o", tmp_path, env={"WINOEVAL_MAX_PIXELS": "x"}),
            2, "WINOEVAL_MAX_PIXELS")


# ------------------------------------------------------------------------- fingerprints (item 3, 19.6)

def test_a_checkpoint_replaced_with_its_size_and_mtime_restored_is_recomputed(winoeval, tmp_path):
    """`cp -p`, `tar` or `os.utime` after a same-size rewrite used to give '0 computed, 1 reused'."""
    from winoeval.plugins.mnist_unet import WEIGHTS

    ckpt = tmp_path / "w.safetensors"
    ckpt.write_bytes(WEIGHTS.read_bytes())
    args = [*MNIST, "-t", "mnist", "--limit", "1", "--model-arg", f"checkpoint={ckpt}"]
    assert winoeval(*args, "-o", tmp_path / "a")[0] == 0
    st = ckpt.stat()
    data = bytearray(ckpt.read_bytes())
    data[-2:] = bytes([data[-2] ^ 0x01, data[-1]])  # one bit of the last float16 weight
    ckpt.write_bytes(bytes(data))
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ckpt.stat().st_size == st.st_size and ckpt.stat().st_mtime_ns == st.st_mtime_ns
    status, _, err = winoeval(*args, "-o", tmp_path / "a")
    assert status == 0, err
    assert "1 example(s) computed, 0 reused" in err
    fps = {json.loads(p.read_text())["model"]["fingerprint"] for p in (tmp_path / "a").glob("*/results_*.json")}
    assert len(fps) == 2


def test_rehash_flag_reads_the_weights_again(winoeval, tmp_path, monkeypatch):
    from winoeval.plugins.mnist_unet import WEIGHTS

    args = [*MNIST, "-t", "mnist", "--limit", "1", "-o", tmp_path]
    assert winoeval(*args)[0] == 0
    monkeypatch.setattr(fingerprint, "_fresh", set())  # as in a new process
    reads = []

    def counting_open(path, *args, **kwargs):  # hash_file's own open()
        reads.append(Path(path).name)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(fingerprint, "open", counting_open, raising=False)
    assert winoeval(*args)[0] == 0 and reads == []  # remembered
    status, _, err = winoeval(*args, "--rehash")
    assert status == 0 and "0 example(s) computed, 1 reused" in err, err
    assert reads == [WEIGHTS.name]  # read again, once


def test_a_garbage_hash_memo_is_ignored(winoeval, tmp_path, monkeypatch):
    memo = tmp_path / "hashes.json"
    memo.write_text("[1, 2, {not json")
    monkeypatch.setenv("WINOEVAL_HASH_CACHE", str(memo))
    monkeypatch.setattr(fingerprint, "_memo", None)
    status, _, err = winoeval(*MNIST, "-t", "mnist", "--limit", "1", "-o", tmp_path / "o")
    assert status == 0, err
    assert isinstance(json.loads(memo.read_text()), dict)


def test_a_byte_identical_rewrite_of_a_data_dir_parquet_keeps_the_task_fingerprint(winoeval, tmp_path):
    """Issue 19 item 6: the datasets library's own fingerprint of a parquet folder follows mtimes."""
    import time

    data = mnist_parquet(tmp_path / "data", [(png_bytes(10), 3), (png_bytes(250), 1)])
    args = [*MNIST, "-t", "mnist:hub", "--data-dir", data, "-o", tmp_path / "o", "--log-samples"]
    assert winoeval(*args)[0] == 0
    (parquet,) = data.glob("*.parquet")
    content = parquet.read_bytes()
    time.sleep(0.02)
    parquet.unlink()
    parquet.write_bytes(content)  # a new inode, a new mtime, the same bytes
    status, _, err = winoeval(*args)
    assert status == 0 and "0 example(s) computed, 2 reused" in err, err
    fps = [json.loads(p.read_text())["task"]["fingerprint"] for p in sorted((tmp_path / "o").glob("*/results_*.json"))]
    assert len(fps) == 2 and fps[0] == fps[1] and set(fps[0]) == {"data_dir"}


# ------------------------------------------------------------------------------------------ sample

@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "abc"])
def test_sample_guidance_must_be_finite(winoeval, tmp_path, value):
    refused(winoeval("sample", "-m", "mnist-unet", "--label", "3", "--guidance", value, "--out", tmp_path / "g.png"),
            2, "--guidance", value)
    assert not (tmp_path / "g.png").exists()


def test_sample_bad_count_and_folder(winoeval, tmp_path):
    refused(winoeval("sample", "-m", "mnist-unet", "--label", "3", "--n", "0", "--out", tmp_path / "g.png"), 2, "--n")
    refused(winoeval("sample", "-m", "mnist-unet", "--label", "3", "--out", tmp_path / "no" / "g.png"), 2, "--out",
            "does not exist")
    refused(winoeval("sample", "-m", "mnist-unet", "--label", "x", "--n", "1", "--out", tmp_path / "g.png"), 2,
            "--label")


# ------------------------------------------------------------------------- compare and calibrate

@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two logged runs of mnist:hub on a local parquet folder (4 digits), and the folder (made once)."""
    from winoeval.cli import main

    root = tmp_path_factory.mktemp("runs")
    data = mnist_parquet(root / "data", [(png_bytes(v), v % 10) for v in (0, 1, 2, 3)])
    saved = dict(os.environ)
    os.environ["WINOEVAL_HASH_CACHE"] = str(root / "hashes.json")  # never the user's memo
    fingerprint._memo = None
    for seed in ("0", "1"):
        sys_argv = sys.argv
        sys.argv = ["winoeval", *MNIST, "-t", "mnist:hub", "--data-dir", str(data), "-o", str(root / f"o{seed}"),
                    "--seed", seed, "--log-samples"]
        try:
            main()
        except SystemExit as exc:
            assert not exc.code
        finally:
            sys.argv = sys_argv
            os.environ.clear()
            os.environ.update(saved)
            fingerprint._memo = None
    files = [next((root / f"o{s}").glob("*/results_*.json")) for s in ("0", "1")]
    return files, data


def _samples(results: Path) -> Path:
    return results.with_name(results.name.replace("results_", "samples_").replace(".json", ".jsonl"))


@pytest.mark.parametrize("line, words", [
    ("42", ["a JSON number, not an object"]),
    ("null", ["a JSON null"]),
    ('{"id": 5}', ["its id is 5"]),
    ('{"id": "x", "scores": 1, "verdicts": {}}', ["'scores'"]),
    ('{"id": "x", "scores": [[NaN, 1.0]], "verdicts": {}}', ["'scores'"]),
    ('{"id": "x", "scores": [[1.0, 2.0]], "verdicts": null}', ["'verdicts'"]),
    ('{"id": "x", "scores": [[1.0, 2.0]], "verdicts": {"correct": "yes"}}', ["'verdicts'", "correct"]),
    ('{"id": "x", "scores": [[1.0, 2.0]], "verdicts": {"correct": true}, "label": -1}', ["label -1"]),
    ("{not json", ["not valid JSON"]),
])
def test_a_damaged_samples_file_names_the_file_and_line(winoeval, two_runs, line, words):
    files, _ = two_runs
    samples = _samples(files[1])
    saved = samples.read_text()
    try:
        samples.write_text(saved + line + "\n")
        # a file given to compare/calibrate is the command's input: a damaged one is a usage error (exit 2)
        refused(winoeval("compare", *files), 2, f"{samples.name}:5", *words)
        if "label" in line or "42" == line:
            refused(winoeval("calibrate", files[1]), 2, f"{samples.name}:5")
    finally:
        samples.write_text(saved)


@pytest.mark.parametrize("content, words", [
    ("[]", ["not a winoeval results file"]),
    ('{"model": 1, "task": 2}', ["'model'"]),
    ('{"model": {"name": "m"}, "task": "t"}', ["'task'"]),
    ('{"model": {"name": "m"}, "task": {"name": "t"}, "results": 5}', ["'results'"]),
    ("{torn", ["cannot read the results file"]),
])
def test_a_damaged_results_file_is_named(winoeval, tmp_path, two_runs, content, words):
    files, _ = two_runs
    bad = tmp_path / "results_x.json"
    bad.write_text(content)
    _samples(bad).write_text(_samples(files[0]).read_text())
    refused(winoeval("compare", files[0], bad), 2, "results_x.json", *words)


def test_compare_outputs_are_checked_before_any_work(winoeval, tmp_path, two_runs):
    files, _ = two_runs
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for option in ("--html", "--csv", "--json", "--plot"):
        refused(winoeval("compare", *files, option, tmp_path / "missing" / "out"), 2, option, "does not exist")
        refused(winoeval("compare", *files, option, a_file / "out"), 2, option)
    refused(winoeval("compare", *files, "--html", tmp_path), 2, "--html")
    refused(winoeval("calibrate", files[0], "--json", tmp_path / "missing" / "c.json"), 2, "--json")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_compare_html_into_a_read_only_folder(winoeval, tmp_path, two_runs):
    files, _ = two_runs
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        refused(winoeval("compare", *files, "--html", ro / "r.html"), 2, "--html", "not writable")
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("bins", ["0", "-3"])
def test_calibrate_bins_must_be_positive(winoeval, two_runs, bins):
    files, _ = two_runs
    refused(winoeval("calibrate", files[0], "--bins", bins), 2, "--bins")


def test_calibrate_refuses_a_label_out_of_range():
    from winoeval.calibration import CalibrationError, calibrate

    records = [{"id": f"e{i}", "scores": [[1.0, 0.0]], "label": 0, "verdicts": {}} for i in range(4)]
    records[2]["label"] = -1
    with pytest.raises(CalibrationError, match="'e2' has label -1"):
        calibrate(records)
    with pytest.raises(CalibrationError, match="--bins"):
        calibrate(records[:2], n_bins=0)


def test_compare_html_with_another_dataset_shows_no_images_and_says_why(winoeval, tmp_path, two_runs):
    files, data = two_runs
    other = mnist_parquet(tmp_path / "other", [(png_bytes(255 - v), v % 10) for v in (0, 1, 2, 3)])  # same ids
    status, _, err = winoeval("compare", *files, "--html", tmp_path / "r.html", "--data-dir", other)
    assert status == 0, err
    assert "not the data the run evaluated" in err and "data_dir" in err
    html = (tmp_path / "r.html").read_text()
    assert "data:image/" not in html
    status, _, err = winoeval("compare", *files, "--html", tmp_path / "ok.html", "--data-dir", data)
    assert status == 0 and "not the data" not in err, err
    assert "data:image/" in (tmp_path / "ok.html").read_text()


# ---------------------------------------------- model outputs, cache lines, locks (runner/scoring)

class OddModels:
    """Models whose outputs break the contract in one way each (``kind`` named by the test)."""

    @hookimpl
    def winoeval_register_models(self, register):
        from winoeval.plugins.analytic import AnalyticDenoiser

        class NanSometimes(AnalyticDenoiser):
            def predict_noise(self, x_t, t, cond):
                out = super().predict_noise(x_t, t, cond)
                out[t == t.max()] = float("nan")  # some samples only
                return out

        class InfOnOneCaption(AnalyticDenoiser):
            def predict_noise(self, x_t, t, cond):
                out = super().predict_noise(x_t, t, cond)
                out[cond.flatten(1)[:, 0] > 0.5] = float("inf")  # captions starting with red or yellow
                return out

        class OneChannel(AnalyticDenoiser):
            def predict_noise(self, x_t, t, cond):
                return super().predict_noise(x_t, t, cond)[:, :1]

        class DiagonalMatcher:
            kind = "matcher"
            device, dtype = "cpu", None

            def __init__(self, sigma):
                pass

            def similarity(self, images, texts):
                import torch

                s = torch.full((len(images), len(texts)), -math.inf)
                s.fill_diagonal_(0.5)
                return s

        class WrongShapeMatcher(DiagonalMatcher):
            def similarity(self, images, texts):
                import torch

                return torch.zeros(len(images) + 1, len(texts))

        for name, cls in (("nan-sometimes", NanSometimes), ("inf-caption", InfOnOneCaption),
                          ("one-channel", OneChannel), ("diagonal-matcher", DiagonalMatcher),
                          ("wrong-shape-matcher", WrongShapeMatcher)):
            register(name, lambda argument, config, cls=cls: cls(0.2), options={})


@pytest.mark.parametrize("model, words", [
    ("nan-sometimes", ["non-finite"]),
    ("inf-caption", ["non-finite"]),
    ("one-channel", ["shape"]),
    ("diagonal-matcher", ["inf"]),
    ("wrong-shape-matcher", ["shape"]),
])
def test_a_contract_breaking_model_output_names_the_example(winoeval, tmp_path, register_plugin, model, words):
    register_plugin(OddModels(), name="adversarial-test-plugin")
    refused(winoeval("run", "-m", model, "-t", "toy-winoground:0.2", "--n-samples", "4", "-q", "-o", tmp_path),
            1, "example", "--skip-bad", *words)
    status, _, err = winoeval("run", "-m", model, "-t", "toy-winoground:0.2", "--n-samples", "4", "-q", "-o",
                              tmp_path, "--skip-bad")
    assert status == 0 and UNEXPECTED not in err, err
    results = results_of(tmp_path)
    n, skipped = results["results"]["toy-winoground:0.2"]["n"], len(results["skipped"])
    assert skipped >= 1 and n + skipped == 6


@pytest.mark.parametrize("bad", ['"scores": 1', '"verdicts": null', '"scores": [[NaN, 1.0], [1.0, 0.0]]'])
def test_a_cache_line_of_the_wrong_types_is_dropped_and_recomputed(winoeval, tmp_path, bad):
    args = [*TOY, "-o", tmp_path]
    assert winoeval(*args)[0] == 0
    (part,) = tmp_path.glob("*/.cache/*/part-*.jsonl")
    lines = part.read_text().splitlines()
    record = json.loads(lines[0])
    key, _, value = bad.partition(": ")
    text = json.dumps(record)
    text = text[:-1] + f", {key}: {value}" + "}"  # the later key wins when the line is read back
    part.write_text("\n".join([text, *lines[1:]]) + "\n")
    status, _, err = winoeval(*args)
    assert status == 0 and "1 example(s) computed, 5 reused" in err, err
    for line in part.read_text().splitlines():  # the part was rewritten without the bad line
        record = json.loads(line)
        assert isinstance(record["scores"], list) and isinstance(record["verdicts"], dict)
        assert all(v is None or math.isfinite(v) for row in record["scores"] for v in row)


def test_a_refused_second_run_leaves_the_first_runs_lock(winoeval, tmp_path):
    from winoeval.storage import RunLock

    args = [*TOY, "-o", tmp_path]
    assert winoeval(*args)[0] == 0
    (part,) = tmp_path.glob("*/.cache/*/part-*.jsonl")
    lock = RunLock(part.with_suffix(".lock"))
    lock.acquire()  # a first run, still running
    try:
        refused(winoeval(*args), 2, "pid")
        assert part.with_suffix(".lock").exists()
    finally:
        lock.release()


# ------------------------------------------------------------------------------- property tests

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(finite, finite, finite, finite), min_size=1, max_size=30))
def test_winoground_metrics_are_proportions_consistent_with_the_verdicts(matrices):
    from winoeval import metrics

    records = [{"verdicts": metrics.winoground_verdicts([[a, b], [c, d]])} for a, b, c, d in matrices]
    out = metrics.winoground_metrics(records)
    for name in ("text", "image", "group"):
        k = sum(r["verdicts"][name] for r in records)
        assert out[name] == k / len(records)
        lo, hi = out[f"{name}_ci95"]
        assert 0 <= lo <= out[name] <= hi <= 1
    assert out["group"] <= min(out["text"], out["image"])
    for (a, b, c, d), r in zip(matrices, records):  # swapping the captions swaps right and wrong on text
        swapped = metrics.winoground_verdicts([[b, a], [d, c]])
        assert not (r["verdicts"]["text"] and swapped["text"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(finite, min_size=2, max_size=6), st.integers(0, 5)), min_size=1, max_size=30))
def test_classification_metrics_match_a_direct_count(rows):
    from winoeval import metrics

    records = []
    for scores, label in rows:
        label = label % len(scores)
        records.append({"label": label, "verdicts": metrics.classification_verdict(scores, label)})
        best = max(scores)
        assert records[-1]["verdicts"]["correct"] == (scores.count(best) == 1 and scores[label] == best)
    out = metrics.classification_metrics(records)
    correct = [r["verdicts"]["correct"] for r in records]
    assert out["accuracy"] == sum(correct) / len(correct)
    lo, hi = out["accuracy_ci95"]
    assert 0 <= lo <= out["accuracy"] <= hi <= 1
    assert 0 <= out["mean_per_class_accuracy"] <= 1


json_values = st.recursive(st.none() | st.booleans() | st.integers() | finite | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(
    st.builds(lambda i: {"id": f"e{i}", "scores": [[0.5, 0.25]], "verdicts": {"correct": True}, "label": 0},
              st.integers(0, 5)),
    st.builds(lambda i, reason: {"id": f"e{i}", "skipped": reason}, st.integers(0, 5), st.text(max_size=8)),
    st.dictionaries(st.sampled_from(["id", "scores", "verdicts", "skipped", "label"]), json_values, max_size=5),
    json_values), max_size=12), st.lists(st.binary(max_size=20), max_size=3))
def test_the_cache_loader_never_raises_and_keeps_only_records(tmp_path_factory, records, garbage):
    from winoeval.storage import RecordCache

    path = tmp_path_factory.mktemp("cache") / "part-000-of-001.jsonl"
    lines = [json.dumps(r).encode() + b"\n" for r in records] + [g.replace(b"\n", b"") + b"\n" for g in garbage]
    path.write_bytes(b"".join(lines))
    cache = RecordCache(path)
    loaded = cache.load()
    assert 0 <= cache.damaged <= len(lines)
    for rid, record in loaded.items():
        assert isinstance(rid, str) and record["id"] == rid
        assert "skipped" in record or ("scores" in record and "verdicts" in record)
    cache.rewrite(loaded.values())
    again = RecordCache(path)
    assert again.load() == loaded and again.damaged == 0


class RaisingImagesTask:
    """A third-party task whose image loader raises what decoders raise (not OSError/ValueError)."""

    def __init__(self, error):
        self.error = error

    @hookimpl
    def winoeval_register_tasks(self, register):
        from winoeval.api import Example, TaskData
        from winoeval.tasks.synthetic import render

        texts = ["red", "green"]

        def fail():
            raise self.error

        def examples():
            yield Example("fine", [render("red", 0.0, "fine")], texts, 0)
            yield Example("broken", fail, texts, 1)

        register("raising-task", lambda argument, config: TaskData("raising-task", "classification", examples, 2,
                                                                   texts=texts, class_names=texts), options={})


@pytest.mark.parametrize("error", [RuntimeError("decoder state"), MemoryError(), KeyError("tile")])
def test_a_third_party_image_loader_failure_is_a_bad_example(winoeval, tmp_path, register_plugin, error):
    register_plugin(RaisingImagesTask(error), name="adversarial-test-plugin")
    refused(winoeval("run", "-m", "analytic", "-t", "raising-task", "-q", "-o", tmp_path), 1, "'broken'",
            type(error).__name__, "--skip-bad")
    status, _, err = winoeval("run", "-m", "analytic", "-t", "raising-task", "-q", "-o", tmp_path, "--skip-bad")
    assert status == 0, err
    assert [s["id"] for s in results_of(tmp_path)["skipped"]] == ["broken"]


@pytest.mark.parametrize("args, words", [
    (["--model-arg", "checkpoint="], ["--model-arg", "empty value"]),
    (["--model-arg", "weights=ema", "--model-arg", "weights=model"], ["--model-arg", "weights", "twice"]),
])
def test_check_plugin_parses_options_like_run(winoeval, args, words):
    refused(winoeval("check-plugin", "mnist-unet", "--task", "mnist", *args), 2, *words)


def test_key_values_helper():
    import click

    from winoeval.options import key_values

    assert key_values(["a=1", "b=x=y", " c =z"], "--o") == {"a": "1", "b": "x=y", "c": "z"}
    for bad in (["a="], ["a= "], ["=1"], ["a"], ["a=1", "a=1"]):
        with pytest.raises(click.BadParameter):
            key_values(bad, "--o")
