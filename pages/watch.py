"""Live everywhere: every page follows the store while it is open.

``streamlit_app.py`` calls :func:`watch` once per run, before the sidebar and the page. It
records the store's state token (:meth:`RunStore.state_token`: the run folders and how many
attempts are active or have ended) and draws an invisible fragment that computes the token
again every :data:`INTERVAL` seconds. When it moved (a run finished or was stored, imported or
deleted elsewhere; an attempt was launched or ended) the whole app reruns, so the page and the
sidebar's "in progress" count show it; the store's listing cache then rereads only the run
folders that changed. A tick that finds nothing changed costs a few microseconds (see
``benchmarks/watch.py``) and draws nothing, provided Streamlit does not collect garbage after
every run, fragment runs included: its default does (``runner.postScriptGC``), some 0.1 s of
server CPU per tick, so four idle tabs kept about a fifth of a core busy. ``.streamlit/config.toml``
(and ``mnistlab serve``) switch that off.

A page's own change (a delete, a launch) is followed by its own rerun, which records the new
token first: no second rerun. The Train and Sweep pages keep their own 1-second fragments for
the progress of runs in training (epochs do not move the token).
"""

from __future__ import annotations

import streamlit as st

#: Where the token of the last full run (or of the tick that asked for a rerun) is kept.
KEY = "watch_token"
#: Seconds between two polls of the store's state.
INTERVAL = 2.0


def tick(store) -> None:
    """One poll: rerun the whole app if the store's state moved since the last full run."""
    token = store.state_token()
    if token != st.session_state.get(KEY):
        st.session_state[KEY] = token  # asked once, even if the rerun is cut short
        st.rerun(scope="app")


def watch() -> None:
    """Record the store's state for this run and poll it from now on (call once per run, before the page)."""
    from pages import common

    store = common.store()
    st.session_state[KEY] = store.state_token()
    st.fragment(tick, run_every=INTERVAL)(store)
