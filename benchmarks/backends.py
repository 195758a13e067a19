"""Keras backends on this CPU: one training epoch of each architecture on TensorFlow, JAX and PyTorch.

Keras 3 picks its backend once, at import (``KERAS_BACKEND``), so every measurement is its own
subprocess: this script started again with ``--child`` under the interpreter of that backend's
environment. mnistlab needs only TensorFlow; JAX and PyTorch are optional and are best installed
into scratch virtual environments that see the system packages (keras, numpy, TensorFlow,
mnistlab's dependencies), never into requirements::

    python -m venv --system-site-packages /tmp/venv-jax   && /tmp/venv-jax/bin/pip install "jax[cpu]"
    python -m venv --system-site-packages /tmp/venv-torch && /tmp/venv-torch/bin/pip install torch  # a CPU wheel

    python benchmarks/backends.py --python-jax /tmp/venv-jax/bin/python --python-torch /tmp/venv-torch/bin/python
                                  [--repeats 3] [--archs mlp cnn deep_cnn] [--backends tensorflow jax torch]
                                  [--pipeline-backends tensorflow jax] [--images 50000]
                                  [--steps-per-execution mnistlab|N]

A variant whose interpreter cannot import keras and the backend's package (with that backend
selected) is skipped, and the reason printed. TensorFlow runs under this interpreter; JAX and
PyTorch under ``--python-jax`` / ``--python-torch`` (default: this interpreter too). Everything took
40 minutes on 2 shared cores (deep_cnn is most of it); ``--images 2000 --repeats 1 --archs mlp cnn``
checks the set-up in about 4.

What is measured, the same on every backend:

* **The same model.** Built by :func:`mnistlab.models.architectures.build_model` from mnistlab's
  declarative layer list, in the child, under the child's backend (that module imports Keras
  only). ``keras.utils.set_random_seed`` imports TensorFlow whenever it is installed (to seed
  tf.data), so the JAX and PyTorch children of the array variants hide TensorFlow and run without it.
* **The same settings.** The recipe's split (the last 10,000 training images held out), fitting on
  the first ``--images`` (default all 50,000) of full MNIST from ``$MNISTLAB_MNIST`` or
  ``../shared/data/mnist.npz`` (else the shipped sample's 4,000, with a warning, none held out);
  batch 32, SGD with learning rate 0.01, categorical cross-entropy, reshuffled, seed 0; ``steps_per_execution`` as mnistlab's trainer uses it per
  architecture (:data:`mnistlab.models.training.STEPS_PER_EXECUTION`), except on PyTorch, where
  Keras allows only 1 (``--steps-per-execution 1`` runs every backend at 1).
* **Two inputs.** The variants named after a backend (``tensorflow``, ``jax``, ``torch``) fit
  in-memory float32 arrays (pixels / 255, one-hot labels), each backend's own Keras data path.
  The ``+tf.data`` variants (TensorFlow and JAX, ``--pipeline-backends``) fit mnistlab's own input
  pipeline (:func:`mnistlab.models.training.batches`: uint8 kept, each batch converted in tf.data),
  what a ``backend`` option in mnistlab's trainer would run without changing its input; Keras hands
  JAX each tf.data batch as NumPy. Each is compared with TensorFlow on the same input.
* **PyTorch's threads.** Its CPU build runs ops on OpenMP threads that spin while waiting; on 2
  cores shared with other work that made a small Dense step 10-40x slower, so the torch child gets
  ``OMP_WAIT_POLICY=PASSIVE`` unless the variable is set (see :data:`TORCH_OMP_WAIT_POLICY`).
* **Warm-up outside the timed part.** Each child first fits one epoch on a small slice of the
  training images sized so that it runs exactly the batch shapes and block lengths of the timed
  epoch (one full block of ``steps_per_execution`` batches, then the same short last block and
  partial last batch): tracing/JIT compilation and first-call costs happen there. The timed part
  is then one full ``model.fit`` epoch (training only, no validation), wall seconds and the CPU
  seconds of the child (all threads). The warm-up's seconds are reported too (``warm-up s``:
  compilation plus that slice's training).
* **Interleaved.** Per repeat and architecture the variants run back to back, the order
  alternating (TF, JAX, torch, ...; then ..., torch, JAX, TF), so drift in the load of a shared
  machine hits all alike. At least 3 repeats (default).
* **Reported** per architecture and variant: min and median seconds per epoch, the median CPU
  seconds and CPU/wall (near the core count: the cores were ours), images/s, the test accuracy
  after the epoch (a sanity check: equal within seed noise; backends draw different initial
  weights from the same seed), and ``vs TF``: TensorFlow's median seconds / the variant's median
  seconds (above 1.00x the variant is faster), with the same ratio per repeat (paired,
  back-to-back runs) as min..max, so "consistently faster" can be read off, and ``CPU vs TF``,
  the ratio of median CPU seconds (steadier while neighbours take cores).

The last lines read ``backends: mlp jax 1.05x torch 0.60x, cnn jax ...x, ... (vs tensorflow)`` and
``backends_tfdata: mlp jax ...x, ... (vs tensorflow+tf.data)``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")
HOLDOUT = 10_000
BATCH = 32
LEARNING_RATE = 0.01
SEED = 0
RESULT = "BACKENDS-RESULT "  # the child's one line of JSON on stdout starts with this
TFDATA = "+tf.data"
#: variant -> (Keras backend, input): "arrays" in-memory float32 arrays; "tfdata" mnistlab's tf.data pipeline
VARIANTS = {**{b: (b, "arrays") for b in BACKENDS}, **{b + TFDATA: (b, "tfdata") for b in BACKENDS[:2]}}
REFERENCE = {"arrays": "tensorflow", "tfdata": "tensorflow" + TFDATA}  # what "vs TF" divides by
#: PyTorch's CPU build runs its ops on OpenMP threads that spin while they wait; on 2 cores shared
#: with other work that spinning made a Dense step 10 to 40x slower (a plain torch loop of mlp steps:
#: 35-75 ms a step with the default, ACTIVE; 3-4 ms with PASSIVE; 1.6 ms on one thread). The torch
#: child gets PASSIVE unless OMP_WAIT_POLICY is set.
TORCH_OMP_WAIT_POLICY = "PASSIVE"


# -- the child: one (backend, arch) measurement in a fresh process --------------------------------
def holdout(n_train: int) -> int:
    """Training images held out as the recipe does (the last 10,000); none on the 4,000-image sample."""
    return HOLDOUT if n_train > 2 * HOLDOUT else 0


def warmup_images(n_fit: int, steps_per_execution: int) -> int:
    """Images for the warm-up fit: one full block of ``steps_per_execution`` batches, then the same
    last block (and partial last batch) as an epoch of ``n_fit`` images, so that every shape and
    block length the timed epoch runs has been traced and compiled before it."""
    block = BATCH * steps_per_execution
    return min(n_fit, block + n_fit % block)


def child(backend: str, arch: str, images: int, source: str, spe_option: str, pipeline: str = "arrays") -> dict:
    started = time.perf_counter()
    os.environ["KERAS_BACKEND"] = backend  # the parent sets it too; Keras reads it at import
    if backend != "tensorflow" and pipeline == "arrays":
        # keras.utils.set_random_seed imports TensorFlow whenever it is installed (to seed tf.data);
        # hide it, so that the JAX and PyTorch children run without it, as they would without it installed.
        sys.modules["tensorflow"] = None
    import keras
    import numpy as np

    from mnistlab.datasets.mnist import load_mnist
    from mnistlab.datasets.tasks import get_task
    from mnistlab.models.architectures import build_model
    from mnistlab.models.training import STEPS_PER_EXECUTION, batches, prepare_images

    if keras.backend.backend() != backend:
        raise RuntimeError(f"asked for the {backend} backend, Keras runs {keras.backend.backend()}")
    spe = STEPS_PER_EXECUTION[arch] if spe_option == "mnistlab" else int(spe_option)
    if backend == "torch":
        spe = 1  # Keras: "`steps_per_execution` must be 1 with the PyTorch backend"
    data = load_mnist(source)
    task = get_task("digits")
    n_pool = len(data.x_train) - holdout(len(data.x_train))
    pixels, digits = data.x_train[:n_pool][:images], data.y_train[:n_pool][:images]
    n_fit = len(pixels)
    n_warm = warmup_images(n_fit, spe)
    if pipeline == "arrays":  # float32 / 255 in the arch's input layout, one-hot float32 labels, in memory
        x, y = prepare_images(pixels, arch), task.targets(digits)

        def fit(n: int):
            return model.fit(x[:n], y[:n], batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
    else:  # mnistlab's trainer's input: uint8 kept, each batch converted in a tf.data pipeline, reshuffled

        def fit(n: int):
            fit_data = batches(pixels[:n], task.targets(digits[:n]), BATCH, arch, shuffle_seed=SEED)
            return model.fit(fit_data, epochs=1, shuffle=False, verbose=0)
    x_test, y_test = prepare_images(data.x_test, arch), task.targets(data.y_test)

    keras.utils.set_random_seed(SEED)
    model = build_model(arch, "digits")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LEARNING_RATE), loss=task.loss,
                  metrics=["accuracy"], steps_per_execution=spe)
    imported = time.perf_counter()
    fit(n_warm)  # warm-up: the same batch shapes and block lengths as the timed epoch
    warmed = time.perf_counter()

    wall, cpu = time.perf_counter(), time.process_time()
    history = fit(n_fit)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    module = __import__(backend)
    return {
        "backend": backend, "pipeline": pipeline, "arch": arch, "wall": wall, "cpu": cpu, "images": n_fit,
        "warmup_images": n_warm, "steps_per_execution": spe, "setup_s": imported - started,
        "warmup_s": warmed - imported, "train_accuracy": float(history.history["accuracy"][-1]),
        "test_accuracy": float(test_accuracy), "test_loss": float(test_loss),
        "versions": {"keras": keras.__version__, "numpy": np.__version__,
                     backend: getattr(module, "__version__", "?")},
        "torch_threads": module.get_num_threads() if backend == "torch" else None,
        "tensorflow_imported": sys.modules.get("tensorflow") is not None, "source": data.source.title,
    }


# -- the parent: probe the backends, launch the children interleaved, report ----------------------
def child_env(backend: str) -> dict[str, str]:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", MNISTLAB_OFFLINE="1")
    if backend == "torch":
        env.setdefault("OMP_WAIT_POLICY", TORCH_OMP_WAIT_POLICY)
    root = str(Path(__file__).resolve().parent.parent)  # mnistlab importable from any interpreter
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def probe(backend: str, python: str, pipeline: str) -> tuple[dict | None, str]:
    """(versions, "") when ``python`` can run Keras on ``backend`` (and TensorFlow's tf.data for
    ``pipeline="tfdata"``); else (None, why not)."""
    modules = [backend] + (["tensorflow"] if pipeline == "tfdata" and backend != "tensorflow" else [])
    code = ("import importlib, json, sys, keras; ms = [importlib.import_module(n) for n in sys.argv[1:]]; "
            "print(json.dumps({'keras': keras.__version__, 'backend': keras.backend.backend(), "
            "sys.argv[1]: getattr(ms[0], '__version__', '?')}))")
    if not Path(python).exists():
        return None, f"{python} does not exist"
    try:
        done = subprocess.run([python, "-c", code, *modules], check=False, env=child_env(backend), capture_output=True, text=True,
                              timeout=300)
    except subprocess.TimeoutExpired:
        return None, f"{python} took over 300 s to import keras with the {backend} backend"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        return None, f"{python} cannot run Keras on {backend}" + (" with tf.data" if len(modules) > 1 else "") + \
            f": {last}"
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if found["backend"] != backend:
        return None, f"{python}: Keras chose {found['backend']}, not {backend}"
    return found, ""


def launch(variant: str, python: str, arch: str, args, source: str) -> dict:
    backend, pipeline = VARIANTS[variant]
    command = [python, str(Path(__file__).resolve()), "--child", backend, arch, "--pipeline", pipeline,
               "--images", str(args.images), "--data", source, "--steps-per-execution", args.steps_per_execution]
    done = subprocess.run(command, check=False, env=child_env(backend), capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
    raise RuntimeError(f"{variant} {arch} failed (exit {done.returncode}):\n{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats per variant (default 3)")
    parser.add_argument("--archs", nargs="+", default=["mlp", "cnn", "deep_cnn"])
    parser.add_argument("--backends", nargs="*", default=list(BACKENDS), choices=BACKENDS,
                        help="backends fed in-memory float32 arrays (default all three)")
    parser.add_argument("--pipeline-backends", nargs="*", default=["tensorflow", "jax"], choices=BACKENDS[:2],
                        help="backends also fed by mnistlab's own uint8 tf.data pipeline (default tensorflow jax; "
                             "none: leave these variants out)")
    parser.add_argument("--images", type=int, default=50_000, help="training images fitted on (default all 50,000)")
    parser.add_argument("--steps-per-execution", default="mnistlab",
                        help="'mnistlab' (its per-architecture setting; PyTorch: 1) or a number for every backend")
    parser.add_argument("--python-jax", default=sys.executable, help="interpreter with jax installed")
    parser.add_argument("--python-torch", default=sys.executable, help="interpreter with torch installed")
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "ARCH"), help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", default="arrays", choices=["arrays", "tfdata"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps_per_execution != "mnistlab" and not args.steps_per_execution.isdigit():
        parser.error("--steps-per-execution must be 'mnistlab' or a positive number")

    if args.child:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        result = child(*args.child, images=args.images, source=args.data, spe_option=args.steps_per_execution,
                       pipeline=args.pipeline)
        print(RESULT + json.dumps(result), flush=True)
        return

    if args.repeats < 1 or args.images < BATCH:
        parser.error(f"--repeats must be at least 1 and --images at least {BATCH}")
    from common import data_source, median, table  # sets sys.path for mnistlab; no TensorFlow import

    from mnistlab.datasets.mnist import resolve_source

    source = data_source()
    info = resolve_source(source)
    held_out = holdout(info.n_train)
    n_fit = min(args.images, info.n_train - held_out)
    pythons = {"tensorflow": sys.executable, "jax": args.python_jax, "torch": args.python_torch}
    wanted = list(args.backends) + [b + TFDATA for b in args.pipeline_backends]
    variants, versions = [], {}
    for variant in wanted:
        backend, pipeline = VARIANTS[variant]
        found, why = probe(backend, pythons[backend], pipeline)
        if found is None:
            print(f"skipped {variant}: {why}")
            continue
        variants.append(variant)
        versions[variant] = found
        print(f"{variant}: {pythons[backend]} (keras {found['keras']}, {backend} {found[backend]})")
    if len({v["keras"] for v in versions.values()}) > 1:
        print("WARNING: the interpreters run different Keras versions; the comparison is not like for like")
    print(f"data: {info.title} ({info.n_train:,} training images, fitting on {n_fit:,}; the last {held_out:,} "
          f"held out); batch {BATCH}, SGD {LEARNING_RATE}; repeats: {args.repeats}; cores: {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print("timed: one epoch (training only) after a warm-up fit on a slice with the same batch shapes", flush=True)

    started = time.perf_counter()
    runs: dict[tuple[str, str], list[dict]] = {(a, v): [] for a in args.archs for v in variants}
    paired: dict[tuple[str, str], list[float]] = {(a, v): [] for a in args.archs for v in variants}
    for repeat in range(args.repeats):
        for index, arch in enumerate(args.archs):
            order = variants if (repeat * len(args.archs) + index) % 2 == 0 else list(reversed(variants))
            this_repeat = {}
            for variant in order:
                try:
                    run = launch(variant, pythons[VARIANTS[variant][0]], arch, args, source)
                except RuntimeError as exc:
                    print(f"  repeat {repeat + 1} {arch:8} {variant:18} FAILED: {exc}", flush=True)
                    continue
                runs[arch, variant].append(run)
                this_repeat[variant] = run["wall"]
                print(f"  repeat {repeat + 1} {arch:8} {variant:18} {run['wall']:7.2f} s wall, {run['cpu']:7.2f} s "
                      f"CPU, warm-up {run['warmup_s']:5.2f} s, test acc {run['test_accuracy']:.4f}, spe "
                      f"{run['steps_per_execution']}" + (", TensorFlow imported" if run["tensorflow_imported"] and
                                                         VARIANTS[variant] == (run["backend"], "arrays") and
                                                         run["backend"] != "tensorflow" else ""), flush=True)
            for variant, wall in this_repeat.items():
                reference = REFERENCE[VARIANTS[variant][1]]
                if reference in this_repeat:
                    paired[arch, variant].append(this_repeat[reference] / wall)
    elapsed = time.perf_counter() - started
    print(f"  done in {elapsed / 60:.1f} min; load average {os.getloadavg()[0]:.2f}")

    rows, ratios = [], {"arrays": {}, "tfdata": {}}
    for arch in args.archs:
        for variant in variants:
            timed = runs[arch, variant]
            if not timed:
                rows.append([arch, variant, "failed", "", "", "", "", "", "", "", "", "", ""])
                continue
            pipeline = VARIANTS[variant][1]
            walls = [r["wall"] for r in timed]
            cpus = [r["cpu"] for r in timed]
            med = median(walls)
            vs, per_repeat, cpu_vs = "", "", ""
            reference = runs.get((arch, REFERENCE[pipeline]), [])
            if reference:
                ratio = median(r["wall"] for r in reference) / med
                vs = f"{ratio:.2f}x"
                cpu_vs = f"{median(r['cpu'] for r in reference) / median(cpus):.2f}x"
                pairs = paired[arch, variant]
                per_repeat = f"{min(pairs):.2f}..{max(pairs):.2f}x" if pairs else ""
                if variant != REFERENCE[pipeline]:
                    ratios[pipeline].setdefault(arch, {})[VARIANTS[variant][0]] = ratio
            rows.append([arch, variant, timed[0]["steps_per_execution"], min(walls), med, median(cpus),
                         f"{median(cpus) / med:.2f}", f"{timed[0]['images'] / med:,.0f}",
                         f"{median(r['warmup_s'] for r in timed):.1f}",
                         f"{median(r['test_accuracy'] for r in timed):.4f}", vs, per_repeat, cpu_vs])
    print(table(["arch", "variant", "spe", "min s/epoch", "median s/epoch", "CPU s", "CPU/wall", "images/s",
                 "warm-up s", "test acc", "vs TF", "per repeat", "CPU vs TF"], rows))
    print("vs TF: TensorFlow's median s / the variant's median s, with the same input (arrays: 'tensorflow'; "
          "+tf.data: 'tensorflow+tf.data'); above 1.00x the variant is faster. per repeat: that ratio for each "
          "repeat's back-to-back runs, min..max; CPU vs TF: the same ratio of median CPU seconds (steadier where "
          "neighbours take cores: CPU/wall well below the core count)")
    for pipeline, name, reference in (("arrays", "backends", "tensorflow"),
                                      ("tfdata", "backends_tfdata", "tensorflow+tf.data")):
        if ratios[pipeline]:
            print(f"{name}: " + ", ".join(f"{arch} " + " ".join(f"{b} {r:.2f}x" for b, r in per.items())
                                          for arch, per in ratios[pipeline].items()) + f" (vs {reference})")


if __name__ == "__main__":
    main()
