"""Training speed: mnistlab's trainer vs. a recipe-style Keras script, same settings.

One epoch at batch 32 with SGD (learning rate 0.01) on the recipe's split (the last 10,000
training images held out), for mlp, cnn and deep_cnn. The two alternate in one process
(A B A B ...); each is timed around model.fit. Ratio = recipe seconds / mnistlab seconds
(medians): the target is 1.5x. Both validation accuracies after the epoch are printed.

    python benchmarks/train_speed.py [--repeats 3] [--archs mlp cnn deep_cnn]
"""

from __future__ import annotations

import argparse
import time

from common import data_source, median, summary, table

from mnistlab.datasets.mnist import load_mnist
from mnistlab.runs.config import RunConfig


def recipe_epoch(arch: str, data) -> tuple[float, float]:
    """What the recipe scripts do: float32 arrays in memory, one-hot labels, model.fit."""
    import keras

    from mnistlab.models.architectures import build_model

    n_val = len(data.x_train) // 6
    shape = (-1, 784) if arch.startswith("mlp") else (-1, 28, 28, 1)
    x = (data.x_train.astype("float32") / 255).reshape(shape)
    y = keras.utils.to_categorical(data.y_train, 10)
    keras.utils.set_random_seed(0)
    model = build_model(arch, "digits")
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    history = model.fit(x[:-n_val], y[:-n_val], batch_size=32, epochs=1, validation_data=(x[-n_val:], y[-n_val:]),
                        verbose=0)
    return time.perf_counter() - started, history.history["val_accuracy"][-1]


def mnistlab_epoch(arch: str, data) -> tuple[float, float]:
    from mnistlab.models.training import train

    result = train(RunConfig(arch=arch, epochs=1, batch_size=32, optimizer="sgd", validation="holdout"), data)
    return result.timings["fit_seconds"], result.history[-1]["val_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--archs", nargs="+", default=["mlp", "cnn", "deep_cnn"])
    args = parser.parse_args()
    source = data_source()
    data = load_mnist(source)
    print(f"data: {data.source.title} ({len(data.x_train):,} training images); repeats: {args.repeats}")
    rows, ratios = [], {}
    for arch in args.archs:
        recipe, ours = [], []
        for _ in range(args.repeats):  # alternate A B A B
            recipe.append(recipe_epoch(arch, data))
            ours.append(mnistlab_epoch(arch, data))
        r_s, o_s = median(t for t, _ in recipe), median(t for t, _ in ours)
        ratios[arch] = r_s / o_s
        rows.append([arch, r_s, o_s, f"{ratios[arch]:.2f}x", median(a for _, a in recipe), median(a for _, a in ours),
                     " ".join(f"{t:.1f}" for t, _ in recipe), " ".join(f"{t:.1f}" for t, _ in ours)])
        print(f"  {arch}: recipe {r_s:.2f}s, mnistlab {o_s:.2f}s", flush=True)
    print(table(["arch", "recipe s/epoch", "mnistlab s/epoch", "ratio", "recipe val acc", "mnistlab val acc",
                 "recipe runs", "mnistlab runs"], rows))
    print(summary("train_speed", ratios))


if __name__ == "__main__":
    main()
