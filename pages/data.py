"""Data: where the images come from, how many of each class, and what they look like."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from mnistlab.datasets.tasks import TASKS
from mnistlab.views import charts
from mnistlab.views.text import code, md
from pages import common

SAMPLE_PX = 62  # each sample's width on the page: five to a row in the left column

st.title("Data")
info = common.source_info()
data = common.dataset(info)

st.markdown(f"**Source:** {md(info.title)}" + (f" — {code(info.path)}" if info.kind in ("file", "keras") else ""))
st.caption(f"Why: {md(info.reason, limit=1000)}. Fingerprint {code(info.fingerprint)} (part of every run id).")
if info.kind == "sample":
    st.info("This is a 5,000-digit sample of real MNIST, split 4,000 / 1,000, so the app works without internet. "
            "For the full 70,000 digits, set `MNISTLAB_MNIST` to an MNIST `.npz` (Keras' layout) and restart.",
            icon=":material/info:")

m1, m2, m3 = st.columns(3)
m1.metric("Training images", f"{len(data.x_train):,}")
m2.metric("Test images", f"{len(data.x_test):,}")
m3.metric("Image size", "28 × 28, 0–255")

counts = data.class_counts()
fig = go.Figure([go.Bar(x=np.arange(10), y=counts[part], name=part, marker_color=color,
                        hovertemplate=f"{part}, digit %{{x}}: %{{y:,}} images<extra></extra>")
                 for part, color in zip(("train", "test"), charts.PALETTE)])
fig.update_layout(template="plotly_white", height=320, barmode="group", title="Images per class",
                  xaxis=dict(dtick=1, title="digit"), yaxis=dict(title="images"), legend=dict(title="part"),
                  margin=dict(l=10, r=10, t=50, b=10))
st.plotly_chart(fig, key="data_counts")

left, right = st.columns([1, 1.2], gap="large")
with left:
    task = st.radio("Label the samples by", list(TASKS), horizontal=True, key="data_task",
                    format_func=lambda t: {"digits": "digit", "parity": "odd / even"}[t])
    if st.button("New samples", key="data_shuffle", icon=":material/casino:"):
        st.session_state["data_seed"] = int(np.random.default_rng().integers(1 << 30))
    rng = np.random.default_rng(st.session_state.get("data_seed", 0))
    picks = rng.choice(len(data.x_train), 25, replace=False)
    names = TASKS[task].class_names
    titles = [names[label] for label in TASKS[task].labels(data.y_train[picks])]
    # Pictures, not heatmaps: 25 small charts would cost a fresh browser seconds to draw.
    st.image([charts.picture_url(data.x_train[i], zoom=3) for i in picks], caption=titles, width=SAMPLE_PX)
with right:
    index = int(st.number_input("One training digit as its pixel matrix", 0, len(data.x_train) - 1,
                                int(picks[0]), key="data_index"))
    st.plotly_chart(charts.matrix_heatmap(data.x_train[index], f"training image #{index}: {data.y_train[index]}",
                                          colorscale="gray_r", fmt=".0f", show_values=True, hide_zeros=True,
                                          height=460),  # the square fills the column's width at 1280 px
                    key="data_pixels")
