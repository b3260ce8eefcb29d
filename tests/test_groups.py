"""Task groups: expansion, suite files, --data-dir per dataset, the summary row, and compare over a group."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from winoeval import groups


def test_builtin_groups_come_from_the_registrations():
    built = groups.builtin_groups()
    assert built["compositional"] == ["aro:vg-relation", "aro:vg-attribution", "eqben", "sugarcrepe", "valse",
                                      "winoground"]
    assert built["zeroshot"] == ["aircraft", "cifar10", "cifar100", "flowers102", "food101", "mnist", "pets", "stl10"]


def test_expand_groups_names_and_suite_files(tmp_path):
    suite = tmp_path / "my_suite.txt"
    suite.write_text("# my suite\nsugarcrepe:swap-att   # one subset\n\nzeroshot\nvalse:counting, eqben\n")
    tasks, members, dirs = groups.expand(["winoground", f"@{suite}", "sugarcrepe:swap-att"])
    assert tasks[:3] == ["winoground", "sugarcrepe:swap-att", "aircraft"] and tasks[-2:] == ["valse:counting", "eqben"]
    assert len(tasks) == len(set(tasks)) == 12
    assert members == {"my_suite": tasks[1:]} and dirs == {}
    suite.write_text("@other.txt\n")
    with pytest.raises(groups.GroupError, match="cannot include another one"):
        groups.expand([f"@{suite}"])
    with pytest.raises(groups.GroupError, match="no such file"):
        groups.expand([f"@{tmp_path / 'nope.txt'}"])
    suite.write_text("# nothing\n")
    with pytest.raises(groups.GroupError, match="lists no task"):
        groups.expand([f"@{suite}"])


def test_a_group_reads_one_folder_per_dataset(tmp_path, capsys):
    (tmp_path / "sugarcrepe").mkdir()
    (tmp_path / "aro").mkdir()
    tasks, members, dirs = groups.expand(["compositional", "pets"], str(tmp_path))
    assert dirs["sugarcrepe"] == str(tmp_path / "sugarcrepe")
    assert dirs["aro:vg-relation"] == dirs["aro:vg-attribution"] == str(tmp_path / "aro")
    assert dirs["valse"] is None and "pets" not in dirs  # missing folder: default source; named task: --data-dir
    assert f"{tmp_path / 'valse'} does not exist; valse loads from its default source" in capsys.readouterr().err


def test_summary_means_worked_by_hand():
    results = {"a": {"metric": "choice", "accuracy": 0.5, "n": 10},
               "b": {"metric": "winoground", "text": 0.25, "image": 0.1, "n": 30},
               "c": {"metric": "classification", "accuracy": None, "n": 0}}
    out = groups.summarize(results, {"g": ["a", "b", "c"]})["g"]
    assert out["mean"] == pytest.approx((0.5 + 0.25) / 2)
    assert out["weighted"] == pytest.approx((0.5 * 10 + 0.25 * 30) / 40) and out["n"] == 40
    assert out["headline"]["b"] == {"metric": "text", "value": 0.25, "n": 30}


def _run(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "winoeval", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


@pytest.mark.slow
def test_compositional_group_on_fixtures_then_compare_two_runs(tmp_path, cli_env):
    from winoeval.testing.published import make_compositional_root

    root = make_compositional_root(tmp_path / "data")
    env = {**cli_env, "OMP_NUM_THREADS": "1"}
    runs = []
    for out in ("a", "b"):
        res = _run(["run", "--model", "winodigits-clip", "--task", "compositional", "--data-dir", str(root), "-q",
                    "--log-samples", "-o", str(tmp_path / out)], env, tmp_path)
        assert res.returncode == 0, res.stderr
        runs.append(tmp_path / out / "winodigits-clip")
    assert "| winodigits-clip | compositional | 6 | 61 |" in res.stdout
    (results,) = runs[1].glob("results_*.json")
    data = json.loads(results.read_text())
    assert data["groups"]["compositional"]["tasks"] == ["aro:vg-relation", "aro:vg-attribution", "eqben",
                                                        "sugarcrepe", "valse", "winoground"]
    assert set(data["results"]) == set(data["groups"]["compositional"]["tasks"])
    assert data["results"]["valse"]["metric"] == "choice" and data["results"]["valse"]["n"] == 13
    assert data["results"]["aro:vg-relation"]["macro_accuracy"]["relation"]["groups"] == 2
    summary = data["groups"]["compositional"]
    heads = [summary["headline"][t]["value"] for t in summary["tasks"]]
    assert summary["mean"] == pytest.approx(sum(heads) / 6) and summary["n"] == 61
    assert data["tasks"]["sugarcrepe"]["fingerprint"]["data_dir"]  # each task read its own folder
    assert data["tasks"]["sugarcrepe"]["data_dir"] == str(root / "sugarcrepe") and data["config"]["data_dir"] == str(root)
    res = _run(["compare", str(runs[0]), str(runs[1]), "--label", "A", "--label", "B", "--plot",
                str(tmp_path / "cmp.png"), "--html", str(tmp_path / "cmp.html")], env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "no image" not in res.stderr  # the HTML report found every task's images in its own folder
    assert "replace_obj negative 0" in (tmp_path / "cmp_sugarcrepe.html").read_text()
    assert "# all tasks: headline per task" in res.stdout
    rows = [line for line in res.stdout.splitlines() if line.startswith("| valse | accuracy | 13 |")]
    assert len(rows) == 1 and rows[0].endswith("| +0.0 | 1 |")  # the same model twice: no difference
    assert (tmp_path / "cmp.png").stat().st_size > 0 and (tmp_path / "cmp_valse.png").is_file()


def test_a_bad_group_file_is_a_usage_error(tmp_path, cli_env):
    res = _run(["run", "--model", "winodigits-clip", "--task", f"@{tmp_path / 'missing.txt'}"], cli_env, tmp_path)
    assert res.returncode == 2 and "no such file" in res.stderr


def test_a_missing_local_copy_exits_like_the_hub_error(tmp_path, cli_env):
    res = _run(["run", "--model", "winodigits-clip", "--task", "sugarcrepe", "--data-dir", str(tmp_path)],
               cli_env, tmp_path)
    assert res.returncode == 1
    assert f"{tmp_path}/replace_obj.json is missing; download https://github.com/RAIVNLab/sugar-crepe" in res.stderr


def test_list_shows_every_benchmark_task_with_its_licence_and_the_groups():
    from click.testing import CliRunner

    from winoeval.cli import cli

    res = CliRunner().invoke(cli, ["list"])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.output.splitlines() if line.startswith("  ")}
    for task in ("sugarcrepe:…", "aro:…", "valse:…", "eqben", "winoground:…", "food101", "cifar100", "aircraft",
                 "flowers102", "stl10", "pets", "cifar10", "mnist:…"):
        assert "· licence: " in lines[task], task
    assert "MIT" in lines["sugarcrepe:…"] and "CC BY-SA 4.0" in lines["pets"]
    assert "  compositional: aro:vg-relation, aro:vg-attribution, eqben, sugarcrepe, valse, winoground" in res.output
    info = CliRunner().invoke(cli, ["info", "valse"])
    assert "citation: Parcalabescu" in info.output and "source: https://github.com/Heidelberg-NLP/VALSE" in info.output
