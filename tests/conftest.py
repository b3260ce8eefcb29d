"""Shared test set-up: never touch the network, and rebuild the plugin manager around each test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    from winoeval import registry

    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    registry.reset()
    yield
    registry.reset()


@pytest.fixture
def cli_env():
    """Environment for ``winoeval`` subprocesses: offline, and this interpreter's scripts on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    return env
