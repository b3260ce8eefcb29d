"""What CONTRIBUTING promises plugin authors, checked with third-party-style fake plugins."""

from __future__ import annotations

import json

import pytest

from winoeval import registry
from winoeval.api import Example, TaskData
from winoeval.config import RunConfig
from winoeval.hookspecs import hookimpl
from winoeval.runner import evaluate


def _toy_pairs():
    from winoeval.tasks.synthetic import render

    for n, (a, b) in enumerate([("red", "blue"), ("green", "yellow")]):
        captions = [f"{a} left of {b}", f"{b} left of {a}"]
        yield Example(f"p{n}", [render(c, 0.1, f"p{n}-{k}") for k, c in enumerate(captions)], captions)


class ThirdPartyTasks:
    """Winoground-format tasks the way a third party writes them: no ``defaults`` at all, or an override."""

    @hookimpl
    def winoeval_register_tasks(self, register):
        register("tp-wino", lambda arg, config: TaskData("tp-wino", "winoground", _toy_pairs, 2))
        register("tp-wino-raw", lambda arg, config: TaskData("tp-wino-raw", "winoground", _toy_pairs, 2,
                                                             defaults={"normalize": False}))


@pytest.fixture
def third_party_tasks():
    pm = registry.get_plugin_manager()
    plugin = ThirdPartyTasks()
    pm.register(plugin, name="third-party-tasks")
    try:
        yield
    finally:
        pm.unregister(plugin)


def _run(tmp_path, task, **scorer_args):
    return evaluate(RunConfig("analytic:0.1", task, scorer_args={"n_samples": (4,), **scorer_args},
                              output_path=str(tmp_path), log_samples=True), progress=False)


def test_third_party_winoground_task_is_normalised_by_default(tmp_path, third_party_tasks):
    out = _run(tmp_path, "tp-wino")
    assert out.results["config"]["scorer"]["normalize"] is True
    for record in out.records:
        # errors stay the raw conditional errors; the unconditional ones are logged beside them
        for s_row, e_row, u_row in zip(record["scores"], record["errors"], record["uncond_errors"]):
            for s, e, u in zip(s_row, e_row, u_row):
                assert s == pytest.approx(-(e - u), abs=1e-9)
        # the two images differ, so their unconditional errors differ: normalisation changed the scores
        assert record["uncond_errors"][0][0] != record["uncond_errors"][1][0]
        assert record["n_evals"] == 2 * 3 * 4  # 2 images × (2 captions + "") × 4 samples


def test_a_task_preset_and_the_flag_override_the_metric_default(tmp_path, third_party_tasks):
    out = _run(tmp_path / "a", "tp-wino-raw")
    assert out.results["config"]["scorer"]["normalize"] is False
    assert all("uncond_errors" not in r and r["scores"] == [[-e for e in row] for row in r["errors"]]
               for r in out.records)
    assert all(r["n_evals"] == 2 * 2 * 4 for r in out.records)
    out = _run(tmp_path / "b", "tp-wino", normalize=False)
    assert out.results["config"]["scorer"]["normalize"] is False
    out = _run(tmp_path / "c", "colors")  # classification: off by default
    assert out.results["config"]["scorer"]["normalize"] is False


def test_samples_jsonl_has_the_documented_fields(tmp_path, third_party_tasks):
    out = _run(tmp_path, "tp-wino")
    lines = [json.loads(line) for line in out.samples_path.read_text().splitlines()]
    assert [r["id"] for r in lines] == ["p0", "p1"]
    assert set(lines[0]) == {"id", "texts", "scores", "errors", "uncond_errors", "n_evals", "verdicts", "label",
                             "meta"}
    assert lines[0]["label"] is None and set(lines[0]["verdicts"]) == {"text", "image", "group"}
    task = out.results["results"]["tp-wino"]
    assert task["evals_per_example"] == 24


def test_a_plugin_whose_hook_raises_is_listed_as_failed_with_the_reason():
    from click.testing import CliRunner

    from winoeval.cli import cli

    class HalfBroken:
        @hookimpl
        def winoeval_register_models(self, register):
            register("half-registered", lambda arg, config: None)
            raise RuntimeError("no weights folder configured")

    pm = registry.get_plugin_manager()
    pm.register(HalfBroken(), name="half-broken")
    with pytest.warns(registry.PluginLoadWarning, match="half-broken.*no weights folder"):
        res = CliRunner().invoke(cli, ["plugins"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("half-broken")]
    assert lines == ["half-broken  FAILED: RuntimeError: no weights folder configured (in winoeval_register_models)"]
    assert "winoeval.plugins.analytic  0.1.0 (built-in)" in res.output
    with pytest.warns(registry.PluginLoadWarning):  # the hook is collected again, and warns again
        models = registry.models()
    assert "half-registered" not in models and "analytic" in models  # what it registered before raising is dropped


@pytest.mark.parametrize("value, hint", [
    ("winoeval-toy2d", "known plugins: winoeval.plugins.analytic"),  # a distribution name
    ("winoeval.plugins.analytc", "did you mean winoeval.plugins.analytic"),  # a typo
])
def test_winoeval_plugins_naming_no_plugin_warns_with_the_known_names(monkeypatch, value, hint):
    monkeypatch.setenv(registry.ENV_VAR, value)
    registry.reset()
    with pytest.warns(registry.PluginLoadWarning) as caught:
        assert registry.models() == {}
    # only the warnings about this variable: a plugin someone else installed may warn about itself
    messages = [str(w.message) for w in caught if f"{registry.ENV_VAR}" in str(w.message)]
    assert len(messages) == 1 and f"names {value!r}, which is no plugin" in messages[0]
    assert hint in messages[0] and "winoeval.tasks.zeroshot" in messages[0]


def test_winoeval_plugins_with_known_names_does_not_warn(monkeypatch, recwarn):
    monkeypatch.setenv(registry.ENV_VAR, "winoeval.plugins.analytic,none")
    registry.reset()
    assert set(registry.models()) == {"analytic"}
    assert not [w for w in recwarn if issubclass(w.category, registry.PluginLoadWarning)]


def test_task_data_name_is_recorded_as_the_dataset_beside_the_command_line_task(tmp_path, third_party_tasks):
    out = _run(tmp_path, "tp-wino-raw")
    assert out.results["task"]["name"] == "tp-wino-raw"  # results are keyed by the command-line string
    assert out.results["task"]["dataset"] == "tp-wino-raw"
    assert list(out.results["results"]) == ["tp-wino-raw"]
    out = _run(tmp_path / "colors", "colors:0.3")
    assert out.results["task"]["name"] == "colors:0.3" and out.results["task"]["dataset"] == "colors"
