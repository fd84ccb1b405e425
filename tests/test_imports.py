"""The dashboard's read path must not import torch (issue 5: the explorer's first render).

Each check runs in a fresh interpreter (``sys.executable -c ...``, cwd = repo root), because this
test process has long imported torch through other tests' fixtures. A probe that does import the
training code must see torch, so a broken probe cannot pass silently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO_RUN = REPO / "assets" / "demo_run"

READ_PATH_IMPORTS = """
import hmlc_core.runs, hmlc_core.views.explore, hmlc_core.views.compare, hmlc_core.views.diagnose, hmlc_core.registry
import hmlc_core.views.teaching, hmlc_core.weighting
import app_pages.common
"""


def _probe(code: str, tmp_path: Path) -> dict:
    """Run ``code`` in a fresh interpreter at the repo root; it must print one JSON line last."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HMLC_RUNS_DIR": str(tmp_path / "no_runs_here")}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_probe_sees_torch_when_the_training_code_is_imported(tmp_path: Path) -> None:
    result = _probe("""
        import json, sys
        import hmlc_core.train
        print(json.dumps({"torch": "torch" in sys.modules}))
    """, tmp_path)
    assert result["torch"]


def test_read_path_does_not_import_torch(tmp_path: Path) -> None:
    result = _probe(READ_PATH_IMPORTS + f"""
import json, sys
from hmlc_core.views import diagnose, explore
from hmlc_core.runs import evaluate_run, load_run

run = load_run({str(DEMO_RUN)!r})
node = run.hierarchy.nodes[1]
explore.uncertainty_label(run)
modes = explore.uncertainty_by_mode(run, node)
explore.sunburst_figure(run, "ensemble uncertainty")
explore.member_probs_figure(run.predictions(), run.hierarchy, node)
diagnose.config_headline(run)
evaluate_run(run)
print(json.dumps({{"torch": "torch" in sys.modules, "n_modes": len(modes)}}))
""", tmp_path)
    assert result["n_modes"] > 0
    assert not result["torch"], "the dashboard's read path imported torch"


def test_dashboard_pages_render_without_torch(tmp_path: Path) -> None:
    """Every page on the demo run, in AppTest, leaves torch unimported (only a training worker loads it)."""
    result = _probe(f"""
        import json, sys
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file({str(REPO / "app.py")!r}, default_timeout=120).run()
        titles = [t.value for t in at.title]
        errors = [str(e.value) for e in at.exception]
        for page in ("app_pages/how_it_works.py", "app_pages/explorer.py", "app_pages/missed.py", "app_pages/retrain.py",
                     "app_pages/compare.py"):
            at.switch_page(page).run()
            titles += [t.value for t in at.title]
            errors += [str(e.value) for e in at.exception]
        print(json.dumps({{"torch": "torch" in sys.modules, "titles": titles, "errors": errors}}))
    """, tmp_path)
    assert not result["errors"]
    assert any(t.startswith("Hierarchy explorer") for t in result["titles"]), result["titles"]
    assert "How it works" in result["titles"], result["titles"]
    assert len(result["titles"]) >= 6, result["titles"]
    assert not result["torch"], "rendering the dashboard's pages imported torch"


@pytest.mark.parametrize(("module", "names"), [
    ("hmlc_core.train", ["TrainConfig"]),
    ("hmlc_core.losses", ["WEIGHTING_MODES", "FREQUENCY_COUNTINGS", "WEIGHT_INDEXINGS", "FOCAL_MODES", "LOSSES",
                          "SCHEDULES"]),
    ("hmlc_core.model", ["ENSEMBLE_KINDS"]),
    ("hmlc_core.uncertainty", ["UNCERTAINTY_LABELS", "UNCERTAINTY_MODE_NAMES"]),
])
def test_old_import_paths_reexport_the_single_definition(module: str, names: list[str]) -> None:
    import importlib

    from hmlc_core import config

    mod = importlib.import_module(module)
    for name in names:
        assert getattr(mod, name) is getattr(config, name), f"{module}.{name} is a second definition"


def test_uncertainty_functions_follow_the_mode_names() -> None:
    from hmlc_core.config import FOCAL_MODES, UNCERTAINTY_LABELS, UNCERTAINTY_MODE_NAMES
    from hmlc_core.uncertainty import UNCERTAINTY_MODES

    assert tuple(UNCERTAINTY_MODES) == UNCERTAINTY_MODE_NAMES
    assert set(UNCERTAINTY_LABELS) == set(UNCERTAINTY_MODE_NAMES)
    assert [m for m in FOCAL_MODES if m != "none"] == list(UNCERTAINTY_MODE_NAMES)


def test_core_outside_views_imports_no_plotting_library(tmp_path: Path) -> None:
    """plotly, pyvis and streamlit stay in hmlc_core.views and the app (issue 11, item 8)."""
    core = sorted(
        "hmlc_core." + p.stem for p in (REPO / "hmlc_core").glob("*.py") if p.stem not in ("__init__", "__main__")
    )
    assert "hmlc_core.metrics" in core and not any(m.startswith("hmlc_core.views") for m in core)
    result = _probe(f"""
        import importlib, json, sys
        for name in {core!r}:
            importlib.import_module(name)
        loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {{"plotly", "pyvis", "streamlit"}})
        import hmlc_core.views.explore
        print(json.dumps({{"loaded": loaded, "views_plotly": "plotly" in sys.modules}}))
    """, tmp_path)
    assert result["views_plotly"], "the probe must see plotly once the views are imported"
    assert result["loaded"] == [], f"core modules outside hmlc_core.views imported {result['loaded']}"
