"""Training speed: mnistlab's trainer vs. a recipe-style Keras script, and both against the machine's peak.

Same settings for both: batch 32, SGD (learning rate 0.01), the recipe's split (the last 10,000
training images held out; ``--images`` fits on fewer for a quick run), for mlp, cnn and deep_cnn.

How it is measured, so that it survives a noisy, shared machine:

* **Peak, in the same run.** A large ``tf.matmul`` (2048 x 2048, float32 and bfloat16), warmed
  up, best of several, at the start and at the end; the best is the peak (2 n^3 FLOPs a product).
* **Warm-up outside the timed part.** Every variant trains two epochs on a fresh model; the
  first is the warm-up (tracing of the train and validation functions, first-call costs) and is
  not timed. The timed part is the second epoch, from the end of epoch 1 to the end of epoch 2:
  training plus validation, and for mnistlab also its per-epoch prediction of the test set
  (its epoch answers, work the recipe does not do).
* **Interleaved.** Per repeat and architecture the two variants run back to back, the order
  alternating (recipe first, then mnistlab first: A B B A ...), so drift in the machine's load
  hits both alike. At least 5 repeats by default.
* **Min, median and spread.** Per variant the min and median seconds, the spread
  ((max - min) / median), and the CPU seconds of the process beside the wall seconds (CPU/wall
  near the core count: the cores were ours; far below: waiting, or neighbours).

Achieved GFLOP/s = training FLOPs per image (:func:`~mnistlab.models.architectures.training_flops`,
3x the forward multiply-adds, 2 FLOPs each) x images fitted / seconds; validation is not counted,
so it is a lower bound. % of peak is against the float32 matmul peak (bfloat16 rows also against
the bfloat16 peak). Ratio = recipe median seconds / mnistlab median seconds (the target is 1.5x);
the min ratio is printed beside it.

**bfloat16.** For ``--bf16-archs`` (default cnn and deep_cnn) a third variant, ``bf16``, is
mnistlab's trainer with ``precision="bfloat16"`` (Keras' mixed_bfloat16 per layer), interleaved
with the other two (A B C, then C B A ...). bf16/f32 = mnistlab float32 median seconds / bf16
median seconds (the target is 1.3x), printed in the table and as a second summary line; its CPU s
column is the same ratio of CPU seconds (steadier than wall seconds on a machine shared with
other work, where CPU/wall drops below the core count). Skipped,
with the reason, on a CPU without AVX512_BF16 or AMX (:func:`mnistlab.runs.checks.bf16_supported`).

    python benchmarks/train_speed.py [--repeats 5] [--archs mlp cnn deep_cnn] [--images 50000]
                                     [--bf16-archs cnn deep_cnn] [--variants recipe mnistlab bf16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from common import data_source, median, summary, table

from mnistlab.datasets.mnist import load_mnist
from mnistlab.models.architectures import training_flops
from mnistlab.runs.config import RunConfig

EPOCHS = 2  # epoch 1: warm-up (not timed); epoch 2: timed
HOLDOUT = 10_000


def clocks() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads)."""
    return time.perf_counter(), time.process_time()


def matmul_peak(trials: int = 8, n: int = 2048) -> dict[str, float]:
    """Best GFLOP/s of an n x n float32 and bfloat16 tf.matmul (warmed up; trials interleaved)."""
    import tensorflow as tf

    operands = {}
    for name, dtype in (("f32", tf.float32), ("bf16", tf.bfloat16)):
        a = tf.random.uniform((n, n), dtype=tf.float32)
        b = tf.random.uniform((n, n), dtype=tf.float32)
        operands[name] = (tf.cast(a, dtype), tf.cast(b, dtype))
        for _ in range(2):  # warm-up: kernel selection, thread pool, caches
            tf.reduce_sum(tf.cast(tf.matmul(*operands[name]), tf.float32)).numpy()
    best = {name: 0.0 for name in operands}
    for _ in range(trials):
        for name, (a, b) in operands.items():
            started = time.perf_counter()
            product = tf.matmul(a, b)
            product.numpy()  # eager CPU ops are synchronous; this makes sure
            best[name] = max(best[name], 2 * n**3 / (time.perf_counter() - started) / 1e9)
    return best


def recipe_epoch(arch: str, data, images: int) -> dict[str, float]:
    """What the recipe scripts do: float32 arrays in memory, one-hot labels, model.fit."""
    import keras

    from mnistlab.models.architectures import build_model

    shape = (-1, 784) if arch.startswith("mlp") else (-1, 28, 28, 1)
    x = (data.x_train.astype("float32") / 255).reshape(shape)
    y = keras.utils.to_categorical(data.y_train, 10)
    keras.utils.set_random_seed(0)
    model = build_model(arch, "digits")
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    marks: list[tuple[float, float]] = []

    class Marks(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            marks.append(clocks())

    fit_x, fit_y = x[: len(x) - HOLDOUT][:images], y[: len(y) - HOLDOUT][:images]
    history = model.fit(fit_x, fit_y, batch_size=32, epochs=EPOCHS, validation_data=(x[-HOLDOUT:], y[-HOLDOUT:]),
                        callbacks=[Marks()], verbose=0)
    (w1, c1), (w2, c2) = marks[-2], marks[-1]
    return {"wall": w2 - w1, "cpu": c2 - c1, "images": len(fit_x), "val_accuracy": history.history["val_accuracy"][-1]}


def mnistlab_epoch(arch: str, data, images: int, precision: str = "float32") -> dict[str, float]:
    """mnistlab's own trainer (:func:`mnistlab.models.training.train`), marks at each epoch's end."""
    from mnistlab.models.training import train

    marks: list[tuple[float, float]] = []
    config = RunConfig(arch=arch, epochs=EPOCHS, batch_size=32, optimizer="sgd", validation="holdout",
                       validation_size=HOLDOUT, train_size=min(images, len(data.x_train) - HOLDOUT),
                       precision=precision)
    result = train(config, data, on_epoch=lambda record, history: marks.append(clocks()))
    (w1, c1), (w2, c2) = marks[-2], marks[-1]
    return {"wall": w2 - w1, "cpu": c2 - c1, "images": result.split["fit_images"],
            "val_accuracy": result.history[-1]["val_accuracy"]}


def bf16_epoch(arch: str, data, images: int) -> dict[str, float]:
    """mnistlab's trainer in bfloat16 (mixed: bfloat16 compute, float32 variables and output layer)."""
    return mnistlab_epoch(arch, data, images, precision="bfloat16")


VARIANTS = {"recipe": recipe_epoch, "mnistlab": mnistlab_epoch, "bf16": bf16_epoch}


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per variant (default 5)")
    parser.add_argument("--archs", nargs="+", default=["mlp", "cnn", "deep_cnn"])
    parser.add_argument("--images", type=int, default=50_000, help="training images fitted on (default all 50,000)")
    parser.add_argument("--bf16-archs", nargs="*", default=["cnn", "deep_cnn"],
                        help="architectures that also run the bf16 variant (default cnn deep_cnn; none: leave it out)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="which variants to run (default all three)")
    args = parser.parse_args()
    if args.repeats < 1 or args.images < 32:
        parser.error("--repeats must be at least 1 and --images at least 32")
    from mnistlab.runs.checks import bf16_supported

    bf16_ok, bf16_reason = bf16_supported()
    bf16_archs = [a for a in args.bf16_archs if a in args.archs] if "bf16" in args.variants and bf16_ok else []
    print(f"bfloat16: {bf16_reason}" + ("" if bf16_ok else "; the bf16 variant is left out"))
    data = load_mnist(data_source())
    print(f"data: {data.source.title} ({len(data.x_train):,} training images, fitting on "
          f"{min(args.images, len(data.x_train) - HOLDOUT):,}); repeats: {args.repeats}; cores: {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"timed: epoch 2 of {EPOCHS} on a fresh model (epoch 1 is the warm-up: tracing, first calls)", flush=True)

    peaks = [matmul_peak()]
    print(f"  peak (start): f32 {peaks[0]['f32']:.0f} GFLOP/s, bf16 {peaks[0]['bf16']:.0f} GFLOP/s", flush=True)
    variants = {name: VARIANTS[name] for name in VARIANTS if name in args.variants and name != "bf16"}
    if bf16_archs:
        variants["bf16"] = VARIANTS["bf16"]

    def arch_variants(arch: str) -> list[str]:
        return [v for v in variants if v != "bf16" or arch in bf16_archs]

    runs: dict[tuple[str, str], list[dict[str, float]]] = {(a, v): [] for a in args.archs for v in arch_variants(a)}
    for repeat in range(args.repeats):
        for arch in args.archs:
            order = arch_variants(arch)
            order = order if repeat % 2 == 0 else list(reversed(order))  # A B C, then C B A
            for variant in order:
                run = variants[variant](arch, data, args.images)
                runs[arch, variant].append(run)
                print(f"  repeat {repeat + 1} {arch:8} {variant:8} {run['wall']:6.2f} s wall, {run['cpu']:6.2f} s CPU",
                      flush=True)
    peaks.append(matmul_peak())
    peak = {name: max(p[name] for p in peaks) for name in ("f32", "bf16")}
    print(f"  peak (end): f32 {peaks[1]['f32']:.0f} GFLOP/s, bf16 {peaks[1]['bf16']:.0f} GFLOP/s; "
          f"load average {os.getloadavg()[0]:.2f}")

    rows, ratios, bf16_ratios, percent = [], {}, {}, {}
    for arch in args.archs:
        for variant in arch_variants(arch):
            timed = runs[arch, variant]
            walls = [r["wall"] for r in timed]
            cpus = [r["cpu"] for r in timed]
            images = timed[0]["images"]
            med = median(walls)
            gflops = training_flops(arch, "digits") * images / med / 1e9
            percent[arch, variant] = 100 * gflops / peak["f32"]
            best_percent = 100 * training_flops(arch, "digits") * images / min(walls) / 1e9 / peak["f32"]
            of_peak = f"{percent[arch, variant]:.1f}% (best {best_percent:.1f}%)"
            if variant == "bf16":
                of_peak += f"; {100 * gflops / peak['bf16']:.1f}% of bf16 peak"
            rows.append([arch, variant, min(walls), med, f"{100 * spread(walls):.0f}%", median(cpus),
                         f"{median(cpus) / med:.2f}", f"{images / med:,.0f}", f"{gflops:.1f}", of_peak,
                         f"{median(r['val_accuracy'] for r in timed):.3f}"])
        if (arch, "recipe") in runs and (arch, "mnistlab") in runs:
            recipe = [r["wall"] for r in runs[arch, "recipe"]]
            ours = [r["wall"] for r in runs[arch, "mnistlab"]]
            ratios[arch] = median(recipe) / median(ours)
            rows.append([arch, "ratio", f"{min(recipe) / min(ours):.2f}x", f"{ratios[arch]:.2f}x", "", "", "", "", "",
                         "", ""])
        if (arch, "bf16") in runs and (arch, "mnistlab") in runs:
            f32 = [r["wall"] for r in runs[arch, "mnistlab"]]
            bf16 = [r["wall"] for r in runs[arch, "bf16"]]
            bf16_ratios[arch] = median(f32) / median(bf16)
            cpu = median(r["cpu"] for r in runs[arch, "mnistlab"]) / median(r["cpu"] for r in runs[arch, "bf16"])
            rows.append([arch, "bf16/f32", f"{min(f32) / min(bf16):.2f}x", f"{bf16_ratios[arch]:.2f}x", "",
                         f"{cpu:.2f}x", "", "", "", "", ""])
    print(table(["arch", "variant", "min s/epoch", "median s/epoch", "spread", "CPU s", "CPU/wall", "images/s",
                 "GFLOP/s", "% of f32 peak", "val acc"], rows))
    print("GFLOP/s: training FLOPs (3x forward, multiply-add = 2) x images / median seconds; validation not counted")
    if ratios:
        print(summary("train_speed", ratios))
    if bf16_ratios:
        print(summary("train_speed_bf16", bf16_ratios) + "  (mnistlab float32 / bfloat16 median seconds; target 1.3x)")
    cnn = f"{percent['cnn', 'mnistlab']:.0f}%" if ("cnn", "mnistlab") in percent else "n/a"
    print(f"peak: f32 {peak['f32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s; mnistlab cnn {cnn} of peak")


if __name__ == "__main__":
    main()
