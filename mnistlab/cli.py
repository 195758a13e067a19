"""Command line: ``python -m mnistlab train|runs|show|report|export|import|delete|doctor|archs``.

``train``'s configuration options are built from :data:`mnistlab.runs.config.FIELDS`, the one
table of configuration constraints: one ``--name`` per field (``batch_size`` is
``--batch-size``), its help says the allowed values and the default (or what leaving it unset
means), and the values are checked by :class:`RunConfig`, so a bad value gets the table's
message. Every command takes ``--json`` for scripts.

Exit status: 0 done; 2 a usage error (bad arguments or configuration, a data source, limit or
bundle that is refused, an unknown run id); 1 a failure while doing it (the store cannot be read
or written, a broken run, a read-only instance, the disk); 130 interrupted or cancelled. Errors are
one line on stderr, ``mnistlab: error: ...``, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from mnistlab.datasets.mnist import default_source
from mnistlab.errors import MnistlabError
from mnistlab.models.architectures import ARCHITECTURES, count_params, flops, summarize
from mnistlab.runs.config import FIELDS, TASKS, Field, RunConfig, arch_field
from mnistlab.views.text import plural


#: How the user called us: ``mnistlab`` (the installed command) or ``python -m mnistlab``.
PROG = "mnistlab" if os.path.basename(sys.argv[0] or "") == "mnistlab" else "python -m mnistlab"


class UsageError(Exception):
    """Bad command-line usage (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train, list and inspect MNIST runs; `serve` starts the dashboard.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser, store: bool = True) -> None:
        if store:
            p.add_argument("--store", help="run store folder (default: $MNISTLAB_STORE, else cache/runs in a "
                           "checkout or ~/.local/share/mnistlab/runs when installed)")
        p.add_argument("--json", action="store_true", help="print JSON for scripts")

    train = sub.add_parser("train", help="train one configuration (or return it from the store)")
    for name, field in FIELDS.items():  # one option per field of the table; RunConfig checks the values
        field = arch_field() if name == "arch" else field
        train.add_argument(_flag(name), dest=name, default=None, metavar=_metavar(field), help=_field_help(field))
    train.add_argument("--data", default=None,
                       help="auto, sample or a path to an MNIST .npz (default: $MNISTLAB_DATA or auto)")
    common(train)

    runs = sub.add_parser("runs", help="list stored runs")
    common(runs)
    show = sub.add_parser("show", help="one run's configuration, history and metrics")
    show.add_argument("run_id")
    common(show)
    def on_runs(name: str, help: str, output: str | None = None) -> None:
        """A subcommand that takes run ids (and, with ``output``, a file to write)."""
        command = sub.add_parser(name, help=help)
        command.add_argument("run_ids", nargs="+", metavar="RUN_ID")
        if output is not None:
            command.add_argument("-o", "--output", default=output, help=f"where to write it (default {output})")
        common(command)

    on_runs("report", "a standalone HTML report comparing runs", output="report.html")
    on_runs("export", "write runs into a .zip bundle", output="runs.zip")
    imp = sub.add_parser("import", help="import the runs of a .zip bundle")
    imp.add_argument("bundle")
    common(imp)
    on_runs("delete", "delete stored runs")
    doctor = sub.add_parser("doctor", help="check the store (broken runs, leftovers, live state); --repair fixes")
    doctor.add_argument("--repair", action="store_true", help="move broken runs to .broken/, remove leftovers, "
                        "requeue runs whose worker died")
    common(doctor)
    archs = sub.add_parser("archs", help="architectures with their parameter counts")
    archs.add_argument("--task", default=None, metavar=_metavar(FIELDS["task"]),
                       help=f"{FIELDS['task'].allowed} (default: all)")
    common(archs, store=False)
    serve = sub.add_parser("serve", help="start the dashboard in the browser (Streamlit)")
    serve.add_argument("--port", type=int, default=8501, help="port to listen on (default: 8501)")
    serve.add_argument("--address", default=None,
                       help="address to listen on (default: 127.0.0.1, this machine only; with --read-only "
                            "0.0.0.0, every network interface)")
    serve.add_argument("--read-only", action="store_true",
                       help="viewers browse, compare and inspect; training, deleting and importing are off")
    serve.add_argument("--store", help="run store folder (default: $MNISTLAB_STORE, else cache/runs in a "
                       "checkout or ~/.local/share/mnistlab/runs when installed)")
    _sweep_parsers(sub, common)
    return parser


def _flag(name: str) -> str:
    """The option of a configuration field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def _metavar(field: Field) -> str:
    return "{" + ",".join(field.choices) + "}" if field.kind == "choice" else ("N" if field.kind == "int" else "X")


def _field_help(field: Field) -> str:
    """The table's help, allowed values and default (or what unset means), for argparse (``%`` escaped)."""
    default = field.unset if field.default is None else field.default
    return f"{field.help}; {field.allowed} (default: {default})".replace("%", "%%")


def _store(args):
    from mnistlab.runs.store import RunStore

    return RunStore(args.store)


def _number(value: Any) -> Any:
    if value is None:
        return None
    text = str(value)
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _config(args) -> RunConfig:
    """The options given (numbers as numbers), the table's defaults for the rest; RunConfig checks them."""
    given = {name: getattr(args, name) for name in FIELDS if getattr(args, name) is not None}
    values = {name: value if FIELDS[name].kind == "choice" else _number(value) for name, value in given.items()}
    return RunConfig(**values, data=args.data or default_source())


def _epoch_line(record: dict, total: int) -> str:
    parts = [f"epoch {record['epoch']:>3}/{total}"]
    for key, name in (("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc")):
        if record.get(key) is not None:
            parts.append(f"{name} {record[key]:.4f}")
    parts.append(f"{record['seconds']:.1f}s")
    return "  ".join(parts)


def _run_json(run) -> dict:
    return {"run_id": run.run_id, "label": run.label, "config": run.config.to_dict(), "metrics": run.metrics}


def cmd_train(args) -> int:
    from mnistlab.models.training import Cancelled

    config = _config(args)
    store = _store(args)
    log = sys.stderr if args.json else sys.stdout

    def on_epoch(record, history):
        print(_epoch_line(record, config.epochs), file=log, flush=True)

    waiting = []

    def on_wait(progress):
        if not waiting:
            print("another process is training this configuration; waiting for it", file=log, flush=True)
            waiting.append(True)

    resolved = store.resolve(config)
    source = resolved.source
    rate = "" if config.learning_rate is not None else f" · lr {config.effective_learning_rate:g} (default)"
    print(f"{config.label()}{rate}  (data: {source.title})", file=log, flush=True)
    if source.kind == "sample" and config.data == "auto":
        from mnistlab.datasets.mnist import FULL_MNIST_HINT

        print(f"note: {source.reason}. {FULL_MNIST_HINT[0].upper()}{FULL_MNIST_HINT[1:]}.", file=sys.stderr,
              flush=True)
    stored = store.lookup(resolved.run_id)
    if stored is None:  # about to train: say what is odd first, refuse what cannot work
        from mnistlab.runs.checks import preflight

        checked = preflight(resolved, store.list_runs().runs)
        if checked.errors:
            raise UsageError("; ".join(checked.errors))
        for warning in checked.warnings:
            print(f"note: {warning}", file=sys.stderr, flush=True)
        from mnistlab.models.runtime import import_tensorflow

        import_tensorflow()  # its start-up chatter kept off the terminal
    try:
        obtained = store.get_or_train(config, on_epoch=on_epoch, on_wait=on_wait)
    except Cancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    run = obtained.run
    status = "cached" if obtained.cached else "trained"
    if args.json:
        print(json.dumps({"status": status, **_run_json(run)}))
    elif not run.is_finished:
        print(f"{status}: run {run.run_id} diverged: {run.metrics['message']}; its history is stored. "
              "Try a smaller --learning-rate.")
    else:
        seconds = run.metrics["timings"]["fit_seconds"]
        print(f"{status}: run {run.run_id}  test accuracy {run.metrics['test_accuracy']:.4f}"
              f"  test loss {run.metrics['test_loss']:.4f}  ({run.kept_description()}; training took "
              f"{seconds:.1f}s)")
    return 0


def cmd_runs(args) -> int:
    listing = _store(args).list_runs()
    rows = [run.summary_row() for run in listing.runs]
    if args.json:
        print(json.dumps({"runs": rows, "broken": [{"run_id": b.run_id, "reason": b.reason} for b in listing.broken]}))
        return 0
    if not rows and not listing.broken:
        print(f"no runs in {_store(args).root}; train one with: {PROG} train --data sample --epochs 1")
    for row in rows:
        figure = f"test acc {row['test_accuracy']:.4f}" if row["status"] == "finished" else "diverged       "
        print(f"{row['run_id']}  {figure}  {row['label']}")
    for broken in listing.broken:
        print(f"{broken.run_id:16}  broken: {broken.reason}")
    return 0


def _load(store, run_id: str):
    from mnistlab.runs.store import check_run_id

    run_id = check_run_id(run_id.strip().lower())
    try:  # a broken run raises BrokenRun: exit status 1, naming the reason
        return store.load(run_id)
    except KeyError:
        raise UsageError(f"no run {run_id} in {store.root}; list runs with: {PROG} runs") from None


def cmd_report(args) -> int:
    from mnistlab.views.report import comparison_report

    store = _store(args)
    runs = [_load(store, run_id) for run_id in args.run_ids]
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(comparison_report(runs))
    print(json.dumps({"report": args.output, "runs": [r.run_id for r in runs]}) if args.json
          else f"wrote {args.output} ({len(runs)} runs)")
    return 0


def cmd_export(args) -> int:
    from mnistlab.runs.bundles import export_bundle

    store = _store(args)
    runs = [_load(store, run_id) for run_id in args.run_ids]
    payload = export_bundle(store, [r.run_id for r in runs])
    with open(args.output, "wb") as fh:
        fh.write(payload)
    print(json.dumps({"bundle": args.output, "runs": [r.run_id for r in runs], "bytes": len(payload)}) if args.json
          else f"wrote {args.output} ({plural(len(runs), 'run')}, {len(payload) / 2**20:.1f} MB)")
    return 0


def cmd_import(args) -> int:
    from mnistlab.runs.bundles import import_bundle

    imported, present = import_bundle(_store(args), args.bundle)
    print(json.dumps({"imported": imported, "already_present": present}) if args.json
          else f"imported {plural(len(imported), 'run')}; {len(present)} already in the store")
    return 0


def cmd_delete(args) -> int:
    from mnistlab.runs.store import check_run_id

    store = _store(args)
    run_ids = [check_run_id(run_id.strip().lower()) for run_id in args.run_ids]
    missing = [run_id for run_id in run_ids if not store.run_path(run_id).exists()]
    if missing:
        raise UsageError(f"no run {', '.join(missing)} in {store.root}; nothing was deleted")
    for run_id in run_ids:
        store.delete(run_id)
    print(json.dumps({"deleted": run_ids}) if args.json else f"deleted {plural(len(run_ids), 'run')}")
    return 0


def cmd_show(args) -> int:
    store = _store(args)
    run = _load(store, args.run_id)
    if args.json:
        print(json.dumps({**_run_json(run), "history": run.history}))
        return 0
    print(f"run {run.run_id}: {run.label}")
    for key, value in run.config.to_dict().items():
        print(f"  {key:16} {_shown_value(run, key, value)}")
    for record in run.history:
        print("  " + _epoch_line(record, run.config.epochs))
    m = run.metrics
    if run.is_finished:
        print(f"  test accuracy {m['test_accuracy']:.4f}  test loss {m['test_loss']:.4f}  "
              f"({run.kept_description()})")
    else:
        print(f"  {run.kept_description()}")
    print(f"  data: {m['data']['title']} ({m['data']['fingerprint']})")
    return 0


def _shown_value(run, key: str, value: Any) -> str:
    """A configuration value as a person reads it: unset fields say what they mean, never "None"."""
    if value is not None:
        return str(value)
    canonical = getattr(run, "canonical", None) or {}
    if key == "learning_rate":
        return f"{run.config.effective_learning_rate:g} ({run.config.optimizer}'s default)"
    if key in ("validation_size", "train_size") and canonical.get(key) is not None:
        return f"{canonical[key]:,} (default)" if isinstance(canonical[key], int) else f"{canonical[key]:g} (default)"
    if key == "patience":
        return "none (no early stopping)"
    field = FIELDS.get(key)
    return f"unset ({field.unset})" if field is not None and field.unset else "unset"


def cmd_doctor(args) -> int:
    store = _store(args)
    report = store.doctor(repair=args.repair)
    if args.json:
        print(json.dumps(report.as_dict()))
        return 0
    print(f"{store.root}: {plural(report.runs, 'run')}, {len(report.broken)} broken")
    for broken in report.broken:
        print(f"  broken {broken.run_id}: {broken.reason}")
    for old, new in report.migrated:
        print(f"  converted from an earlier version: {old} is now {new} (the old id still opens it)")
    for run_id, where in report.duplicates:
        print(f"  duplicate of {run_id} set aside in {where}")
    for name in report.leftovers:
        print(f"  leftover .tmp/{name}")
    active = {k: v for k, v in report.live.items() if v}
    if active:
        print("  live state: " + ", ".join(f"{v} {k}" for k, v in active.items()))
    for line in report.notes + report.repaired:
        print(f"  {line}")
    if not args.repair and (report.broken or report.leftovers):
        print(f"repair with: {PROG} doctor --repair (broken runs are moved to .broken/, not deleted)")
    return 0


def cmd_archs(args) -> int:
    tasks = [args.task] if args.task else list(TASKS)
    tasks = [FIELDS["task"].check(task, "--task") for task in tasks]
    table = [
        {"arch": name, "description": spec.description, "task": task, "params": count_params(name, task),
         "flops": flops(name, task),
         "layers": [{**row, "output_shape": list(row["output_shape"])} for row in summarize(name, task)]}
        for name, spec in ARCHITECTURES.items()
        for task in tasks
    ]
    if args.json:
        print(json.dumps(table))
        return 0
    for row in table:
        print(f"{row['arch']:12} {row['task']:7} {row['params']:>10,} params {row['flops'] / 1e6:>7.2f} MFLOPs  "
              f"{row['description']}")
    return 0


def app_folder():
    """The dashboard's folder: the checkout's root when running from one, else the installed
    ``mnistlab_app`` data package (streamlit_app.py, pages/, .streamlit/config.toml)."""
    import importlib.util
    from pathlib import Path

    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "streamlit_app.py").is_file() and (checkout / "pages").is_dir():
        return checkout
    spec = importlib.util.find_spec("mnistlab_app")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(location) / "streamlit_app.py").is_file():
            return Path(location)
    raise MnistlabError("the dashboard's files (mnistlab_app) are not installed; reinstall with: pip install .")


def served_options() -> dict[str, object]:
    """Streamlit settings of a served instance, over the project's config.toml: uploads no larger
    than a bundle import accepts, XSRF protection, the viewer toolbar, no usage statistics, and no
    source watching (a served app does not reload on save; watching costs every new session a
    scan of all loaded modules), and no full garbage collection after every script run (about
    40 % of a viewer's server time; Python's own collector still runs). See docs/hosting.md."""
    from mnistlab.runs.bundles import MAX_BUNDLE_BYTES

    return {"server.headless": True, "server.maxUploadSize": MAX_BUNDLE_BYTES // 2**20,
            "server.enableXsrfProtection": True, "client.toolbarMode": "viewer",
            "browser.gatherUsageStats": False, "server.fileWatcherType": "none", "server.runOnSave": False,
            "runner.postScriptGC": False}


def serve_command(args) -> tuple[list[str], dict[str, str], str]:
    """The Streamlit command line, environment and first line to print for ``serve`` (no side effects)."""
    folder = app_folder()
    address = args.address or ("0.0.0.0" if args.read_only else "127.0.0.1")
    command = [sys.executable, "-m", "streamlit", "run", str(folder / "streamlit_app.py"),
               "--server.port", str(args.port), "--server.address", address]
    options: dict[str, object] = {}
    config = folder / ".streamlit" / "config.toml"  # Streamlit reads it from the working folder only: pass it on
    if config.is_file():
        try:
            import tomllib
        except ImportError:  # Python 3.10: the theme is a nicety
            tomllib = None
        if tomllib is not None:
            with open(config, "rb") as fh:
                for section, values in tomllib.load(fh).items():
                    for name, value in values.items():
                        options[f"{section}.{name}"] = value
    options.update(served_options())
    for name, value in options.items():
        command += [f"--{name}", str(value).lower() if isinstance(value, bool) else str(value)]
    env = dict(os.environ)
    if args.read_only:
        env["MNISTLAB_READ_ONLY"] = "1"
    if args.store:
        env["MNISTLAB_STORE"] = str(Path(args.store).expanduser().resolve())
    from mnistlab.runs.store import RunStore

    where = RunStore(env.get("MNISTLAB_STORE") or None).root
    shown = "localhost" if address in ("127.0.0.1", "localhost") else address
    scope = ("this machine only (127.0.0.1); --address 0.0.0.0 opens it to the network"
             if address in ("127.0.0.1", "localhost") else "every machine that can reach this address")
    if not args.read_only and address not in ("127.0.0.1", "localhost"):
        scope += ", and anyone there can train and delete runs (add --read-only to switch that off)"
    text = (f"mnistlab dashboard on http://{shown}:{args.port} for {scope}\n"
            f"  store: {where}{'  (read-only)' if args.read_only else ''}\n  stop it with Ctrl+C")
    return command, env, text


def cmd_serve(args) -> int:
    import subprocess

    command, env, text = serve_command(args)
    print(text, flush=True)
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 130


# -- sweeps and recipes ----------------------------------------------------------------------
def _sweep_parsers(sub, common) -> None:
    """``sweep`` (a grid of configurations; any field takes a comma list) and ``recipes``."""
    from mnistlab.sweeps import MAX_RUNS

    sweep = sub.add_parser("sweep", help="train a grid of configurations (only the missing ones), locally with "
                           "--jobs N or on a Dask cluster with --scheduler")
    sweep.add_argument("preset", nargs="?", choices=["recipes"],
                       help="a built-in sweep: recipes (the eight published recipe configurations; field options "
                            "override them)")
    for name, field in FIELDS.items():
        field = arch_field() if name == "arch" else field
        sweep.add_argument(_flag(name), dest=name, default=None, metavar=_metavar(field) + ",...",
                           help=_field_help(field) + "; a comma-separated list sweeps over the values")
    sweep.add_argument("--seeds", type=int, default=None, metavar="N", help="seeds 0..N-1 (instead of --seed)")
    sweep.add_argument("--data", default=None,
                       help="auto, sample or a path to an MNIST .npz (default: $MNISTLAB_DATA or auto)")
    sweep.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="training processes at once on this machine (MNISTLAB_MAX_TRAININGS still caps them)")
    sweep.add_argument("--threads-per-job", type=int, default=None, metavar="K",
                       help="TensorFlow threads of each process (default: cores / jobs)")
    sweep.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786",
                       help="run on this Dask scheduler's workers instead of locally")
    sweep.add_argument("--name", default=None, help="the sweep's name (default: sweep- and a hash of the grid)")
    sweep.add_argument("--max-runs", type=int, default=MAX_RUNS, metavar="N",
                       help=f"refuse sweeps of more runs than this (default: {MAX_RUNS})")
    sweep.add_argument("--dry-run", action="store_true", help="print the plan, train nothing")
    common(sweep)
    recipes = sub.add_parser("recipes", help="the published recipes' test accuracy beside the stored runs of them")
    recipes.add_argument("--data", default=None,
                         help="auto, sample or a path to an MNIST .npz (default: $MNISTLAB_DATA or auto)")
    recipes.add_argument("--train", action="store_true", help="train the missing ones first (about 40 minutes "
                         "per seed on 2 cores, full MNIST)")
    recipes.add_argument("--seeds", type=int, default=1, metavar="N", help="with --train: seeds 0..N-1 (default 1)")
    recipes.add_argument("--jobs", type=int, default=1, metavar="N", help="with --train: processes at once")
    recipes.add_argument("--threads-per-job", type=int, default=None, metavar="K",
                         help="with --train: TensorFlow threads of each process (default: cores / jobs)")
    common(recipes)


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {value}")


def _run_sweep(store, sweep, args, log) -> tuple[Any, list, bool]:
    """Plan ``sweep``, print the plan, train what is missing; returns (plan, outcomes, stopped)."""
    from mnistlab import sweeps_exec

    plan = sweeps_exec.plan_sweep(store, sweep, jobs=args.jobs)
    where = f"on the Dask cluster at {args.scheduler}" if args.scheduler else (
        f"with {plural(args.jobs, 'process', 'processes')} × {plural(args.threads_per_job or sweeps_exec.default_threads(args.jobs), 'thread')}")
    print(f"sweep {sweep.name}: {plan.summary()}", file=log, flush=True)
    if plan.repeated:
        print(f"  {plural(plan.repeated, 'configuration')} {'is' if plan.repeated == 1 else 'are'} the same training as another one: counted once", file=log)
    for note in plan.notes:
        print(f"  note: {note}", file=log)
    if getattr(args, "dry_run", False) or not plan.to_train:
        return plan, [], False
    print(f"training {plural(len(plan.to_train), 'run')} {where}; Ctrl-C stops cleanly", file=log, flush=True)
    total, count = len(plan.to_train), [0]

    def on_result(outcome) -> None:
        count[0] += 1
        print(outcome.line(count[0], total), file=log, flush=True)

    try:
        if args.scheduler:
            outcomes = sweeps_exec.run_dask(store, plan, args.scheduler, threads_per_job=args.threads_per_job or 1,
                                            on_result=on_result)
        else:
            outcomes = sweeps_exec.run_local(store, plan, jobs=args.jobs, threads_per_job=args.threads_per_job,
                                             on_result=on_result)
    except KeyboardInterrupt:
        print(f"stopped: {count[0]} of {total} ended; the rest were cancelled. Run the same command again to train "
              "only what is missing.", file=log, flush=True)
        return plan, [], True
    return plan, outcomes, False


def _sweep_table(store, plan, outcomes) -> list[dict]:
    ended = {o.run_id: o for o in outcomes}
    rows = []
    for planned in plan.runs:
        outcome = ended.get(planned.run_id)
        run = store.lookup(planned.run_id) if store.exists(planned.run_id) else None
        state = outcome.state if outcome is not None else ("stored" if planned.stored else "not trained")
        rows.append({"run_id": planned.run_id, "label": planned.config.label(), "state": state,
                     "test_accuracy": run.metrics["test_accuracy"] if run is not None else None,
                     "seconds": run.metrics["timings"]["fit_seconds"] if run is not None else None,
                     "message": outcome.message if outcome is not None and not outcome.stored else ""})
    return rows


def cmd_sweep(args) -> int:
    from mnistlab import sweeps

    _positive("--jobs", args.jobs)
    _positive("--threads-per-job", args.threads_per_job)
    if args.jobs > 1 and args.scheduler:
        raise UsageError("--jobs is for local sweeps; with --scheduler the cluster's workers train in parallel")
    data = args.data or default_source()
    grid = {name: getattr(args, name) for name in FIELDS if getattr(args, name) is not None}
    if grid.get("precision") is not None:  # refuse bfloat16 where this CPU lacks it, before planning
        from mnistlab.runs.checks import check_precision

        for precision in sweeps.make_grid({"precision": grid["precision"]}).as_dict()["precision"]:
            check_precision(RunConfig(precision=precision))
    if args.preset == "recipes":
        sweep = sweeps.recipes_sweep(seeds=args.seeds or 1, data=data, name=args.name or sweeps.RECIPES_NAME, **grid)
    else:
        sweep = sweeps.make_sweep(grid, seeds=args.seeds, data=data, name=args.name, max_runs=args.max_runs)
    store = _store(args)
    log = sys.stderr if args.json else sys.stdout
    plan, outcomes, stopped = _run_sweep(store, sweep, args, log)
    rows = _sweep_table(store, plan, outcomes)
    failed = [o for o in outcomes if o.state in ("failed", "cancelled")]
    if args.json:
        print(json.dumps({"sweep": sweep.as_dict(), "plan": plan.as_dict(), "dry_run": args.dry_run,
                          "stopped": stopped, "results": [o.as_dict() for o in outcomes], "runs": rows}))
    elif not args.dry_run:
        print()
        for row in rows:
            figure = f"{row['test_accuracy']:.4f}" if row["test_accuracy"] is not None else "-"
            took = f"{row['seconds']:.1f}s" if row["seconds"] is not None else "-"
            print(f"{row['run_id']}  {row['state']:11} {figure:>7} {took:>8}  {row['label']}  {row['message']}".rstrip())
        print(f"{sum(r['test_accuracy'] is not None for r in rows)} of {plural(len(rows), 'run')} stored"
              + (f"; {len(failed)} failed or cancelled" if failed else ""))
    else:
        for planned in plan.runs:
            print(f"{planned.run_id}  {'stored' if planned.stored else 'to train':8}  {planned.config.label()}")
    return 130 if stopped else (1 if failed else 0)


def cmd_recipes(args) -> int:
    from mnistlab import sweeps, sweeps_exec

    _positive("--jobs", args.jobs)
    _positive("--threads-per-job", args.threads_per_job)
    data = args.data or default_source()
    store = _store(args)
    log = sys.stderr if args.json else sys.stdout
    stopped = False
    if args.train:
        args.scheduler, args.dry_run = None, False
        _, _, stopped = _run_sweep(store, sweeps.recipes_sweep(seeds=args.seeds, data=data), args, log)
    report = sweeps_exec.recipes_report(store, data)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"Published test accuracy (%) beside the stored runs on {report['data']} (mean ± std over seeds):")
        for row in report["rows"]:
            print("  " + sweeps.recipe_line(row))
        if report["note"]:
            print(report["note"])
        if report["missing"] and not args.train:
            print(f"{plural(len(report['missing']), 'recipe')} {'has' if len(report['missing']) == 1 else 'have'} no stored run: train them with "
                  f"{PROG} recipes --train (or {PROG} sweep recipes --jobs 2)")
    return 130 if stopped else 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        commands = {"train": cmd_train, "runs": cmd_runs, "show": cmd_show, "archs": cmd_archs,
                    "report": cmd_report, "export": cmd_export, "import": cmd_import, "delete": cmd_delete,
                    "doctor": cmd_doctor, "serve": cmd_serve, "sweep": cmd_sweep, "recipes": cmd_recipes}
        return commands[args.command](args)
    except (UsageError, ValueError) as exc:  # incl. ConfigError, LimitError, DataError, BundleError
        return _fail(exc, 2)
    except (MnistlabError, OSError) as exc:  # StoreError, BrokenRun, ReadOnlyError, ...; the disk
        return _fail(exc, 1)
    except KeyboardInterrupt:
        print("mnistlab: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  (a bug: still one line, never a traceback)
        return _fail(exc, 1, f"unexpected {type(exc).__name__}: ")


def _fail(exc: BaseException, status: int, prefix: str = "") -> int:
    """Print ``mnistlab: error: ...`` as one line on stderr and return ``status``."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"mnistlab: error: {prefix}{message}", file=sys.stderr)
    return status
