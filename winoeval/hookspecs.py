"""Hook specifications. Every hook name starts with ``winoeval_``; each receives a callback."""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("winoeval")
hookimpl = pluggy.HookimplMarker("winoeval")


@hookspec
def winoeval_register_models(register: Callable[..., None]) -> None:
    """Register model plugins.

    :param register: ``register(name, loader, description="", takes_argument=False, train=None)``.
        ``loader(argument, config)`` returns a Denoiser or a Matcher and is only called to run a model,
        so heavy imports belong inside it. With ``takes_argument=True`` the model is used as
        ``name:argument`` (e.g. ``sd:/path/to/pipeline``). ``train`` is an optional click command
        that ``winoeval train NAME`` runs.
    """


@hookspec
def winoeval_register_tasks(register: Callable[..., None]) -> None:
    """Register task plugins.

    :param register: ``register(name, loader, description="", takes_argument=False)``.
        ``loader(argument, config)`` returns a :class:`winoeval.api.TaskData`; ``argument`` is the
        part after ``name:`` (e.g. the subset in ``winoground:relation``) or None.
    """
