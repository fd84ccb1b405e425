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

pages = [
    st.Page("pages/explorer.py", title="Explorer", icon="🌳", default=True),
]
navigation = st.navigation(pages)

with st.sidebar:
    st.markdown("### hmlc-lab")
app_common.choose_run()

navigation.run()
