"""The ``winoeval`` command line. Heavy libraries are imported inside commands, never at the top."""

from __future__ import annotations

import sys

import click

from .options import FINITE_FLOAT, key_values  # KEY=VALUE options: empty values and repeats refused
from .verbosity import options as verbosity_options


def _ints(value: str | None, option: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in str(value).replace(" ", "").split(",") if v)
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", param_hint=option) from None



def as_click_error(exc: BaseException) -> click.ClickException | None:
    """The one place that turns winoeval's errors into exit statuses: a usage error (bad input) exits 2
    with the command's usage line, a user error (hub, data, an example; a missing file) exits 1. None
    for anything else (the last-resort guard in :func:`main` reports it)."""
    from .errors import UsageError, WinoevalError

    if isinstance(exc, UsageError):
        return click.UsageError(str(exc))
    if isinstance(exc, (WinoevalError, FileNotFoundError)):
        return click.ClickException(str(exc))
    return None


class WinoevalCommand(click.Command):
    """A command whose winoeval errors become click's (see :func:`as_click_error`)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            mapped = as_click_error(exc)
            if mapped is None:
                raise
            if isinstance(mapped, click.UsageError):
                mapped.ctx = ctx
            raise mapped from None


class LazyGroup(click.Group):
    """A group whose bigger commands live in their own modules and are imported only when used."""

    lazy = {"compare": "winoeval.compare:compare_command", "calibrate": "winoeval.compare:calibrate_command",
            "check-plugin": "winoeval.testing.check:check_plugin_command",
            "rescore": "winoeval.rescore:rescore_command"}

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


cli.command_class = WinoevalCommand


@cli.command()
@click.option("--model", "-m", required=True, help="Model name, e.g. sd2, openclip, mnist-unet, sd:DIR.")
@click.option("--task", "-t", "tasks", required=True, multiple=True,
              help="Task name, e.g. winoground, winoground:relation, mnist; several: -t a -t b or -t a,b "
                   "(one model load, one results file); a group: compositional, zeroshot or @FILE (task names, "
                   "one per line).")
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
                   "even = evenly spaced t, see winoeval/scoring/objectives.py). [default: even]")
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
@click.option("--skip-bad", is_flag=True,
              help="Skip (and count) unreadable or non-finite examples instead of stopping.")
@click.option("--model-arg", multiple=True, metavar="KEY=VALUE", help="Extra model option (repeatable).")
@click.option("--task-arg", multiple=True, metavar="KEY=VALUE",
              help="Extra task option (repeatable), e.g. templates=FILE for zero-shot tasks.")
@click.option("--num-processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Shard the examples over N local processes, then gather one results file.")
@verbosity_options
@click.option("--rehash", is_flag=True, help="Read every weight and data file again to fingerprint it, ignoring "
                                             "the remembered hashes (same as WINOEVAL_REHASH=1).")
@click.option("--max-pixels", type=click.IntRange(min=0),
              help="Refuse images larger than this many pixels (width × height) before decoding them, as bad "
                   "examples (--skip-bad skips them); 0: no limit. [default: 89478485, PIL's]")
@click.pass_context
def run(ctx, model, tasks, n_samples, to_keep, early_stop, confidence, early_variance, noise, timesteps, loss,
        normalize, batch_size, compile_, device, dtype, seed, limit,
        data_dir, output_path, log_samples, log_errors, skip_bad, model_arg, task_arg, num_processes, quiet, rehash,
        max_pixels) -> None:
    """Evaluate MODEL on one or more tasks; print a markdown table and write
    OUTPUT/<model>/results_<timestamp>.json.

    Interrupted runs resume: rerun the same command. For several GPUs use
    `accelerate launch -m winoeval run ...` (one process per GPU; rank 0 writes the results)."""
    import dataclasses

    from . import distributed
    from .config import RunConfig
    from .report import markdown_table
    from .runner import prepare, remove_if_empty, run_tasks

    from .options import set_run_env, split_tasks

    set_run_env(rehash=rehash, max_pixels=max_pixels)  # read by winoeval.fingerprint / winoeval.localdata

    task_names = split_tasks(tasks)  # a task given twice (blanks ignored) is refused before computing
    if not task_names:
        raise click.UsageError("give a task with --task/-t")
    from .groups import expand

    # task groups (compositional, zeroshot, @suite.txt) → their tasks, each with its --data-dir folder
    task_names, task_groups, group_dirs = expand(task_names, data_dir)

    scorer_args = {"n_samples": _ints(n_samples, "--n-samples"), "to_keep": _ints(to_keep, "--to-keep"),
                   "early_stop": early_stop, "confidence": confidence, "variance": early_variance, "noise": noise,
                   "timesteps": timesteps, "loss": loss, "normalize": normalize, "batch_size": batch_size,
                   "compile": compile_, "seed": seed}
    if not early_stop:
        scorer_args.pop("confidence")  # only early stopping reads it (warned about below)
        scorer_args.pop("variance")
    scorer_args = {k: v for k, v in scorer_args.items() if v is not None}
    config = RunConfig(model=model, task=task_names[0], scorer_args=scorer_args, device=device, dtype=dtype,
                       limit=limit, data_dir=data_dir, output_path=output_path, log_samples=log_samples,
                       log_errors=log_errors,
                       skip_bad=skip_bad, model_args=key_values(model_arg, "--model-arg"),
                       task_args=key_values(task_arg, "--task-arg"))
    prepared = []
    try:
        from .verbosity import status

        with status("preparing the run (settings, device, tasks, output folder)"):
            for name in task_names:
                task_config = dataclasses.replace(config, task=name, data_dir=group_dirs.get(name, data_dir))
                prepared.append(prepare(task_config))
        if confidence is not None and not early_stop:
            click.echo("warning: --confidence only applies with --early-stop; it is ignored", err=True)
        if early_variance is not None and not early_stop:
            click.echo("warning: --early-variance only applies with --early-stop; it is ignored", err=True)
        distributed.exit_with_parent()
        import time

        workers_since = time.time() if num_processes > 1 else None
        if num_processes > 1:
            distributed.run_workers(distributed.argv_from_params(ctx.command, ctx.params, {"num_processes", "quiet"}),
                                    num_processes)
        out = run_tasks(config, task_names, progress=not quiet and num_processes == 1, prepared=prepared,
                        workers_since=workers_since, groups=task_groups)
    except BaseException:
        for prep in prepared:
            remove_if_empty(prep)  # a failed run leaves no empty output folder behind (and no other's)
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
    from .verbosity import exit_now

    exit_now(0)  # the files are written and closed: skip the libraries' slow teardown


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

    for title, entries, flag in (("Models", registry.models(), "--model-arg"),
                                 ("Tasks", registry.tasks(), "--task-arg")):
        click.echo(f"{title}:")
        width = max((len(n) for n in entries), default=0)
        for name, entry in sorted(entries.items()):
            shown = f"{name}:…" if entry.takes_argument else name
            licence = f"  · licence: {entry.extras['licence']}" if entry.extras.get("licence") else ""
            click.echo(f"  {shown:<{width + 2}}  {entry.description}  [{entry.plugin}]{_weights_mark(entry)}{licence}")
            if show_options:
                for line in _option_lines(entry, flag, "      "):
                    click.echo(line)
        click.echo()
    from .groups import builtin_groups

    click.echo("Task groups (--task GROUP, or --task @FILE for your own):")
    for group, members in builtin_groups().items():
        click.echo(f"  {group}: {', '.join(members)}")


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
    for n, (kind, entry, flag) in enumerate(found):
        click.echo(("\n" if n else "")
                   + f"{entry.name}{':ARGUMENT' if entry.takes_argument else ''}  ({kind}, plugin {entry.plugin})")
        if entry.description:
            click.echo(f"  {entry.description}")
        for key in ("licence", "citation", "source", "group"):
            if entry.extras.get(key):
                click.echo(f"  {key}: {entry.extras[key]}")
        for line in _option_lines(entry, flag, "  "):
            click.echo(line)
        about = _about(entry)
        if about:
            click.echo(f"\n  About (from {about[0]}):")
            for line in about[1].splitlines():
                click.echo(f"    {line}".rstrip())


def _about(entry) -> tuple[str, str] | None:
    """The documentation of the module that defines a plugin's loader (its full description), or None."""
    import inspect

    module = inspect.getmodule(getattr(entry.loader, "__wrapped__", entry.loader))
    doc = inspect.getdoc(module) if module is not None else None
    return (module.__name__, doc.strip()) if doc and doc.strip() else None


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
@click.option("--guidance", default=2.0, show_default=True, type=FINITE_FLOAT,
              help="Classifier-free guidance weight w.")
@click.option("--n", "n", default=16, show_default=True, type=click.IntRange(min=1), help="Number of samples.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="PNG grid to write.")
@verbosity_options
def sample(model, label, guidance, n, seed, device, out, quiet) -> None:
    """Draw class-conditional samples with classifier-free guidance, as a PNG grid."""
    import os
    from pathlib import Path

    from . import registry
    from .config import RunConfig, check_device

    folder = Path(out).expanduser().resolve().parent  # checked before minutes of sampling, not after
    if not folder.is_dir():
        raise click.UsageError(f"--out {out}: the folder {str(folder)!r} does not exist; "
                               f"create it or pick another path")
    if not os.access(folder, os.W_OK):
        raise click.UsageError(f"--out {out}: the folder {str(folder)!r} is not writable")
    entry, arg = registry.resolve("model", model)
    config = RunConfig(model=model, task="-", device=device)
    check_device(device)
    from .verbosity import status

    with status(f"loading model {model}", f"model {model} loaded"):
        loaded = entry.loader(arg, config)
    if not hasattr(loaded, "sample"):
        raise click.UsageError(f"model {model!r} cannot sample (its plugin has no sample())")
    if hasattr(loaded, "encode_texts"):
        try:
            loaded.encode_texts([label])  # an unknown label fails now, in one line
        except (ValueError, KeyError) as exc:
            raise click.UsageError(f"--label {label!r}: {exc}") from None
    from .sampling import accepts, make_grid, sample_title

    from .verbosity import exit_now, status

    extra = {"progress": not quiet} if accepts(loaded.sample, "progress") else {}  # a tqdm bar over the steps
    with status(f"sampling {n} of {label!r} at guidance {guidance:g}", "sampled"):
        images = loaded.sample(label=label, n=n, guidance=guidance, seed=seed, **extra)
    # a plugin may draw its n samples into one figure (toy2d's scatter plots): the title counts samples
    make_grid(images, sample_title(model, label, guidance, seed, n)).save(out)
    shown = f"{n} samples" if len(images) == n else f"{n} samples in {len(images)} figure(s)"
    click.echo(f"wrote {shown} of {label!r} to {out}")
    exit_now(0)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def entry() -> None:
    """The ``winoeval`` command (console script and ``python -m winoeval``): :func:`main`, ending the
    process as soon as a command's outputs are written (no slow library teardown)."""
    main(fast_exit=True)


def main(fast_exit: bool = False) -> None:
    """The command line in this process. ``fast_exit`` (only for the real entry point, :func:`entry`) lets
    a finished command end the process with ``os._exit``; called in-process (tests, scripts), it returns."""
    import os
    import warnings

    # Idle OpenMP threads sleep instead of spinning: on a shared CPU spinning threads fight the other
    # jobs (measured here: 35x slower U-Net batches next to a training job). Set it to override.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    warnings.formatwarning = _one_line_warning
    from . import verbosity

    if fast_exit:
        verbosity.enable_fast_exit()
    try:
        cli(prog_name="winoeval")
    except Exception as exc:  # the last resort: no path dumps a traceback on a user
        if os.environ.get("WINOEVAL_DEBUG", "") not in ("", "0"):
            raise
        mapped = as_click_error(exc)  # a winoeval error raised outside a winoeval command (a lazy one)
        if mapped is not None:
            mapped.show()
            sys.exit(mapped.exit_code)
        message = " ".join(str(exc).split()) or "(no message)"
        click.echo(f"Error: {type(exc).__name__}: {message}\n(an unexpected error; set WINOEVAL_DEBUG=1 for the "
                   f"traceback, and please report it)", err=True)
        sys.exit(1)
    finally:
        verbosity.disable_fast_exit()  # never left on for whatever runs next in this process


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())
