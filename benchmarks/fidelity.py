"""Fidelity: train the eight published recipes on full MNIST and set our test accuracy beside theirs.

The recipes are :data:`mnistlab.sweeps.RECIPES` (the Keras MNIST recipe's mlp, cnn and deep_cnn on
digits and on parity: SGD, batch 32, hold-out 50,000/10,000, 30 epochs; chapter 16's mlp_512 and
cnn_dropout: Adam, batch 200, validation fraction 0.25, early stopping with patience 10, 30
epochs). One seed by default: about 40 minutes on 2 cores. Runs go into the run store (default
$MNISTLAB_STORE or cache/runs, or ``--store``), so a second call trains only what is missing and
the app's Recipes table shows them.

Prints one line per recipe, ``fidelity: <recipe> <ours> vs <published> (<difference> pp, n=<seeds>)``.
``--epochs``, ``--train-size`` and ``--limit`` shrink it for a quick check of the script itself
(those runs are not the published configurations, and the lines say so).

    python benchmarks/fidelity.py [--seeds 1] [--jobs 2] [--epochs 1 --limit 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from common import data_source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per recipe (default 1)")
    parser.add_argument("--jobs", type=int, default=1, help="training processes at once (default 1)")
    parser.add_argument("--threads-per-job", type=int, default=None)
    parser.add_argument("--store", default=None, help="run store (default: $MNISTLAB_STORE or cache/runs)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipes' 30 epochs (a quick check)")
    parser.add_argument("--train-size", type=int, default=None, help="override: fit on fewer images (a quick check)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N recipes (a quick check)")
    args = parser.parse_args()

    from mnistlab.runs.store import RunStore
    from mnistlab.settings import load_settings
    from mnistlab.sweeps import RECIPES, make_sweep
    from mnistlab.sweeps_exec import plan_sweep, run_local

    data = data_source()
    recipes = RECIPES[: args.limit] if args.limit else RECIPES
    changes = {k: v for k, v in (("epochs", args.epochs), ("train_size", args.train_size)) if v is not None}
    sweep = make_sweep([{**dict(r.values), **changes} for r in recipes], seeds=args.seeds, data=data,
                       name="fidelity" if not changes else "fidelity-check")
    store = RunStore(args.store, settings=load_settings())
    plan = plan_sweep(store, sweep, jobs=args.jobs)
    print(f"data: {data}; store: {store.root}; {plan.summary()}", flush=True)
    for note in plan.notes:
        print(f"note: {note}")
    run_local(store, plan, jobs=args.jobs, threads_per_job=args.threads_per_job,
              on_result=lambda outcome: print("  " + outcome.line(), flush=True))
    caveat = f" [not the published configuration: {', '.join(f'{k}={v}' for k, v in changes.items())}]" \
        if changes else ""
    for recipe in recipes:
        accuracies = []
        for seed in range(args.seeds):
            run = store.lookup(store.resolve(recipe.config(data=data, seed=seed, **changes)).run_id)
            if run is not None and run.is_finished:
                accuracies.append(100 * run.metrics["test_accuracy"])
        if not accuracies:
            print(f"fidelity: {recipe.key} not trained vs {recipe.published:.2f}{caveat}")
            continue
        ours = statistics.mean(accuracies)
        spread = f" ± {statistics.stdev(accuracies):.2f}" if len(accuracies) > 1 else ""
        print(f"fidelity: {recipe.key} {ours:.2f}{spread} vs {recipe.published:.2f} ({ours - recipe.published:+.2f} pp, "
              f"n={len(accuracies)}){caveat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
