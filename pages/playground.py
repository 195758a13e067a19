"""Playground: one digit (drawn, or from the test set) through many stored runs, layer by layer."""

from __future__ import annotations

import numpy as np
import streamlit as st

from mnistlab.analysis import robustness
from mnistlab.analysis.filters import convolve, preset, relu
from mnistlab.datasets import drawing
from mnistlab.datasets.tasks import get_task
from mnistlab.errors import BrokenRun
from mnistlab.models.engine import Engine
from mnistlab.views import charts, share
from mnistlab.views.playground import PlaygroundView, agreement, feature_maps, parse_playground
from mnistlab.views.text import code, md
from pages import common
from pages.drawpad import drawpad

ANSWER_WIDTH = 152  # px per run's probability chart: three fit beside the pad at 1280 px (Plotly needs 150)
MAP_PX = 60  # px per feature-map picture: 16 to a row at 1280 px
LINK_DRAWN = "playground_link_drawn"  # session state: a drawn digit that came in a link (no widget owns it)

st.title("Playground")
st.caption("Draw a digit (or pick one from the test set) and watch your stored runs answer, layer by layer. "
           "Every model runs here in NumPy from its stored weights: no TensorFlow.")

all_runs = common.runs(finished=True)
by_id = {r.run_id: r for r in all_runs}
data = common.dataset()
x_test, y_test = data.x_test, data.y_test

link = common.read_link("playground")
if link is not None:
    view, messages = parse_playground(link, len(x_test))
    common.show_link_messages(messages)
    resolved, missing = common.resolve_refs(list(view.runs) + ([view.focus] if view.focus else []), by_id)
    chosen = [rid for rid in resolved[: len(view.runs)] if rid is not None]
    if chosen:
        st.session_state["playground_runs"] = list(dict.fromkeys(chosen))
    if view.focus is not None and resolved[-1] is not None:
        st.session_state["playground_focus"] = resolved[-1]
    st.session_state["playground_missing"] = missing
    st.session_state.update(playground_source=view.source, playground_index=view.index)
    st.session_state[LINK_DRAWN] = view.drawn
common.missing_runs_box(st.session_state.get("playground_missing", []), "playground")
if not all_runs:
    common.empty_state("play with")
    st.stop()


@st.cache_resource(max_entries=64, show_spinner=False)
def engine(run_id: str, _run) -> Engine:
    """A run's model in NumPy, built once per server (a run's weights never change)."""
    return Engine.from_run(_run)


@st.cache_resource(show_spinner=False)
def robustness_results() -> dict:
    """Robustness curves per (run id, data fingerprint), kept for the server's life."""
    return {}


def engines(runs):
    good = []
    for run in runs:
        try:
            good.append((run, engine(run.run_id, run)))
        except BrokenRun as exc:
            st.error(f"Run {code(run.run_id)} cannot be used: {md(exc.reason, limit=1000)}", icon=":material/error:")
    return good


# -- the runs, the digit and their answers ------------------------------------------------
default = [r.run_id for r in all_runs[:3]]
st.session_state.setdefault("playground_runs", default)
st.session_state["playground_runs"] = [rid for rid in st.session_state["playground_runs"] if rid in by_id]
labels = {r.run_id: f"{r.label} · {r.metrics['test_accuracy']:.3f} · {r.run_id[:6]}" for r in all_runs}
selected_ids = st.multiselect("Runs that answer", list(by_id), key="playground_runs", format_func=labels.get,
                              max_selections=share.MAX_LIST_RUNS, wrap=True, placeholder="Choose runs",
                              help="Each selected run's stored model answers the digit below (test accuracy "
                                   "and run id after its name).")
selected = engines([by_id[rid] for rid in selected_ids])

pad_column, answers_column = st.columns([0.34, 0.66], gap="medium")
with pad_column:
    source = st.radio("Digit", ["draw", "test"], horizontal=True, key="playground_source",
                      format_func={"draw": "draw one", "test": "a test digit"}.get)
    true_digit = None
    if source == "draw":
        pad = drawpad("playground_pad")
        if pad is not None and drawing.has_ink(pad):
            digit = drawing.preprocess(pad)
            st.session_state[LINK_DRAWN] = None  # the pad wins over a link's drawing from now on
        elif st.session_state.get(LINK_DRAWN) is not None:
            digit = st.session_state[LINK_DRAWN]
            st.caption("Showing the digit from the link; draw on the pad to replace it.")
        else:
            digit = None
    else:
        if st.session_state.get("playground_index", 0) >= len(x_test):
            st.session_state["playground_index"] = 0
        index = int(st.number_input("Test image index", 0, len(x_test) - 1, key="playground_index"))
        if st.button("Random digit", key="playground_random", icon=":material/casino:"):
            st.session_state["playground_index"] = int(np.random.default_rng().integers(len(x_test)))
            st.rerun()
        digit, true_digit = x_test[index], int(y_test[index])

with answers_column:
    if digit is None:
        st.info("Draw a digit on the pad: the models' answers appear here." if selected else
                "Pick one or more runs above and draw a digit on the pad: the models' answers appear here.",
                icon=":material/draw:")
    else:
        seen_column, said_column = st.columns([0.34, 0.66], gap="small", vertical_alignment="center")
        title = "model input" + (f": a {true_digit}" if true_digit is not None else "")
        seen_column.plotly_chart(charts.matrix_heatmap(digit / 255.0, title, colorscale="gray_r", height=180),
                                 key="playground_input", config={"displayModeBar": False})
        with said_column:
            if not selected:
                st.info("Pick one or more runs above: their answers appear here.", icon=":material/info:")
            else:
                answers = {run.run_id: model.class_probabilities(digit)[0] for run, model in selected}
                winners = {rid: int(p.argmax()) for rid, p in answers.items()}
                verdict = agreement(
                    {run.run_id: (run.config.task, get_task(run.config.task).class_names[winners[run.run_id]])
                     for run, _ in selected},
                    {run.run_id: f"{run.config.arch}\u00a0·\u00a0{run.run_id[:6]}" for run, _ in selected})  # no break inside
                flag = {"disagree": (st.warning, ":material/flag:"), "agree": (st.success, ":material/check_circle:"),
                        "single": (st.info, ":material/info:")}[verdict.kind]
                flag[0](md(verdict.message, limit=2000), icon=flag[1])
            st.caption("Left: the drawing as the models get it, cropped to its ink, scaled into 20×20 and centred "
                       "by mass in 28×28, as MNIST was made." if source == "draw" else
                       f"Test image #{index:,} of {len(x_test):,}.")
        if selected:
            row = st.container(horizontal=True, gap="small")  # as many side by side as fit, then the next row
            for run, _ in selected:
                cell = row.container(width=ANSWER_WIDTH)
                task = get_task(run.config.task)
                p = answers[run.run_id]
                title = f"{run.config.arch} → {task.class_names[winners[run.run_id]]} ({p.max():.0%})"
                cell.plotly_chart(charts.probability_bars(p, task.class_names, title,
                                                          flagged=run.run_id in verdict.flagged),
                                  key=f"playground_probs_{run.run_id}", config={"displayModeBar": False})
                cell.caption(f"{md(run.label)} · {code(run.run_id[:6])}")

focus = None
if selected:
    ids = [run.run_id for run, _ in selected]
    if st.session_state.get("playground_focus") not in ids:  # the deepest model has the most to show
        st.session_state["playground_focus"] = max(selected, key=lambda pair: len(pair[1].layer_names))[0].run_id
    focus_id = st.session_state["playground_focus"]
    focus = by_id[focus_id]

drawn_for_link = digit if (source == "draw" and digit is not None) else None
params = PlaygroundView(runs=tuple(share.RunRef(r.run_id, r.config) for r, _ in selected), source=source,
                        index=st.session_state.get("playground_index", 0), drawn=drawn_for_link,
                        focus=share.RunRef(focus.run_id, focus.config) if focus else None).to_params()
common.write_link("playground", params)
with pad_column.popover("Copy share link", icon=":material/share:"):  # under the pad: no row of its own
    common.share_box(params)
    if source == "draw":
        st.caption("The link carries the 28×28 digit the models saw.")

if digit is None or not selected:
    st.stop()

# -- inside one run ----------------------------------------------------------------------
st.divider()
st.subheader("Inside one run, layer by layer")
names = {run.run_id: run.label for run, _ in selected}
st.selectbox("Run to look inside", list(names), key="playground_focus",
             format_func=lambda rid: f"{names[rid]} · {rid[:6]}")
focus = by_id[st.session_state["playground_focus"]]
model = {run.run_id: m for run, m in selected}[focus.run_id]
forward = model.forward(digit)
task = get_task(focus.config.task)
st.caption("From the input (top) to the answer (bottom). Feature maps: one small image per filter, white where "
           "it fires most on this digit, black where it is 0 after ReLU (an all-black map does not fire at all). "
           "Dense layers: one bar per unit.")
for number, activation in enumerate(forward.activations, start=1):
    values = activation.values[0]
    heading = f"**{number}. {md(activation.layer)}** — output {' × '.join(map(str, values.shape))}"
    if activation.kind in ("conv", "pool"):
        st.markdown(heading)
        with st.container(key=f"playground_layer_{number}"):
            st.image(feature_maps(values, zoom=-(-MAP_PX // values.shape[0])), width=MAP_PX,
                     caption=[f"#{f}" for f in range(values.shape[-1])],
                     alt=[f"feature map #{f} of layer {number}" for f in range(values.shape[-1])])
    elif activation.kind == "dense":
        active = int((values > 0).sum())
        st.markdown(f"{heading}: {active} of {values.size} units active")
        st.plotly_chart(charts.activation_bars(values), key=f"playground_layer_{number}")
    elif activation.kind == "output":
        st.markdown(heading)
        st.plotly_chart(charts.probability_bars(task.class_probabilities(values[None])[0], task.class_names,
                                                "answer", height=200), key=f"playground_layer_{number}")
    elif activation.kind == "flatten":
        st.markdown(f"{heading}: the maps above laid out as one vector")
    else:
        st.markdown(f"{heading}: passes everything through when predicting (it only drops units in training)")

# -- occlusion -------------------------------------------------------------------------
st.divider()
st.subheader("Where the runs look: occlusion")
st.caption("A grey 6×6 patch slides over the digit; red marks the pixels whose hiding lowers the probability of "
           + ("the true class" if true_digit is not None else "the predicted class") + " the most, blue raises it.")
ids = [run.run_id for run, _ in selected]
o1, o2 = st.columns(2)
for column, key, start in ((o1, "playground_occ_a", 0), (o2, "playground_occ_b", min(1, len(ids) - 1))):
    if st.session_state.get(key) not in ids:
        st.session_state[key] = ids[start]
    with column:
        rid = st.selectbox("Run", ids, key=key, format_func=lambda r: f"{names[r]} · {r[:6]}")
        run = by_id[rid]
        m = {r.run_id: e for r, e in selected}[rid]
        run_task = get_task(run.config.task)
        target = int(run_task.labels(np.array([true_digit]))[0]) if true_digit is not None else \
            int(m.predicted_labels(digit)[0])
        heat = robustness.occlusion(m, digit, target)
        bound = float(np.abs(heat).max()) or 1.0
        st.plotly_chart(charts.matrix_heatmap(-heat, f"drop of P({run_task.class_names[target]})", colorscale="RdBu",
                                              zmid=0, height=300, fmt=".3f"), key=f"{key}_map")

# -- the Filters page's kernel ------------------------------------------------------------
st.divider()
st.subheader("The Filters page's kernel on this digit")
filters_params = st.session_state.get("filters_link") or {}
fview, _ = share.parse_filters(filters_params, len(x_test))
kernel = np.asarray(fview.kernel).reshape(round(len(fview.kernel) ** 0.5), -1) if fview.kernel else \
    preset(fview.preset, 3)
kernel_name = "edited kernel" if fview.kernel else fview.preset
output = convolve(digit / 255.0, kernel, padding=fview.padding)
output = relu(output) if fview.relu else output
f1, f2, f3 = st.columns([1, 0.7, 1])
f1.plotly_chart(charts.matrix_heatmap(digit / 255.0, "input", colorscale="gray_r", height=260), key="playground_f_in")
f2.plotly_chart(charts.matrix_heatmap(kernel, f"kernel ({kernel_name})", colorscale="RdBu", zmid=0, show_values=True,
                                      height=220), key="playground_f_kernel")
f3.plotly_chart(charts.matrix_heatmap(output, f"output ({fview.padding}" + (", ReLU)" if fview.relu else ")"),
                                      colorscale="gray_r" if fview.relu else "RdBu", zmid=None if fview.relu else 0,
                                      height=260), key="playground_f_out")
st.page_link("pages/filters.py", label="Change the kernel on Filters", icon=":material/filter_center_focus:")

# -- robustness ----------------------------------------------------------------------------
st.divider()
st.subheader("Robustness: accuracy as the test digits shift, turn and get noisy")
st.caption(f"On a fixed subset of {min(robustness.SUBSET_SIZE, len(x_test)):,} test digits, through each run's "
           "NumPy model. Computed on demand, one computation at a time on this server, then kept.")
results = robustness_results()
comparable = [(run, m) for run, m in selected if common.dataset_for_run(run) is not None]
todo = [(run, m) for run, m in comparable if (run.run_id, run.metrics["data"]["fingerprint"]) not in results]
if todo and st.button(f"Compute for {len(todo)} run" + ("" if len(todo) == 1 else "s"), key="playground_robust",
                      icon=":material/speed:"):
    bar = st.progress(0.0, text="Waiting for the server's robustness slot…")
    for i, (run, m) in enumerate(todo):
        run_data = common.dataset_for_run(run)
        index = robustness.subset(len(run_data.x_test))
        labels_ = get_task(run.config.task).labels(run_data.y_test[index])

        def report(fraction, text, i=i, run=run):
            bar.progress((i + fraction) / len(todo), text=f"{md(run.label)}: {md(text)}")

        results[(run.run_id, run.metrics["data"]["fingerprint"])] = robustness.robustness_curves(
            m, run_data.x_test[index], labels_, progress=report)
    bar.empty()
done = {run.run_id: results[(run.run_id, run.metrics["data"]["fingerprint"])] for run, _ in comparable
        if (run.run_id, run.metrics["data"]["fingerprint"]) in results}
if done:
    st.plotly_chart(charts.robustness_curves(done, {rid: by_id[rid].label for rid in done},
                                             common.colors(all_runs),
                                             {k: v[0] for k, v in robustness.PERTURBATIONS.items()}),
                    key="playground_robust_chart")
elif not todo:
    st.caption("The selected runs' test images are not on this machine.")
