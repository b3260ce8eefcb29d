"""Content fingerprints: what was evaluated, not where it was.

A results file and the resume cache are keyed by the *content* of the model weights and data, so
retraining into the same checkpoint path, re-downloading a dataset in place or editing a templates
file never reuses stale scores. Hashing a 5 GB Stable Diffusion folder takes a minute, so each
file's sha256 is remembered in ``$WINOEVAL_HASH_CACHE`` (default ``~/.cache/winoeval/hashes.json``):
an unchanged file is hashed once.

The memo is keyed by (absolute path, device, inode, size, mtime_ns, ctime_ns). Replacing a file by
another one (``cp``, ``mv``, ``tar`` or ``rsync`` into place) gives it a new inode or a new ctime, and
restoring the mtime afterwards (``cp -p``, ``os.utime``) sets the ctime to now: the kernel sets
ctime on every change of content or metadata, and no ordinary call can set it back. The remaining
assumption: a file is not rewritten in place within one ctime tick (a few ms on most file systems)
of being hashed, and nobody changes the system clock or edits the raw disk to forge a ctime.
``--rehash`` (or ``WINOEVAL_REHASH=1``) bypasses the memo: every file is read again (and the memo
refreshed).

Standard library only: the CLI imports this module at start.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

_memo: dict[str, str] | None = None
_dirty = False
_fresh: set[str] = set()


def _memo_path() -> Path:
    env = os.environ.get("WINOEVAL_HASH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "winoeval" / "hashes.json"


def _load_memo() -> dict[str, str]:
    global _memo
    if _memo is None:
        try:
            data = json.loads(_memo_path().read_text(encoding="utf-8"))
            _memo = {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            _memo = {}
    return _memo


def _save_memo() -> None:
    global _dirty
    if not _dirty or _memo is None:
        return
    from .storage import atomic_write

    path = _memo_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(_memo))
        _dirty = False
    except OSError:
        pass  # remembering is an optimisation: an unwritable cache only costs re-hashing


REHASH_ENV = "WINOEVAL_REHASH"  # set (not "" or "0") by `winoeval run --rehash`: ignore remembered hashes


def rehash() -> bool:
    return os.environ.get(REHASH_ENV, "").strip() not in ("", "0")


def memo_key(path: Path, st: os.stat_result) -> str:
    """What must be unchanged for a remembered hash to be reused (see the module docstring)."""
    return f"{path}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"


def hash_file(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes, remembered by (absolute path, device, inode, size, mtime_ns,
    ctime_ns) unless :func:`rehash` is on."""
    global _dirty
    p = Path(path).resolve()
    st = p.stat()
    key = memo_key(p, st)
    memo = _load_memo()
    if key in memo and (key in _fresh or not rehash()):
        return memo[key]
    digest = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    prefix = f"{p}\0"
    for stale in [k for k in memo if k.startswith(prefix) and k != key]:
        del memo[stale]  # this path's earlier versions: the memo does not grow with every rewrite
    memo[key] = digest.hexdigest()
    _fresh.add(key)  # read by this process: reused even under --rehash
    _dirty = True
    _save_memo()
    return memo[key]


def _files(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def hash_path(path: str | os.PathLike) -> str:
    """``sha256:<hex>`` of a file, or of a folder's relative file names, sizes and contents.

    Hidden files and folders (``.cache``, ``.git``, lock files) are left out of a folder's hash."""
    p = Path(path)
    if p.is_file():
        return "sha256:" + hash_file(p)
    if not p.is_dir():
        raise FileNotFoundError(f"no such file or folder: {str(p)!r}")
    digest = hashlib.sha256()
    for f in _files(p):
        rel = f.relative_to(p).as_posix()
        digest.update(f"{rel}\0{f.stat().st_size}\0{hash_file(f)}\n".encode())
    return "sha256:" + digest.hexdigest()


def hash_text(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def local_path(value: Any) -> Path | None:
    """``value`` as an existing local file or folder (``~`` expanded), else None."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        return None
    p = Path(os.path.expanduser(str(value)))
    try:
        return p if p.exists() else None
    except OSError:  # e.g. a name too long to be a path
        return None


def of_values(values: dict[str, Any]) -> dict[str, str]:
    """For each option value that names a local file or folder: its content hash."""
    out = {}
    for key, value in sorted(values.items()):
        p = local_path(value)
        if p is not None:
            out[key] = hash_path(p)
    return out


def default_model_fingerprint(argument: str | None, config: Any) -> str | None:
    """The fallback for plugins that provide no fingerprint: the content of every local file or
    folder named by the ``name:argument`` part or a ``--model-arg`` value (None when there is none)."""
    values = dict(getattr(config, "model_args", {}) or {})
    if argument is not None:
        values["<argument>"] = argument
    hashes = of_values(values)
    if not hashes:
        return None
    return hash_text(json.dumps(hashes, sort_keys=True))


def of_model(entry: Any, argument: str | None, config: Any) -> str | None:
    """What a model runs: its plugin's own fingerprint (``register(..., fingerprint=)``), else the content
    of the local files its argument and ``--model-arg`` values name."""
    from .errors import ConfigError

    fn = entry.fingerprint or default_model_fingerprint
    try:
        return fn(argument, config)
    except OSError as exc:
        raise ConfigError(f"model {config.model!r}: cannot read its weights to fingerprint them ({exc})") from None


def of_task(config: Any, task: Any) -> dict[str, Any]:
    """What a task evaluates: the task's own fingerprint, the content of ``--data-dir`` and of every file
    named by a ``--task-arg``."""
    out: dict[str, Any] = {}
    if task.fingerprint:
        out["task"] = task.fingerprint
    if config.data_dir:
        out["data_dir"] = hash_path(config.data_dir)
    files = of_values(config.task_args)
    if files:
        out["task_args"] = files
    return out
