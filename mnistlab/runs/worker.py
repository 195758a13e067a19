"""Training jobs that outlive the page that launched them.

:func:`launch` starts one detached worker process (``python -m mnistlab.runs.worker``) that
trains a list of configurations one after the other through the run store. The worker
calls no Streamlit API; the page follows it by reading the store's progress records, so
a rerun, a page switch or a browser reload changes nothing. Queued runs show as
``queued``; a cancel request skips a queued run or stops a training one within a batch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Sequence

from mnistlab.runs.config import RunConfig
from mnistlab.runs.store import RunStore
from mnistlab.settings import LimitError


def launch(store: RunStore, configs: Sequence[RunConfig]) -> list[str]:
    """Queue ``configs`` (skipping stored or already queued/training ones) in a new worker.

    Returns the run ids the worker will train. The worker's output goes to
    ``.progress/worker-<pid>.log`` in the store.
    """
    store.settings.refuse_writes("Training")
    todo: list[tuple[str, RunConfig]] = []
    for config in configs:
        run_id, info = store.resolve(config)
        progress = store.progress(run_id)
        if store.exists(run_id) or (progress is not None and progress.is_active):
            continue
        store.check_allowed(config, info)
        if run_id not in {r for r, _ in todo}:
            todo.append((run_id, config))
    if not todo:
        return []
    limit = store.settings.max_trainings
    workers = {p.worker or p.run_id for p in store.in_progress() if p.is_active}
    if limit is not None and len(workers) >= limit:
        raise LimitError(f"at most {limit} training(s) may run at once on this server (MNISTLAB_MAX_TRAININGS); "
                         "wait for the one under way to finish")
    folder = store.root / ".progress"
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    log_path = folder / f"worker-{token}.log"
    args = [sys.executable, "-m", "mnistlab.runs.worker", "--store", str(store.root), "--token", token,
            json.dumps([config.to_dict() for _, config in todo])]
    for run_id, config in todo:  # before the worker starts, so its own records come after
        store.mark_queued(run_id, config, token)
    with open(log_path, "w") as log:
        subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, cwd=Path(__file__).resolve().parents[2])
    return [run_id for run_id, _ in todo]


def work(store: RunStore, configs: Sequence[RunConfig]) -> int:
    """Train each configuration in turn (the worker's main loop). Returns the failures."""
    from mnistlab.models.training import Cancelled

    failures = 0
    for config in configs:
        run_id, _ = store.resolve(config)
        if store.take_cancel_request(run_id):
            store.mark_cancelled(run_id, config, "cancelled before it started")
            print(f"{run_id}: cancelled before it started", flush=True)
            continue
        try:
            obtained = store.get_or_train(config)
            print(f"{run_id}: {'cached' if obtained.cached else 'trained'} "
                  f"test accuracy {obtained.run.metrics['test_accuracy']:.4f}", flush=True)
        except Cancelled as exc:
            print(f"{run_id}: {exc}", flush=True)
        except Exception as exc:  # recorded in the progress file by the store; go on with the next
            failures += 1
            print(f"{run_id}: failed: {type(exc).__name__}: {exc}", flush=True)
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnistlab.runs.worker")
    parser.add_argument("--store", required=True)
    parser.add_argument("--token", required=True, help="names the lock held while this worker lives")
    parser.add_argument("configs", help="JSON list of run configurations")
    args = parser.parse_args(argv)
    configs = [RunConfig.from_dict(values) for values in json.loads(args.configs)]
    store = RunStore(args.store)
    store.worker = args.token
    with store.worker_lock(args.token):
        return 1 if work(store, configs) else 0


if __name__ == "__main__":
    sys.exit(main())
