"""Meta-tests: the hook reference in CONTRIBUTING.md is generated from hookspecs.py, every hook is documented
and exercised by a test with a fake plugin, and the documented samples JSONL fields are the ones written."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from winoeval import docs

REPO = Path(__file__).resolve().parent.parent
CONTRIBUTING = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")


def test_contributing_hook_reference_is_the_generated_one():
    assert docs.current_reference(CONTRIBUTING) == docs.hook_reference(), \
        "CONTRIBUTING.md's hook reference is stale: run `python -m winoeval.docs --write`"
    assert docs.main(["--check"]) == 0


def test_every_hook_has_a_documented_heading_and_docstring():
    from winoeval import hookspecs

    names = docs.hook_names()
    assert set(names) == {n for n in dir(hookspecs) if n.startswith("winoeval_")}
    assert len(names) >= 2
    for name in names:
        assert f"### `{name}(register)`" in CONTRIBUTING
        doc = getattr(hookspecs, name).__doc__ or ""
        assert "register(name, loader" in doc and "```python" in doc, f"{name}: document the signature and an example"


def test_the_generator_rewrites_a_stale_copy(tmp_path):
    stale = tmp_path / "CONTRIBUTING.md"
    stale.write_text(f"# title\n\n{docs.BEGIN}\n\nold text\n\n{docs.END}\n\n## after\n", encoding="utf-8")
    assert docs.write(stale) is True
    text = stale.read_text(encoding="utf-8")
    assert docs.current_reference(text) == docs.hook_reference()
    assert text.startswith("# title\n\n") and text.endswith("\n## after\n") and "old text" not in text
    assert docs.write(stale) is False
    missing = tmp_path / "other.md"
    missing.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        docs.write(missing)


def _hookimpls_in(path: Path) -> set[str]:
    """Names of functions decorated with ``@hookimpl`` in a file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef) and any(
                (isinstance(d, ast.Name) and d.id == "hookimpl") or (isinstance(d, ast.Attribute) and d.attr == "hookimpl")
                for d in node.decorator_list):
            found.add(node.name)
    return found


@pytest.mark.slow
def test_every_hook_is_exercised_by_a_test_with_a_fake_plugin():
    test_files = [*(REPO / "tests").glob("test_*.py"), *(REPO / "examples").glob("*/tests/test_*.py")]
    exercised = set().union(*(_hookimpls_in(p) for p in test_files))
    missing = [name for name in docs.hook_names() if name not in exercised]
    assert not missing, f"no test registers a fake plugin implementing {missing}"


def _documented_sample_fields() -> list[str]:
    section = CONTRIBUTING.split("### What a run records per example", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)


def test_documented_samples_fields_are_exactly_the_written_ones(tmp_path):
    from winoeval.config import RunConfig
    from winoeval.runner import evaluate

    documented = _documented_sample_fields()
    assert len(documented) == len(set(documented)) >= 8
    written: set[str] = set()
    for task in ("toy-winoground", "colors"):  # normalised Winoground (shared-less texts) and classification
        out = evaluate(RunConfig("analytic", task, scorer_args={"n_samples": (2,)}, limit=2, log_samples=True,
                                 output_path=str(tmp_path / task)), progress=False)
        lines = out.samples_path.read_text().splitlines()
        import json

        for line in lines:
            written |= set(json.loads(line))
    assert written == set(documented)
