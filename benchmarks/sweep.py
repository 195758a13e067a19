"""Sweep throughput: the same 8 configurations (a) one after another in one process, (b) with two
joblib processes of one TensorFlow thread each (``--jobs 2 --threads-per-job 1``), (c) on a Dask
``LocalCluster`` of two single-thread worker processes.

Full MNIST when present (see common.data_source), a few epochs each: cnn × {sgd, adam} × batch
{32, 128} × 2 seeds, 2 epochs on 30,000 training images. Each mode trains into a fresh store, so
nothing is cached; the wall time covers everything a user waits for (worker processes starting,
TensorFlow importing, training, storing; for Dask, sending each run back as a bundle and importing
it), except starting the Dask cluster itself, which is timed apart (a cluster is usually up already).

Targets on a 2-core machine: (b) ≥ 1.25x the throughput of (a) (two 1-thread trainings side by
side measured 1.25–1.33x one 2-thread training; the limit is 2x), and (c) within 15 % of (b).
The last line is ``sweep: local <b/a>x, dask <c/a>x``.

    python benchmarks/sweep.py [--epochs 2] [--train-size 30000]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from common import data_source, summary, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=30_000)
    args = parser.parse_args()

    from dask.distributed import Client, LocalCluster

    from mnistlab.runs.store import RunStore
    from mnistlab.settings import Settings
    from mnistlab.sweeps import make_sweep
    from mnistlab.sweeps_exec import plan_sweep, run_dask, run_local

    data = data_source()
    sweep = make_sweep({"arch": "cnn", "optimizer": "sgd,adam", "batch_size": "32,128", "epochs": args.epochs,
                        "train_size": args.train_size}, seeds=2, data=data, name="benchmark")
    print(f"data: {data}; {os.cpu_count()} cores; 8 configurations: cnn × sgd/adam × batch 32/128 × 2 seeds, "
          f"{args.epochs} epochs on {args.train_size:,} images", flush=True)
    walls: dict[str, float] = {}
    fits: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as root:
        def mode(name: str, train) -> None:
            store = RunStore(Path(root) / name, settings=Settings(max_trainings=2))
            plan = plan_sweep(store, sweep, jobs=2)
            assert len(plan.to_train) == 8, plan.summary()
            started = time.perf_counter()
            outcomes = train(store, plan)
            walls[name] = time.perf_counter() - started
            assert sorted(o.state for o in outcomes) == ["trained"] * 8, [o.line() for o in outcomes]
            fits[name] = sum(o.seconds for o in outcomes)
            print(f"  {name}: {walls[name]:.1f} s wall, {fits[name]:.1f} s of training in all", flush=True)

        mode("a: one process", lambda store, plan: run_local(store, plan, jobs=1))
        mode("b: --jobs 2 --threads-per-job 1", lambda store, plan: run_local(store, plan, jobs=2, threads_per_job=1))
        started = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            print(f"  (Dask LocalCluster started in {time.perf_counter() - started:.1f} s)", flush=True)
            mode("c: Dask LocalCluster 2 × 1 thread",
                 lambda store, plan: run_dask(store, plan, client, threads_per_job=1))
    base = walls["a: one process"]
    rows = [[name, wall, 8 * 60 / wall, fits[name], base / wall] for name, wall in walls.items()]
    print(table(["mode", "wall s", "runs/min", "training s", "throughput vs a"], rows))
    local, dask = base / walls["b: --jobs 2 --threads-per-job 1"], base / walls["c: Dask LocalCluster 2 × 1 thread"]
    print(f"targets: local ≥ 1.25x ({'met' if local >= 1.25 else 'missed'}); dask within 15 % of local "
          f"({dask / local:.2f} of it: {'met' if dask >= 0.85 * local else 'missed'})")
    print(summary("sweep", {"local": local, "dask": dask}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
