"""The plugin manager: built-in and third-party plugins, registered the same way.

Third-party plugins are entry points in the group ``winoeval``. Each is loaded in its own guard: one
that raises is reported in one warning line and the others still work. ``WINOEVAL_PLUGINS`` (a comma
list of plugin names, or ``none``) limits which plugins load; ``builtins`` stands for every built-in.
"""

from __future__ import annotations

import difflib
import importlib
import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import UnknownNameError  # noqa: F401  (public here too)

DEFAULT_PLUGINS = (
    "winoeval.plugins.analytic",
    "winoeval.plugins.mnist_unet",
    "winoeval.plugins.stable_diffusion",
    "winoeval.plugins.openclip",
    "winoeval.plugins.winodigits",
    "winoeval.plugins.winodigits_oracle",
    "winoeval.plugins.sd3",
    "winoeval.plugins.flux",
    "winoeval.plugins.dit",
    "winoeval.tasks.synthetic",
    "winoeval.tasks.mnist",
    "winoeval.tasks.winoground",
    "winoeval.tasks.zeroshot",
    "winoeval.tasks.winodigits",
    "winoeval.tasks.sugarcrepe",
    "winoeval.tasks.aro",
    "winoeval.tasks.valse",
    "winoeval.tasks.winoformat",
    "winoeval.tasks.imagenet",
)

ENV_VAR = "WINOEVAL_PLUGINS"
KNOWN_EXTRAS = {"train", "weights",  # register() keywords kept in Entry.extras
                "licence", "citation", "source", "group", "members"}  # tasks: shown by list/info; task groups


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded; the others still work."""


@dataclass
class Entry:
    """One registered model or task."""

    name: str
    loader: Callable[..., Any]
    plugin: str
    description: str = ""
    takes_argument: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    options: dict[str, str] | None = None  # accepted --model-arg/--task-arg keys → help; None = any
    fingerprint: Callable[..., str | None] | None = None  # (argument, config) → what the model runs

    def check_options(self, given: dict[str, Any], flag: str) -> None:
        """Refuse option keys the plugin did not declare (plugins that declare none accept any)."""
        if self.options is None:
            return
        for key in given:
            if key not in self.options:
                close = difflib.get_close_matches(key, list(self.options), n=3, cutoff=0.6)
                hint = f"did you mean {', '.join(close)}? " if close else ""
                known = ", ".join(sorted(self.options)) or "none"
                raise UnknownNameError(f"{self.name!r} has no option {key!r} ({flag} {key}=…); {hint}"
                                       f"it accepts: {known} (`winoeval info {self.name}`)")


_pm: pluggy.PluginManager | None = None
load_errors: dict[str, str] = {}
_versions: dict[str, str] = {}


def _wanted() -> set[str] | None:
    value = os.environ.get(ENV_VAR)
    if value is None:
        return None
    names = {v.strip() for v in value.split(",") if v.strip()}
    if "builtins" in names:
        names |= set(DEFAULT_PLUGINS)
    return names - {"none", "builtins"}


def _warn(name: str, exc: BaseException, hook: str | None = None) -> None:
    load_errors[name] = f"{type(exc).__name__}: {exc}" + (f" (in {hook})" if hook else "")
    warnings.warn(f"winoeval: plugin {name!r} failed to load and was skipped ({load_errors[name]})",
                  PluginLoadWarning, stacklevel=3)


def get_plugin_manager() -> pluggy.PluginManager:
    """The one plugin manager, built on first use."""
    global _pm
    if _pm is not None:
        return _pm
    pm = pluggy.PluginManager("winoeval")
    pm.add_hookspecs(hookspecs)
    wanted = _wanted()
    for module_name in DEFAULT_PLUGINS:
        if wanted is not None and module_name not in wanted:
            continue
        try:
            pm.register(importlib.import_module(module_name), name=module_name)
        except Exception as exc:  # a broken built-in must not break the CLI either
            _warn(module_name, exc)
    entry_points = list(metadata.entry_points(group="winoeval"))
    if wanted:
        _warn_unknown_wanted(wanted, entry_points)
    for ep in entry_points:
        if wanted is not None and ep.name not in wanted:
            continue
        if pm.has_plugin(ep.name):
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:
            _warn(ep.name, exc)
            continue
        dist = getattr(ep, "dist", None)
        if dist is not None:
            _versions[ep.name] = f"{dist.version} ({dist.metadata['Name']})"
    _pm = pm
    return pm


def _warn_unknown_wanted(wanted: set[str], entry_points: list) -> None:
    """``WINOEVAL_PLUGINS`` names that match no plugin (a typo, a distribution or package name)."""
    known = [*DEFAULT_PLUGINS, *sorted(ep.name for ep in entry_points)]
    for name in sorted(wanted - set(known)):
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        warnings.warn(f"winoeval: {ENV_VAR} names {name!r}, which is no plugin; {hint}known plugins: "
                      f"{', '.join(known)}, or 'builtins' / 'none'", PluginLoadWarning, stacklevel=3)


def _collect(hook_name: str) -> dict[str, Entry]:
    pm = get_plugin_manager()
    entries: dict[str, Entry] = {}
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)

        def register(name: str, loader: Callable[..., Any], description: str = "",
                     takes_argument: bool = False, *, options: dict[str, str] | None = None,
                     fingerprint: Callable[..., str | None] | None = None, _plugin: str = plugin_name,
                     **extras: Any) -> None:
            unknown = sorted(set(extras) - KNOWN_EXTRAS)
            if unknown:
                known = ["description", "takes_argument", "options", "fingerprint", *sorted(KNOWN_EXTRAS)]
                hints = [f"{k} (did you mean {', '.join(difflib.get_close_matches(k, known, n=1, cutoff=0.6))}?)"
                         if difflib.get_close_matches(k, known, n=1, cutoff=0.6) else k for k in unknown]
                warnings.warn(f"winoeval: plugin {_plugin!r} registers {name!r} with unknown keyword(s) "
                              f"{', '.join(hints)}; they are ignored", PluginLoadWarning, stacklevel=2)
            if name in entries:
                warnings.warn(f"winoeval: {name!r} from plugin {_plugin!r} replaces the one from "
                              f"{entries[name].plugin!r}", PluginLoadWarning, stacklevel=2)
            entries[name] = Entry(name, loader, _plugin, description, takes_argument, extras,
                                  dict(options) if options is not None else None, fingerprint)

        before = dict(entries)
        try:
            impl.function(register=register)
        except Exception as exc:  # drop what this hook registered before it raised: all or nothing
            entries.clear()
            entries.update(before)
            _warn(plugin_name, exc, hook_name)
    return entries


def models() -> dict[str, Entry]:
    """Every registered model, by name."""
    return _collect("winoeval_register_models")


def tasks() -> dict[str, Entry]:
    """Every registered task, by name."""
    return _collect("winoeval_register_tasks")


def resolve(kind: str, spec: str) -> tuple[Entry, str | None]:
    """``name`` or ``name:argument`` → (entry, argument); unknown names raise with close matches."""
    entries = models() if kind == "model" else tasks()
    if spec in entries and not entries[spec].takes_argument:
        return entries[spec], None
    name, sep, argument = spec.partition(":")
    entry = entries.get(name)
    if entry is not None:
        if sep and not entry.takes_argument:
            raise UnknownNameError(f"{kind} {name!r} takes no ':argument' (got {spec!r})")
        return entry, (argument or None) if sep else None
    close = difflib.get_close_matches(spec, list(entries), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownNameError(f"unknown {kind} {spec!r}{hint} (`winoeval list` shows them all)")


def plugin_versions() -> list[tuple[str, str]]:
    """(plugin name, version) for every plugin that loaded and whose hooks ran; the others are in
    ``load_errors`` (``winoeval plugins`` shows them as FAILED with the reason)."""
    from . import __version__

    pm = get_plugin_manager()
    models()
    tasks()  # run every hook: a plugin whose hook raises is a failed plugin, not a loaded one
    return [(name, _versions.get(name, f"{__version__} (built-in)")) for name, _ in pm.list_name_plugin()
            if name not in load_errors]


def reset() -> None:
    """Forget the plugin manager (tests that change ``WINOEVAL_PLUGINS`` use this)."""
    global _pm
    _pm = None
    load_errors.clear()
    _versions.clear()
