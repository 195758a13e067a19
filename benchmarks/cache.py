"""Run store speed: a cached run vs. training it, and listing a store of 200 runs.

Ratios (1.00x or more meets the target): ``cached`` = training seconds / cached-lookup
seconds (target 100x); ``cached_under_0.5s`` = 0.5 s / cached lookup with its test
predictions loaded; ``list200_under_1s`` = 1 s / listing 200 runs.

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
            again = store.get_or_train(config)
            n_predictions = len(again.run.predictions().probabilities)
            lookups.append(time.perf_counter() - started)
            assert again.cached
        lookup_s = median(lookups)

        big = RunStore(Path(tmp) / "many")
        clone_runs(big, [obtained.run], 200)
        listings = []
        for _ in range(5):
            started = time.perf_counter()
            count = len(big.list_runs().runs)
            listings.append(time.perf_counter() - started)
        assert count == 200
        list_s = median(listings)

    print(table(["what", "seconds"], [
        ["train mlp, 1 epoch (incl. data, test predictions, writing)", train_s],
        [f"cached lookup + {n_predictions:,} test predictions (median of 20)", lookup_s],
        ["list 200 runs (median of 5)", list_s],
    ]))
    print(summary("cache", {"cached": train_s / lookup_s, "cached_under_0.5s": 0.5 / lookup_s,
                            "list200_under_1s": 1.0 / list_s}))


if __name__ == "__main__":
    main()
