"""Durable files: atomic writes, unique names, the run lock and the resume caches.

Every file winoeval, its trainers and its fingerprint memo write goes through :func:`atomic_write` or
:func:`publish` (a fsync'd temporary file beside the target, renamed over it, mode 0666 minus the
umask), so a killed process never leaves a half-written file under a real name. Standard library only.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .errors import ConfigError

TMP_SUFFIX = ".tmp"


# -- atomic files -------------------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_tmp(path: Path, data: str | bytes) -> Path:
    """A fsync'd temporary file beside ``path``, named ``.<name>.<pid>.<random>.tmp`` so that a later run
    can tell the litter of a killed process from a live run's file (see :func:`remove_stale_tmp`)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w", **({} if isinstance(data, bytes) else
                                                                          {"encoding": "utf-8"})) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to a temporary file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    tmp = _write_tmp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path`` for a writer that needs a file name (safetensors'
    ``save_file``); move the finished file into place with :func:`publish`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX)
    os.close(fd)
    return Path(tmp)


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move a finished temporary file into place with ordinary permissions (0666 minus the umask)."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_tmp(directory: Path) -> int:
    """Delete temporary files left by killed processes (their pid is gone); returns how many."""
    removed = 0
    for tmp in directory.glob(f".*{TMP_SUFFIX}"):
        parts = tmp.name.split(".")
        pid = next((int(p) for p in parts[2:] if p.isdigit()), None)
        if pid is not None and pid != os.getpid() and not _pid_alive(pid):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def claim_new(path: Path, text: str) -> bool:
    """Create ``path`` with ``text`` only if it does not exist, atomically (a fully written temporary
    file hard-linked into place: two processes can never both claim one name). False if taken."""
    tmp = _write_tmp(path, text)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


# -- the output folder ---------------------------------------------------------------------------
def check_output_dir(path: str | os.PathLike, created: list[Path] | None = None) -> Path:
    """Create the output folder if needed and check that it is writable; ``created`` collects the
    folders made (innermost first), for clean-up after a failed run."""
    out = Path(path)
    missing = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"--output-path {str(out)!r} is not writable ({exc.strerror or exc}); "
                          f"pass a directory you can write to") from None
    if created is not None:
        created.extend(missing)  # innermost first
    return out


# -- the run lock -------------------------------------------------------------------------------
class RunLock:
    """An exclusive ``flock`` per run key and shard, so two identical runs never compute the same
    examples; the holder's pid is written in the lock file for the refusal message.

    Only the holder ever removes the lock file (:meth:`release` with ``remove=True``, while still
    holding it), and :meth:`acquire` checks that the file it locked is still the one at the path, so
    a lock removed by its owner can never be held twice."""

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def acquire(self) -> None:
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                try:
                    pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                finally:
                    os.close(fd)
                raise ConfigError(f"another winoeval process (pid {pid}) is running this same evaluation into "
                                  f"{self.path.parent.parent.parent}; wait for it to finish (then rerun: its "
                                  f"results are reused) or use another --output-path") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # its owner removed it between our open and our lock: lock the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self, remove: bool = False) -> None:
        if self.fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)  # still held: nobody can hold the file we remove
        os.close(self.fd)  # closing drops the flock
        self.fd = None

    def try_hold(self) -> bool:
        """Acquire without raising; False when another process holds it."""
        try:
            self.acquire()
        except ConfigError:
            return False
        return True


# -- the resume cache ---------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _is_score_matrix(value: Any, nullable: bool = True) -> bool:
    if not isinstance(value, list) or not value:
        return False
    for row in value:
        if not isinstance(row, list) or not row:
            return False
        for v in row:
            if v is None and nullable:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                return False
    return len({len(row) for row in value}) == 1


def valid_record(record: Any) -> bool:
    """The schema of a resume-cache line: an id, and either ``skipped`` (a reason) or a scored example
    (a rectangular score matrix of finite numbers or nulls for pruned candidates, verdicts of booleans,
    an integer count of evaluations, and optional errors, texts, label and meta of the right types)."""
    if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
        return False
    if "skipped" in record:
        return isinstance(record["skipped"], str)
    scores, verdicts = record.get("scores"), record.get("verdicts")
    if not _is_score_matrix(scores) or not isinstance(verdicts, dict) or not verdicts:
        return False
    if not all(isinstance(k, str) and (isinstance(v, bool) or k == "prediction") for k, v in verdicts.items()):
        return False
    if "prediction" in verdicts and not (verdicts["prediction"] is None or
                                         (isinstance(verdicts["prediction"], int) and
                                          not isinstance(verdicts["prediction"], bool))):
        return False
    for key in ("errors", "uncond_errors"):
        if key in record and not _is_score_matrix(record[key]):
            return False
    if not isinstance(record.get("n_evals"), int) or isinstance(record.get("n_evals"), bool) or record["n_evals"] < 0:
        return False
    texts = record.get("texts", [])
    if not (isinstance(texts, list) and all(isinstance(t, str) for t in texts)):
        return False
    label = record.get("label")
    if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
        return False
    return isinstance(record.get("meta", {}), dict)


class RecordCache:
    """Append-only JSONL of finished examples. Damaged lines (a torn tail from a killed process,
    garbage, NaN literals, records that do not follow :func:`valid_record`) are skipped and counted in
    ``damaged``; the rest is used."""

    def __init__(self, path: Path):
        self.path = path
        self.damaged = 0

    def load(self) -> dict[str, dict]:
        done: dict[str, dict] = {}
        self.damaged = 0
        if not self.path.exists():
            return done
        with open(self.path, "rb") as fh:
            for line in fh:
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("torn line")
                    record = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
                    if not valid_record(record):
                        raise ValueError("not a record")
                except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                    self.damaged += 1
                    continue
                done[record["id"]] = record
        return done

    def rewrite(self, records: Iterable[dict]) -> None:
        """Replace the file by exactly ``records`` (atomically): drops damaged lines for good."""
        atomic_write(self.path, "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in records))

    def append(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


class ShardedCache:
    """One append-only file per process under ``.cache/<run key>/``; reading takes the union of all,
    so a run resumed with another number of processes still reuses every finished example.

    A scored record wins over a skipped one for the same id. Damaged lines are skipped and counted
    (``damaged``); ``load(repair=True)`` rewrites without them this process's own part and every other
    part whose lock is free (a part another live process is appending to is left alone).
    ``created``: the folders this object had to create (innermost first), for clean-up after a failure."""

    def __init__(self, directory: Path, rank: int, world: int):
        self.directory = directory
        self.created = [p for p in (directory, directory.parent) if not p.exists()]
        directory.mkdir(parents=True, exist_ok=True)
        self.own = RecordCache(directory / f"part-{rank:03d}-of-{world:03d}.jsonl")
        self.lock = RunLock(directory / f"part-{rank:03d}-of-{world:03d}.lock")
        self.damaged = 0

    def load(self, repair: bool = False) -> dict[str, dict]:
        done: dict[str, dict] = {}
        self.damaged = 0
        for part in sorted(self.directory.glob("part-*.jsonl")):
            cache = self.own if part == self.own.path else RecordCache(part)
            records = cache.load()
            self.damaged += cache.damaged
            if repair and cache.damaged:
                self._repair(cache, records)
            for rid, record in records.items():
                if "skipped" not in record or rid not in done:
                    done[rid] = record
        return done

    def _repair(self, cache: RecordCache, records: dict[str, dict]) -> None:
        if cache is self.own:
            cache.rewrite(records.values())
            return
        other = RunLock(cache.path.with_suffix(".lock"))
        if other.try_hold():
            try:
                cache.rewrite(cache.load().values())  # reread under its lock
            finally:
                other.release()

    def is_empty(self) -> bool:
        return not any(p.stat().st_size for p in self.directory.glob("part-*.jsonl"))

    def release(self, failed: bool) -> None:
        """Drop the lock; after a failed run that finished nothing in a folder it created, remove the lock
        file too (so the folder can go) — only the owner ever removes it, while holding it."""
        remove = failed and bool(self.created) and not any(self.directory.glob("part-*.jsonl"))
        self.lock.release(remove=remove)


def remove_created(folders: Iterable[Path]) -> None:
    """After a failed run: remove the folders this run created (innermost first) if they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty (finished work stays, or another process's files) or already gone
