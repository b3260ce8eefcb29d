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
from .results import CompareError, check_runs, load_run, unique_labels


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
              help="Write grouped bars with 95 % intervals (PNG).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Write a self-contained HTML report: every example, its images, captions, scores and verdicts.")
@click.option("--data-dir", type=click.Path(),
              help="Where the task's data is, for the HTML images [the run's --data-dir].")
@click.option("--no-images", is_flag=True, help="HTML report without images (no dataset access).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write one row per example × model (CSV).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Write the whole comparison as JSON (full id lists).")
@click.option("--calibrate", is_flag=True,
              help="Classification runs: also fit a softmax temperature per run and report ECE/NLL before and after.")
def compare_command(results, pairs, strict, labels, n_boot, seed, plot_path, html_path, data_dir, no_images,
                    csv_path, json_path, calibrate) -> None:
    """Compare runs of one task: scores side by side and paired tests on the shared examples.

    RESULTS are results_<stamp>.json files (or output directories) of runs made with --log-samples.
    Prints markdown: each metric overall and per tag with 95 % intervals, then for each pair of runs
    the difference with an exact McNemar test, a paired bootstrap interval, and the examples that
    one model gets right and the other wrong.
    """
    try:
        runs = [load_run(p) for p in results]
        unique_labels(runs, labels)
        shared = check_runs(runs, strict=strict)
    except CompareError as exc:
        raise click.ClickException(str(exc)) from None
    from .comparison import build_comparison
    from .report import calibration_markdown, json_safe, markdown_report, write_csv

    comp = build_comparison(runs, shared, pairs=pairs, n_boot=n_boot, seed=seed)
    click.echo(markdown_report(comp))
    if calibrate:
        from .calibration import CalibrationError, calibrate as fit

        if comp["metric"] != "classification":
            click.echo("\nnote: --calibrate applies to classification runs only; skipped", err=True)
        else:
            try:
                reps = [(run.label, fit([run.records[i] for i in shared.ids], seed=seed)) for run in runs]
            except CalibrationError as exc:
                raise click.ClickException(f"--calibrate: {exc}") from None
            comp["calibration"] = {name: rep.to_dict() for name, rep in reps}
            click.echo("\nCalibration (temperature fitted on a seeded half of the shared examples):\n")
            click.echo(calibration_markdown(reps))
    if csv_path:
        n = write_csv(csv_path, runs, shared.ids)
        click.echo(f"wrote {csv_path} ({n} rows)", err=True)
    if json_path:
        Path(json_path).write_text(json.dumps(json_safe(comp), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        click.echo(f"wrote {json_path}", err=True)
    if plot_path:
        from .plot import write_plot

        write_plot(plot_path, comp)
        click.echo(f"wrote {plot_path}", err=True)
    if html_path:
        from .html_report import load_images, write_html

        images, class_names, warning = ({}, None, None) if no_images else load_images(runs[0], shared.ids, data_dir)
        if warning:
            click.echo(f"warning: {warning}", err=True)
        write_html(html_path, comp, runs, shared.ids, images, class_names)
        click.echo(f"wrote {html_path}", err=True)


@click.command(name="calibrate")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--fit-fraction", default=0.5, show_default=True, type=float,
              help="Part of the examples the temperature is fitted on; the rest is held out.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fit/held-out split.")
@click.option("--bins", "n_bins", default=N_BINS, show_default=True, type=int, help="ECE bins (equal width).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the reports as JSON.")
def calibrate_command(results, fit_fraction, seed, n_bins, json_path) -> None:
    """Fit the softmax temperature τ of classification runs (p = softmax(score/τ)).

    RESULTS are results_<stamp>.json files of runs made with --log-samples. Prints τ, and the
    expected calibration error and NLL before (τ = 1) and after, on held-out examples.
    """
    from .calibration import CalibrationError, calibrate
    from .report import calibration_markdown

    reports = []
    try:
        runs = [load_run(path) for path in results]
        unique_labels(runs)
        for run in runs:
            if run.metric != "classification":
                raise CalibrationError(f"{run.path} is a {run.metric} run ({run.task}): calibration needs a "
                                       f"classification run")
            reports.append((run.label, run.path, calibrate(list(run.records.values()), fit_fraction, seed, n_bins)))
    except (CompareError, CalibrationError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(calibration_markdown([(name, rep) for name, _, rep in reports]))
    if json_path:
        payload = [{"model": name, "results": str(path), **rep.to_dict()} for name, path, rep in reports]
        Path(json_path).write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        click.echo(f"wrote {json_path}", err=True)
