"""hmlc-lab core: hierarchy-coherent ensembles with rare-node weighted losses.

Data flows one way: ``data -> hierarchy -> model -> losses -> train -> runs``;
the Streamlit app (``app.py``, ``app_pages/``) only calls into this package.
"""

from hmlc_core.hierarchy import Hierarchy

__all__ = ["Hierarchy"]
__version__ = "0.1.0"
