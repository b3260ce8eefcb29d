"""Run the benchmark suite: ``python -m benchmarks [--only NAME[,NAME]] [--quick] [--dry-run]``.

Each benchmark writes ``benchmarks/results/<name>.json``; then ``BENCHMARKS.md`` is regenerated from
every results file present (so ``--only`` refreshes one section and keeps the others).
``--render`` only regenerates ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import sys
import time
import traceback

from .common import RESULTS, WORK, git_hash, log, machine, versions

BENCHMARKS = ["early_decision", "overhead", "original_loop", "startup", "memory", "cpu_tuning"]


def extra_benchmarks() -> list[str]:
    """Other modules of this folder that define a benchmark (``NAME = ...`` and ``run``): runnable with
    ``--only``, not part of the default suite (e.g. the long MNIST accuracy runs)."""
    import re
    from pathlib import Path

    out = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.stem.startswith("_") or path.stem in BENCHMARKS or path.stem in ("common", "report"):
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"^NAME = ", text, re.M) and re.search(r"^def run\(", text, re.M):
            out.append(path.stem)
    return out


def command_line(argv: list[str]) -> str:
    return " ".join(["python -m benchmarks", *argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated names (default suite: {', '.join(BENCHMARKS)}; "
                                       f"more with --list)")
    parser.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run, minutes)")
    parser.add_argument("--digits", type=int, help="early_decision: number of held-out MNIST digits [100; quick 20]")
    parser.add_argument("--dry-run", action="store_true",
                        help="benchmarks that support it (gpu): the same code on the CPU at toy sizes; results go to "
                             "$WINOEVAL_BENCH_TMP/dry-run/NAME.json and BENCHMARKS.md is left alone")
    parser.add_argument("--render", action="store_true", help="only regenerate BENCHMARKS.md from the results")
    parser.add_argument("--list", action="store_true", help="list the benchmarks")
    args = parser.parse_args(argv)
    extras = extra_benchmarks()
    if args.list:
        print("\n".join(BENCHMARKS + [f"{n}  (not in the default suite)" for n in extras]))
        return 0
    names = BENCHMARKS if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS + extras]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS + extras)}")
    failed = []
    results_dir = WORK / "dry-run" if args.dry_run else RESULTS
    if args.dry_run and args.render:
        parser.error("--dry-run and --render do not go together (a dry run never touches BENCHMARKS.md)")
    if not args.render:
        import inspect

        results_dir.mkdir(parents=True, exist_ok=True)
        suite_start = time.time()
        for name in names:
            module = importlib.import_module(f"benchmarks.{name}")
            params = inspect.signature(module.run).parameters
            if args.dry_run and "dry_run" not in params:
                log(f"{name}: has no --dry-run; skipped")
                continue
            log(f"{name}: start")
            started = time.time()
            info = machine()
            path = results_dir / f"{name}.json"

            def save(data, name=name, module=module, started=started, info=info, path=path):
                result = {
                    "name": name, "title": module.TITLE, "command": command_line(argv), "quick": args.quick,
                    "dry_run": args.dry_run, "date": _dt.datetime.now().isoformat(timespec="seconds"),
                    "wall_seconds": round(time.time() - started, 1), "machine": info, "versions": versions(),
                    "git": git_hash(), "data": data,
                }
                tmp = path.with_suffix(".json.tmp")
                tmp.write_text(json.dumps(result, indent=1, default=str) + "\n")
                tmp.replace(path)
                return result

            extra = {}
            if args.digits and "digits" in params:
                extra["digits"] = args.digits
            if args.dry_run:
                extra["dry_run"] = True
            if "save" in params:  # long benchmarks save after every section: a killed run keeps them
                extra["save"] = save
            try:
                data = module.run(quick=args.quick, **extra)
            except Exception:  # one broken benchmark must not lose the others' results
                traceback.print_exc()
                failed.append(name)
                continue
            result = save(data)
            broken = [n for n, r in (data.get("sections") or {}).items() if r.get("status") not in ("ok", "skipped")] \
                if isinstance(data, dict) else []
            if args.dry_run and broken:  # a dry run exists to catch these
                log(f"{name}: sections failed: {', '.join(broken)}")
                failed.append(name)
            log(f"{name}: done in {result['wall_seconds']:.0f} s -> {path}")
        log(f"suite: {time.time() - suite_start:.0f} s")
    if args.dry_run:
        return 1 if failed else 0
    from .report import write_report

    path = write_report(BENCHMARKS, extras)
    log(f"wrote {path}")
    if failed:
        log(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
