"""The ``winoeval compare`` and ``winoeval calibrate`` commands: the top layer.

Below them, bottom up: :mod:`winoeval.results` loads runs (results file + per-example samples) and
checks that they can be compared; :mod:`winoeval.comparison` and :mod:`winoeval.calibration` compute
the statistics; :mod:`winoeval.report` (markdown, CSV, JSON), :mod:`winoeval.html_report` and
:mod:`winoeval.plot` render them. Each module imports only modules below it.

Only click and the standard library are imported at module level (``winoeval --help`` lists these
commands); numpy, scipy, matplotlib and PIL are imported inside the functions that need them.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .calibration import N_BINS
from .verbosity import options as verbosity_options
from .results import CompareError, check_runs, load_file_runs, load_runs, pick_results, unique_labels


class CompareUsageError(click.ClickException):
    """Runs that cannot be compared (different tasks, no samples file, ...): bad input, exit status 2."""

    exit_code = 2


@click.command(name="compare")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--pairs", type=click.Choice(["first", "all"]), default="first", show_default=True,
              help="Test the first run against each other one, or every pair.")
@click.option("--strict", is_flag=True,
              help="Refuse when the runs' example sets differ (default: compare the shared ones).")
@click.option("--label", "labels", multiple=True,
              help="Name of each run in the tables (repeat once per run, in order).")
@click.option("--n-boot", default=10_000, show_default=True, type=click.IntRange(min=100),
              help="Paired bootstrap resamples.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Write grouped bars with 95 % intervals, n per group, McNemar marks against the first run and "
                   "chance lines (.png, .pdf or .svg, by the suffix).")
@click.option("--by", "plot_by", multiple=True, metavar="KEY",
              help="--plot: only these breakdowns, e.g. --by collapsed_tag (repeatable or a,b; none: only all) "
                   "[every breakdown].")
@click.option("--plot-size", type=click.Choice(["column", "page", "slide"]), default="page", show_default=True,
              help="--plot: a paper column (3.4 in), the text width (7 in) or a slide (12 in, large type).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Write a self-contained HTML report: summary, paired differences with ids, every example "
                   "(images, captions, scores, verdicts) and a filter; FILE#show=disagree opens the filtered view.")
@click.option("--data-dir", type=click.Path(),
              help="Where the task's data is, for the HTML images [the run's --data-dir].")
@click.option("--no-images", is_flag=True, help="HTML report without images (no dataset access).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write one row per example × model (CSV).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Write the whole comparison as JSON (full id lists).")
@click.option("--calibrate", is_flag=True,
              help="Classification runs: also fit a softmax temperature per run and report ECE/NLL before and after.")
@click.option("--task", "only_tasks", multiple=True,
              help="Results files of several tasks: compare only this task (repeatable) [every task they share].")
@verbosity_options
def compare_command(results, pairs, strict, labels, n_boot, seed, plot_path, plot_by, plot_size, html_path, data_dir,
                    no_images, csv_path, json_path, calibrate, only_tasks, quiet) -> None:
    """Compare runs of one task: scores side by side and paired tests on the shared examples.

    RESULTS are results_<stamp>.json files (or output directories) of runs made with --log-samples.
    Prints markdown: each metric overall and per tag with 95 % intervals, then for each pair of runs
    the difference with an exact McNemar test, a paired bootstrap interval, and the examples that
    one model gets right and the other wrong. Results files of several tasks (a task group) are
    compared task by task (each output file then gets the task's name before its extension), then
    in one table of every task's headline score, and --plot also draws that table as one figure.
    """
    from .options import check_output_file

    for path, option in ((plot_path, "--plot"), (html_path, "--html"), (csv_path, "--csv"), (json_path, "--json")):
        check_output_file(path, option)  # before any work, not after it
    try:
        files = [f for p in results for f in pick_results(Path(p))]  # a folder: the newest run of each model
        if len(files) < 2:
            raise click.UsageError(f"compare needs at least two runs, got {len(files)} ({', '.join(map(str, files))}): "
                                   f"pass two results files or folders (e.g. `winoeval compare runs/sd2 "
                                   f"runs/openclip`), or a folder holding runs of two models")
        per_file = [load_file_runs(f) for f in files]
        groups = _task_groups(per_file, only_tasks)
    except CompareError as exc:
        raise CompareUsageError(str(exc)) from None
    several = len(groups) > 1
    comps = []
    for k, (task, runs) in enumerate(groups):
        if several:
            click.echo(("\n" if k else "") + f"# task {task}\n")
        outputs = {key: _per_task(path, task) if several and path else path
                   for key, path in (("plot", plot_path), ("html", html_path), ("csv", csv_path), ("json", json_path))}
        comps.append((task, _compare_runs(runs, labels=labels, pairs=pairs, strict=strict, n_boot=n_boot, seed=seed,
                                          data_dir=data_dir, no_images=no_images, calibrate=calibrate,
                                          plot_by=plot_by or None, plot_size=plot_size, **outputs)))
    if several:  # runs of several tasks (a task group): every task's headline in one table and one plot
        from .groups import overview, overview_markdown, write_overview_plot
        from .plot import chance_level

        ov = overview(comps, chance_level)
        click.echo("\n" + overview_markdown(ov))
        if plot_path:
            from .verbosity import status

            with status(f"rendering {plot_path}"):
                write_overview_plot(plot_path, ov)
            click.echo(f"wrote {plot_path} (all tasks)", err=True)
    from .verbosity import exit_now

    exit_now(0)


def _per_task(path: str, task: str) -> str:
    """``cmp.html`` → ``cmp_<task>.html`` (the task's name as a file name)."""
    from .results import safe_name

    p = Path(path)
    return str(p.with_name(f"{p.stem}_{safe_name(task)}{p.suffix}"))


def _task_groups(per_file, only_tasks=()) -> list[tuple[str, list]]:
    """(task, one run per results file) for each task that every file holds, in the first file's order."""
    names = [[run.task for run in runs] for runs in per_file]
    for wanted in only_tasks:
        for runs, tasks in zip(per_file, names):
            if wanted not in tasks:
                raise CompareError(f"--task {wanted}: {runs[0].path} has no such task (it holds {', '.join(tasks)})")
    common = [t for t in names[0] if all(t in other for other in names[1:]) and (not only_tasks or t in only_tasks)]
    if not common:
        if all(len(tasks) == 1 for tasks in names):
            check_runs([runs[0] for runs in per_file])  # says which runs are on which task
        listing = "; ".join(f"{runs[0].path} holds {', '.join(tasks)}" for runs, tasks in zip(per_file, names))
        raise CompareError(f"the results files share no task: {listing}. Paired tests need the same examples.")
    left = sorted({t for tasks in names for t in tasks} - set(common))
    if left and not only_tasks:
        click.echo(f"note: not in every results file, so not compared: {', '.join(left)}", err=True)
    return [(task, [next(r for r in runs if r.task == task) for runs in per_file]) for task in common]


def _compare_runs(runs, *, labels, pairs, strict, n_boot, seed, data_dir, no_images, calibrate, plot, html, csv,
                  json, plot_by=None, plot_size="page") -> None:
    json_path = json
    try:
        unique_labels(runs, labels)
        shared = check_runs(runs, strict=strict)
    except CompareError as exc:
        raise CompareUsageError(str(exc)) from None
    from .comparison import build_comparison
    from .report import calibration_markdown, json_safe, markdown_report, write_csv

    comp = build_comparison(runs, shared, pairs=pairs, n_boot=n_boot, seed=seed)
    if plot:
        from .plot import FORMATS, check_by

        try:  # before any output: a typo in --by or the suffix is a usage error, not a half-written report
            check_by(comp, plot_by)
        except ValueError as exc:
            raise CompareUsageError(str(exc)) from None
        if Path(plot).suffix.lower() not in FORMATS:
            raise CompareUsageError(f"--plot {plot}: write .png, .pdf or .svg (the format follows the suffix)")
    click.echo(markdown_report(comp))
    if calibrate:
        from .calibration import CalibrationError, calibrate as fit

        if comp["metric"] != "classification":
            click.echo(f"\nnote: --calibrate applies to classification runs only; skipped for {comp['task']}", err=True)
        else:
            try:
                reps = [(run.label, fit([run.records[i] for i in shared.ids], seed=seed)) for run in runs]
            except CalibrationError as exc:
                raise CompareUsageError(f"--calibrate: {exc}") from None
            comp["calibration"] = {name: rep.to_dict() for name, rep in reps}
            click.echo("\nCalibration (temperature fitted on a seeded half of the shared examples):\n")
            click.echo(calibration_markdown(reps))
    if csv:
        n = write_csv(csv, runs, shared.ids)
        click.echo(f"wrote {csv} ({n} rows)", err=True)
    if json_path:
        import json as json_module

        Path(json_path).write_text(json_module.dumps(json_safe(comp), indent=2, allow_nan=False) + "\n",
                                   encoding="utf-8")
        click.echo(f"wrote {json_path}", err=True)
    if plot:
        from .plot import write_plot
        from .verbosity import status

        with status(f"rendering {plot}"):
            write_plot(plot, comp, by=plot_by, size=plot_size)
        click.echo(f"wrote {plot}", err=True)
    if html:
        from .html_report import load_images, write_html

        from .verbosity import status

        images, class_names, warning = {}, None, None
        if not no_images:
            with status(f"loading the images of {len(shared.ids)} examples for {html}"):
                images, class_names, warning = load_images(runs[0], shared.ids, data_dir)
        if warning:
            click.echo(f"warning: {warning}", err=True)
        write_html(html, comp, runs, shared.ids, images, class_names)
        click.echo(f"wrote {html}", err=True)
    return comp


@click.command(name="calibrate")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--fit-fraction", default=0.5, show_default=True, type=float,
              help="Part of the examples the temperature is fitted on; the rest is held out.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fit/held-out split.")
@click.option("--bins", "n_bins", default=N_BINS, show_default=True, type=click.IntRange(min=1),
              help="ECE bins (equal width), at least 1.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the reports as JSON.")
@verbosity_options
def calibrate_command(results, fit_fraction, seed, n_bins, json_path, quiet) -> None:
    """Fit the softmax temperature τ of classification runs (p = softmax(score/τ)).

    RESULTS are results_<stamp>.json files of runs made with --log-samples. Prints τ, and the
    expected calibration error and NLL before (τ = 1) and after, on held-out examples.
    """
    from .calibration import CalibrationError, calibrate
    from .options import check_output_file
    from .report import calibration_markdown

    check_output_file(json_path, "--json")
    reports = []
    try:
        runs = []
        for path in results:
            found = load_runs(path)
            usable = [run for run in found if run.metric == "classification"]
            if not usable:
                listing = ", ".join(f"{run.task} ({run.metric})" for run in found)
                raise CalibrationError(f"{found[0].path} holds no classification run ({listing}): calibration "
                                       f"needs a classification run")
            if len(found) > 1:  # a run of several tasks: name each by model and task
                for run in usable:
                    run.label = f"{run.label} / {run.task}"
            runs += usable
        unique_labels(runs)
        for run in runs:
            reports.append((run.label, run.path, calibrate(list(run.records.values()), fit_fraction, seed, n_bins)))
    except (CompareError, CalibrationError) as exc:
        raise CompareUsageError(str(exc)) from None
    click.echo(calibration_markdown([(name, rep) for name, _, rep in reports]))
    if json_path:
        payload = [{"model": name, "results": str(path), **rep.to_dict()} for name, path, rep in reports]
        Path(json_path).write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        click.echo(f"wrote {json_path}", err=True)
    from .verbosity import exit_now

    exit_now(0)
