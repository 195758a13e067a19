"""Valid, realistic-looking stored runs written without training: for tests, browser tests, benchmarks.

    from tests.synthetic import synthetic_configs, write_runs

    configs = synthetic_configs(300, seeds=3)            # 100 configurations x 3 seeds
    ids = write_runs(RunStore(root), configs, diverged=(7,))

Each run is what the store itself would hold for that configuration: the configuration is
resolved against the data source with :func:`mnistlab.runs.config.resolve` (so its id is the
store's id), the JSON files pass :func:`mnistlab.runs.records.check_files`, the arrays have the
shapes and dtypes the store checks (predictions for the source's test images, with the source's
real test digits; random weights of the architecture's shapes; the optional per-epoch answers),
and each folder is written under ``.tmp/`` and renamed into place. No TensorFlow, no training:
about 5 ms a run.

The numbers are made up but plausible: losses fall roughly exponentially to a floor that depends
on architecture and optimizer, accuracies rise to a plateau in 0.9-0.995, validation a little
below training, small seeded noise; the final validation accuracy depends clearly on the
optimizer (adam > rmsprop > sgd > adagrad) and the architecture (deep_cnn > cnn > mlp), and only
slightly on seed, batch size and learning rate, so a hyperparameter-importance analysis finds
optimizer and arch. Test predictions are built to have exactly the stored test accuracy, and the
stored test loss is their cross-entropy. The same arguments write the same files (``created``
timestamps aside: they end now, increasing in the order of ``configs``).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mnistlab import __version__
from mnistlab.datasets.mnist import Dataset, SourceInfo, load_source, resolve_source
from mnistlab.datasets.tasks import get_task
from mnistlab.models.architectures import count_params, weight_shapes
from mnistlab.runs import records
from mnistlab.errors import ConfigError
from mnistlab.runs.config import DEFAULT_LEARNING_RATES, Resolved, RunConfig, resolve

__all__ = ["final_val_accuracy", "synthetic_configs", "write_runs"]

# -- the made-up training dynamics --------------------------------------------------------
#: Final validation accuracy on full MNIST after convergence, per architecture (adam, batch 32).
ARCH_PLATEAU = {"mlp": 0.978, "mlp_512": 0.980, "mlp_512x2": 0.981, "cnn": 0.989, "cnn_dropout": 0.991,
                "deep_cnn": 0.993}
#: What the optimizer adds to (takes from) it: the clearest effect, with the architecture.
OPTIMIZER_SHIFT = {"adam": 0.0, "nadam": 0.0, "adamw": -0.0005, "rmsprop": -0.003, "sgd": -0.013,
                   "adagrad": -0.03}
#: Epochs to close 63% of the gap to the plateau.
OPTIMIZER_TAU = {"adam": 1.4, "nadam": 1.3, "adamw": 1.4, "rmsprop": 1.6, "sgd": 2.6, "adagrad": 4.0}
#: Train accuracy above validation at the plateau (the perceptrons overfit most).
OVERFIT_GAP = {"mlp": 0.018, "mlp_512": 0.016, "mlp_512x2": 0.019, "cnn": 0.009, "cnn_dropout": 0.004,
               "deep_cnn": 0.003}
#: Training images per second at batch size 32 on a laptop CPU (epoch time = images / speed).
ARCH_SPEED = {"mlp": 40_000, "mlp_512": 45_000, "mlp_512x2": 30_000, "cnn": 9_000, "cnn_dropout": 4_000,
              "deep_cnn": 3_500}
#: A diverged run's huge validation loss (as a learning rate of 10 gives) before the loss turns NaN.
DIVERGED_VAL_LOSS = 7206.4


def final_val_accuracy(config: RunConfig, fit_images: int) -> float:
    """The noise-free validation accuracy a synthetic run of ``config`` converges to."""
    acc = ARCH_PLATEAU.get(config.arch, 0.985) + OPTIMIZER_SHIFT.get(config.optimizer, -0.005)
    acc -= 0.0015 * math.log2(max(config.batch_size, 1) / 32) if config.batch_size > 32 else 0.0
    acc -= 0.002 * abs(math.log2(config.effective_learning_rate / DEFAULT_LEARNING_RATES[config.optimizer]))
    acc -= 0.012 * max(0.0, math.log10(50_000 / max(fit_images, 1)))  # fewer images, less accuracy
    if config.task == "parity":
        acc += 0.004
    return float(min(0.995, max(0.9, acc)))


# -- configurations ---------------------------------------------------------------------------
def _lr_factor(round_: int) -> float:
    """Round 0 keeps the learning rates given; later rounds scale them by 2^(±k/4): mild, distinct."""
    if round_ == 0:
        return 1.0
    step = (round_ + 1) // 2
    return 2.0 ** ((step if round_ % 2 else -step) / 4)


def synthetic_configs(n: int, *, seeds: int = 1, archs: Sequence[str] = ("mlp", "cnn", "deep_cnn"),
                      optimizers: Sequence[str] = ("sgd", "adam", "rmsprop"), batch_sizes: Sequence[int] = (32, 128),
                      learning_rates: Sequence[float | None] = (None,), epochs: Sequence[int] = (10,),
                      task: str = "digits") -> list[RunConfig]:
    """``n`` distinct configurations: ``ceil(n / seeds)`` configurations, each with seeds 0..seeds-1.

    The configurations cycle through the grid with the architecture varying fastest, then the
    optimizer, batch size, learning rate and epochs (so any prefix is balanced over archs and
    optimizers); past the grid's size the cycle repeats with the learning rates scaled by
    2^(±1/4), 2^(±2/4), … so every configuration stays distinct. The order is configuration-major:
    ``[c0 seed 0, c0 seed 1, …, c1 seed 0, …]``; the last configuration gets fewer seeds when
    ``seeds`` does not divide ``n``. Two configurations that train the same (``learning_rate`` None
    and the optimizer's default) count once. ``data`` is ``sample``; :func:`write_runs` pins it.
    """
    if n < 0 or seeds < 1:
        raise ValueError(f"n must be >= 0 and seeds >= 1, got n={n}, seeds={seeds}")
    if not all((archs, optimizers, batch_sizes, learning_rates, epochs)):
        raise ValueError("every axis of the grid needs at least one value")
    wanted = math.ceil(n / seeds)
    bases: list[RunConfig] = []
    seen: set[tuple] = set()
    grid = list(itertools.product(epochs, learning_rates, batch_sizes, optimizers, archs))  # last varies fastest
    for round_ in itertools.count():
        if len(bases) >= wanted:
            break
        if round_ > 2000:
            raise ValueError(f"the grid yields only {len(bases)} distinct configurations, {wanted} are needed")
        factor = _lr_factor(round_)
        for n_epochs, lr, batch_size, optimizer, arch in grid:
            if len(bases) >= wanted:
                break
            config = RunConfig(task=task, arch=arch, epochs=n_epochs, batch_size=batch_size, optimizer=optimizer,
                               learning_rate=lr, data="sample")
            if factor != 1.0:
                try:
                    config = config.replace(learning_rate=float(f"{config.effective_learning_rate * factor:.4g}"))
                except ConfigError:  # scaled past the allowed range (over 10)
                    continue
            key = (task, arch, n_epochs, batch_size, optimizer, config.effective_learning_rate)
            if key in seen:
                continue
            seen.add(key)
            bases.append(config)
    return [base.replace(seed=seed) for base in bases for seed in range(seeds)][:n]


# -- writing --------------------------------------------------------------------------------
def _source(data: Any) -> tuple[SourceInfo, Any]:
    """(source, data to resolve against) for ``data``: a name or path, a SourceInfo or a Dataset."""
    if isinstance(data, Dataset):
        return data.source, data
    if isinstance(data, SourceInfo):
        return data, data
    info = resolve_source(str(data) if isinstance(data, os.PathLike) else data)
    return info, info


def _test_digits(data: Any, info: SourceInfo) -> np.ndarray:
    if isinstance(data, Dataset):
        return np.asarray(data.y_test, dtype=np.int64)
    return np.asarray(load_source(info).y_test, dtype=np.int64)  # cached per process


def _split(explicit: RunConfig, info: SourceInfo) -> dict[str, Any]:
    """The split block the trainer records (see mnistlab.models.training.split_data), from sizes alone."""
    if explicit.validation == "holdout":
        fit, val = explicit.train_size, int(explicit.validation_size)
        text = f"fit on {fit:,}, validate on the last {val:,} training images"
    elif explicit.validation == "fraction":
        fraction = float(explicit.effective_validation_size)
        fit = int(math.floor(explicit.train_size * (1.0 - fraction)))
        val = explicit.train_size - fit
        text = f"fit on {fit:,}, validate on the last {val:,} ({fraction:g} of {explicit.train_size:,})"
    else:
        fit, val = explicit.train_size, int(info.n_test or 0)
        text = f"fit on {fit:,}, validate on the {val:,} test images"
    return {"description": text, "fit_images": fit, "validation_images": val}


def _versions() -> dict[str, str]:
    return {"mnistlab": __version__, "numpy": np.__version__, "python": platform.python_version(),
            "synthetic": "tests.synthetic (not trained)"}


class _Shared:
    """What every run of one write shares: the test digits, each image's difficulty and likely confusion."""

    CONFUSED = np.array([6, 7, 7, 5, 9, 3, 0, 1, 3, 4])  # a digit's most common wrong answer

    def __init__(self, digits: np.ndarray, rng_seed: int):
        rng = np.random.default_rng([rng_seed, 0x5EED])
        self.digits = digits
        n = len(digits)
        self.difficulty = rng.random(n, dtype=np.float32)
        other = (digits + rng.integers(1, 10, n)) % 10
        self.wrong_digit = np.where(rng.random(n) < 0.6, self.CONFUSED[digits], other)


def _curves(config: RunConfig, split: dict[str, Any], rng: np.random.Generator, diverged: bool
            ) -> tuple[list[dict[str, Any]], float]:
    """The per-epoch history and the plateau of the validation accuracy."""
    arch, optimizer = config.arch, config.optimizer
    speed = ARCH_SPEED.get(arch, 10_000) * min(4.0, (config.batch_size / 32) ** 0.45)
    fit, val = split["fit_images"], split["validation_images"]
    history: list[dict[str, Any]] = []
    elapsed = 0.0

    def timing(epoch: int) -> tuple[float, float]:
        nonlocal elapsed
        seconds = (fit / speed + val / (3 * speed) + 0.05 + (0.4 if epoch == 1 else 0.0)) \
            * float(np.exp(rng.normal(0, 0.04)))
        elapsed += seconds + 0.002
        return seconds, elapsed

    if diverged:
        n = int(rng.integers(1, 3))
        for epoch in range(1, n + 1):
            seconds, total = timing(epoch)
            last = epoch == n
            record = {"epoch": epoch,
                      "loss": None if last else round(float(1843.7 * np.exp(rng.normal(0, 0.2))), 4),
                      "accuracy": float(0.1 + rng.normal(0, 0.004)),
                      "val_loss": None if last and n > 1 else DIVERGED_VAL_LOSS + round(float(rng.random()), 4),
                      "val_accuracy": float(0.098 + rng.normal(0, 0.003)),
                      "seconds": seconds, "elapsed": total}
            history.append(record)
        return history, 0.1

    plateau = final_val_accuracy(config, fit) + float(rng.normal(0, 0.0008))  # the seed's luck
    tau = OPTIMIZER_TAU.get(optimizer, 2.0) * (config.batch_size / 32) ** 0.15
    first_gap = {"adam": 0.02, "nadam": 0.02, "adamw": 0.02, "rmsprop": 0.025, "sgd": 0.06, "adagrad": 0.12}.get(
        optimizer, 0.05) * (config.batch_size / 32) ** 0.2 * (1.5 if arch == "deep_cnn" else 1.0)
    v1 = max(0.5, plateau - first_gap)
    train_plateau = min(0.9995, plateau + OVERFIT_GAP.get(arch, 0.01))
    t1 = max(0.45, v1 - 0.02)  # epoch 1's running average is below its end-of-epoch validation
    noise_v = math.sqrt(plateau * (1 - plateau) / max(val, 1)) * 0.3
    creep = 0.004 if arch.startswith("mlp") and optimizer != "sgd" else 0.0008  # val loss rises late
    for epoch in range(1, config.epochs + 1):
        decay = math.exp(-(epoch - 1) / tau)
        val_acc = min(0.9999, plateau - (plateau - v1) * decay + float(rng.normal(0, noise_v)))
        train_acc = min(0.9999, train_plateau - (train_plateau - t1) * decay + float(rng.normal(0, 0.0003)))
        loss = (3.0 * (1 - train_acc) + 0.002) * float(np.exp(rng.normal(0, 0.02)))
        val_loss = (3.4 * (1 - val_acc) + 0.004 + creep * max(0, epoch - 3 * tau)) * float(np.exp(rng.normal(0, 0.03)))
        seconds, total = timing(epoch)
        history.append({"epoch": epoch, "loss": loss, "accuracy": train_acc, "val_loss": val_loss,
                        "val_accuracy": val_acc, "seconds": seconds, "elapsed": total})
    if config.patience is not None:  # early stopping on val_loss, restoring the best epoch
        best, since = 0, 0
        for i, record in enumerate(history):
            if record["val_loss"] < history[best]["val_loss"]:
                best, since = i, 0
            elif i:
                since += 1
                if since >= config.patience:
                    del history[i + 1:]
                    break
    return history, plateau


def _predictions(task_name: str, shared: _Shared, n: int, accuracy: float, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities, labels, predicted labels, error order, wrong label) with exactly round((1-accuracy)n) errors."""
    task = get_task(task_name)
    digits = shared.digits[:n]
    labels = task.labels(digits)
    score = shared.difficulty[:n] + rng.standard_normal(n, dtype=np.float32) * np.float32(0.15)  # hard for all
    order = np.argsort(-score)  # most likely wrong first
    wrong = np.zeros(n, dtype=bool)
    wrong[order[:int(round((1 - accuracy) * n))]] = True
    wrong_label = task.labels(shared.wrong_digit[:n]) if task.units > 1 else 1 - labels
    predicted = np.where(wrong, wrong_label, labels)
    margin = np.float32(4.0) + np.float32(8.0) * (np.float32(1.0) - np.clip(score, 0, 1)) \
        * rng.random(n, dtype=np.float32)
    if task.units == 1:  # P(odd); |logit| >= 1.4, so the predicted side is clear
        logit = np.where(predicted == 1, margin, -margin) * np.where(wrong, np.float32(0.35), np.float32(1.0))
        probabilities = (1.0 / (1.0 + np.exp(-logit)))[:, None]
    else:  # the predicted class leads every other logit by more than 0.2
        z = rng.random((n, task.units), dtype=np.float32)
        z -= np.float32(0.5)
        rows = np.arange(n)
        z[rows, predicted] += margin
        z[rows[wrong], labels[wrong]] += margin[wrong] - np.float32(1.1) - np.float32(1.8) * rng.random(
            int(wrong.sum()), dtype=np.float32)
        z -= z[rows, predicted][:, None]
        probabilities = np.exp(z, out=z)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
    probabilities = probabilities.astype(np.float32, copy=False)
    return probabilities, labels, predicted, order, wrong_label


def _cross_entropy(task_name: str, probabilities: np.ndarray, labels: np.ndarray) -> float:
    p = probabilities.astype(np.float64)
    if p.shape[1] == 1:
        p_true = np.where(labels == 1, p[:, 0], 1.0 - p[:, 0])
    else:
        p_true = p[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p_true, 1e-7, 1.0)).mean())


def _epoch_answers(history: list[dict], kept: int, final: np.ndarray, probabilities: np.ndarray, labels: np.ndarray,
                   order: np.ndarray, wrong_label: np.ndarray, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The test answers after every epoch: fewer errors as validation improves; the kept epoch's row
    is the final predictions."""
    n = len(labels)
    task_p = probabilities if probabilities.shape[1] > 1 else np.hstack([1 - probabilities, probabilities])
    final_conf = task_p[np.arange(n), final]
    errors_kept = int((final != labels).sum())
    classes = np.empty((len(history), n), np.uint8)
    confidence = np.empty((len(history), n), np.float16)
    for e, record in enumerate(history):
        if e + 1 == kept:
            classes[e], confidence[e] = final, final_conf
            continue
        shift = history[kept - 1]["val_accuracy"] - record["val_accuracy"]
        k = int(np.clip(round(errors_kept + shift * n), 0, n))
        row = labels.copy()
        row[order[:k]] = wrong_label[order[:k]]
        classes[e] = row
        lift = 0.3 * math.exp(-e / 2.0)
        confidence[e] = np.clip(final_conf - lift * rng.random(n), 0.1, 1.0)
    return classes, confidence


def _glorot(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A Glorot-uniform kernel, or small biases."""
    if len(shape) == 1:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.01)
    fan_in = math.prod(shape[:-1])
    fan_out = shape[-1] * math.prod(shape[:-2]) if len(shape) > 2 else shape[-1]
    limit = np.float32(math.sqrt(6.0 / (fan_in + fan_out)))
    w = rng.random(shape, dtype=np.float32)
    w *= np.float32(2.0) * limit
    w -= limit
    return w


def _weights(arch: str, task: str, seed: int, rng: np.random.Generator, cache: dict) -> list[np.ndarray]:
    """Random weights of the architecture's shapes: the first layer (what the Filters page shows) drawn
    per run, the deeper ones shared by the runs of one architecture, task and seed (for speed)."""
    shapes = weight_shapes(arch, task)
    key = (arch, task, seed)
    if key not in cache:
        deep = np.random.default_rng([seed, len(shapes), 0xDEE9])
        cache[key] = [_glorot(shape, deep) for shape in shapes[2:]]
    return [_glorot(shapes[0], rng), _glorot(shapes[1], rng), *cache[key]]


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:  # no fsync: a test store, not a user's
        fh.write(text)


def write_runs(store: Any, configs: Iterable[RunConfig], *, data: Any = "sample", diverged: Iterable[int] = (),
               rng_seed: int = 0, n_test: int | None = None, epochs_npz: bool = True) -> list[str]:
    """Write one valid run per configuration into ``store.root`` (created if needed); return their ids in order.

    ``store``: a RunStore (or a folder). ``data``: what the configurations are resolved against:
    ``"sample"`` (the shipped sample, always there), ``"auto"``, a path to an MNIST ``.npz``, a
    SourceInfo or a Dataset; each configuration's own ``data`` is ignored. ``diverged``: indices
    into ``configs`` written as diverged runs (1-2 epochs, a huge validation loss, then a NaN loss;
    no test metrics, no arrays). ``rng_seed``: changes every number, never an id. ``n_test``: predict
    only the first ``n_test`` test images (default: all of the source's; the pages index the source's
    test images, so keep the default for them). ``epochs_npz``: also write the optional per-epoch
    test answers. A run folder already there with the same id is replaced.
    """
    root = Path(store.root if hasattr(store, "root") else store).expanduser().resolve()
    configs = list(configs)
    diverged = {int(i) for i in diverged}
    bad = sorted(i for i in diverged if not 0 <= i < len(configs))
    if bad:
        raise IndexError(f"diverged indices {bad[:5]} are not indices of the {len(configs)} configurations")
    info, against = _source(data)
    resolved: list[Resolved] = [resolve(config, against) for config in configs]
    ids = [r.run_id for r in resolved]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        twice = next(i for i, run_id in enumerate(ids) if run_id in seen or seen.add(run_id))
        raise ValueError(f"configuration {twice} ({configs[twice].label()}) trains the same as an earlier one")
    if not ids:
        return []

    fresh = not root.is_dir() or not any(records.RUN_ID.match(p.name) for p in root.iterdir())
    root.mkdir(parents=True, exist_ok=True)
    marker = root / "store.json"
    if fresh and not marker.is_file():  # what the store writes on its first write (no migration needed)
        _write_text(marker, json.dumps({"format": records.FORMAT}))
    tmp_root = root / ".tmp"
    tmp_root.mkdir(exist_ok=True)

    digits = _test_digits(data, info)
    if n_test is not None:
        if not 1 <= n_test <= len(digits):
            raise ValueError(f"n_test must be in [1, {len(digits)}], got {n_test}")
        digits = digits[:n_test]
    shared = _Shared(digits, rng_seed)
    data_block = {"kind": info.kind, "title": info.title, "fingerprint": info.fingerprint,
                  "reason": info.reason[:2000]}
    versions = _versions()
    weight_cache: dict = {}

    # Times first: runs end now, one after another, in the order given.
    docs = []
    for index, res in enumerate(resolved):
        rng = np.random.default_rng([rng_seed, int(res.run_id, 16)])
        split = _split(res.explicit, info)
        history, _ = _curves(res.explicit, split, rng, index in diverged)
        docs.append((rng, split, history))
    totals = []
    for index, (rng, split, history) in enumerate(docs):
        fit_s = history[-1]["elapsed"] + 0.01
        speed = ARCH_SPEED.get(configs[index].arch, 10_000)
        eval_s = 0.0 if index in diverged else len(digits) / (3 * speed) * (1 + 0.1 * float(rng.random())) + 0.05
        totals.append({"fit_seconds": fit_s, "evaluate_seconds": eval_s, "total_seconds": fit_s + eval_s + 0.3})
    now = datetime.now(timezone.utc)
    ends = np.cumsum([max(t["total_seconds"], 0.002) for t in totals])
    start = now - timedelta(seconds=float(ends[-1]))

    for index, (res, (rng, split, history)) in enumerate(zip(resolved, docs)):
        run_id, config = res.run_id, res.explicit
        created = (start + timedelta(seconds=float(ends[index]))).isoformat(timespec="milliseconds")
        folder = tmp_root / f"synthetic-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        try:
            if index in diverged:
                kept_epoch = kept_reason = test_loss = test_accuracy = None
                message = (f"the training loss became nan in epoch {len(history)}" if len(history) > 1 else
                           "the training loss became inf in epoch 1")
                status, n_written, kept = "diverged", 0, {}
            else:
                if config.patience is not None:
                    kept_epoch = min(range(len(history)), key=lambda i: history[i]["val_loss"]) + 1
                    kept_reason = "best_val_loss"
                else:
                    kept_epoch, kept_reason = len(history), "last"
                kept = history[kept_epoch - 1]
                target = float(np.clip(kept["val_accuracy"] + rng.normal(-0.001, 0.0015), 0.5, 0.9995))
                probabilities, labels, final, order, wrong_label = _predictions(config.task, shared, len(digits),
                                                                                target, rng)
                test_accuracy = float((final == labels).mean())
                test_loss = _cross_entropy(config.task, probabilities, labels)
                status, n_written, message = "finished", len(digits), ""
                records.save_predictions(folder / "predictions.npz", run_id, probabilities, labels, digits)
                records.save_weights(folder / "weights.npz", run_id, config.arch,
                                     _weights(config.arch, config.task, config.seed, rng, weight_cache))
                if epochs_npz and records.epochs_nbytes(len(history), len(digits)) <= \
                        records.SIZE_LIMITS["epochs.npz"]:
                    records.save_epochs(folder / "epochs.npz", run_id,
                                        *_epoch_answers(history, kept_epoch, final, probabilities, labels, order,
                                                        wrong_label, rng))
            metrics = {
                "run_id": run_id, "status": status, "kept_epoch": kept_epoch, "kept_reason": kept_reason,
                "epochs_run": len(history), "test_loss": test_loss, "test_accuracy": test_accuracy,
                "val_loss": kept.get("val_loss"), "val_accuracy": kept.get("val_accuracy"),
                "params": count_params(config.arch, config.task), "split": split, "timings": totals[index],
                "versions": versions, "data": data_block, "n_test": n_written, "created": created,
                "message": message,
            }
            config_doc = {"format": records.FORMAT, "run_id": run_id, "config": res.config.to_dict(),
                          "canonical": res.canonical_json, "aliases": []}
            history_doc = {"run_id": run_id, "epochs": records.clean(history)}
            metrics = records.clean(metrics)
            records.check_files(run_id, config_doc, history_doc, metrics)  # what is written reads back
            _write_text(folder / "config.json", records.json_text(config_doc))
            _write_text(folder / "history.json", records.json_text(history_doc))
            _write_text(folder / "metrics.json", records.json_text(metrics))
            target_dir = root / run_id
            if target_dir.exists():
                trash = tmp_root / f"replaced-{run_id}-{uuid.uuid4().hex[:8]}"
                os.rename(target_dir, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.rename(folder, target_dir)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return ids
