"""The example's tests run inside winoeval's own suite (see winoeval's pyproject testpaths) and on their own."""

from __future__ import annotations

import importlib.metadata

import pytest


def pytest_configure(config):
    # winoeval's pyproject declares it too; this is for a run of these tests on their own
    config.addinivalue_line("markers", "slow: long-running tests (leave them out with -m 'not slow')")


@pytest.fixture(autouse=True, scope="session")
def _installed_and_one_thread():
    try:
        importlib.metadata.version("winoeval-toy2d")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("winoeval-toy2d is not installed: `pip install -e examples/winoeval-toy2d` (the README's test "
                    "command does it)", pytrace=False)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny MLPs gain nothing from threads on a shared CPU
    yield
    torch.set_num_threads(threads)
