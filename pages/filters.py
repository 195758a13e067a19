"""Filters: hand-made convolution kernels on real digits, and the kernels a CNN learned."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from mnistlab.analysis.filters import (
    MAX_KERNEL_VALUE,
    PRESETS,
    contributions,
    convolve,
    feature_maps,
    output_bounds,
    pad_kernel,
    preset,
    relu,
    tidy,
    validate_kernel,
)
from mnistlab.errors import BrokenRun
from mnistlab.views import charts, share
from mnistlab.views.text import code, md
from pages import common

KERNEL_PX = 50  # a learned kernel's or feature map's width on the page: sixteen to a row
OVERRIDE = "filters_override"  # session state: a learned kernel copied into the editor (no widget owns it)

st.title("Filters")
st.caption("A convolution slides a small kernel over the image and sums the products at every position: "
           "exactly what a Keras Conv2D layer computes (no kernel flip). Edit the kernel and watch the output.")

data = common.dataset()
x_test, y_test = data.x_test, data.y_test

link = common.read_link("filters")
if link is not None:
    view, messages = share.parse_filters(link, len(x_test))
    if view.kernel is not None:
        k = int(round(len(view.kernel) ** 0.5))
        kernel_in = np.asarray(view.kernel).reshape(k, k)
        if k in (1, 3):
            kernel_in, k = pad_kernel(kernel_in, 3), 3
        if k in (3, 5):
            st.session_state[OVERRIDE] = {"kernel": kernel_in.tolist(), "size": k, "name": "from the link"}
            st.session_state["filters_size"] = k
        else:
            messages.append("Ignored the link's 'kernel': the editor takes 3x3 and 5x5 kernels.")
    common.show_link_messages(messages)
    st.session_state.update(filters_pick="by test index", filters_index=view.index, filters_preset=view.preset,
                            filters_padding=view.padding, filters_relu=view.relu)

# -- the digit ---------------------------------------------------------------------------
d1, d2, d3 = st.columns([1.2, 1, 1])
pick = d1.radio("Digit", ["by test index", "random of a class"], horizontal=True, key="filters_pick")
if pick == "by test index":
    index = int(d2.number_input("Test image index", 0, len(x_test) - 1, key="filters_index"))
else:
    digit = d2.selectbox("Class", list(range(10)), key="filters_class")
    candidates = np.flatnonzero(y_test == digit)
    if d3.button("Another one", key="filters_another", icon=":material/casino:") or \
            st.session_state.get("filters_random_class") != digit:
        st.session_state["filters_random_class"] = digit
        st.session_state["filters_random_index"] = int(np.random.default_rng().choice(candidates))
    index = st.session_state["filters_random_index"]
image = x_test[index] / 255.0

# -- the kernel -------------------------------------------------------------------------
k1, k2, k3, k4, k5 = st.columns([0.9, 1.5, 1, 0.8, 1.1])
size = k1.radio("Kernel size", [3, 5], horizontal=True, key="filters_size", format_func=lambda k: f"{k}×{k}")
preset_name = k2.selectbox("Preset", list(PRESETS), key="filters_preset",
                           help="Classic image filters and the two hand-made filters of the CNN chapter.")
padding = k3.radio("Padding", ["valid", "same"], horizontal=True, key="filters_padding",
                   help="valid: no padding, the output shrinks; same: zeros around, the output keeps its size.")
use_relu = k4.toggle("ReLU", key="filters_relu", help="Keep only positive outputs, as a Conv2D with relu does.")
scale = k5.radio("Output colours", ["fixed", "auto"], horizontal=True, key="filters_scale",
                 help="fixed: from the least to the most this kernel can give on any digit (pixels 0–1), so "
                      "digits compare; auto: stretched to this output's own range, so faint detail shows.")

override = st.session_state.get(OVERRIDE)
if override is not None and override["size"] == size:
    start, source = np.asarray(override["kernel"]), override["name"]
else:
    start, source = preset(preset_name, size), preset_name
    st.caption(PRESETS[preset_name][1])
editor = st.data_editor(pd.DataFrame(start, columns=[f"c{i}" for i in range(size)]), hide_index=True,
                        key=f"filters_editor_{source}_{size}", width="content",
                        column_config={f"c{i}": st.column_config.NumberColumn(f"{i}", format="%.3f")
                                       for i in range(size)})
if override is not None and st.button("Back to the presets", key="filters_clear"):
    st.session_state.pop(OVERRIDE)
    st.rerun()
try:
    kernel = validate_kernel(editor.to_numpy(dtype=float))
except ValueError as exc:
    hint = (f"Use numbers between -{MAX_KERNEL_VALUE:,.0f} and {MAX_KERNEL_VALUE:,.0f}" if "between" in str(exc)
            else "Fill every cell of the kernel with a number")
    st.error(f"{md(exc)}. {hint}; the charts show again once every value is.", icon=":material/error:")
    st.stop()

edited = override is not None or not np.array_equal(kernel, preset(preset_name, size))
if edited and not np.array_equal(kernel, np.asarray(start, dtype=float)):
    st.caption(f"Edited from {md(source)}, so it is now a custom kernel.")
    source = "custom"  # an edited preset is no longer that preset
common.write_link("filters", share.FiltersView(index=index, preset=preset_name,
                                               kernel=tuple(kernel.ravel()) if edited else None,
                                               padding=padding, relu=use_relu).to_params())
with st.popover("Copy share link", icon=":material/share:"):
    common.share_box(st.query_params.to_dict())

output = convolve(image, kernel, padding=padding)
shown = relu(output) if use_relu else output

a, b, c = st.columns([1, 0.7, 1])
a.plotly_chart(charts.matrix_heatmap(image, f"input: test digit #{index} ({y_test[index]})", colorscale="gray_r"),
               key="filters_input")
b.plotly_chart(charts.matrix_heatmap(tidy(kernel), f"kernel ({source})", colorscale="RdBu", zmid=0,
                                     show_values=True, height=260), key="filters_kernel")
if scale == "fixed":
    low, high = output_bounds(kernel, activation=use_relu)
    bound = max(abs(low), abs(high), 1e-9)
    zmin, zmax = (0.0, max(high, 1e-9)) if use_relu else (-bound, bound)
    scale_words = (f"fixed scale from {tidy(zmin, 3):.3f} to {tidy(zmax, 3):.3f}: the least and the most this kernel "
                   "can give on any digit")
else:
    zmin = zmax = None
    scale_words = "auto scale: stretched to this output's own range"
c.plotly_chart(charts.matrix_heatmap(tidy(shown, 4), f"output {shown.shape[0]}×{shown.shape[1]}"
                                     + (" after ReLU" if use_relu else ""), fmt=".3f",
                                     colorscale="RdBu" if not use_relu else "gray_r",
                                     zmid=0 if not use_relu and zmin is None else None, zmin=zmin, zmax=zmax,
                                     showscale=True), key="filters_output")
colours = "white is 0, blue above, red below" if not use_relu else "white is 0, darker is more"
st.caption(f"Output values from {tidy(shown.min()):.3f} to {tidy(shown.max()):.3f} (mean {tidy(shown.mean()):.3f}); "
           f"colours: {scale_words} ({colours}). Inputs are pixels scaled to 0–1, as in training. Hover for values.")

with st.expander("How one output pixel is made", expanded=False):
    p1, p2 = st.columns(2)
    row = int(p1.number_input("Output row", 0, shown.shape[0] - 1, shown.shape[0] // 2, key="filters_row"))
    col = int(p2.number_input("Output column", 0, shown.shape[1] - 1, shown.shape[1] // 2, key="filters_col"))
    parts = contributions(image, kernel, row, col, padding=padding)
    fmt = lambda m: pd.DataFrame(tidy(m)).style.format("{:.3f}")  # noqa: E731  (no "-0.000")
    q1, q2, q3 = st.columns(3)
    q1.markdown("**Input patch**")
    q1.dataframe(fmt(parts["patch"]), hide_index=True)
    q2.markdown("**× kernel**")
    q2.dataframe(fmt(parts["kernel"]), hide_index=True)
    q3.markdown("**= products**")
    q3.dataframe(fmt(parts["products"]), hide_index=True)
    value = parts["value"]
    st.markdown(f"Sum of the {kernel.size} products: **{tidy(value, 4):.4f}**"
                + (f" → after ReLU **{tidy(max(value, 0.0), 4):.4f}**" if use_relu else ""))

# -- what a CNN learned -------------------------------------------------------------------
st.divider()
st.subheader("Kernels a trained CNN learned")
cnn_runs = [r for r in common.runs(show_broken=False, finished=True) if r.has_first_layer]
if not cnn_runs:
    st.info("Train a CNN (cnn, deep_cnn or cnn_dropout) to see its first-layer kernels here.", icon=":material/info:")
    st.stop()
run = common.run_picker("CNN run", cnn_runs, key="filters_run")
try:
    kernels, biases = run.first_layer()  # the weights are checked when they are read
except BrokenRun as exc:
    st.error(f"Run {code(run.run_id)} cannot be shown: {md(exc.reason, limit=1000)}. Pick another run.",
             icon=":material/error:")
    st.stop()
n = kernels.shape[-1]
# Pictures, not heatmaps: two grids of 32 small charts would cost a fresh browser seconds to draw.
zoom = -(-KERNEL_PX // kernels.shape[0])  # each weight a block of pixels: sharp, not blurred
st.image([charts.picture_url(kernels[:, :, 0, f], "RdBu", symmetric=True, zoom=zoom) for f in range(n)],
         caption=[f"#{f}" for f in range(n)], width=KERNEL_PX)
st.caption("Each kernel on its own colour scale centred on zero: blue positive, red negative, white zero. To read a "
           "kernel's values, copy it into the editor (below the feature maps).")
maps = feature_maps(x_test[index], kernels, biases)
st.caption(f"Their feature maps on digit #{index} (kernel, plus bias, then ReLU; each map on its own scale, "
           "darker is more):")
st.image([charts.picture_url(m, zoom=-(-KERNEL_PX // m.shape[0])) for m in maps],
         caption=[f"#{f}" for f in range(n)], width=KERNEL_PX)


def copy_kernel(choice: int) -> None:
    k = kernels[:, :, 0, choice]
    st.session_state[OVERRIDE] = {"kernel": k.tolist(), "size": k.shape[0], "name": f"{run.run_id[:6]} #{choice}"}
    st.session_state["filters_size"] = k.shape[0]


e1, e2 = st.columns([1, 3])
choice = e1.selectbox("Learned kernel", list(range(n)), key="filters_learned_choice", format_func=lambda f: f"#{f}")
e2.button("Copy it into the editor above", key="filters_copy", on_click=copy_kernel, args=(choice,),
          icon=":material/content_copy:")
