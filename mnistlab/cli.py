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
import sys
from typing import Any, Sequence

from mnistlab.datasets.mnist import default_source
from mnistlab.errors import MnistlabError
from mnistlab.models.architectures import ARCHITECTURES, count_params, summarize
from mnistlab.runs.config import FIELDS, TASKS, Field, RunConfig, arch_field


class UsageError(Exception):
    """Bad command-line usage (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m mnistlab", description="Train, list and inspect MNIST runs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser, store: bool = True) -> None:
        if store:
            p.add_argument("--store", help="run store folder (default: $MNISTLAB_STORE or cache/runs)")
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

    print(f"{config.label()}  (data: {store.resolve(config).source.title})", file=log, flush=True)
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
        print(f"no runs in {_store(args).root}; train one with: python -m mnistlab train --data sample --epochs 1")
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
        raise UsageError(f"no run {run_id} in {store.root}; list runs with: python -m mnistlab runs") from None


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
          else f"wrote {args.output} ({len(runs)} runs, {len(payload) / 2**20:.1f} MB)")
    return 0


def cmd_import(args) -> int:
    from mnistlab.runs.bundles import import_bundle

    imported, present = import_bundle(_store(args), args.bundle)
    print(json.dumps({"imported": imported, "already_present": present}) if args.json
          else f"imported {len(imported)} run(s); {len(present)} already in the store")
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
    print(json.dumps({"deleted": run_ids}) if args.json else f"deleted {len(run_ids)} run(s)")
    return 0


def cmd_show(args) -> int:
    store = _store(args)
    run = _load(store, args.run_id)
    if args.json:
        print(json.dumps({**_run_json(run), "history": run.history}))
        return 0
    print(f"run {run.run_id}: {run.label}")
    for key, value in run.config.to_dict().items():
        print(f"  {key:16} {value}")
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


def cmd_doctor(args) -> int:
    store = _store(args)
    report = store.doctor(repair=args.repair)
    if args.json:
        print(json.dumps(report.as_dict()))
        return 0
    print(f"{store.root}: {report.runs} run(s), {len(report.broken)} broken")
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
        print("repair with: python -m mnistlab doctor --repair (broken runs are moved to .broken/, not deleted)")
    return 0


def cmd_archs(args) -> int:
    tasks = [args.task] if args.task else list(TASKS)
    tasks = [FIELDS["task"].check(task, "--task") for task in tasks]
    table = [
        {"arch": name, "description": spec.description, "task": task, "params": count_params(name, task),
         "layers": [{**row, "output_shape": list(row["output_shape"])} for row in summarize(name, task)]}
        for name, spec in ARCHITECTURES.items()
        for task in tasks
    ]
    if args.json:
        print(json.dumps(table))
        return 0
    for row in table:
        print(f"{row['arch']:12} {row['task']:7} {row['params']:>10,} params  {row['description']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        commands = {"train": cmd_train, "runs": cmd_runs, "show": cmd_show, "archs": cmd_archs,
                    "report": cmd_report, "export": cmd_export, "import": cmd_import, "delete": cmd_delete,
                    "doctor": cmd_doctor}
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
