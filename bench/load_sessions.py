"""Load benchmark of the dashboard: time to a fully rendered page under N concurrent browser sessions.

Run by hand, from the repository root (needs playwright-python and Debian's ``/usr/bin/chromium``;
another binary via ``HMLC_CHROMIUM``)::

    # the run the benchmark opens (a few minutes; runs/ is git-ignored)
    HMLC_DATA_DIR=/work/shared/data/hmc OMP_NUM_THREADS=1 python -m hmlc_core train --dataset cellcycle_GO \\
        --profile quick --fit-on train --out runs/load/cellcycle_GO
    # Missed nodes of that run, 1, 5 and 10 sessions at once
    python bench/load_sessions.py --runs-dir runs/load --run cellcycle_GO --sessions 1 5 10
    # other pages (url paths; '' is the Overview), 10 sessions
    python bench/load_sessions.py --runs-dir runs/load --pages '' hierarchy --sessions 10
    python bench/load_sessions.py --list-pages          # the six pages' url paths
    # the code before a change against this checkout, in turns (git worktree add /tmp/base HEAD)
    python bench/load_sessions.py --app-dir /tmp/base --app-dir . --sessions 1 5 10

For each page and each N of ``--sessions``, the benchmark starts a fresh ``streamlit run app.py`` of
``--app-dir`` on 127.0.0.1 (a free port, ``--server.headless true``, no file watcher), whose only runs are
those of ``--runs-dir`` (``HMLC_RUNS_DIR``; ``HMLC_LOCAL_RUNS_DIR`` is an empty temporary folder, so the
app's own ``runs/`` is not listed), and opens N browser contexts of one headless Chromium at once on
``/<page>?run=<run>``. That first wave meets a cold server (empty caches); a second wave of N new
sessions then opens the same URL on the same, now warm, server (``--waves`` sets the number of waves).

A session's time runs from ``page.goto`` until the page is fully rendered: the app's script is not
running (``stApp[data-test-script-state=notRunning]``), no status widget or spinner shows, the page has a
title, every Plotly chart has drawn its SVG, and this holds for ``--settle-ms`` (a rerun restarts the
clock at the next fully rendered moment; the time reported is that moment's). Sessions whose page shows a
Streamlit exception or that time out are reported with ``"error"``.

The browsers run on the server's machine. On a small machine the N headless Chromium renderers (software
rendering) take most of the CPU, also while they wait for a cold server, so wall times there mostly
measure the browsers: ``server_cpu_s`` is the server's share, ``--pin`` runs the server on one CPU and the
browser on the others, and ``--no-animations`` stops the pages' CSS animations (spinners).

Output: one JSON object on stdout, ``{"results": [...]}``, one line per (page, sessions, checkout, wave)
with ``pinned`` and ``no_animations`` (the options), ``times_s`` (per session, in session order),
``median_s``, ``max_s``, ``errors``, ``server_cpu_s`` (CPU seconds the Streamlit process used during the
wave, from Linux's ``/proc``; None elsewhere) and the 1-, 5- and 15-minute load averages
(``os.getloadavg``) before and after the wave. Progress goes to stderr. The machine's other work counts:
report the load next to each figure, and compare two checkouts in one invocation (repeated
``--app-dir``: they take turns for each page and N, so they meet similar load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("HMLC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = {"": "Overview", "how-it-works": "How it works", "hierarchy": "Hierarchy explorer",
         "missed-nodes": "Missed nodes", "retraining": "Retrain", "comparison": "Compare"}
"""URL path -> title of the app's six pages (``app.py``); ``''`` is the default page, the Overview."""
DEFAULT_PAGE = "missed-nodes"

RENDERED_JS = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    if (!app || app.getAttribute("data-test-script-state") !== "notRunning") return false;
    if (document.querySelector("[data-testid='stStatusWidget'], [data-testid='stSpinner']")) return false;
    if (!document.querySelector("[data-testid='stMain'] h1")) return false;
    const charts = document.querySelectorAll("[data-testid='stPlotlyChart']");
    for (const chart of charts) { if (!chart.querySelector(".main-svg")) return false; }
    return true;
}"""
"""True when the page is fully rendered (see the module docstring)."""
NO_ANIMATIONS_JS = """document.addEventListener("DOMContentLoaded", () => {
    const style = document.createElement("style");
    style.textContent = "*, *::before, *::after { animation: none !important; transition: none !important; }";
    document.head.appendChild(style);
});"""
"""``--no-animations``: stops CSS animations and transitions (spinners, the status widget) in every page."""

log = logging.getLogger("load_sessions")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run app.py`` of ``app_dir`` on 127.0.0.1, its runs those of ``runs_dir``; a context manager.

    Parameters
    ----------
    app_dir : pathlib.Path
        Checkout whose ``app.py`` is served.
    runs_dir : pathlib.Path
        Folder of runs, given to the app as ``HMLC_RUNS_DIR``.
    start_timeout : float
        Seconds to wait for ``/_stcore/health``.
    cpus : set of int, optional
        CPUs the server may run on (``os.sched_setaffinity``); default: all.

    Raises
    ------
    RuntimeError
        If the server exits or does not answer within ``start_timeout``.
    """

    def __init__(self, app_dir: Path, runs_dir: Path, start_timeout: float = 120.0,
                 cpus: set[int] | None = None) -> None:
        self.app_dir, self.runs_dir, self.start_timeout, self.cpus = app_dir, runs_dir, start_timeout, cpus
        self.url = ""
        self._tmp = tempfile.TemporaryDirectory(prefix="hmlc_load_")
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        port = _free_port()
        tmp = Path(self._tmp.name)
        (tmp / "no_local_runs").mkdir()
        env = {**os.environ, "HMLC_RUNS_DIR": str(self.runs_dir), "HMLC_LOCAL_RUNS_DIR": str(tmp / "no_local_runs"),
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        self._log = (tmp / "streamlit.log").open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=self.app_dir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=None if self.cpus is None else lambda: os.sched_setaffinity(0, self.cpus))
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        return self
            except OSError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"streamlit did not start in {self.app_dir} (exit code {self._proc.poll()})")
            time.sleep(0.5)

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds the server process has used so far (Linux ``/proc``), else None."""
        try:
            fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError, AttributeError):
            return None

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
        self._tmp.cleanup()


async def _session(browser: Any, url: str, settle_ms: int, timeout_s: float,
                   no_animations: bool = False) -> dict[str, Any]:
    """Open ``url`` in a new browser context; seconds until fully rendered and stable for ``settle_ms``."""
    context = await browser.new_context(viewport={"width": 1500, "height": 1100})
    if no_animations:
        await context.add_init_script(NO_ANIMATIONS_JS)
    page = await context.new_page()
    start = time.perf_counter()
    try:
        await page.goto(url, timeout=timeout_s * 1000)
        while True:
            remaining = timeout_s - (time.perf_counter() - start)
            if remaining <= 0:
                raise TimeoutError(f"not rendered after {timeout_s:g} s")
            await page.wait_for_function(RENDERED_JS, polling=50, timeout=remaining * 1000)
            rendered = time.perf_counter() - start
            await page.wait_for_timeout(settle_ms)
            if await page.evaluate(RENDERED_JS):
                break
        exceptions = await page.locator("[data-testid='stException']").count()
        return {"time_s": round(rendered, 3), **({"error": "stException on the page"} if exceptions else {})}
    except Exception as exc:  # a timeout or a crashed page is a result of the benchmark, not its failure
        return {"time_s": round(time.perf_counter() - start, 3), "error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        await context.close()


async def _wave(browser: Any, server: Server, page: str, query: str, n: int, settle_ms: int, timeout_s: float,
                no_animations: bool) -> dict[str, Any]:
    """N sessions at once on ``server``'s ``page``: the measurements of one wave (see :func:`measure`)."""
    before, cpu_before = _load(), server.cpu_seconds()
    out = await asyncio.gather(*(_session(browser, f"{server.url}/{page}{query}", settle_ms, timeout_s,
                                          no_animations) for _ in range(n)))
    cpu_after = server.cpu_seconds()
    times = [s["time_s"] for s in out]
    return {"times_s": times, "median_s": round(statistics.median(times), 3), "max_s": max(times),
            "errors": [s["error"] for s in out if "error" in s],
            "server_cpu_s": None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2),
            "load_before": before, "load_after": _load()}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def measure(app_dirs: list[Path], runs_dir: Path, run: str, pages: list[str], sessions: list[int], waves: int,
                  settle_ms: int, timeout_s: float, pin: bool = False,
                  no_animations: bool = False) -> list[dict[str, Any]]:
    """Every (page, N, app, wave) measurement; each (page, N, app) on a fresh server. See the module docstring.

    The checkouts ``app_dirs`` take turns for each (page, N), so that they meet similar machine load.

    Parameters
    ----------
    app_dirs : list of pathlib.Path
        Checkouts whose ``app.py`` is served (:class:`Server`).
    runs_dir : pathlib.Path
        As :class:`Server`.
    run : str
        Run chooser key (``?run=``) of the run to open; ``''`` opens the app's default run.
    pages : list of str
        URL paths (keys of :data:`PAGES`).
    sessions : list of int
        Concurrent sessions per wave, each >= 1.
    waves : int
        Waves per (page, N); the first meets a cold server.
    settle_ms : int
        How long the fully rendered state must hold (ms).
    timeout_s : float
        Per-session limit (s).
    pin : bool
        Run the server on the first usable CPU and the browser on the others (``os.sched_setaffinity``), so
        that the browsers' rendering does not slow the server down; needs at least two CPUs.
    no_animations : bool
        Stop CSS animations in the pages (:data:`NO_ANIMATIONS_JS`).

    Returns
    -------
    list of dict
        One entry per wave: ``app_dir``, ``page``, ``url_path``, ``pinned``, ``no_animations``, ``sessions``,
        ``wave`` (1 = cold), ``times_s``, ``median_s``, ``max_s``, ``errors``, ``server_cpu_s`` and
        ``load_before`` / ``load_after`` (1, 5, 15 min).
    """
    from playwright.async_api import async_playwright

    results = []
    query = f"?run={run}" if run else ""
    server_cpus = None
    if pin:
        usable = sorted(os.sched_getaffinity(0))
        if len(usable) < 2:
            raise RuntimeError("--pin needs at least two usable CPUs")
        server_cpus = {usable[0]}
        os.sched_setaffinity(0, set(usable[1:]))  # the browser, started below, inherits it
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for page in pages:
                for n, app_dir in ((n, a) for n in sessions for a in app_dirs):
                    with Server(app_dir, runs_dir, cpus=server_cpus) as server:
                        for wave in range(1, waves + 1):
                            result = {"app_dir": str(app_dir), "page": PAGES.get(page, page), "url_path": page,
                                      "pinned": pin, "no_animations": no_animations, "sessions": n, "wave": wave,
                                      **await _wave(browser, server, page, query, n, settle_ms, timeout_s,
                                                    no_animations)}
                            log.info("%s | %s | N=%d wave %d: median %.2f s, max %.2f s, server CPU %s s, "
                                     "load %s -> %s%s", app_dir, result["page"], n, wave, result["median_s"],
                                     result["max_s"], result["server_cpu_s"], result["load_before"],
                                     result["load_after"],
                                     f", {len(result['errors'])} errors" if result["errors"] else "")
                            results.append(result)
        finally:
            await browser.close()
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring); prints the JSON results, returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app-dir", type=Path, action="append",
                        help="checkout whose app.py is served (default: this one); repeat it to measure several, "
                             "taking turns for each page and N")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "load",
                        help="folder of runs given to the app as HMLC_RUNS_DIR (default runs/load)")
    parser.add_argument("--run", default="cellcycle_GO", help="run chooser key opened with ?run= (default "
                        "cellcycle_GO; '' for the app's default run)")
    parser.add_argument("--pages", nargs="+", default=[DEFAULT_PAGE],
                        help=f"page url paths (default {DEFAULT_PAGE}; '' is the Overview; see --list-pages)")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 5, 10], help="concurrent sessions per wave")
    parser.add_argument("--waves", type=int, default=2, help="waves per server; the first is cold (default 2)")
    parser.add_argument("--settle-ms", type=int, default=500, help="the rendered state must hold this long (ms)")
    parser.add_argument("--timeout", type=float, default=180.0, help="per-session limit in seconds (default 180)")
    parser.add_argument("--pin", action="store_true",
                        help="server on one CPU, browser on the others, so that the browsers do not slow the server")
    parser.add_argument("--no-animations", action="store_true",
                        help="stop CSS animations (spinners, status widget), which a software-rendering headless "
                             "browser redraws at full rate in every waiting session")
    parser.add_argument("--list-pages", action="store_true", help="print the pages' url paths and titles, exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    if args.list_pages:
        print(json.dumps(PAGES, indent=1))
        return 0
    if any(n < 1 for n in args.sessions) or args.waves < 1:
        parser.error("--sessions and --waves must be >= 1")
    unknown = [p for p in args.pages if p not in PAGES]
    if unknown:
        parser.error(f"unknown page(s) {unknown}; one of {list(PAGES)}")
    if not Path(CHROMIUM).exists():
        parser.error(f"no Chromium at {CHROMIUM} (set HMLC_CHROMIUM)")
    results = asyncio.run(measure([a.resolve() for a in args.app_dir or [REPO]], args.runs_dir.resolve(), args.run,
                                  args.pages, args.sessions, args.waves, args.settle_ms, args.timeout, args.pin,
                                  args.no_animations))
    print('{"results": [\n' + ",\n".join(json.dumps(r) for r in results) + "\n]}")  # one line per wave
    return 0


if __name__ == "__main__":
    sys.exit(main())
