"""Several processes on one run: which shard this process scores, gathering the shards, and the local
worker processes of ``winoeval run --num-processes``.

Two ways to shard, one layout: under ``torchrun`` / ``accelerate launch`` every rank joins a process
group and rank 0 gathers the records through ``torch.distributed``; ``--num-processes N`` starts N
``winoeval run`` workers with ``WINOEVAL_SHARD=rank/N`` that share the output folder, and the parent
gathers from the cache. Either way rank r scores the examples at positions r, r + world, …
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .errors import ConfigError, UserError
from .storage import atomic_write

SHARD_VAR = "WINOEVAL_SHARD"
PARENT_VAR = "WINOEVAL_PARENT_PID"


def detect_shard() -> tuple[int, int]:
    """(rank, world size) from ``WINOEVAL_SHARD=rank/world`` or a torchrun/accelerate launch."""
    value = os.environ.get(SHARD_VAR)
    if value:
        rank, _, world = value.partition("/")
        try:
            r, w = int(rank), int(world)
        except ValueError:
            r, w = -1, 0
        if not 0 <= r < w:
            raise ConfigError(f"{SHARD_VAR}={value!r}: expected RANK/WORLD with 0 <= RANK < WORLD (e.g. 0/2); it is "
                              f"set by `winoeval run --num-processes` — unset it to run everything in one process")
        return r, w
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


def is_worker() -> bool:
    """A worker of ``winoeval run --num-processes`` (the parent gathers its shard)."""
    return bool(os.environ.get(SHARD_VAR))


def join_launch() -> None:
    """Join the process group of an ``accelerate launch``/torchrun launch (gloo on CPU, nccl on GPUs)."""
    import datetime

    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        # shards can take hours longer than each other: rank 0 waits in the gather for them
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo",
                                timeout=datetime.timedelta(days=7))


def gather_count(n: int) -> int:
    """Under a torchrun/accelerate launch: the sum of ``n`` over the ranks, on rank 0 (others get their own)."""
    import torch.distributed as dist

    parts = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(int(n), parts, dst=0)
    return sum(int(p or 0) for p in parts) if parts else int(n)


def gather_records(mine: dict[str, dict]) -> dict[str, dict]:
    """Under a torchrun/accelerate launch: every rank's finished records, gathered on rank 0 through
    ``torch.distributed.gather_object`` (so ranks on different machines need no shared filesystem);
    other ranks get an empty dict. Waits for every rank (the process group's long timeout)."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":  # object collectives of NCCL run on the current device
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    parts = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(mine, parts, dst=0)
    merged: dict[str, dict] = {}
    for part in parts or []:
        merged.update(part or {})
    return merged


# -- `winoeval run --num-processes`: local worker processes --------------------------------------
def write_worker_stats(part: Path, computed: int, reused: int, device: str | None, dtype: str | None) -> None:
    """What a worker did, beside its cache part, for the parent's ``run`` section."""
    atomic_write(part.with_suffix(".stats.json"), json.dumps(
        {"computed": computed, "reused": reused, "device": device, "dtype": dtype, "finished": time.time()}))


def read_worker_stats(directory: Path, since: float) -> list[dict[str, Any]]:
    """The stats of the workers that finished after ``since`` (this run's, not an earlier run's)."""
    out = []
    for stats_file in sorted(directory.glob("part-*.stats.json")):
        try:
            stats = json.loads(stats_file.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(stats, dict) and stats.get("finished", 0) >= since:
            out.append(stats)
    return out


def exit_with_parent() -> None:
    """In a worker of ``--num-processes``: exit as soon as the parent is gone (killed, crashed), so no
    orphan keeps computing; what it finished is in the cache."""
    import threading

    parent = os.environ.get(PARENT_VAR)
    if not parent or not is_worker():
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, name="winoeval-parent-watch", daemon=True).start()


def argv_from_params(command, params: dict[str, Any], drop: set[str]) -> list[str]:
    """The command line that reproduces a click command's parameters (for worker processes)."""
    import click

    argv: list[str] = []
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in drop:
            continue
        value = params.get(param.name)
        if value is None or value == () or (param.is_flag and not param.secondary_opts and not value):
            continue
        if param.is_flag and param.secondary_opts:  # --normalize/--no-normalize
            argv.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.is_flag:
            argv.append(param.opts[0])
        elif param.multiple:
            for item in value:
                argv += [param.opts[0], str(item)]
        else:
            argv += [param.opts[0], str(value)]
    return argv


def run_workers(run_args: Sequence[str], n: int) -> None:
    """Start n ``winoeval run`` workers (``run_args`` + ``--quiet``), each on every n-th example; they
    share the resume cache, and the caller gathers."""
    import subprocess

    argv = [sys.executable, "-m", "winoeval", "run", *run_args, "--quiet"]
    threads = max(1, (os.cpu_count() or 1) // n)
    procs = []
    for rank in range(n):
        env = dict(os.environ, **{SHARD_VAR: f"{rank}/{n}", "OMP_NUM_THREADS": str(threads),
                                  PARENT_VAR: str(os.getpid())})
        procs.append(subprocess.Popen(argv, env=env))
    codes = [p.wait() for p in procs]
    failed = [f"process {rank} (exit code {code})" for rank, code in enumerate(codes) if code != 0]
    if failed:
        raise UserError(f"{', '.join(failed)} failed; what finished is cached: rerun the same command to finish "
                        f"the rest")
