"""winoeval.cli: `winoeval run` end to end on the built-in demo model and tasks; bad input is caught early
and reported in one line (exit status 2 for usage errors); `list`, `train` and unexpected errors."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest
from click.testing import CliRunner

from winoeval.cli import cli
from winoeval.hookspecs import hookimpl


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_run_toy_winoground_writes_results_and_samples(tmp_path):
    res = run("run", "--model", "analytic", "--task", "toy-winoground", "--n-samples", "6", "-o", str(tmp_path),
              "--log-samples", "-q")
    assert res.exit_code == 0, res.output
    assert "| analytic | toy-winoground | all | 6 | 100.0" in res.output
    [results_file] = tmp_path.glob("*/results_*.json")
    results = json.loads(results_file.read_text())
    assert set(results) >= {"config", "results", "versions", "git_hash"}
    m = results["results"]["toy-winoground"]
    assert (m["text"], m["image"], m["group"], m["n"]) == (1.0, 1.0, 1.0, 6)
    assert results["config"]["scorer"]["n_samples"] == [6] and results["config"]["scorer"]["normalize"] is True
    assert set(m["by"]["collapsed_tag"]) == {"Object", "Relation"}
    [samples_file] = tmp_path.glob("*/samples_*.jsonl")
    assert samples_file.name.removeprefix("samples_").removesuffix(".jsonl") == \
        results_file.name.removeprefix("results_").removesuffix(".json")
    lines = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert [r["id"] for r in lines] == [str(i) for i in range(6)]
    first = lines[0]
    assert len(first["scores"]) == 2 and len(first["scores"][0]) == 2
    assert first["verdicts"] == {"text": True, "image": True, "group": True}
    # 2 images × (2 captions + unconditional) × 6 samples
    assert first["n_evals"] == 36


@pytest.mark.slow
def test_classification_run_and_resume_reuses_finished_examples(tmp_path):
    args = ["run", "--model", "analytic:0.5", "--task", "colors:0.5", "--n-samples", "4", "--limit", "16",
            "-o", str(tmp_path), "-q"]
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert "16 example(s) computed, 0 reused" in first.output
    second = run(*args)
    assert "0 example(s) computed, 16 reused" in second.output
    a, b = sorted(tmp_path.glob("*/results_*.json"))  # never overwritten, even within one second
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert {ra.pop("run")["examples_computed"], rb.pop("run")["examples_computed"]} == {16, 0}
    assert ra == rb  # the same results; only the run's own record (date, wall time, counts) differs
    # a changed scorer setting never reuses the other run's cache
    third = run(*args[:-1], "--seed", "3", "-q")
    assert "16 example(s) computed, 0 reused" in third.output


class Recording:
    """A plugin whose loader must never be called: bad input has to fail before any model loads."""

    loaded = False

    @hookimpl
    def winoeval_register_models(self, register):
        def load(arg, config):
            Recording.loaded = True
            raise AssertionError("model loaded")
        register("never-load", load)


@pytest.mark.parametrize("extra, message", [
    (["--n-samples", "0"], "must be positive"),
    (["--n-samples", "10,5", "--to-keep", "3,1"], "must increase"),
    (["--n-samples", "5,10", "--to-keep", "1,3"], "strictly decreasing"),
    (["--n-samples", "5,10", "--to-keep", "3"], "one value per"),
    (["--n-samples", "five"], "comma-separated integers"),
    (["--loss", "l3"], "l3"),
    (["--limit", "0"], "--limit must be a count"),
    (["--limit", "1.5"], "or a fraction in (0, 1)"),
    (["--device", "tpu"], "unknown --device"),
    (["--model-arg", "novalue"], "KEY=VALUE"),
])
def test_bad_numbers_fail_before_the_model_loads(tmp_path, register_plugin, extra, message):
    register_plugin(Recording(), name="recording")
    res = CliRunner().invoke(cli, ["run", "--model", "never-load", "--task", "colors", "-o", str(tmp_path), *extra])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not Recording.loaded


def test_unknown_model_and_task_name_close_matches(tmp_path):
    res = CliRunner().invoke(cli, ["run", "--model", "analytik", "--task", "colors", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "unknown model 'analytik'" in res.output and "analytic" in res.output
    res = CliRunner().invoke(cli, ["run", "--model", "analytic", "--task", "colours", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "unknown task 'colours'" in res.output and "colors" in res.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir_fails_before_the_model_loads(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    res = CliRunner().invoke(cli, ["run", "--model", "analytic", "--task", "colors", "-o", str(locked / "out")])
    assert res.exit_code == 2 and "not writable" in res.output


def test_output_path_that_is_a_file_fails_before_the_model_loads(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = CliRunner().invoke(cli, ["run", "--model", "analytic", "--task", "colors", "-o", str(blocker / "out")])
    assert res.exit_code == 2 and "is not writable" in res.output


def test_list_shows_models_tasks_and_their_plugins():
    res = run("list")
    assert res.exit_code == 0
    assert "analytic" in res.output and "[winoeval.plugins.analytic]" in res.output
    assert "toy-winoground" in res.output and "[winoeval.tasks.synthetic]" in res.output


def test_several_tasks_one_model_load_one_results_file(tmp_path, register_plugin):
    loads = []
    from winoeval.plugins.analytic import AnalyticDenoiser

    class Counting:
        @hookimpl
        def winoeval_register_models(self, register):
            register("counted", lambda arg, config: loads.append(1) or AnalyticDenoiser(0.5))

    register_plugin(Counting(), name="counting")
    res = CliRunner().invoke(cli, ["run", "-m", "counted", "-t", "toy-winoground,colors", "--limit", "0.1",
                                   "--n-samples", "2", "-o", str(tmp_path), "--log-samples", "-q"])
    assert res.exit_code == 0, res.output
    assert len(loads) == 1
    [results_file] = (tmp_path / "counted").glob("results_*.json")  # OUTPUT/<model>/results_<date>.json
    results = json.loads(results_file.read_text())
    assert set(results["results"]) == {"toy-winoground", "colors"} == set(results["tasks"])
    # --limit 0.1: the first 10 % of each task, rounded up: 1 of 6 pairs, 8 of 80 colours
    assert results["results"]["toy-winoground"]["n"] == 1 and results["results"]["colors"]["n"] == 8
    samples = sorted(p.name for p in (tmp_path / "counted").glob("samples_*.jsonl"))
    assert [n.split("_2")[0] for n in samples] == ["samples_colors", "samples_toy-winoground"]
    assert "| counted | toy-winoground |" in res.output and "| counted | colors |" in res.output


def test_run_help_shows_every_default():
    res = CliRunner().invoke(cli, ["run", "--help"], terminal_width=200)
    text = " ".join(res.output.split())
    for option, default in [("--n-samples", "20"), ("--timesteps", "even"), ("--loss", "l2"), ("--seed", "0"),
                            ("--confidence", "0.99"), ("--batch-size", "auto"), ("--device", "auto"),
                            ("--dtype", "auto"), ("--output-path", "winoeval-out"), ("--limit", "all")]:
        after = text.split(option, 1)[1].split(" --", 1)[0]
        assert f"default: {default}" in after, (option, after)
    assert "per image–text pair (not examples)" in text


# ------------------------------------------------------------------------------ one-line errors


@pytest.mark.parametrize("args, expected", [
    (["--device", "cuda:x"], "unknown --device 'cuda:x'"),
    (["--model", "analytic:abc"], "the argument is the noise sigma, a number, written analytic:sigma=S"),
    (["--model-arg", "checkpoint=missing.safetensors"], "no such file"),
    (["--model-arg", "checkpoint=NOTSAFE"], "not a safetensors file"),
    (["--task", "mnist:foo"], "unknown mnist subset 'foo'"),
])
def test_bad_input_is_one_line_with_exit_status_2(tmp_path, run_winoeval, args, expected):
    (tmp_path / "NOTSAFE").write_bytes(b"PK\x03\x04 a zip, as torch.save writes")
    options = {"--model": "mnist-unet", "--task": "mnist", **dict(zip(args[::2], args[1::2]))}
    argv = ["run", *[x for pair in options.items() for x in pair]]
    res = run_winoeval([*argv, "-o", str(tmp_path / "out"), "--limit", "1"], cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert expected in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()  # a failed run leaves no empty output folder
    assert "%|" not in res.stderr  # the error came before any progress bar


@pytest.mark.slow
def test_cuda_without_a_gpu_is_one_line(tmp_path, run_winoeval):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    res = run_winoeval(["run", "-m", "analytic", "-t", "colors", "--device", "cuda", "-o", str(tmp_path / "o")])
    assert res.returncode == 2 and "no CUDA GPU is available here" in res.stderr and "Traceback" not in res.stderr


def test_data_dir_and_output_path_mistakes_name_the_option(tmp_path, run_winoeval):
    (tmp_path / "afile").write_text("x")
    res = run_winoeval(["run", "-m", "analytic", "-t", "toy-winoground", "--data-dir", str(tmp_path / "nope")])
    assert res.returncode == 2 and "--data-dir" in res.stderr and "does not exist" in res.stderr
    res = run_winoeval(["run", "-m", "analytic", "-t", "toy-winoground", "-o", str(tmp_path / "afile")])
    assert res.returncode == 2 and "is a file" in res.stderr


@pytest.mark.slow
def test_confidence_without_early_stop_warns(tmp_path, run_winoeval):
    res = run_winoeval(["run", "-m", "analytic", "-t", "toy-winoground", "--confidence", "0.9", "--n-samples", "2",
                        "-q", "-o", str(tmp_path)])
    assert res.returncode == 0 and "--confidence only applies with --early-stop" in res.stderr


class Crashing:
    @hookimpl
    def winoeval_register_models(self, register):
        def load(argument, config):
            raise RuntimeError("something nobody foresaw\nwith a second line")

        register("crash", load)


def test_an_unexpected_error_is_one_line_unless_debugging(tmp_path, capsys, monkeypatch, register_plugin):
    from winoeval.cli import main

    monkeypatch.setattr(sys, "argv", ["winoeval", "run", "-m", "crash", "-t", "colors", "-o", str(tmp_path), "-q"])
    monkeypatch.delenv("WINOEVAL_DEBUG", raising=False)
    register_plugin(Crashing(), name="crash")
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert "RuntimeError: something nobody foresaw with a second line" in err
    assert "WINOEVAL_DEBUG=1" in err and "Traceback" not in err
    monkeypatch.setenv("WINOEVAL_DEBUG", "1")
    with pytest.raises(RuntimeError, match="nobody foresaw"):
        main()


# ------------------------------------------------------------------------------ list and train


def test_list_says_which_hub_weights_are_in_the_local_cache(tmp_path, cli_env, run_winoeval):
    snapshot = tmp_path / "models--stabilityai--stable-diffusion-2-base" / "snapshots" / "abc123"
    for name in ("model_index.json", "scheduler/s.json", "tokenizer/t.json", "text_encoder/m.safetensors",
                 "unet/m.safetensors", "vae/m.safetensors"):
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_text("{}")
    res = run_winoeval(["list"], {**cli_env, "HF_HUB_CACHE": str(tmp_path)})
    lines = {line.split()[0]: line for line in res.stdout.splitlines() if line.startswith("  ")}
    assert "weights: in the local hub cache" in lines["sd2"]
    assert "not in the local cache" in lines["sd2.1"] and "not in the local cache" in lines["openclip:…"]
    assert "weights:" not in lines["mnist-unet"]  # shipped weights: nothing to download


def test_train_suggests_trainable_models():
    result = CliRunner().invoke(cli, ["train", "mnist-unit"])
    assert result.exit_code == 2 and "did you mean mnist-unet?" in result.output
    result = CliRunner().invoke(cli, ["train", "analytic"])
    assert result.exit_code == 2 and "'analytic' has no training command" in result.output
