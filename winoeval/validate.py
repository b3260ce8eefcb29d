"""What a task hands the runner, checked before any model loads (a leaf module: it imports only
winoeval.errors).

The contract is :class:`winoeval.api.Example`'s: every example of a classification (or 1 × K ``choice``)
task has a label that is the index of its true text (an ``int``, not a bool, in ``0 … len(texts) - 1``),
and every candidate text is a non-empty string. A label of ``-1`` or ``None`` would otherwise be counted
as the last class in the per-class accuracy and in ``calibrate``'s NLL, or stop the run with an error
that names nothing.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError


class ExampleContractError(ConfigError):
    """An example that breaks the task contract; the message names the task, the example and the fix."""


def check_example(task_name: str, metric: str, example: Any, position: int) -> None:
    """Refuse an example whose label or texts break the contract of its task's ``metric``."""
    where = f"task {task_name!r}: example {example.id!r} (position {position})"
    texts = example.texts
    if not isinstance(texts, (list, tuple)) or not texts:
        raise ExampleContractError(f"{where} has texts {texts!r}; an example needs a non-empty list of candidate "
                                   f"texts (fix the task plugin or its data)")
    for text in texts:
        if not isinstance(text, str) or not text:
            raise ExampleContractError(f"{where} has the candidate text {text!r}; texts must be non-empty strings "
                                       f"(fix the task plugin or its data)")
    label = example.label
    if metric in ("classification", "choice"):
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(texts):
            raise ExampleContractError(f"{where} has label {label!r}; a {metric} label must be the index of the true "
                                       f"text, in 0 … {len(texts) - 1} ({len(texts)} candidate texts): fix the task's "
                                       f"data (or drop the example)")
    elif metric == "winoground" and len(texts) != 2:
        raise ExampleContractError(f"{where} has {len(texts)} texts; a Winoground example has exactly 2 captions")


def check_vocabulary(model: Any, task: Any, config: Any, captions: bool = False) -> None:
    """A model that cannot read a classification task's texts (mnist-unet on colour names) is a
    mismatch of model and task, not a bad example: one error before anything is scored.

    ``captions``: for a task without fixed texts (Winoground captions), try its first example's texts.
    Called only once the first example has failed (encoding texts ahead would warm a model's text cache
    in another batch composition), so that a model that cannot read the task at all stops with this
    error instead of suggesting --skip-bad, which would skip every example."""
    encode = getattr(model, "encode_texts", None)
    if not callable(encode):
        return
    texts = list(task.texts or (next((list(e.texts) for e in task.examples()), []) if captions else []))
    if not texts:
        return
    try:
        encode(texts)
    except (ValueError, KeyError) as exc:
        name = config.model.partition(":")[0]
        raise ConfigError(f"model {config.model!r} cannot read the texts of task {config.task!r} ({exc}); "
                          f"pick a task whose texts it knows (`winoeval info {name}`)") from None
