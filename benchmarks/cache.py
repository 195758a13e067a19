"""Run store speed: a cached run vs. training it, and listing a store of 1,000 runs.

Ratios (1.00x or more meets the target): ``cached`` = training seconds / cached-lookup
seconds (target 100x); ``cached_under_0.5s`` = 0.5 s / cached lookup with its test
predictions loaded and checked; ``list1000_under_1s`` = 1 s / listing 1,000 runs in a fresh
process's first listing (every run's JSON files and array headers read and checked).

    python benchmarks/cache.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import clone_runs, data_source, median, summary, table

from mnistlab.runs.config import RunConfig
from mnistlab.runs.store import RunStore


def main() -> None:
    source = data_source()
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs")
        config = RunConfig(arch="mlp", epochs=1, data=source)
        started = time.perf_counter()
        obtained = store.get_or_train(config)
        train_s = time.perf_counter() - started
        assert not obtained.cached
        lookups = []
        for _ in range(20):
            started = time.perf_counter()
            again = RunStore(store.root).get_or_train(config)  # a fresh store: nothing cached in memory
            n_predictions = len(again.run.predictions().probabilities)
            lookups.append(time.perf_counter() - started)
            assert again.cached
        lookup_s = median(lookups)

        big = RunStore(Path(tmp) / "many")
        clone_runs(big, [obtained.run], 1000)
        listings, warm = [], []
        for _ in range(5):
            fresh = RunStore(big.root)
            started = time.perf_counter()
            count = len(fresh.list_runs().runs)
            listings.append(time.perf_counter() - started)
            started = time.perf_counter()
            fresh.list_runs()
            warm.append(time.perf_counter() - started)
        assert count == 1000
        list_s, warm_s = median(listings), median(warm)

    print(table(["what", "seconds"], [
        ["train mlp, 1 epoch (incl. data, test predictions, writing)", train_s],
        [f"cached lookup + {n_predictions:,} test predictions (median of 20)", lookup_s],
        ["list 1,000 runs, first listing of a store (median of 5)", list_s],
        ["list 1,000 runs again (files unchanged: only their stat)", warm_s],
    ]))
    print(summary("cache", {"cached": train_s / lookup_s, "cached_under_0.5s": 0.5 / lookup_s,
                            "list1000_under_1s": 1.0 / list_s}))


if __name__ == "__main__":
    main()
