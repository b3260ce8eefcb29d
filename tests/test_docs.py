"""README.md and CONTRIBUTING.md say what the code does: their code blocks run.

The documents are read when the tests run (blocks are found at collection), so an edited README is
tested as it is. The markers (an HTML comment on the line before a block) are documented in
CONTRIBUTING.md: ``<!-- docs-test: skip (REASON) -->``, ``<!-- docs-test: run -->`` (a bash block whose
commands run) and ``<!-- docs-test: output -->`` (a block that must equal the end of the last command's
stdout).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "CONTRIBUTING.md")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*([a-z]+)\s*(?:\((.*)\))?\s*-->\s*$")
FENCE = re.compile(r"^ {0,3}(`{3,})\s*([\w+-]*)\s*$")
MARKERS = {"skip", "run", "output"}


@dataclass
class Block:
    document: str
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None = None
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"


def parse_blocks(text: str, document: str = "?") -> list[Block]:
    """Fenced code blocks with the docs-test marker on the (non-blank) line before each, if any."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        j = i + 1
        while j < len(lines) and not re.match(rf"^ {{0,3}}{fence}\s*$", lines[j]):
            j += 1
        prev = i - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        marker = MARKER.match(lines[prev]) if prev >= 0 else None
        blocks.append(Block(document, i + 1, lang, "\n".join(lines[i + 1:j]),
                            marker.group(1) if marker else None, (marker.group(2) or "").strip() if marker else ""))
        i = j + 1
    return blocks


def all_blocks() -> list[Block]:
    out = []
    for name in DOCUMENTS:
        out += parse_blocks((REPO / name).read_text(encoding="utf-8"), name)
    return out


def commands(script: str) -> list[str]:
    """The commands of a bash block: one per line, backslash continuations joined, comments dropped."""
    out, current = [], ""
    for raw in script.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip() and not current.strip().startswith("#"):
            out.append(current.strip())
        current = ""
    return out


def offline_env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


# ------------------------------------------------------------------------------------------- the parser

SAMPLE = """intro

<!-- docs-test: skip (needs the hub) -->
```python
load()
```

<!-- docs-test: run -->

```bash
winoeval one \\
  --flag   # comment
# a comment line
winoeval two
```
<!-- docs-test: output -->
````
| a |
```
````
- `<!-- docs-test: run -->` in prose is no marker
```python
x = 1
```
"""


def test_parser_reads_markers_fences_and_commands():
    blocks = parse_blocks(SAMPLE, "sample.md")
    assert [(b.lang, b.marker, b.reason, b.line) for b in blocks] == [
        ("python", "skip", "needs the hub", 4), ("bash", "run", "", 10), ("", "output", "", 17),
        ("python", None, "", 22)]
    assert commands(blocks[1].text) == ["winoeval one    --flag   # comment", "winoeval two"]
    assert blocks[2].text == "| a |\n```"


def test_markers_are_known_and_outputs_follow_a_run_block():
    blocks = all_blocks()
    assert blocks, "no code blocks found"
    for k, block in enumerate(blocks):
        assert block.marker in MARKERS | {None}, f"{block.where}: unknown docs-test marker {block.marker!r}"
        if block.marker == "skip":
            assert block.reason, f"{block.where}: say why the block is skipped: <!-- docs-test: skip (REASON) -->"
        if block.marker == "run":
            assert block.lang in ("bash", "sh", "shell"), f"{block.where}: only bash blocks can be run"
        if block.marker == "output":
            runs = [b for b in blocks[:k] if b.document == block.document and b.marker == "run"]
            assert runs, f"{block.where}: an output block needs a run block before it"


# --------------------------------------------------------------------------------------- python blocks

DRIVER = """
import sys, types
source = open(sys.argv[1], encoding="utf-8").read()
module = types.ModuleType("docs_block")
module.__file__ = sys.argv[1]
sys.modules["docs_block"] = module
exec(compile(source, sys.argv[2], "exec"), module.__dict__)
hooks = [h for h in ("winoeval_register_models", "winoeval_register_tasks") if hasattr(module, h)]
if hooks:  # a plugin example: register it for real, and what it registers must resolve
    from winoeval import registry
    registry.get_plugin_manager().register(module, name="docs_block")
    for hook in hooks:
        entries = registry.models() if hook.endswith("models") else registry.tasks()
        mine = [name for name, entry in entries.items() if entry.plugin == "docs_block"]
        assert mine, f"{hook} registered nothing"
        for name in mine:
            kind = "model" if hook.endswith("models") else "task"
            entry, _ = registry.resolve(kind, name)
            assert callable(entry.loader), name
        print(hook, "registered", ", ".join(mine))
"""


def python_blocks() -> list:
    return [pytest.param(b, id=b.where, marks=[pytest.mark.skip(reason=f"{b.where}: {b.reason}")]
                         if b.marker == "skip" else []) for b in all_blocks() if b.lang in ("python", "py")]


@pytest.mark.slow
@pytest.mark.parametrize("block", python_blocks())
def test_python_block_runs(block, tmp_path):
    script = tmp_path / "block.py"
    script.write_text(textwrap.dedent(block.text) + "\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(script), block.where], cwd=tmp_path,
                          env=offline_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{block.where} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


# ----------------------------------------------------------------------------------------- bash blocks

def run_blocks() -> list:
    blocks = all_blocks()
    out = []
    for k, block in enumerate(blocks):
        if block.marker != "run":
            continue
        following = next((b for b in blocks[k + 1:] if b.document == block.document and b.marker in ("run", "output")),
                         None)
        expected = following if following is not None and following.marker == "output" else None
        out.append(pytest.param(block, expected, id=block.where))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("block,expected", run_blocks())
def test_bash_block_runs_and_prints_what_the_document_shows(block, expected, tmp_path):
    last = None
    for command in commands(block.text):
        assert shlex.split(command)[0] == "winoeval", f"{block.where}: runnable blocks run winoeval commands only"
        last = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=offline_env(), capture_output=True,
                              text=True, timeout=600)
        assert last.returncode == 0, f"{block.where}: `{command}` failed:\n{last.stdout[-2000:]}\n{last.stderr[-3000:]}"
    if expected is not None:
        want = expected.text.strip("\n").splitlines()
        got = last.stdout.rstrip("\n").splitlines()
        assert got[-len(want):] == want, (
            f"{expected.where} differs from what `{commands(block.text)[-1]}` prints; it prints:\n" + last.stdout)
