"""Nothing finished is lost: kill-and-resume, sharding, determinism, bad model output, out of memory."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from winoeval import registry
from winoeval.config import RunConfig, ScorerConfig
from winoeval.hookspecs import hookimpl
from winoeval.plugins.analytic import AnalyticDenoiser
from winoeval.errors import BadExampleError
from winoeval.runner import evaluate
from winoeval.scoring import DiffusionScorer
from winoeval.tasks.synthetic import render

REPO = Path(__file__).resolve().parent.parent
RUN = ["run", "--model", "analytic:0.3", "--task", "colors:0.3", "--n-samples", "96", "--batch-size", "2", "-q"]


def _comparable(path: Path) -> bytes:
    """A results or samples file without what belongs to the run, not to the results: its ``run`` section
    (date, wall time, computed/reused counts) and the git hash (which moves when anyone commits)."""
    if path.suffix != ".json":
        return path.read_bytes()
    data = json.loads(path.read_text())
    data.pop("run")
    data.pop("git_hash")
    return json.dumps(data, sort_keys=True).encode()


def _results(out_dir: Path) -> list[Path]:
    return sorted(out_dir.glob("*/results_*.json"))


def _cache_lines(out_dir: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in out_dir.glob("*/.cache/*/part-*.jsonl"))


def _winoeval(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "winoeval", *args], env=env, capture_output=True, text=True,
                          timeout=600, **kw)


def test_kill_and_resume_gives_a_byte_identical_results_file(tmp_path, cli_env):
    out = tmp_path / "out"
    res = _winoeval([*RUN, "-o", str(out)], cli_env)
    assert res.returncode == 0, res.stderr
    [reference] = _results(out)
    reference_bytes = _comparable(reference)
    reference.unlink()
    shutil.rmtree(out / "analytic_0.3" / ".cache")

    proc = subprocess.Popen([sys.executable, "-m", "winoeval", *RUN, "-o", str(out)], env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while _cache_lines(out) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _cache_lines(out)
    assert 5 <= killed_at < 80, f"the run was not killed mid-way ({killed_at} examples cached)"
    assert not _results(out), "a killed run must not leave a results file"

    res = _winoeval([*RUN, "-o", str(out)], cli_env)
    assert res.returncode == 0, res.stderr
    computed = int(re.search(r"\((\d+) example\(s\) computed", res.stderr).group(1))
    assert computed <= 80 - killed_at + 1  # at most the torn example is recomputed
    [resumed] = _results(out)
    assert _comparable(resumed) == reference_bytes


def test_two_processes_gather_the_same_results_as_one(tmp_path, cli_env):
    args = ["run", "--model", "analytic:0.4", "--task", "colors:0.4", "--n-samples", "8", "--limit", "30", "-q",
            "-o", str(tmp_path), "--log-samples"]
    res = _winoeval(args, cli_env)
    assert res.returncode == 0, res.stderr
    one = {p.name.split("_")[0]: _comparable(p) for p in tmp_path.glob("*/*_*.json*")}
    for p in tmp_path.glob("*/*_*.json*"):
        p.unlink()
    shutil.rmtree(tmp_path / "analytic_0.4" / ".cache")
    res = _winoeval([*args, "--num-processes", "2"], cli_env)
    assert res.returncode == 0, res.stderr
    assert len(list(tmp_path.glob("*/.cache/*/part-*-of-002.jsonl"))) == 2  # each process cached its own
    two = {p.name.split("_")[0]: _comparable(p) for p in tmp_path.glob("*/*_*.json*")}
    assert one == two and set(one) == {"results", "samples"}


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_torchrun_launch_shards_and_rank0_gathers(tmp_path, cli_env):
    args = ["run", "--model", "analytic:0.4", "--task", "colors:0.4", "--n-samples", "8", "--limit", "20", "-q",
            "--device", "cpu", "-o", str(tmp_path)]
    res = _winoeval(args, cli_env)
    [single] = _results(tmp_path)
    expected = _comparable(single)
    single.unlink()
    shutil.rmtree(tmp_path / "analytic_0.4" / ".cache")
    torchrun = str(Path(sys.executable).parent / "torchrun")
    res = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29517", "-m", "winoeval", *args],
                         env=cli_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    [gathered] = _results(tmp_path)
    assert _comparable(gathered) == expected


def test_limit_and_order_do_not_change_scores(tmp_path):
    full = evaluate(RunConfig("analytic:0.6", "colors:0.6", scorer_args={"n_samples": (6,)},
                              output_path=str(tmp_path / "a")), progress=False, write=False)
    part = evaluate(RunConfig("analytic:0.6", "colors:0.6", scorer_args={"n_samples": (6,)}, limit=7,
                              output_path=str(tmp_path / "b")), progress=False, write=False)
    assert part.records == full.records[:7]
    # the same example scored alone, after other examples, and with another batch size: identical bits
    model = AnalyticDenoiser(0.6)
    image = render("blue", 0.6, "k")
    names = ["red", "blue", "green"]
    a = DiffusionScorer(model, ScorerConfig(n_samples=(9,), batch_size=1)).score("k", [image], names)
    scorer = DiffusionScorer(model, ScorerConfig(n_samples=(9,), batch_size=64))
    scorer.score("other", [render("red", 0.6, "o")], names)
    assert torch.equal(a.scores, scorer.score("k", [image], names).scores)


class NaNModel(AnalyticDenoiser):
    """NaN latents for green images: a model that breaks on some inputs. Decided per image, so it holds
    however the scorer batches images of several examples together."""

    def encode_images(self, images):
        z = super().encode_images(images)
        green = ((z[:, 1] > 0.5).flatten(1).all(1) & (z[:, 0] < -0.5).flatten(1).all(1)
                 & (z[:, 2] < -0.5).flatten(1).all(1))
        return torch.where(green[:, None, None, None], torch.full_like(z, float("nan")), z)


class NaNPlugin:
    @hookimpl
    def winoeval_register_models(self, register):
        register("nan-model", lambda arg, config: NaNModel(0.0))


def test_non_finite_scores_name_the_example_or_are_skipped(tmp_path):
    plugin = NaNPlugin()
    registry.get_plugin_manager().register(plugin, name="nan")
    try:
        config = RunConfig("nan-model", "colors:0", scorer_args={"n_samples": (4,)}, limit=8,
                           output_path=str(tmp_path))
        with pytest.raises(BadExampleError, match=r"example 'colors-002'.*non-finite.*--skip-bad"):
            evaluate(config, progress=False)
        cached = _cache_lines(tmp_path)
        assert cached == 2  # the two finished examples before the green one are kept
        config.skip_bad = True
        out = evaluate(config, progress=False)
    finally:
        registry.get_plugin_manager().unregister(plugin)
    m = out.results["results"]["colors:0"]
    assert m["skipped"] == 1 and m["n"] == 7
    assert out.results["skipped"][0]["id"] == "colors-002"


class OOMOnce(AnalyticDenoiser):
    """Pretends to run out of GPU memory for batches larger than 4."""

    def predict_noise(self, x_t, t, cond):
        if x_t.shape[0] > 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return super().predict_noise(x_t, t, cond)


def test_out_of_memory_halves_the_batch_and_goes_on():
    image = render("red", 0.2, "m")
    names = ["red", "blue", "green"]
    reference = DiffusionScorer(AnalyticDenoiser(0.2), ScorerConfig(n_samples=(10,), batch_size=4)).score(
        "m", [image], names)
    scorer = DiffusionScorer(OOMOnce(0.2), ScorerConfig(n_samples=(10,), batch_size=16))
    with pytest.warns(RuntimeWarning) as caught:
        result = scorer.score("m", [image], names)
    assert [str(w.message) for w in caught] == [
        "out of memory at batch size 16; continuing with 8 (pass --batch-size 8 next time)",
        "out of memory at batch size 8; continuing with 4 (pass --batch-size 4 next time)"]
    assert scorer.batch_size == 4
    assert torch.equal(result.sample_errors, reference.sample_errors)


def test_weights_are_loaded_safely():
    """No pickle loading without weights_only=True, and never trust_remote_code."""
    offenders = []
    for path in [*REPO.glob("winoeval/**/*.py"), *REPO.glob("plugins/*.py"), *REPO.glob("tasks/*.py"),
                 *REPO.glob("benchmarks/*.py")]:
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in match.group(1):
                offenders.append(f"{path.name}: torch.load without weights_only=True")
        if re.search(r"trust_remote_code\s*=\s*True", text):
            offenders.append(f"{path.name}: trust_remote_code=True")
    assert not offenders, offenders
