"""hmlc-lab core: hierarchy-coherent ensembles with rare-node weighted losses.

Data flows one way: ``data -> hierarchy -> model -> losses -> train -> runs``;
the Streamlit app (``app.py``, ``app_pages/``) only calls into this package.
"""

from typing import Any

from hmlc_core.hierarchy import Hierarchy

__all__ = ["Hierarchy", "HMCClassifier"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``HMCClassifier`` on first use (:mod:`hmlc_core.estimator` imports torch and scikit-learn; the
    dashboard's read path imports this package without them)."""
    if name == "HMCClassifier":
        from hmlc_core.estimator import HMCClassifier

        return HMCClassifier
    raise AttributeError(f"module 'hmlc_core' has no attribute {name!r}")
