"""Command line: ``python -m mnistlab train|runs|show|report|export|import|delete|archs``.

Every command takes ``--json`` for scripts; bad arguments exit with status 2 and one line
on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from mnistlab.datasets.mnist import DataError, default_source
from mnistlab.models.architectures import ARCHITECTURES, count_params, summarize
from mnistlab.runs.config import OPTIMIZERS, TASKS, VALIDATION_SCHEMES, RunConfig


class UsageError(Exception):
    pass


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
    defaults = RunConfig()
    train.add_argument("--task", default=defaults.task, help=f"one of {', '.join(TASKS)}")
    train.add_argument("--arch", default=defaults.arch, help=f"one of {', '.join(ARCHITECTURES)}")
    train.add_argument("--epochs", default=defaults.epochs)
    train.add_argument("--batch-size", default=defaults.batch_size)
    train.add_argument("--optimizer", default=defaults.optimizer, help=f"one of {', '.join(OPTIMIZERS)}")
    train.add_argument("--learning-rate", default=None, help="default: the optimizer's Keras default")
    train.add_argument("--validation", default=defaults.validation, help=f"one of {', '.join(VALIDATION_SCHEMES)}")
    train.add_argument("--validation-size", default=None,
                       help="holdout: number of images (default 1/6: 10,000 of 60,000); fraction: 0-0.9 (default 0.25)")
    train.add_argument("--train-size", default=None, help="use only the first N training images")
    train.add_argument("--patience", default=None, help="early stopping patience in epochs (default: none)")
    train.add_argument("--seed", default=defaults.seed)
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
    archs = sub.add_parser("archs", help="architectures with their parameter counts")
    archs.add_argument("--task", default=None, help=f"one of {', '.join(TASKS)} (default: all)")
    common(archs, store=False)
    return parser


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
    return RunConfig(
        task=args.task,
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        validation=args.validation,
        validation_size=_number(args.validation_size),
        train_size=args.train_size,
        patience=args.patience,
        seed=args.seed,
        data=args.data or default_source(),
    )


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

    print(f"{config.label()}  (data: {store.resolve(config)[1].title})", file=log, flush=True)
    try:
        obtained = store.get_or_train(config, on_epoch=on_epoch, on_wait=on_wait)
    except Cancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    run = obtained.run
    status = "cached" if obtained.cached else "trained"
    if args.json:
        print(json.dumps({"status": status, **_run_json(run)}))
    else:
        seconds = run.metrics["timings"]["fit_seconds"]
        print(f"{status}: run {run.run_id}  test accuracy {run.metrics['test_accuracy']:.4f}"
              f"  test loss {run.metrics['test_loss']:.4f}  (training took {seconds:.1f}s)")
    return 0


def cmd_runs(args) -> int:
    listing = _store(args).list_runs()
    rows = [run.summary_row() for run in listing.runs]
    if args.json:
        print(json.dumps({"runs": rows, "broken": [{"run_id": b.run_id, "reason": b.reason} for b in listing.broken]}))
        return 0
    if not rows:
        print(f"no runs in {_store(args).root}; train one with: python -m mnistlab train --data sample --epochs 1")
    for row in rows:
        print(f"{row['run_id']}  test acc {row['test_accuracy']:.4f}  {row['label']}")
    for broken in listing.broken:
        print(f"broken: {broken.run_id}: {broken.reason}", file=sys.stderr)
    return 0


def _load(store, run_id: str):
    from mnistlab.runs.store import BrokenRun, check_run_id

    run_id = check_run_id(run_id.strip().lower())
    try:
        return store.load(run_id)
    except KeyError:
        raise UsageError(f"no run {run_id} in {store.root}; list runs with: python -m mnistlab runs") from None
    except BrokenRun as exc:
        raise UsageError(str(exc)) from None


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
    print(f"  test accuracy {m['test_accuracy']:.4f}  test loss {m['test_loss']:.4f}  data: {m['data']['title']}")
    return 0


def cmd_archs(args) -> int:
    tasks = [args.task] if args.task else list(TASKS)
    for task in tasks:
        if task not in TASKS:
            raise UsageError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
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
                    "report": cmd_report, "export": cmd_export, "import": cmd_import, "delete": cmd_delete}
        return commands[args.command](args)
    except (UsageError, ValueError, DataError, OSError) as exc:  # PermissionError is an OSError
        print(f"mnistlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mnistlab: interrupted", file=sys.stderr)
        return 130
