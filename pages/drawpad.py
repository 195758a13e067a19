"""A drawing pad for one digit: a small Streamlit component of the project's own (no CDN, no package).

Built on ``st.components.v2`` (Streamlit >= 1.51): the HTML, CSS and JavaScript below are
mounted in the app's page (in a shadow root), so the pad works offline. The pad is drawn at
up to 256x256 CSS pixels (narrower in a narrow column; a 280x280 bitmap either way) over a faint
28x28 grid; after each stroke the JavaScript averages the ink
into 56x56 and sends it as base64 (``{"size": 56, "pixels": ..., "strokes": n}``). The
library checks that value (:func:`mnistlab.datasets.drawing.decode_pad`) and makes the
drawing MNIST-like (:func:`mnistlab.datasets.drawing.preprocess`).

Not a page: pages/playground.py imports it (the library never imports Streamlit).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from mnistlab.datasets.drawing import decode_pad

HTML = """
<div class="mnist-pad">
  <canvas width="280" height="280" aria-label="Drawing pad: draw a digit with the mouse or a finger"></canvas>
  <div class="row"><button type="button" class="clear">Clear</button><span class="hint">Draw one digit, large.</span></div>
</div>
"""

CSS = """
.mnist-pad { display: flex; flex-direction: column; gap: 6px; font-family: inherit; width: 100%; max-width: 258px; }
.mnist-pad canvas {
  display: block; width: 100%; height: auto; aspect-ratio: 1 / 1; box-sizing: border-box;
  touch-action: none; cursor: crosshair; border-radius: 6px;
  border: 1px solid rgba(49, 51, 63, 0.3); background-color: #ffffff;
  background-image: linear-gradient(rgba(0,0,0,0.05) 1px, transparent 1px),
                    linear-gradient(90deg, rgba(0,0,0,0.05) 1px, transparent 1px);
  background-size: calc(100% / 28) calc(100% / 28);
}
.mnist-pad .row { display: flex; align-items: center; gap: 10px; }
.mnist-pad button {
  font: inherit; font-size: 14px; padding: 4px 14px; border-radius: 6px; cursor: pointer;
  border: 1px solid rgba(49, 51, 63, 0.3); background: #fff; color: rgb(49, 51, 63);
}
.mnist-pad button:hover { border-color: #ff4b4b; color: #ff4b4b; }
.mnist-pad .hint { font-size: 13px; color: rgba(49, 51, 63, 0.6); }
"""

JS = """
const OUT = 56;

export default function (component) {
  const { parentElement, setStateValue } = component;
  const root = parentElement.querySelector(".mnist-pad");
  if (!root) return;
  root.__setState = setStateValue;  // the latest callback, also after a rerun
  if (root.__ready) return;
  root.__ready = true;
  const canvas = root.querySelector("canvas");
  const ctx = canvas.getContext("2d");
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = 22;
  ctx.strokeStyle = "rgba(0, 0, 0, 1)";
  let drawing = false, strokes = 0, last = null;

  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  const send = () => {
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    const block = canvas.width / OUT;
    const bytes = new Uint8Array(OUT * OUT);
    for (let y = 0; y < OUT; y++) {
      for (let x = 0; x < OUT; x++) {
        let sum = 0;
        for (let dy = 0; dy < block; dy++) {
          for (let dx = 0; dx < block; dx++) {
            sum += data[((y * block + dy) * canvas.width + (x * block + dx)) * 4 + 3];
          }
        }
        bytes[y * OUT + x] = Math.round(sum / (block * block));
      }
    }
    let text = "";
    for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    root.__setState("drawing", { size: OUT, pixels: btoa(text), strokes: strokes });
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    last = point(event);
    canvas.setPointerCapture(event.pointerId);
    ctx.beginPath();
    ctx.arc(last[0], last[1], ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const p = point(event);
    ctx.beginPath();
    ctx.moveTo(last[0], last[1]);
    ctx.lineTo(p[0], p[1]);
    ctx.stroke();
    last = p;
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    strokes += 1;
    send();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  root.querySelector("button.clear").addEventListener("click", () => {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    strokes = 0;
    root.__setState("drawing", null);
  });
}
"""

_PAD = st.components.v2.component("mnistlab_drawpad", html=HTML, css=CSS, js=JS)


def drawpad(key: str) -> np.ndarray | None:
    """Mount the pad; the current drawing as floats in [0, 1] (ink = 1), or None before the first stroke."""
    result = _PAD(key=key, default={"drawing": None}, on_drawing_change=lambda: None, width="stretch")
    try:
        value = result.get("drawing") if hasattr(result, "get") else getattr(result, "drawing", None)
    except Exception:  # noqa: BLE001 - an unexpected result shape is no drawing
        value = None
    return decode_pad(value)
