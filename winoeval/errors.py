"""Every error winoeval raises on purpose, in one place (a leaf module: it imports nothing from winoeval).

Two families, and the exit status the command line gives each (``winoeval.cli`` maps the base classes,
never the leaves):

- :class:`UsageError` — the input is wrong (a name, an option, a number, a file given on the command
  line): exit status 2. The message names the thing and the fix.
- :class:`UserError` — the input is right but the world is not (the hub or a dataset cannot be reached,
  an example cannot be scored): exit status 1. The message says what to do.

Third-party plugins raise the same public classes: :class:`ConfigError` for a bad ``--model-arg`` /
``--task-arg`` value or an unusable local file, :class:`HubUnavailableError` when weights or data cannot
be had, :class:`BadExampleError` for one example that cannot be scored. Each leaf also derives from the
built-in exception it replaced (``ValueError``, ``LookupError``, ``RuntimeError``), so code that caught
those still works.
"""

from __future__ import annotations


class WinoevalError(Exception):
    """Base of every deliberate winoeval error: its message is complete and meant for the user."""

    exit_code = 1


class UsageError(WinoevalError):
    """Bad input: a name, option, number or file the user gave. Exit status 2."""

    exit_code = 2


class UserError(WinoevalError):
    """Good input that cannot be carried out here and now (network, data, one example). Exit status 1."""

    exit_code = 1


class ConfigError(UsageError, ValueError):
    """A bad setting (option, number, file, device), reported before any model loads where possible."""


class UnknownNameError(UsageError, LookupError):
    """A model, task or option name that no plugin registered (the message lists close matches)."""


class CompareError(UsageError, ValueError):
    """Results files that cannot be compared (missing, of different tasks, without shared examples)."""


class CalibrationError(UsageError, ValueError):
    """Runs whose samples cannot be calibrated (too few examples, mixed candidate counts)."""


class HubUnavailableError(UserError, RuntimeError):
    """Weights or data could not be had from the hub, its local cache or a local folder. The message
    says what to do."""


class BadExampleError(UserError, RuntimeError):
    """An example that cannot be scored (unreadable image, a non-finite or mis-shaped model output).
    Names the example; ``--skip-bad`` skips and counts such examples instead."""

    def __init__(self, example_id: str, reason: str):
        super().__init__(f"example {example_id!r}: {reason} (rerun with --skip-bad to skip and count such "
                         f"examples; finished examples are kept in the cache)")
        self.example_id, self.reason = example_id, reason

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.example_id, self.reason))
