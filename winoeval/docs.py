"""The hook reference of CONTRIBUTING.md, generated from the docstrings of ``winoeval/hookspecs.py``.

    python -m winoeval.docs            # print the reference
    python -m winoeval.docs --check    # exit 1 if CONTRIBUTING.md's copy differs
    python -m winoeval.docs --write    # replace CONTRIBUTING.md's copy

``tests/test_docs_contract.py`` fails when CONTRIBUTING.md and the hook specifications disagree.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

BEGIN = ("<!-- hook reference: generated from winoeval/hookspecs.py by `python -m winoeval.docs --write`; "
         "edit the docstrings there -->")
END = "<!-- end of the generated hook reference -->"
CONTRIBUTING = Path(__file__).resolve().parent.parent / "CONTRIBUTING.md"


def hook_names() -> list[str]:
    """Every hook specification, in the order hookspecs.py defines them."""
    from . import hookspecs

    found = [(fn.__code__.co_firstlineno, name) for name, fn in vars(hookspecs).items()
             if name.startswith("winoeval_") and callable(fn)]
    return [name for _, name in sorted(found)]


def hook_reference() -> str:
    """The Markdown reference: per hook its signature as a heading, then its docstring."""
    from . import hookspecs

    parts = [BEGIN]
    for name in hook_names():
        fn = getattr(hookspecs, name)
        params = ", ".join(inspect.signature(fn).parameters)
        parts += [f"### `{name}({params})`", inspect.getdoc(fn) or ""]
    parts.append(END)
    return "\n\n".join(parts) + "\n"


def current_reference(text: str) -> str | None:
    """The generated block inside ``text`` (markers included), or None when the markers are missing."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start:end + len(END)] + "\n"


def write(path: Path = CONTRIBUTING) -> bool:
    """Replace the generated block of ``path``; True when it changed."""
    text = path.read_text(encoding="utf-8")
    old = current_reference(text)
    if old is None:
        raise SystemExit(f"{path}: the markers of the hook reference are missing; add\n{BEGIN}\n{END}")
    new = hook_reference()
    if old == new:
        return False
    path.write_text(text.replace(old, new), encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--write"]:
        print(f"{CONTRIBUTING}: {'updated' if write() else 'already up to date'}")
        return 0
    if args == ["--check"]:
        same = current_reference(CONTRIBUTING.read_text(encoding="utf-8")) == hook_reference()
        if not same:
            print(f"{CONTRIBUTING}: the hook reference is out of date; run `python -m winoeval.docs --write`",
                  file=sys.stderr)
        return 0 if same else 1
    if args:
        print("usage: python -m winoeval.docs [--check | --write]", file=sys.stderr)
        return 2
    sys.stdout.write(hook_reference())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
