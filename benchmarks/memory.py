"""Peak resident memory of a training process, per architecture, one epoch on full MNIST.

Each architecture trains in its own fresh process (``python -m mnistlab train``), which
reports its own peak RSS. Ratio = 1.5 GB budget / peak (1.00x or more meets it; the
budget matters for deep_cnn on a hosted app).

    python benchmarks/memory.py [--archs mlp cnn deep_cnn]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile

from common import ROOT, data_source, summary, table

BUDGET_MB = 1500
CHILD = ("import resource, sys\n"
         "from mnistlab.cli import main\n"
         "code = main(sys.argv[1:])\n"
         "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
         "sys.exit(code)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["mlp", "cnn", "deep_cnn"])
    args = parser.parse_args()
    source = data_source()
    rows, ratios = [], {}
    for arch in args.archs:
        with tempfile.TemporaryDirectory() as store:
            out = subprocess.run([sys.executable, "-c", CHILD, "train", "--arch", arch, "--epochs", "1", "--data",
                                  source, "--store", store], cwd=ROOT, capture_output=True, text=True, check=True)
        peak_mb = int(out.stdout.split("PEAK_KB")[-1].split()[0]) / 1024
        ratios[arch] = BUDGET_MB / peak_mb
        rows.append([arch, round(peak_mb), f"{ratios[arch]:.2f}x"])
        print(f"  {arch}: {peak_mb:.0f} MB", flush=True)
    print(f"data: {source}")
    print(table(["arch", "peak RSS MB", "1.5 GB / peak"], rows))
    print(summary("memory", ratios))


if __name__ == "__main__":
    main()
