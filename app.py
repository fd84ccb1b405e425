"""hmlc-lab dashboard entry point: ``streamlit run app.py``.

The entry point is the frame shared by all pages: page setup, the sidebar run
chooser (bound to the ``run`` query parameter) and the page navigation. Pages
live in ``app_pages/`` and read the chosen run with :func:`app_pages.common.current_run`.
"""

from __future__ import annotations

import sys
from pathlib import Path

_APP_DIR = str(Path(__file__).resolve().parent)
if _APP_DIR not in sys.path:  # so the pages can import hmlc_core and app_pages.common from any working directory
    sys.path.insert(0, _APP_DIR)

import streamlit as st  # noqa: E402

# An emoji, not a Material icon: Streamlit fetches a Material favicon from fonts.gstatic.com, and the dashboard
# makes no request outside its own server (tests/test_e2e_hostile.py).
st.set_page_config(page_title="hmlc-lab", page_icon="🌳", layout="wide")

# A session's first script run sends a blank 10-pixel Plotly chart before anything else, so the browser loads
# Plotly's script (4.7 MB, about a second to fetch and compile) while this server imports the app and loads the
# run, instead of after the page's first chart arrives. The browser starts loading it when the chart is
# mounted, so the chart is removed once the app's modules are imported (before any st.stop of a page).
# bench/README.md, *The explorer on a 100k-node run*: the first view of a freshly started server.
_plotly_warmup = st.empty()
if "_plotly_warmup" not in st.session_state:
    st.session_state["_plotly_warmup"] = True
    _plotly_warmup.plotly_chart(
        {"data": [{"type": "scatter", "x": [], "y": []}],
         "layout": {"height": 10, "margin": {"l": 0, "r": 0, "t": 0, "b": 0}, "xaxis": {"visible": False},
                    "yaxis": {"visible": False}, "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)"}},
        config={"staticPlot": True, "displayModeBar": False})

from app_pages import common as app_common  # noqa: E402

_plotly_warmup.empty()

# The pages live in app_pages/, not pages/: Streamlit 1.67 runs its legacy file-based multipage mode for
# the first session of a server whenever a folder named pages/ sits next to this script, and that mode
# answered the first deep link after a start (/hierarchy?...) with a "Page not found" modal over the right
# page (tests/test_e2e_browser.py opens such a link first).
pages = [
    st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("app_pages/how_it_works.py", title="How it works", icon=":material/school:", url_path="how-it-works"),
    st.Page("app_pages/explorer.py", title="Hierarchy explorer", icon=":material/account_tree:",
            url_path=app_common.EXPLORER_URL_PATH),
    st.Page("app_pages/missed.py", title="Missed nodes", icon=":material/search:", url_path="missed-nodes"),
    st.Page("app_pages/retrain.py", title="Retrain", icon=":material/model_training:", url_path="retraining"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="comparison"),
]
navigation = st.navigation(pages)

with st.sidebar:
    st.markdown("### hmlc-lab")
app_common.choose_run()
app_common.choose_decision()

navigation.run()
