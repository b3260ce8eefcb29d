"""WinoDigits 2: v1 is untouched, the v2 tags and the seen/unseen split hold by construction, every
binding tag holds the shortcut oracles at or below chance, and no held-out colour–digit pairing is
in any training stream (the trainers' own generators replayed)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from types import SimpleNamespace

import pytest

pytest.importorskip("mlxtend")

from winoeval.metrics import winoground_verdicts  # noqa: E402
from winoeval.plugins import winodigits_oracle as wo  # noqa: E402
from winoeval.tasks import winodigits as wd  # noqa: E402

N = 160  # 20 per tag, 10 seen + 10 unseen
CHANCE_GROUP = 1 / 6  # random scores: P(text) = P(image) = 1/4, P(group) = 1/6


def _config(**task_args):
    return SimpleNamespace(task_args=task_args, data_dir=None, model_args={})


@pytest.fixture(scope="module")
def examples():
    return [wd.make_example2(i) for i in range(N)]


def _group_rates(examples, rules):
    oracle = wo.WinoDigitsOracle(rules)
    hits = defaultdict(list)
    for ex in examples:
        images = [wd.render_with_meta(s) for s in ex["scenes"]]
        S = oracle.similarity(images, ex["captions"]).tolist()
        hits[ex["tag"]].append(winoground_verdicts(S)["group"])
    return {tag: sum(v) / len(v) for tag, v in hits.items()}


def test_v1_is_byte_identical():
    """Captions and rendered pixels of v1 examples 0-7 hash to the value of the v1 generator (commit 8c72873)."""
    h = hashlib.sha256()
    for i in range(8):
        ex = wd.make_example(i)
        h.update("|".join(ex["captions"]).encode())
        for s in ex["scenes"]:
            h.update(wd.render_array(s).tobytes())
    assert h.hexdigest() == "ca8ce159df50a56e5bea9a752aa5941960d7592f4ece1ea4160947af436af9e3"
    task = wd.load_task(None, _config())
    assert task.name == "winodigits" and task.size == 400 and wd.TAGS == ("object", "attribute", "relation", "control")


def test_v2_balance_split_and_metadata(examples):
    task = wd.load_task2(None, _config())
    assert task.size == 800 and task.name == "winodigits2" and "split" in task.breakdowns
    assert Counter(ex["tag"] for ex in examples) == {t: N // 8 for t in wd.TAGS2}
    assert Counter((ex["tag"], ex["split"]) for ex in examples) == {(t, s): N // 16 for t in wd.TAGS2
                                                                     for s in ("seen", "unseen")}
    for ex in examples:
        shown = wd.pairings(ex["scenes"])
        assert bool(shown & wd.HELD_OUT) == (ex["split"] == "unseen"), ex
        named = set().union(*(wd.caption_pairings(c) for c in ex["captions"]))
        assert named <= shown  # captions name only pairings their scenes show
    assert len(wd.HELD_OUT) == 8 and ("red", 0) in wd.HELD_OUT and ("blue", 3) in wd.HELD_OUT
    one = next(iter(wd.load_task2("conjunction", _config(n=16)).examples()))
    assert one.id == "winodigits2-0006" and one.meta["split"] == "seen" and one.meta["binding"] == "binding"
    assert one.images[0].info["winodigits_scene"]["relation"] in wd.RELATIONS
    # seeds give different sets; the validation seed is not the test seed
    assert wd.make_example2(0, wd.VALIDATION_SEED)["captions"] != wd.make_example2(0)["captions"]


def test_v2_tag_shapes(examples):
    """Same words in both captions for every swap tag; same-colour and one-axis use one colour; the
    conjunction captions have no relation; one-axis flips the relation on its own axis."""
    for ex in examples:
        c0, c1 = ex["captions"]
        s0, s1 = ex["scenes"]
        if ex["tag"] in ("object", "attribute", "relation", "same-colour", "digit-trade", "conjunction"):
            assert sorted(c0.split()) == sorted(c1.split()), ex
        if ex["tag"] in ("same-colour", "one-axis"):
            assert s0.first.colour == s0.second.colour
        if ex["tag"] == "conjunction":
            assert " and " in c0 and " and " in c1 and not any(r in c0 for r in wd.RELATIONS)
            assert (s0.first.colour, s0.second.colour) == (s1.first.colour, s1.second.colour)
        if ex["tag"] == "one-axis":
            assert s1.relation == wd.INVERSE[s0.relation]
    assert wd.make_example2(4)["captions"] == ["a yellow 3 right of a yellow 9", "a yellow 9 right of a yellow 3"]


def test_perfect_oracle_solves_every_item(examples):
    """Each caption is true of its own scene and false of the other (all 8 tags solvable)."""
    assert _group_rates(examples, ("perfect",)) == {t: 1.0 for t in wd.TAGS2}


def test_every_binding_tag_holds_the_shortcut_oracles_at_or_below_chance(examples):
    rates = {r: _group_rates(examples, tuple(r.split("+")))
             for r in ("digit-blind", "colour-blind", "bag-of-words", "axis-only", "digit-blind+bag-of-words")}
    for rule in ("digit-blind", "bag-of-words", "axis-only", "digit-blind+bag-of-words"):
        for tag in wd.BINDING_TAGS:
            assert rates[rule][tag] <= CHANCE_GROUP, (rule, tag, rates[rule][tag])
    # conjunction holds every oracle at chance, colour-blind included
    assert all(rates[r]["conjunction"] <= CHANCE_GROUP for r in rates)
    # colour-blind perceives digits and positions: exactly the digit-position binding that same-colour,
    # digit-trade and one-axis test (with one colour, or colours fixed in place, nothing else is left)
    assert {t: rates["colour-blind"][t] for t in ("same-colour", "digit-trade", "one-axis")} == \
        {"same-colour": 1.0, "digit-trade": 1.0, "one-axis": 1.0}
    # the shortcut: digit-blind + a bag-of-words tie-break solves every v1 tag
    assert {t: rates["digit-blind+bag-of-words"][t] for t in wd.TAGS} == {t: 1.0 for t in wd.TAGS}


def test_oracle_caption_parsing_and_rules_by_hand():
    scene = {"first": ["red", 3], "second": ["blue", 7], "relation": "left of"}
    assert wo.rule_score("perfect", scene, "a blue 7 right of a red 3") == 1.0
    assert wo.rule_score("perfect", scene, "a red 3 left of a blue 7 not above") == 1.0
    assert wo.rule_score("perfect", scene, "a red 3 left of a blue 7 not left of") == 0.0
    assert wo.rule_score("perfect", scene, "a red 7 and a blue 3") == 0.0
    assert wo.rule_score("digit-blind", scene, "a red 7 left of a blue 3") == 1.0
    assert wo.rule_score("colour-blind", scene, "a green 3 left of a green 7") == 1.0
    assert wo.rule_score("colour-blind", scene, "a green 7 left of a green 3") == 0.0
    # false captions with the bag of a true one ("a blue 7 right of a red 3", "a red 3 left of a blue 7")
    assert wo.rule_score("bag-of-words", scene, "a red 3 right of a blue 7") == 1.0
    assert wo.rule_score("bag-of-words", scene, "a blue 7 left of a red 3") == 1.0
    assert wo.rule_score("bag-of-words", scene, "a red 3 above a blue 7") == 0.0
    assert wo.rule_score("bag-of-words", scene, "a red 3 left of a green 7") == 0.0
    assert wo.rule_score("axis-only", scene, "a yellow 1 right of a green 2") == 1.0
    assert wo.rule_score("axis-only", scene, "a red 3 above a blue 7") == 0.0
    from winoeval.config import ConfigError

    with pytest.raises(ConfigError, match="not a WinoDigits caption"):
        wo.parse_caption("two dogs on a sofa")
    with pytest.raises(ConfigError, match="did you mean digit-blind"):
        wo.parse_rules("digit-blnd")
    with pytest.raises(ConfigError, match="needs a rule"):
        wo.parse_rules(None)


def test_oracle_through_the_runner_and_refusal_on_other_tasks(tmp_path):
    from winoeval.config import ConfigError, RunConfig
    from winoeval.runner import evaluate

    out = evaluate(RunConfig("winodigits-oracle:digit-blind", "winodigits2", limit=16, output_path=str(tmp_path)),
                   progress=False)
    res = out.results["results"]["winodigits2"]
    tags = res["by"]["collapsed_tag"]
    assert {t: tags[t]["group"] for t in ("object", "same-colour", "digit-trade", "conjunction", "one-axis")} == \
        {"object": 1.0, "same-colour": 0.0, "digit-trade": 0.0, "conjunction": 0.0, "one-axis": 0.0}
    assert set(res["by"]["split"]) == {"seen", "unseen"}
    with pytest.raises(ConfigError, match="scene metadata"):
        wo.WinoDigitsOracle(("perfect",)).similarity([wd.render(wd.make_example(0)["scenes"][0])], ["a red 1 and a blue 2"])


def test_training_streams_never_hold_a_held_out_pairing():
    """Replays the generators the trainers use with --grammar 2 (stream(2)) at the recipe's seeds and
    pools (benchmarks/winodigits2_train.sh): VAE scenes, SD scenes, CLIP scenes and captions drawn for them."""
    import numpy as np

    from winoeval.plugins import _winodigits_train as tr

    make_scenes, describe, tags = tr.stream(2)
    assert (make_scenes, describe, tags) == (wd.training_scenes2, wd.describe2, wd.TAGS2)
    # pools: 20,000 for the shared VAE (seed 0), 8,000 for SD and CLIP; a smaller pool is a prefix of the
    # same stream, so 20,000 covers both
    streams = [(20_000, 0 + 101)]  # the shared VAE (seed 0): training_scenes2(n_images, seed + 101)
    streams += [(20_000, s) for s in (0, 1, 2)]  # SD runs: training_scenes2(pool, seed)
    streams += [(20_000, s + 202) for s in (0, 1, 2)]  # CLIP runs: training_scenes2(pool, seed + 202)
    rng = np.random.default_rng(0)
    kinds = Counter()
    for pool, seed in streams:
        _, scenes = make_scenes(pool, seed=seed)
        assert not wd.pairings(scenes) & wd.HELD_OUT, (pool, seed)
        assert len(wd.pairings(scenes)) == 32  # every other pairing is trained
        for scene in scenes[:2000]:
            caption = describe(scene, rng)
            kinds[" and " in caption] += 1
            assert wd.caption_pairings(caption) <= wd.pairings([scene]), caption
    assert kinds[True] > 0.15 * sum(kinds.values())  # conjunction captions are in the stream
    assert make_scenes(50, seed=1)[1] == make_scenes(20_000, seed=1)[1][:50]  # the prefix property


@pytest.mark.usefixtures("one_torch_thread")
def test_v2_trainers_stream_hold_out_and_validation_curve_is_the_scorers(tmp_path, monkeypatch):
    """Tiny --grammar 2 runs of both trainers: every scene and caption they draw (spied on) avoids the
    held-out pairings; the learning curve is on the validation seed, per tag × split; and the SD curve's
    scores are exactly what `winoeval run --model sd:<pipeline>` gives on those examples (the real scorer)."""
    import math

    from click.testing import CliRunner

    from winoeval.config import RunConfig
    from winoeval.plugins import _winodigits_train as tr
    from winoeval.plugins import winodigits
    from winoeval.runner import evaluate

    drawn_scenes, drawn_captions = [], []
    real_scenes, real_describe = wd.training_scenes2, wd.describe2

    def spy_scenes(n, seed, part="train"):
        images, scenes = real_scenes(n, seed, part)
        drawn_scenes.extend(scenes)
        return images, scenes

    def spy_describe(scene, rng, **kw):
        caption = real_describe(scene, rng, **kw)
        drawn_captions.append(caption)
        return caption

    monkeypatch.setattr(wd, "training_scenes2", spy_scenes)
    monkeypatch.setattr(wd, "describe2", spy_describe)
    sd_out, clip_out = tmp_path / "sd", tmp_path / "clip"
    runner = CliRunner()
    done = runner.invoke(winodigits.train_sd_command, [
        "--out", str(sd_out), "--grammar", "2", "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "8",
        "--pool", "200", "--vae-steps", "2", "--vae-batch", "4", "--eval-per-tag", "1", "--eval-n-t", "3",
        "--warmup", "1", "--no-progress"])
    assert done.exit_code == 0, done.output
    clip = runner.invoke(winodigits.train_clip_command, [
        "--out", str(clip_out), "--grammar", "2", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8",
        "--pool", "200", "--eval-per-tag", "1", "--warmup", "1", "--no-progress"])
    assert clip.exit_code == 0, clip.output
    assert len(drawn_scenes) >= 600 and len(drawn_captions) >= 3 * 8 * 0.5 + 2 * 8
    assert not wd.pairings(drawn_scenes) & wd.HELD_OUT
    assert not set().union(*(wd.caption_pairings(c) for c in drawn_captions)) & wd.HELD_OUT
    recipe = json.loads((sd_out / "recipe.json").read_text())
    heldout = recipe["history"][-1]["heldout"]
    assert heldout["all"]["n"] == 8 and heldout["conjunction/seen"]["n"] == 1 and "conjunction/unseen" not in heldout
    assert "VALIDATION" in recipe["learning_curve_subset"] and recipe["hyperparameters"]["grammar"] == 2
    assert json.loads((clip_out / "recipe.json").read_text())["history"][-1]["heldout"]["all"]["n"] == 8
    # the curve's scorer is winoeval's: same scores as a real run on the validation examples
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(sd_out / "pipeline"))
    mine: dict = {}
    tr.winoground_eval(pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer, pipe.scheduler,
                       tr.eval_examples(1, grammar=2), n_t=3, seed=0, tags=wd.TAGS2, scores=mine)
    res = evaluate(RunConfig(f"sd:{sd_out / 'pipeline'}", "winodigits2", task_args={"seed": wd.VALIDATION_SEED},
                             scorer_args={"n_samples": (3,), "timesteps": "even"}, limit=8, log_samples=True,
                             output_path=str(tmp_path / "run")), progress=False)
    rows = [json.loads(line) for line in open(res.samples_path) if line.strip()]
    assert sorted(r["id"] for r in rows) == sorted(mine)
    for r in rows:
        for a, b in zip(sum(r["scores"], []), sum(mine[r["id"]], [])):
            assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7), (r["id"], r["scores"], mine[r["id"]])


def test_v2_options_and_bad_input():
    from winoeval.config import ConfigError

    assert wd.load_task2("one-axis", _config(n=32)).size == 4
    assert wd.load_task2(None, _config(n="48", seed="1")).size == 48
    with pytest.raises(ConfigError, match="did you mean winodigits2:same-colour"):
        wd.load_task2("same-color", _config())
    with pytest.raises(ConfigError, match="unknown --task-arg limit"):
        wd.load_task2(None, _config(limit=3))
    with pytest.raises(ConfigError, match="must be >= 1"):
        wd.load_task2(None, _config(n=0))
