"""Run store speed: a cached run vs. training it, and listing a store of 1,000 runs.

Ratios (1.00x or more meets the target): ``cached`` = training seconds / cached-lookup
seconds (target 100x); ``cached_under_0.5s`` = 0.5 s / cached lookup with its test
predictions loaded and checked; ``list1000_under_1s`` = 1 s / listing 1,000 runs in a fresh
process's first listing (cold: a fresh RunStore, every run's JSON files and array headers read and
checked); ``list1000_warm_under_1s`` = 1 s / the same store object listing them again (files
unchanged: only their stat). The 1,000 runs are written by ``tests.synthetic.write_runs`` (valid
runs of 18 configurations cycled with varied learning rates, 10 epochs each, no training).

    python benchmarks/cache.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import data_source, median, summary, table

from mnistlab.runs.config import RunConfig
from mnistlab.runs.store import RunStore
from tests.synthetic import synthetic_configs, write_runs


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
        started = time.perf_counter()
        write_runs(big, synthetic_configs(1000), data=source)
        write_s = time.perf_counter() - started
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
        ["write 1,000 synthetic runs (tests.synthetic, not timed against a target)", write_s],
    ]))
    print(summary("cache", {"cached": train_s / lookup_s, "cached_under_0.5s": 0.5 / lookup_s,
                            "list1000_under_1s": 1.0 / list_s, "list1000_warm_under_1s": 1.0 / warm_s}))


if __name__ == "__main__":
    main()
