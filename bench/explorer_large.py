#!/usr/bin/env python
"""The Hierarchy explorer on a 100k-node run: make the run, then time the page's first render (issue 17).

Usage (from the repository root; see bench/README.md, *The explorer on a 100k-node run*)::

    python bench/explorer_large.py --make                       # runs/large/ (skipped when it exists)
    python bench/explorer_large.py --measure --json --out explorer.json
    python bench/explorer_large.py --measure --runs runs/large runs/reproduce/paper/cellcycle_GO__chmcnn__seed-0

``--make`` trains shortlist training (``TrainConfig(shortlist=K)``) for one epoch on
``make_synthetic(**LARGE_SYNTHETIC)`` (its 111,111-node tree and long-tailed labels) with 10,000 / 1,000 /
500 train / valid / test rows (``--n-train``, ``--n-valid``, ``--n-test``) and writes it with ``save_run``
to ``runs/large/`` (git-ignored), in this one process. The page reads the hierarchy, the node metrics and
the test predictions, whose size is set by the nodes and the test rows; the full 45,000 training rows
(5 GB of labels) only change the training frequencies shown (they were killed for memory in ``save_run``,
20 GB RSS on this 23 GB machine, before it evaluated the test split in chunks).

``--measure`` hard-links the measured runs into a temporary folder under ``runs/`` (the server's only runs,
``HMLC_RUNS_DIR``), starts ``streamlit run app.py`` on 127.0.0.1 (``bench/load_sessions.py``'s ``Server``)
and opens ``/hierarchy?run=KEY`` in headless Chromium (Playwright): the time from the start of
the navigation until the sunburst (a ``.js-plotly-plot`` holding a sunburst sector) and the node card (the
heading of the selected node) are both visible. ``cold`` is the first view after a fresh server start
(run loading and every cached view computed), ``warm`` a new browser context (empty browser cache) on the
same server afterwards, ``navigate`` the explorer reached by a click in the sidebar from a light page of
the app (scripts loaded, websocket open: a user moving between pages; the light page's own start is
``boot_s``); ``--app-dir`` twice compares two checkouts (``git archive HEAD | tar -x -C DIR``);
``--repeats`` of each (a fresh server per cold repeat); ``rendered_s`` is when the whole page is rendered
(the neighbourhood's iframe is there and ``bench/load_sessions.py``'s test holds: :data:`COMPLETE_JS`).
Also reported:
``painted_s``: when the sunburst and the node card were first painted, from the browser's own clock
(:data:`PAINT_WATCH_JS`; ``shown_s`` adds Playwright's polling, delayed while the browser is still busy);
``plotly_js_s``: when the browser started and finished fetching Streamlit's Plotly chunk (:data:`PLOTLY_JS_TIMING`);
``figure``: the sectors the sunburst carries (``sectors``) and draws (``drawn``), and whether the page
shows the node search box (``search_box``), read in the browser.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

log = logging.getLogger("explorer_large")

LARGE_RUN = REPO / "runs" / "large"
GO_RUN = REPO / "runs" / "reproduce" / "paper" / "cellcycle_GO__chmcnn__seed-0"
CHROMIUM = "/usr/bin/chromium"


# ============================================================================ the run
def make_large_run(out: Path, n_train: int, n_valid: int, n_test: int, k: int, seed: int) -> Path:
    """Train shortlist training for one epoch on the 100k-node synthetic data and save it at ``out``.

    Parameters
    ----------
    out : pathlib.Path
        Run folder; left as is when it already holds a run (``summary.json``).
    n_train, n_valid : int
        Training and validation rows (the generator's ``n_train``, ``n_valid``).
    n_test : int
        Test rows (the generator's ``n_test``; ``save_run`` evaluates and stores predictions for these).
    k : int
        Shortlisted negatives per sample.
    seed : int

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    if (out / "summary.json").is_file():
        log.info("%s exists; not trained again", out)
        return out
    from hmlc_core.config import TrainConfig
    from hmlc_core.runs import save_run
    from hmlc_core.synthetic import LARGE_SYNTHETIC, make_synthetic
    from hmlc_core.train import train

    t = time.perf_counter()
    dataset = make_synthetic(**{**LARGE_SYNTHETIC, "n_train": n_train, "n_valid": n_valid, "n_test": n_test},
                             seed=seed)
    log.info("dataset: %d nodes, %d/%d/%d rows in %.0f s", dataset.hierarchy.n_nodes, dataset.train.n_samples,
             dataset.valid.n_samples, dataset.test.n_samples, time.perf_counter() - t)
    config = TrainConfig(dataset="synthetic100k", shortlist=k, epochs=1, shortlist_proxy_epochs=0,
                         weighting="none", focal="none", seed=seed)
    t = time.perf_counter()
    result = train(config, dataset)
    log.info("trained in %.0f s", time.perf_counter() - t)
    t = time.perf_counter()
    save_run(out, result, dataset)
    log.info("saved %s in %.0f s", out, time.perf_counter() - t)
    return out


# ============================================================================ the measurement
SHOWN_JS = """(node) => {
    const chart = [...document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot")]
        .find(div => div.data && div.data[0] && div.data[0].type === "sunburst");
    if (!chart || !chart.querySelector(".main-svg path.surface")) return false;
    const card = [...document.querySelectorAll("[data-testid='stMain'] h3")]
        .find(h => h.textContent.trim() === node);
    if (!card) return false;
    const box = chart.getBoundingClientRect(), cardBox = card.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && cardBox.width > 0;
}"""
"""True when the sunburst has drawn its sectors (``path.surface``) and the node card's heading reads ``node``."""

PAINT_WATCH_JS = """(() => {
    const shown = SHOWN_JS;
    const tick = () => {
        if (shown(NODE)) { window.__hmlcPainted = performance.now() / 1000; return; }
        requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
})();"""
"""An init script (``SHOWN_JS`` and ``NODE`` put in by :func:`_paint_watch`): from the page's first frame on, it
checks :data:`SHOWN_JS` in every animation frame (requestAnimationFrame runs just before the browser paints) and
keeps the first frame's time in ``window.__hmlcPainted`` (seconds on the page's clock, which starts with the
navigation). This is when the sunburst and the card are painted; ``shown_s`` is when Playwright, polling every
50 ms from Python, sees them, which waits for the browser's main thread to be free again (0.2-0.4 s of
Plotly's and React's work after the first paint of a cold view on this machine)."""


def _paint_watch(node: str) -> str:
    """:data:`PAINT_WATCH_JS` for the node card ``node``."""
    return PAINT_WATCH_JS.replace("SHOWN_JS", SHOWN_JS).replace("NODE", json.dumps(node))


FIGURE_JS = """() => {
    const chart = [...document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot")]
        .find(div => div.data && div.data[0] && div.data[0].type === "sunburst");
    return chart ? {"sectors": chart.data[0].ids.length,
                    "drawn": chart.querySelectorAll("path.surface").length,
                    "search_box": !!document.querySelector(".st-key-node_search input")} : null;
}"""


def measurement_runs(run_dirs: list[Path], folder: Path) -> dict[str, Path]:
    """Hard-link each run of ``run_dirs`` into ``folder`` (the server's only runs); chooser key -> linked run.

    Hard links (the app skips a symbolic link out of its runs folder), so ``folder`` must be on the runs'
    file system; the runs themselves are only read.
    """
    import shutil

    from hmlc_core.views.explore import discover_runs

    for run_dir in run_dirs:
        copy = folder / run_dir.resolve().name
        if not copy.exists():
            shutil.copytree(run_dir.resolve(), copy, copy_function=os.link)
    found = discover_runs(None, [folder])
    return {key: path for key, path in found.items()}


COMPLETE_JS = """() => !!document.querySelector("[data-testid='stMain'] iframe") && (RENDERED_JS)()"""
"""True when the page holds the neighbourhood (an iframe) and is rendered (``RENDERED_JS`` stands for
``bench/load_sessions.py``'s test, put in by :func:`_view`).

From :data:`hmlc_core.views.explore.DETAILS_AFTER_DRAW_MIN_NODES` nodes on, the explorer sends its lower part in
a second script run, after the browser has drawn the sunburst; between the two runs the page looks rendered."""


async def _view(browser: Any, url: str, node: str, timeout_s: float) -> dict[str, Any]:
    """One page view in a new browser context: seconds to the sunburst and node card (seen from Python, and
    painted on the page's clock), and to the whole page."""
    from bench.load_sessions import RENDERED_JS

    complete_js = COMPLETE_JS.replace("RENDERED_JS", RENDERED_JS)

    context = await browser.new_context(viewport={"width": 1500, "height": 1100})
    await context.add_init_script(_paint_watch(node))
    page = await context.new_page()
    start = time.perf_counter()
    try:
        await page.goto(url, timeout=timeout_s * 1000)
        await page.wait_for_function(SHOWN_JS, arg=node, polling=50, timeout=timeout_s * 1000)
        shown = time.perf_counter() - start
        painted = await page.evaluate("window.__hmlcPainted")
        figure = await page.evaluate(FIGURE_JS)
        plotly_js = await page.evaluate(PLOTLY_JS_TIMING)
        remaining = timeout_s - (time.perf_counter() - start)
        await page.wait_for_function(complete_js, polling=50, timeout=max(remaining, 1) * 1000)
        rendered = time.perf_counter() - start
        errors = await page.locator("[data-testid='stException']").count()
        return {"shown_s": round(shown, 3), "painted_s": None if painted is None else round(painted, 3),
                "rendered_s": round(rendered, 3), "figure": figure,
                "plotly_js_s": None if plotly_js is None else [round(v, 3) for v in plotly_js],
                **({"error": "stException on the page"} if errors else {})}
    except Exception as exc:  # a timeout is a result of the benchmark, not its failure
        return {"shown_s": None, "error": f"{type(exc).__name__}: {exc}"[:300],
                "after_s": round(time.perf_counter() - start, 3)}
    finally:
        await context.close()


PLOTLY_JS_TIMING = """() => {
    const entry = performance.getEntriesByType("resource").find(e => /PlotlyChart[^/]*\\.js$/.test(e.name));
    return entry ? [entry.startTime / 1000, entry.responseEnd / 1000] : null;
}"""
"""When the browser started and finished fetching Streamlit's Plotly chunk (seconds after the navigation started;
the Resource Timing API), or null: the chart code loads only once a Plotly chart arrives, so its start says
whether the fetch waited for the page's first chart."""

TITLE_JS = """(title) => [...document.querySelectorAll("[data-testid='stMain'] h1")]
    .some(h => h.textContent.includes(title))"""
"""True when the main area's page title contains ``title``."""


async def _navigate(browser: Any, base_url: str, key: str, node: str, timeout_s: float) -> dict[str, Any]:
    """The explorer reached from another page of the app: seconds from the click on its link to sunburst + card.

    A new browser context opens *How it works* (small teaching charts, no run data) for the run, waits until
    its title is shown (``boot_s``, the framework's own start: scripts, websocket, first script run), then
    clicks *Hierarchy explorer* in the sidebar: ``shown_s`` counts from the click, with Streamlit's scripts
    loaded (plotly.js among them, for the teaching charts) and its websocket open, as a user moving between
    pages meets it.
    """
    context = await browser.new_context(viewport={"width": 1500, "height": 1100})
    await context.add_init_script(_paint_watch(node))
    page = await context.new_page()
    start = time.perf_counter()
    try:
        await page.goto(f"{base_url}/how-it-works?run={key}", timeout=timeout_s * 1000)
        await page.wait_for_function(TITLE_JS, arg="How", polling=50, timeout=timeout_s * 1000)
        boot = time.perf_counter() - start
        await page.wait_for_timeout(1500)  # let the light page settle
        start = time.perf_counter()
        clicked = await page.evaluate("performance.now() / 1000")
        await page.get_by_role("link", name="Hierarchy explorer").click()
        await page.wait_for_function(SHOWN_JS, arg=node, polling=50, timeout=timeout_s * 1000)
        shown = time.perf_counter() - start
        painted = await page.evaluate("window.__hmlcPainted")
        return {"boot_s": round(boot, 3), "shown_s": round(shown, 3),
                "painted_s": None if painted is None else round(painted - clicked, 3)}
    except Exception as exc:  # a timeout is a result of the benchmark, not its failure
        return {"shown_s": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        await context.close()


async def measure(app_dirs: list[Path], run_dirs: list[Path], repeats: int, timeout_s: float) -> list[dict[str, Any]]:
    """Cold and warm first renders of the explorer, ``repeats`` times per (run, app), a fresh server each time.

    Returns
    -------
    list of dict
        One entry per (app_dir, run, repeat): ``cold`` and ``warm`` (:func:`_view`), ``navigate``
        (:func:`_navigate`, on the same warm server), ``server_cpu_s`` (of the cold view), the run's node
        count and the load averages before.
    """
    import tempfile

    from playwright.async_api import async_playwright

    from bench.load_sessions import CHROMIUM_ARGS, Server
    from hmlc_core.hierarchy import Hierarchy

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix=".explorer_large_", dir=REPO / "runs") as tmp:
        keys = measurement_runs(run_dirs, Path(tmp))
        roots = {}
        for key, run_dir in keys.items():
            h = Hierarchy.from_dict(json.loads((run_dir / "hierarchy.json").read_text()))
            roots[key] = (h.nodes[0], h.n_nodes)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for key in keys:
                    node, n_nodes = roots[key]
                    for repeat in range(1, repeats + 1):
                        for app_dir in app_dirs:  # the checkouts take turns, so they meet similar load
                            entry: dict[str, Any] = {"app_dir": str(app_dir), "run": key, "n_nodes": n_nodes,
                                                     "repeat": repeat, "load_before": list(os.getloadavg())}
                            with Server(app_dir, Path(tmp)) as server:
                                url = f"{server.url}/hierarchy?run={key}"
                                cpu = server.cpu_seconds()
                                entry["cold"] = await _view(browser, url, node, timeout_s)
                                after = server.cpu_seconds()
                                entry["server_cpu_s"] = None if cpu is None or after is None else round(after - cpu, 2)
                                entry["warm"] = await _view(browser, url, node, timeout_s)
                                entry["navigate"] = await _navigate(browser, server.url, key, node, timeout_s)
                            log.info("%s | %s | %d: cold %s s, warm %s s", app_dir, key, repeat,
                                     entry["cold"].get("shown_s"), entry["warm"].get("shown_s"))
                            results.append(entry)
            finally:
                await browser.close()
    return results


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (app_dir, run): every time and the median of the cold, warm and in-app-navigation views."""
    import statistics

    out = []
    for app_dir, run in dict.fromkeys((r["app_dir"], r["run"]) for r in results):
        rows = [r for r in results if r["app_dir"] == app_dir and r["run"] == run]
        line: dict[str, Any] = {"app_dir": app_dir, "run": run, "n_nodes": rows[0]["n_nodes"]}
        for phase, what in (("cold", "shown_s"), ("cold", "painted_s"), ("cold", "rendered_s"), ("warm", "shown_s"),
                            ("warm", "painted_s"), ("warm", "rendered_s"), ("navigate", "boot_s"),
                            ("navigate", "shown_s"), ("navigate", "painted_s")):
            times = [r[phase][what] for r in rows if r.get(phase, {}).get(what) is not None]
            line[f"{phase}_{what}"] = times
            line[f"{phase}_{what}_median"] = round(statistics.median(times), 3) if times else None
        line["figure"] = next((r["warm"].get("figure") for r in rows if r["warm"].get("figure")), None)
        line["errors"] = [r[p]["error"] for r in rows for p in ("cold", "warm", "navigate") if "error" in r.get(p, {})]
        out.append(line)
    return out


# ============================================================================ command line
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--make", action="store_true", help="train and save the 100k-node run (unless it exists)")
    p.add_argument("--out-run", type=Path, default=LARGE_RUN, help="where --make writes the run (default runs/large)")
    p.add_argument("--n-train", type=int, default=10_000, help="training rows of the made run (default 10000)")
    p.add_argument("--n-valid", type=int, default=1_000, help="validation rows of the made run (default 1000)")
    p.add_argument("--n-test", type=int, default=500, help="test rows of the made run (default 500)")
    p.add_argument("--k", type=int, default=100, help="shortlisted negatives per sample (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--measure", action="store_true", help="time the explorer's first render in headless Chromium")
    p.add_argument("--runs", type=Path, nargs="+", default=[LARGE_RUN, GO_RUN],
                   help="run folders to open (default runs/large and the cellcycle_GO paper run)")
    p.add_argument("--app-dir", type=Path, action="append",
                   help="checkout whose app.py is served (default this one); repeat it to compare, in turns")
    p.add_argument("--repeats", type=int, default=3, help="cold + warm views per run and checkout (default 3)")
    p.add_argument("--timeout", type=float, default=120.0, help="per view, seconds (default 120)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    if args.make:
        make_large_run(args.out_run, args.n_train, args.n_valid, args.n_test, args.k, args.seed)
    if args.measure:
        import asyncio

        missing = [str(r) for r in args.runs if not (r / "summary.json").is_file()]
        if missing:
            p.error(f"not a run: {', '.join(missing)} (make runs/large with --make)")
        app_dirs = [a.resolve() for a in args.app_dir or [REPO]]
        results = asyncio.run(measure(app_dirs, args.runs, args.repeats, args.timeout))
        report = {"summary": summarise(results), "results": results, "cpus": os.cpu_count()}
        text = json.dumps(report, indent=1)
        if args.out:
            args.out.write_text(text)
        if args.json:
            print(text)
        else:
            for line in report["summary"]:
                print(f"{line['app_dir']} {line['run']} ({line['n_nodes']} nodes): cold {line['cold_shown_s']} s "
                      f"(painted {line['cold_painted_s']} s), warm {line['warm_shown_s']} s "
                      f"(painted {line['warm_painted_s']} s); figure {line['figure']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
