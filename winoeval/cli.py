"""The ``winoeval`` command line. Heavy libraries are imported inside commands, never at the top."""

from __future__ import annotations

import sys

import click


def _ints(value: str | None, option: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in str(value).replace(" ", "").split(",") if v)
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", param_hint=option) from None


def _key_values(pairs: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        out[key] = value
    return out


class LazyGroup(click.Group):
    """A group whose bigger commands live in their own modules and are imported only when used."""

    lazy = {"compare": "winoeval.compare:compare_command", "calibrate": "winoeval.compare:calibrate_command",
            "check-plugin": "winoeval.testing.check:check_plugin_command", "rescore": "winoeval.rescore:rescore_command"}

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx, name):
        if name in self.lazy:
            import importlib

            module, attr = self.lazy[name].split(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except Exception as exc:  # a broken command must not break --help or the others
                error = f"{type(exc).__name__}: {exc}"

                @click.command(name=name, help=f"(unavailable: {error})",
                               context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
                def broken() -> None:
                    raise click.ClickException(f"command {name!r} could not be loaded ({error})")

                return broken
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="winoeval")
def cli() -> None:
    """Measure compositional image-text reasoning: diffusion models as zero-shot matchers, CLIP
    baselines, Winoground."""


@cli.command()
@click.option("--model", "-m", required=True, help="Model name, e.g. sd2, openclip, mnist-unet, sd:DIR.")
@click.option("--task", "-t", "tasks", required=True, multiple=True,
              help="Task name, e.g. winoground, winoground:relation, mnist; several: -t a -t b or -t a,b "
                   "(one model load, one results file).")
@click.option("--n-samples", help="Monte-Carlo (t, ε) draws per image–text pair (not examples); a comma list gives "
                                  "pruning stages, e.g. 25,250. [default: 20, or the task's preset]")
@click.option("--to-keep", help="Candidates kept after each pruning stage, strictly decreasing, e.g. 5,1. "
                                "[default: none, or the task's preset]")
@click.option("--early-stop", is_flag=True, default=None,
              help="Sequential paired stopping: stop each comparison once decided; --n-samples is the budget. "
                   "[default: off]")
@click.option("--confidence", type=float, help="Early stop: confidence of each decision. [default: 0.99]")
@click.option("--early-variance", type=click.Choice(["stratified", "iid"]),
              help="Early stop: standard error along t (stratified) or the older i.i.d. one. [default: stratified]")
@click.option("--noise", type=click.Choice(["per-example", "shared"]),
              help="(t, ε) per example from (seed, id), or one shared plan for every example (the original "
                   "protocol's single noise tensor). [default: per-example]")
@click.option("--timesteps", type=click.Choice(["even", "uniform", "stratified"]),
              help="Timestep design over the model's training grid (ᾱ_t; for flow models σ_t, shift included: "
                   "even = evenly spaced t, see winoeval/objectives.py). [default: even]")
@click.option("--loss", type=click.Choice(["l2", "l1", "huber"]), help="Per-sample loss. [default: l2, or the "
                                                                       "task's preset]")
@click.option("--normalize/--no-normalize", default=None,
              help="Subtract the unconditional error (fair image scores). [default: on for Winoground-metric "
                   "tasks, off otherwise]")
@click.option("--batch-size", help="Model forward batch size, or auto (512 on GPUs, 128 on CPUs; halves on "
                                   "out-of-memory). [default: auto]")
@click.option("--compile", "compile_", is_flag=True, default=None, help="torch.compile the model's forward. "
                                                                       "[default: off]")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--dtype", default="auto", show_default=True,
              type=click.Choice(["auto", "float32", "float16", "bfloat16"]),
              help="Precision of the model's forward pass (auto: float16 on CUDA, float32 on CPU); x_t and the "
                   "loss are always float32.")
@click.option("--seed", type=int, help="Seed of the shared (t, ε) draws. [default: 0]")
@click.option("--limit", type=float, help="Only the first N examples, or a fraction of them (0.1 = the first 10 %). "
                                          "[default: all]")
@click.option("--data-dir", type=click.Path(), help="Local dataset (save_to_disk, parquet or hub snapshot folder). "
                                                    "[default: the task's hub dataset or built-in data]")
@click.option("--output-path", "-o", default="winoeval-out", show_default=True, type=click.Path(),
              help="Directory for results, per-example logs and the resume cache.")
@click.option("--log-samples", is_flag=True, help="Also write a JSONL line per example.")
@click.option("--log-errors", is_flag=True, help="Also keep every per-(t, ε) error in errors_<stamp>.jsonl, for "
                                                 "`winoeval rescore` (diffusion models).")
@click.option("--skip-bad", is_flag=True, help="Skip (and count) unreadable or non-finite examples instead of stopping.")
@click.option("--model-arg", multiple=True, metavar="KEY=VALUE", help="Extra model option (repeatable).")
@click.option("--task-arg", multiple=True, metavar="KEY=VALUE",
              help="Extra task option (repeatable), e.g. templates=FILE for zero-shot tasks.")
@click.option("--num-processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Shard the examples over N local processes, then gather one results file.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def run(ctx, model, tasks, n_samples, to_keep, early_stop, confidence, early_variance, noise, timesteps, loss, normalize, batch_size, compile_, device, dtype, seed, limit,
        data_dir, output_path, log_samples, log_errors, skip_bad, model_arg, task_arg, num_processes, quiet) -> None:
    """Evaluate MODEL on one or more tasks; print a markdown table and write
    OUTPUT/<model>/results_<timestamp>.json.

    Interrupted runs resume: rerun the same command. For several GPUs use
    `accelerate launch -m winoeval run ...` (one process per GPU; rank 0 writes the results)."""
    import dataclasses

    from .config import ConfigError, RunConfig
    from .registry import UnknownNameError
    from .runner import BadExampleError, markdown_table, prepare, run_tasks

    task_names = [t.strip() for value in tasks for t in value.split(",") if t.strip()]
    if not task_names:
        raise click.UsageError("give a task with --task/-t")
    if len(set(task_names)) != len(task_names):
        raise click.UsageError(f"a task is given twice in --task ({', '.join(task_names)})")

    scorer_args = {"n_samples": _ints(n_samples, "--n-samples"), "to_keep": _ints(to_keep, "--to-keep"),
                   "early_stop": early_stop, "confidence": confidence, "variance": early_variance, "noise": noise,
                   "timesteps": timesteps, "loss": loss, "normalize": normalize, "batch_size": batch_size,
                   "compile": compile_,
                   "seed": seed}
    if not early_stop:
        scorer_args.pop("confidence")  # only early stopping reads it (warned about below)
        scorer_args.pop("variance")
    scorer_args = {k: v for k, v in scorer_args.items() if v is not None}
    try:
        config = RunConfig(model=model, task=task_names[0], scorer_args=scorer_args, device=device, dtype=dtype,
                           limit=limit, data_dir=data_dir, output_path=output_path, log_samples=log_samples,
                           log_errors=log_errors, skip_bad=skip_bad, model_args=_key_values(model_arg, "--model-arg"),
                           task_args=_key_values(task_arg, "--task-arg"))
        prepared = [prepare(dataclasses.replace(config, task=t)) for t in task_names]
    except (ConfigError, UnknownNameError) as exc:
        raise click.UsageError(str(exc)) from None
    if confidence is not None and not early_stop:
        click.echo("warning: --confidence only applies with --early-stop; it is ignored", err=True)
    if early_variance is not None and not early_stop:
        click.echo("warning: --early-variance only applies with --early-stop; it is ignored", err=True)
    _exit_with_parent()
    if quiet:
        import os

        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # read when datasets is imported
    try:
        import time

        workers_since = time.time() if num_processes > 1 else None
        if num_processes > 1:
            _run_workers(ctx, num_processes, quiet)
        out = run_tasks(config, task_names, progress=not quiet and num_processes == 1, prepared=prepared,
                        workers_since=workers_since)
    except BaseException as exc:
        from .runner import remove_if_empty

        for prep in prepared:
            remove_if_empty(prep)  # a failed run leaves no empty output folder behind
        if isinstance(exc, (ConfigError, UnknownNameError)):
            raise click.UsageError(str(exc)) from None
        if isinstance(exc, BadExampleError) or _is_user_error(exc):
            raise click.ClickException(str(exc)) from None
        raise
    if not out.results:  # a worker process: its shard is cached, the parent or rank 0 gathers
        click.echo(f"shard done: {out.computed} computed, {out.reused} reused ({out.cache_path})", err=True)
        return
    click.echo(markdown_table(out.results))
    samples = "".join(f"\nsamples: {p}" for p in out.samples_paths.values())
    samples += "".join(f"\nper-timestep errors: {p}" for p in out.errors_paths)
    click.echo(f"\nresults: {out.results_path}{samples}"
               + f"\n({out.computed} example(s) computed, {out.reused} reused; resume cache "
                 f"{out.cache_path.parent if out.cache_path else '-'})", err=True)


def _is_user_error(exc: BaseException) -> bool:
    """Errors that carry a complete, user-facing message (hub access, missing weight files)."""
    from .hub import HubUnavailableError

    return isinstance(exc, (HubUnavailableError, FileNotFoundError, click.ClickException))


def _argv_from_params(ctx: click.Context, drop: set[str]) -> list[str]:
    """The command line that reproduces this invocation's parameters (for worker processes)."""
    argv: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in drop:
            continue
        value = ctx.params.get(param.name)
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


def _exit_with_parent() -> None:
    """In a worker of ``--num-processes``: exit as soon as the parent is gone (killed, crashed), so no
    orphan keeps computing; what it finished is in the cache."""
    import os
    import threading
    import time

    parent = os.environ.get("WINOEVAL_PARENT_PID")
    if not parent or not os.environ.get("WINOEVAL_SHARD"):
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, name="winoeval-parent-watch", daemon=True).start()


def _run_workers(ctx: click.Context, n: int, quiet: bool) -> None:
    """Start n `winoeval run` workers, each on every n-th example; they share the resume cache."""
    import os
    import subprocess

    argv = [sys.executable, "-m", "winoeval", "run", *_argv_from_params(ctx, {"num_processes", "quiet"}), "--quiet"]
    threads = max(1, (os.cpu_count() or 1) // n)
    procs = []
    for rank in range(n):
        env = dict(os.environ, WINOEVAL_SHARD=f"{rank}/{n}", OMP_NUM_THREADS=str(threads),
                   WINOEVAL_PARENT_PID=str(os.getpid()))
        procs.append(subprocess.Popen(argv, env=env))
    codes = [p.wait() for p in procs]
    failed = [f"process {rank} (exit code {code})" for rank, code in enumerate(codes) if code != 0]
    if failed:
        raise click.ClickException(f"{', '.join(failed)} failed; what finished is cached: rerun the same command "
                                   f"to finish the rest")


def _option_lines(entry, flag: str, indent: str) -> list[str]:
    if entry.options is None:
        return [f"{indent}{flag} options: not declared by its plugin (any KEY=VALUE is passed on unchecked)"]
    if not entry.options:
        return [f"{indent}{flag} options: none"]
    width = max(len(k) for k in entry.options)
    return [f"{indent}{flag} {k}=…".ljust(len(indent) + len(flag) + width + 6) + f"  {help_}"
            for k, help_ in sorted(entry.options.items())]


def _weights_mark(entry) -> str:
    """For models whose weights come from the hub: whether the local cache has them (no network)."""
    weights = entry.extras.get("weights")
    if not weights:
        return ""
    repo, is_cached = weights
    try:
        state = "in the local hub cache" if is_cached() else "to download from the hub (not in the local cache)"
    except Exception:  # a listing never fails on a cache lookup
        state = "from the hub (cache state unknown)"
    return f"  · weights: {state}"


@cli.command(name="list")
@click.option("--options", "show_options", is_flag=True, help="Also list each one's --model-arg/--task-arg options.")
def list_(show_options) -> None:
    """Models and tasks, with the plugin that provides each."""
    from . import registry

    for title, entries, flag in (("Models", registry.models(), "--model-arg"), ("Tasks", registry.tasks(), "--task-arg")):
        click.echo(f"{title}:")
        width = max((len(n) for n in entries), default=0)
        for name, entry in sorted(entries.items()):
            shown = f"{name}:…" if entry.takes_argument else name
            click.echo(f"  {shown:<{width + 2}}  {entry.description}  [{entry.plugin}]{_weights_mark(entry)}")
            if show_options:
                for line in _option_lines(entry, flag, "      "):
                    click.echo(line)
        click.echo()


@cli.command()
@click.argument("name")
def info(name) -> None:
    """What a model or task is and which options it takes."""
    from . import registry

    found = []
    for kind, entries, flag in (("model", registry.models(), "--model-arg"), ("task", registry.tasks(), "--task-arg")):
        base = name.partition(":")[0]
        entry = entries.get(name) or entries.get(base)
        if entry is not None:
            found.append((kind, entry, flag))
    if not found:
        names = [*registry.models(), *registry.tasks()]
        import difflib

        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise click.UsageError(f"no model or task is called {name!r}{hint} (`winoeval list` shows them all)")
    for kind, entry, flag in found:
        click.echo(f"{entry.name}{':ARGUMENT' if entry.takes_argument else ''}  ({kind}, plugin {entry.plugin})")
        if entry.description:
            click.echo(f"  {entry.description}")
        for line in _option_lines(entry, flag, "  "):
            click.echo(line)


@cli.command()
def plugins() -> None:
    """Installed plugins and their versions (and any that failed to load)."""
    from . import registry

    for name, version in registry.plugin_versions():
        click.echo(f"{name}  {version}")
    for name, error in registry.load_errors.items():
        click.echo(f"{name}  FAILED: {error}")


class TrainGroup(click.Group):
    """``winoeval train MODEL``: the training commands that model plugins provide."""

    def list_commands(self, ctx):
        from . import registry

        return sorted(n for n, e in registry.models().items() if e.extras.get("train") is not None)

    def get_command(self, ctx, name):
        from . import registry

        entry = registry.models().get(name)
        return entry.extras.get("train") if entry is not None else None

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            import difflib

            from . import registry

            trainable = self.list_commands(ctx)
            if name in registry.models():
                raise click.UsageError(f"model {name!r} has no training command (trainable: {', '.join(trainable)})")
            close = difflib.get_close_matches(name, trainable, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise click.UsageError(f"no trainable model {name!r}{hint} (trainable: {', '.join(trainable)})")
        return super().resolve_command(ctx, args)


@cli.group(cls=TrainGroup)
def train() -> None:
    """Train a model that a plugin knows how to train (e.g. mnist-unet)."""


@cli.command()
@click.option("--model", "-m", required=True, help="A model whose plugin can sample (e.g. mnist-unet).")
@click.option("--label", "--prompt", "label", required=True, help="The text/class (or prompt) to condition on.")
@click.option("--guidance", default=2.0, show_default=True, type=float, help="Classifier-free guidance weight w.")
@click.option("--n", "n", default=16, show_default=True, type=click.IntRange(min=1), help="Number of samples.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="PNG grid to write.")
def sample(model, label, guidance, n, seed, device, out) -> None:
    """Draw class-conditional samples with classifier-free guidance, as a PNG grid."""
    from . import registry
    from .config import ConfigError, RunConfig

    import os
    from pathlib import Path

    folder = Path(out).expanduser().resolve().parent  # checked before minutes of sampling, not after
    if not folder.is_dir():
        raise click.UsageError(f"--out {out}: the folder {str(folder)!r} does not exist; create it or pick another path")
    if not os.access(folder, os.W_OK):
        raise click.UsageError(f"--out {out}: the folder {str(folder)!r} is not writable")
    try:
        from .runner import check_device

        entry, arg = registry.resolve("model", model)
        config = RunConfig(model=model, task="-", device=device)
        check_device(device)
        loaded = entry.loader(arg, config)
    except (ConfigError, registry.UnknownNameError) as exc:
        raise click.UsageError(str(exc)) from None
    if not hasattr(loaded, "sample"):
        raise click.UsageError(f"model {model!r} cannot sample (its plugin has no sample())")
    if hasattr(loaded, "encode_texts"):
        try:
            loaded.encode_texts([label])  # an unknown label fails now, in one line
        except (ValueError, KeyError) as exc:
            raise click.UsageError(f"--label {label!r}: {exc}") from None
    from .sampling import accepts, make_grid, sample_title

    extra = {"progress": True} if accepts(loaded.sample, "progress") else {}  # a tqdm bar over the steps
    images = loaded.sample(label=label, n=n, guidance=guidance, seed=seed, **extra)
    make_grid(images, sample_title(model, label, guidance, seed, len(images))).save(out)
    click.echo(f"wrote {len(images)} samples of {label!r} to {out}")


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main() -> None:
    import os
    import warnings

    # Idle OpenMP threads sleep instead of spinning: on a shared CPU spinning threads fight the other
    # jobs (measured here: 35x slower U-Net batches next to a training job). Set it to override.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    warnings.formatwarning = _one_line_warning
    try:
        cli(prog_name="winoeval")
    except Exception as exc:  # the last resort: no path dumps a traceback on a user
        if os.environ.get("WINOEVAL_DEBUG", "") not in ("", "0"):
            raise
        message = " ".join(str(exc).split()) or "(no message)"
        click.echo(f"Error: {type(exc).__name__}: {message}\n(an unexpected error; set WINOEVAL_DEBUG=1 for the "
                   f"traceback, and please report it)", err=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
