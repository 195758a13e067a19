"""mnistlab dashboard: the frame. Pages live in pages/; the work is done by the mnistlab library."""

import streamlit as st

st.set_page_config(page_title="mnistlab", page_icon="🔢", layout="wide")

from pages import common  # noqa: E402  (after set_page_config)
from pages.watch import watch  # noqa: E402

page = st.navigation(
    [
        st.Page("pages/train.py", title="Train", icon=":material/model_training:", default=True),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page("pages/sweep.py", title="Sweep", icon=":material/grid_view:"),
        st.Page("pages/inspect.py", title="Inspect", icon=":material/search:"),
        st.Page("pages/filters.py", title="Filters", icon=":material/filter_center_focus:"),
        st.Page("pages/playground.py", title="Playground", icon=":material/draw:"),
        st.Page("pages/data.py", title="Data", icon=":material/dataset:"),
    ]
)
watch()  # every page follows the store: a run finished or stored elsewhere shows within seconds
common.sidebar()
page.run()
common.load_plotly_when_idle()  # once this page is drawn, so that the next page's charts draw at once
