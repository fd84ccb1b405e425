"""hmlc-lab dashboard entry point: ``streamlit run app.py``.

The entry point is the frame shared by all pages: page setup, the sidebar run
chooser (bound to the ``run`` query parameter) and the page navigation. Pages
live in ``pages/`` and read the chosen run with :func:`pages.common.current_run`.
"""

from __future__ import annotations

import sys
from pathlib import Path

_APP_DIR = str(Path(__file__).resolve().parent)
if _APP_DIR not in sys.path:  # so the pages can import hmlc_core and pages.common from any working directory
    sys.path.insert(0, _APP_DIR)

import streamlit as st  # noqa: E402

from pages import common as app_common  # noqa: E402

st.set_page_config(page_title="hmlc-lab", page_icon="🌳", layout="wide")

# Each URL path differs from its file's name on purpose. Streamlit 1.67 decides once per server process,
# when the first session starts, whether a folder named pages/ sits next to this script; if so, that first
# script run goes through its legacy multipage runner, which lists pages/*.py by file name. There /explorer
# would run pages/explorer.py alone, without this frame. A path that names no file in pages/ (/hierarchy)
# falls back to app.py, whose st.navigation then opens the right page, but the legacy runner has already
# sent "Page not found", shown as a modal over it: the first deep link after a server start shows one (the
# root URL does not). Renaming the pages/ folder (for instance to app_pages/) would end both.
pages = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/how_it_works.py", title="How it works", icon=":material/school:", url_path="how-it-works"),
    st.Page("pages/explorer.py", title="Hierarchy explorer", icon=":material/account_tree:",
            url_path=app_common.EXPLORER_URL_PATH),
    st.Page("pages/missed.py", title="Missed nodes", icon=":material/search:", url_path="missed-nodes"),
    st.Page("pages/retrain.py", title="Retrain", icon=":material/model_training:", url_path="retraining"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="comparison"),
]
navigation = st.navigation(pages)

with st.sidebar:
    st.markdown("### hmlc-lab")
app_common.choose_run()

navigation.run()
