"""Where a training step's time goes: each layer's forward + backward pass, float32 against bfloat16,
on 1 and 2 TensorFlow threads, beside the whole training step.

``train_speed.py`` says how fast an epoch is; this says why. For each architecture (batch 32, the
digits task) every layer of the Keras model is timed alone: its forward pass and the gradients for
its weights and its input (what backpropagation computes in it), on a fixed random batch of the
shape it sees in the model (the layers after the first get their input in the layer's compute
dtype, as in the model). Then the whole step (model, loss, gradients, SGD update) is timed the same
way; "rest" is the step minus the sum of its layers: the loss, the optimizer's update, the
float32 -> bfloat16 casts of the weights that mixed precision adds to every step, and glue.

Each (threads, precision) pair runs in its own process (TensorFlow fixes its thread pool at start);
each timed call runs 20 steps in a loop inside TensorFlow (so Python's call overhead is paid once); calls
are warmed up (traced) first, then the best of 9 is taken (best, not median: this profile compares
kernels, and the best is the least disturbed by neighbours). The upstream gradient is a fixed random
tensor handed to the tape (``output_gradients``), so no extra operation runs in the forward pass; the
model's first layer computes no gradient for its input, as in the model. "predict" is the model's
forward pass on a batch of ``EVAL_BATCH_SIZE`` images (validation and the per-epoch test answers).
A layer's GFLOP/s counts its multiply-adds (2 FLOPs each) x 3 for forward + backward, as
``training_flops`` does; "% peak" is against the same process's float32 matmul peak
(see ``train_speed.matmul_peak``).

Last, TensorFlow's own profiler (``tf.profiler``) traces 50 whole steps at the highest thread count
and the time is summed per op type (``Conv2DBackpropFilter``, ``Cast``, ``MaxPoolGrad``, ...), float32
beside bfloat16: what the step is made of, including the casts mixed precision adds.

    python benchmarks/layers.py [--archs cnn deep_cnn] [--threads 1 2]

Ends with ``layers: <arch> bf16 step <f32/bf16>x (2 threads), ...``: the measured bfloat16 gain of
the whole step (the target in the speed issue is 1.3x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from common import ROOT, summary, table

BATCH = 32
STEPS = 20  # training steps per timed call
CHILD_FLAG = "--child"


def layer_flops(layer) -> int:
    """Forward multiply-adds x 2 of a Keras Dense or Conv2D layer for one image (0 for the others)."""
    kind = type(layer).__name__
    if kind == "Dense":
        return 2 * int(layer.input.shape[-1]) * int(layer.units)
    if kind == "Conv2D":
        _, out_h, out_w, filters = layer.output.shape
        k_h, k_w = layer.kernel_size
        return 2 * int(out_h) * int(out_w) * k_h * k_w * int(layer.input.shape[-1]) * int(filters)
    return 0


def best_ms(steps, repeats: int = 9, calls: int = STEPS) -> float:
    """Best over ``repeats`` of the milliseconds per step of ``steps(calls)`` (a tf.function that
    loops ``calls`` times inside TensorFlow, so Python's call overhead is paid once), warmed up."""
    import tensorflow as tf

    n = tf.constant(calls)
    float(steps(n))  # trace and warm up
    float(steps(n))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        float(steps(n))
        best = min(best, (time.perf_counter() - started) / calls * 1000)
    return best


def child(arch: str, threads: int, precision: str) -> dict:
    from mnistlab.runs.worker import thread_budget

    thread_budget(threads)
    import keras
    import tensorflow as tf

    from mnistlab.models.architectures import build_model
    from mnistlab.models.training import EVAL_BATCH_SIZE
    from train_speed import matmul_peak

    def first(tensors):  # one element of each tensor: keeps them computed, costs nothing
        return tf.add_n([tf.cast(tf.reshape(t, [-1])[0], tf.float32) for t in tensors])

    keras.utils.set_random_seed(0)
    model = build_model(arch, "digits", precision)
    rows = []
    dtype = tf.float32
    for index, layer in enumerate(model.layers):
        x = tf.cast(tf.random.uniform((BATCH, *layer.input.shape[1:])), dtype)
        upstream = tf.cast(tf.random.uniform((BATCH, *layer.output.shape[1:])), layer.compute_dtype)
        # The model's first layer needs no gradient for its input (the images): none is computed.
        watch = bool(index)

        def loop(n, x, upstream, layer=layer, watch=watch):
            total = tf.constant(0.0)
            for _ in tf.range(n):
                with tf.GradientTape() as tape:
                    if watch:
                        tape.watch(x)
                    y = layer(x, training=True)
                targets = [*layer.trainable_variables, x] if watch else list(layer.trainable_variables)
                total += first(tape.gradient(y, targets, output_gradients=upstream))
            return total

        traced = tf.function(loop)

        def steps(n, traced=traced, x=x, upstream=upstream):
            return traced(n, x, upstream)

        rows.append({"layer": layer.name, "kind": type(layer).__name__, "ms": best_ms(steps),
                     "flops": layer_flops(layer)})
        dtype = tf.as_dtype(layer.compute_dtype)

    x = tf.random.uniform((BATCH, *model.input_shape[1:]))
    y = tf.one_hot(tf.random.uniform((BATCH,), maxval=10, dtype=tf.int32), 10)
    optimizer = keras.optimizers.SGD(0.01)
    loss_fn = keras.losses.CategoricalCrossentropy()

    @tf.function
    def train_steps(n):
        total = tf.constant(0.0)
        for _ in tf.range(n):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            total += loss
        return total

    big = tf.random.uniform((EVAL_BATCH_SIZE, *model.input_shape[1:]))

    @tf.function
    def predict_steps(n):
        total = tf.constant(0.0)
        for _ in tf.range(n):
            total += first([model(big, training=False)])
        return total

    return {"arch": arch, "threads": threads, "precision": precision, "layers": rows,
            "step_ms": best_ms(train_steps), "predict_ms": best_ms(predict_steps, calls=4),
            "ops": op_profile(train_steps), "peak": matmul_peak(trials=4)}


def op_profile(train_steps, steps: int = 50) -> dict[str, list[float]]:
    """TensorFlow's own profiler over ``steps`` training steps: per op type (``Conv2DBackpropFilter``,
    ``Cast``, ...), milliseconds per step summed over TensorFlow's compute threads, and count per step."""
    import collections
    import glob
    import tempfile

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        float(train_steps(tf.constant(steps)))
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(open(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1], "rb").read())
    ms: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's threads; each op runs on one
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and "::" not in name:  # "<node>:<op type>"; not the executor's own spans
                    kind = name.rsplit(":", 1)[1].replace("_MklNative", "").replace("_Mkl", "")
                    ms[kind] += event.duration_ps / 1e9 / steps
                    count[kind] += 1 / steps
    return {kind: [ms[kind], count[kind]] for kind in ms}


def run_child(arch: str, threads: int, precision: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, __file__, CHILD_FLAG, arch, str(threads), precision], cwd=ROOT,
                         env=env, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{arch} {threads} threads {precision} failed:\n{out.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["cnn", "deep_cnn"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    args = parser.parse_args()
    ratios = {}
    for arch in args.archs:
        results = {(t, p): run_child(arch, t, p) for t in args.threads for p in ("float32", "bfloat16")}
        peak = max(r["peak"]["f32"] for r in results.values())
        headers = ["layer"]
        for t in args.threads:
            headers += [f"f32 ms {t}t", f"bf16 ms {t}t", f"bf16 gain {t}t"]
        if len(args.threads) > 1:
            low, high = min(args.threads), max(args.threads)
            headers += [f"f32 {low}->{high}t", f"bf16 {low}->{high}t"]
        headers += ["f32 GFLOP/s", "% peak", "% of f32 step"]
        top = max(args.threads)
        f32_top = results[top, "float32"]
        rows = []
        names = [layer["layer"] for layer in f32_top["layers"]]
        for i, name in enumerate(names):
            row = [name]
            for t in args.threads:
                f, b = results[t, "float32"]["layers"][i]["ms"], results[t, "bfloat16"]["layers"][i]["ms"]
                row += [f, b, f"{f / b:.2f}x"]
            if len(args.threads) > 1:
                for p in ("float32", "bfloat16"):
                    row.append(f"{results[low, p]['layers'][i]['ms'] / results[high, p]['layers'][i]['ms']:.2f}x")
            flops = f32_top["layers"][i]["flops"]
            gflops = 3 * flops * BATCH / (f32_top["layers"][i]["ms"] / 1000) / 1e9 if flops else None
            row += ["-" if gflops is None else f"{gflops:.0f}", "-" if gflops is None else f"{100 * gflops / peak:.0f}",
                    f"{100 * f32_top['layers'][i]['ms'] / f32_top['step_ms']:.0f}"]
            rows.append(row)
        for label, key in (("sum of layers", None), ("whole step", "step_ms"), ("predict (eval batch)", "predict_ms")):
            row = [label]
            for t in args.threads:
                f = results[t, "float32"][key] if key else sum(x["ms"] for x in results[t, "float32"]["layers"])
                b = results[t, "bfloat16"][key] if key else sum(x["ms"] for x in results[t, "bfloat16"]["layers"])
                row += [f, b, f"{f / b:.2f}x"]
            if len(args.threads) > 1:
                for p in ("float32", "bfloat16"):
                    lo = results[low, p][key] if key else sum(x["ms"] for x in results[low, p]["layers"])
                    hi = results[high, p][key] if key else sum(x["ms"] for x in results[high, p]["layers"])
                    row.append(f"{lo / hi:.2f}x")
            row += ["", "", ""]
            rows.append(row)
        rest = {p: results[top, p]["step_ms"] - sum(x["ms"] for x in results[top, p]["layers"])
                for p in ("float32", "bfloat16")}
        print(f"\n{arch}, batch {BATCH}, ms per step (forward + backward of the layer alone; best of 9 x {STEPS} steps); "
              f"float32 matmul peak {peak:.0f} GFLOP/s, bfloat16 {max(r['peak']['bf16'] for r in results.values()):.0f}"
              f"")
        print(table(headers, rows))
        print(f"rest of the step at {top} threads (loss, update, casts, glue): float32 {rest['float32']:.2f} ms, "
              f"bfloat16 {rest['bfloat16']:.2f} ms", flush=True)
        ops = {p: results[top, p]["ops"] for p in ("float32", "bfloat16")}
        kinds = sorted(set(ops["float32"]) | set(ops["bfloat16"]),
                       key=lambda k: -max(ops["float32"].get(k, [0])[0], ops["bfloat16"].get(k, [0])[0]))
        print(f"TensorFlow's profiler, {top} threads: ms per step by op type (summed over its compute threads; "
              "oneDNN kernels named without their _MklNative prefix)")
        print(table(["op type", "float32 ms", "bfloat16 ms", "bf16 gain", "per step f32 / bf16"], [
            [kind, ops["float32"].get(kind, [0, 0])[0], ops["bfloat16"].get(kind, [0, 0])[0],
             (f"{ops['float32'][kind][0] / ops['bfloat16'][kind][0]:.2f}x"
              if kind in ops["float32"] and kind in ops["bfloat16"] and ops["bfloat16"][kind][0] else "-"),
             f"{ops['float32'].get(kind, [0, 0])[1]:.0f} / {ops['bfloat16'].get(kind, [0, 0])[1]:.0f}"]
            for kind in kinds[:14]] + [["all ops", sum(v[0] for v in ops["float32"].values()),
                                         sum(v[0] for v in ops["bfloat16"].values()), "", ""]]), flush=True)
        ratios[f"{arch} bf16 step"] = results[top, "float32"]["step_ms"] / results[top, "bfloat16"]["step_ms"]
    print(summary("layers", ratios))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == CHILD_FLAG:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        print("RESULT " + json.dumps(child(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
    else:
        main()
