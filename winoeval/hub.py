"""Fail fast when the Hugging Face Hub cannot be used.

Without this, ``load_dataset``/``from_pretrained`` on a machine with no network retry for ~25 s
before failing with a message that does not say what to do. We check ``HF_HUB_OFFLINE`` and probe
the hub once per process (a single TCP connect, 3 s at most); when it is unreachable we switch the
libraries to offline mode so that only the local cache is used, and turn the failure into one
:class:`HubUnavailableError` that says how to fix it.
"""

from __future__ import annotations

import os
import socket
import sys
from functools import lru_cache
from urllib.parse import urlparse

from .errors import HubUnavailableError  # noqa: F401  (raised here; its home is the leaf module errors)

TRUE = {"1", "true", "yes", "on"}


def offline_requested() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the hub endpoint (``HF_ENDPOINT`` or huggingface.co)."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_reason: str | None = None


def go_offline_if_unreachable() -> bool:
    """Switch huggingface_hub/datasets/transformers/diffusers to cache-only mode when the hub is out
    of reach. Returns True when offline. Safe to call before or after those libraries are imported."""
    global _reason
    if _reason is None and offline_requested():
        _reason = "HF_HUB_OFFLINE is set"
    offline = offline_requested() or not hub_reachable()
    if offline:
        _reason = _reason or "the Hugging Face Hub is not reachable"
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
        for module_name, attr in (("huggingface_hub.constants", "HF_HUB_OFFLINE"),
                                  ("datasets.config", "HF_HUB_OFFLINE"),
                                  ("datasets.config", "HF_DATASETS_OFFLINE")):
            module = sys.modules.get(module_name)
            if module is not None and hasattr(module, attr):
                setattr(module, attr, True)
    return offline


def why_offline() -> str:
    """Why we are offline: the user's HF_HUB_OFFLINE, or an unreachable hub (we set HF_HUB_OFFLINE then)."""
    if _reason is not None:
        return _reason
    return "HF_HUB_OFFLINE is set" if offline_requested() else "the Hugging Face Hub is not reachable"


def load_hf_dataset(repo_id: str, split: str, *, data_dir: str | None = None, gated: bool = False,
                    what: str | None = None):
    """``datasets.load_dataset(repo_id, split=split)``, or the same split from ``data_dir``.

    ``data_dir`` may be a ``save_to_disk`` folder (a Dataset or a DatasetDict), a folder of parquet
    files, or a hub-style snapshot folder. Any failure becomes one HubUnavailableError that names
    the fix.
    """
    what = what or repo_id
    if data_dir is not None:
        from .localdata import load_local_dataset

        return load_local_dataset(data_dir, split=split, what=what)
    offline = go_offline_if_unreachable()
    import datasets

    try:
        return datasets.load_dataset(repo_id, split=split)
    except Exception as exc:  # the hub libraries raise many types; all mean the same to the user
        steps = []
        if gated:
            steps.append(f"accept its licence at https://huggingface.co/datasets/{repo_id} and run "
                         "`huggingface-cli login`")
        steps.append(("or " if steps else "") + "download it once on a machine with network access (see README, "
                     "'Offline data') and pass --data-dir")
        reason = why_offline() + " and it is not in the local cache" if offline else f"{type(exc).__name__}: {exc}"
        msg = f"could not load {what} ({repo_id}, split {split!r}): {reason}. To fix: " + "; ".join(steps)
        raise HubUnavailableError(msg) from None


def hub_cache_dir() -> str:
    """The Hugging Face hub cache, found as huggingface_hub finds it (``HF_HUB_CACHE``, ``HF_HOME/hub``,
    ``XDG_CACHE_HOME/huggingface/hub``, ``~/.cache/huggingface/hub``), without importing it."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return os.path.join(os.path.expanduser(home), "hub")


def cached_files(repo_id: str, repo_type: str = "model") -> set[str]:
    """Names of the files of ``repo_id`` in the local hub cache, over all snapshots (no network)."""
    folder = os.path.join(hub_cache_dir(), f"{repo_type}s--" + repo_id.replace("/", "--"), "snapshots")
    names: set[str] = set()
    if os.path.isdir(folder):
        for snapshot in os.listdir(folder):
            root = os.path.join(folder, snapshot)
            for dirpath, _, files in os.walk(root):
                rel = os.path.relpath(dirpath, root)
                names |= {f if rel == "." else f"{rel}/{f}" for f in files}
    return names
