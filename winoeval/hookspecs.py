"""Hook specifications. Every hook name starts with ``winoeval_``; each receives a ``register`` callback.

The docstrings below are Markdown: ``python -m winoeval.docs --write`` copies them into the "Hook
reference" of CONTRIBUTING.md, and a test fails when the two differ.
"""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("winoeval")
hookimpl = pluggy.HookimplMarker("winoeval")


@hookspec
def winoeval_register_models(register: Callable[..., None]) -> None:
    """Register models: call `register` once per model name.

    ```
    register(name, loader, description="", takes_argument=False, train=None, options=None, fingerprint=None,
             weights=None)
    ```

    - `loader(argument, config)` returns the model: a **denoiser** or a **matcher** (the protocols
      `winoeval.api.Denoiser` and `winoeval.api.Matcher`). It is called only when a model runs, so
      heavy imports (torch, diffusers, …) belong inside it, never at module level. A denoiser declares
      its training objective with `objective = "epsilon"` (the default), `"v_prediction"` or `"flow"`
      (rectified flow, with a `sigmas` grid instead of `alphas_cumprod`): the scorer noises and builds
      the target from it (`winoeval.scoring.objectives`).
    - `argument` is the text after `name:` when `takes_argument=True` (`sd:/path/to/pipeline`,
      `analytic:sigma=0.3`), else `None`.
    - `config` is the run's `winoeval.config.RunConfig`: load onto `config.torch_device()` in
      `config.torch_dtype()` (`--device`, `--dtype`); `config.model_args` holds the
      `--model-arg KEY=VALUE` pairs, values as **strings** (convert them yourself).
    - `options` declares those keys, `{key: one-line help}` (`{}` when the model takes none): an
      undeclared key is then refused before anything loads, with close matches. `None` accepts any key.
    - `train` is an optional click command, run as `winoeval train NAME`.
    - `fingerprint(argument, config) -> str | None` says what weights the model runs (e.g. a sha256 of
      its files: `winoeval.fingerprint.hash_path(path)` hashes a file or folder and remembers it); it is
      called before the model loads, keys the resume cache and is recorded in the results file (raise
      `winoeval.config.ConfigError` there for a bad argument: one line, exit status 2). Without it, the
      content of every local file or folder named by the argument or a `--model-arg` value is used.
    - `weights=(hub_repo_id, is_cached)` marks a model whose weights are downloaded from the hub:
      `winoeval list` shows whether `is_cached()` (a check of the local cache, no network) is true.
    - `description` is the one line `winoeval list` shows.
    - Bad input the user typed (an unparsable `argument`, a bad option value, a missing file) is raised
      as `winoeval.config.ConfigError` from the loader or `fingerprint`: the CLI prints its message in
      one line with exit status 2. Any other exception is reported as unexpected (exit status 1).
    - A denoiser may offer `sample(label, n, guidance, seed) -> list[PIL.Image]` (class- or
      text-conditional generation with classifier-free guidance weight `guidance`); `winoeval sample
      --model NAME --label TEXT` calls it.

    A hook that raises is reported in one warning line, what it registered is dropped, and
    `winoeval plugins` lists its plugin as FAILED with the reason; other plugins still work.

    ```python
    from winoeval.hookspecs import hookimpl

    def load(argument, config):
        from my_package.model import MyDenoiser          # torch is imported here, not above
        device = config.torch_device()
        return MyDenoiser(config.model_args.get("checkpoint"), device=device, dtype=config.torch_dtype(device))

    @hookimpl
    def winoeval_register_models(register):
        register("my-model", load, description="what it is, in one line",
                 options={"checkpoint": "weights file (default: the shipped ones)"})
    ```
    """


@hookspec
def winoeval_register_tasks(register: Callable[..., None]) -> None:
    """Register tasks: call `register` once per task name.

    ```
    register(name, loader, description="", takes_argument=False, options=None)
    ```

    - `loader(argument, config)` returns a `winoeval.api.TaskData` (see its contract below):
      examples are produced lazily, when the run iterates them.
    - `argument` is the text after `name:` when `takes_argument=True` (the subset in
      `winoground:relation`), else `None`.
    - `config.task_args` holds the `--task-arg KEY=VALUE` pairs (values are strings), declared by
      `options` as for models; `config.data_dir` is `--data-dir`. A bad `argument` or option value is
      raised as `winoeval.config.ConfigError` (one line, exit status 2), as for models.
    - Optional keywords, shown by `winoeval list` / `winoeval info`: `licence="..."` (the data's
      licence), `citation="..."`, `source="..."` (where the data comes from). `group="compositional"`
      (or `"zeroshot"`, or any name) puts the task in that task group (`--task GROUP`);
      `members=["name:a", "name:b"]` is what the task contributes to its group (default: `name`).

    ```python
    from winoeval.api import Example, TaskData
    from winoeval.hookspecs import hookimpl

    def load(argument, config):
        def examples():
            from PIL import Image
            for i, (path, label) in enumerate(ROWS):
                yield Example(f"my-{i}", lambda p=path: [Image.open(p).convert("RGB")], TEXTS, label)
        return TaskData("my-task", "classification", examples, len(ROWS), texts=TEXTS, class_names=NAMES)

    @hookimpl
    def winoeval_register_tasks(register):
        register("my-task", load, description="what it is, in one line", options={})
    ```
    """
