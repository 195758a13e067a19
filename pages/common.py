"""What every page shares: the store, the data source, run pickers, empty states.

Streamlit caching wraps library calls here; no training, file format or maths.
"""

from __future__ import annotations

import streamlit as st

from mnistlab import RunStore
from mnistlab.data import Dataset, SourceInfo, default_source, load_source, resolve_source
from mnistlab.store import Run

TRAIN_PAGE = "pages/train.py"

# Because a pages/ folder exists, Streamlit starts in its legacy multipage mode: until the
# first st.navigation call, a request for a page URL (a shared link to /compare on a fresh
# server) runs that page file alone, without streamlit_app.py's frame. Leave that mode and
# rerun, so every page always runs inside the frame.
from streamlit.runtime.pages_manager import PagesManager  # noqa: E402

if PagesManager.uses_pages_directory:
    PagesManager.uses_pages_directory = False
    st.rerun()


def store() -> RunStore:
    """The run store ($MNISTLAB_STORE or cache/runs)."""
    return RunStore()


@st.cache_resource(show_spinner="Looking for MNIST…")
def _source(source: str) -> SourceInfo:
    return resolve_source(source)


def source_info() -> SourceInfo:
    return _source(default_source())


@st.cache_resource(show_spinner="Loading MNIST…", max_entries=2)
def _dataset(kind: str, path: str, fingerprint: str) -> Dataset:
    return load_source(SourceInfo(kind, path, fingerprint, ""))


def dataset(info: SourceInfo | None = None) -> Dataset:
    """The images of a source (default: the app's), cached for the server's life."""
    info = info or source_info()
    return _dataset(info.kind, info.path, info.fingerprint)


def dataset_for_run(run: Run) -> Dataset | None:
    """The data a run was tested on, if this machine has it (same fingerprint)."""
    wanted = run.metrics.get("data", {}).get("fingerprint")
    info = source_info()
    if info.fingerprint == wanted:
        return dataset(info)
    try:
        other = _source("sample")
    except Exception:
        return None
    return dataset(other) if other.fingerprint == wanted else None


def runs(show_broken: bool = True) -> list[Run]:
    """Finished runs, newest first; broken folders are named in a warning."""
    listing = store().list_runs()
    if show_broken:
        for broken in listing.broken:
            st.warning(f"Skipped the broken run folder `{broken.run_id}`: {broken.reason}", icon=":material/warning:")
    return listing.runs


def colors(all_runs: list[Run]) -> dict[str, str]:
    """One colour per run for every chart on every page: by age, oldest first."""
    from mnistlab.charts import run_colors

    return run_colors(r.run_id for r in sorted(all_runs, key=lambda r: r.metrics.get("created", "")))


def empty_state(what: str) -> None:
    st.info(f"No finished runs yet, so there is nothing to {what}. Train one first: the defaults are the "
            "Keras recipe's, so one click on **Train** does something meaningful.", icon=":material/info:")
    st.page_link(TRAIN_PAGE, label="Go to Train", icon=":material/model_training:")


def run_picker(label: str, choices: list[Run], key: str, index: int = 0, allow_none: bool = False,
               help: str | None = None) -> Run | None:
    options = ([None] if allow_none else []) + [r.run_id for r in choices]
    names = {r.run_id: f"{r.label}  ·  test acc {r.metrics['test_accuracy']:.4f}  ·  {r.run_id[:6]}" for r in choices}
    chosen = st.selectbox(label, options, index=min(index, len(options) - 1), key=key, help=help,
                          format_func=lambda rid: "— none —" if rid is None else names[rid])
    return next((r for r in choices if r.run_id == chosen), None)


def sidebar() -> None:
    info = source_info()
    with st.sidebar:
        st.markdown("### mnistlab")
        st.caption("Train, compare and understand the classic Keras MNIST models.")
        icon = ":material/check_circle:" if info.kind in ("file", "keras") else ":material/info:"
        st.markdown(f"{icon} **Data:** {info.title}")
        st.caption(info.reason)
        active = [p for p in store().in_progress() if p.status in ("queued", "training")]
        busy = f":material/pending: **{len(active)} run(s) in progress** — see Train  \n" if active else ""
        st.caption(f"{busy}Store: `{store().root}`")  # one element, always: no stale leftovers
