"""User text in CSV files that a spreadsheet opens: cells that read as data, never as formulas.

A node id, run name or file name comes from user files (an ARFF hierarchy, a
run folder, the Retrain page). A CSV cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return is taken as a formula by Excel,
LibreOffice and Google Sheets (``=HYPERLINK(...)`` can leak data, DDE
payloads can run commands). Following the OWASP guidance on CSV injection
(https://owasp.org/www-community/attacks/CSV_Injection), such a cell gets a
leading single quote, which spreadsheets show as text.

The quote is reversible: :func:`csv_cell` also prefixes a cell that already
starts with a quote, so :func:`restore_csv_cell` strips exactly one leading
quote from the cells that :func:`csv_cell` changed, and
``restore_csv_cell(csv_cell(s)) == s`` for every string ``s``.

Only strings are touched: numbers (negative ones included) stay numbers.

Which CSV files are neutralised: the ones a user downloads (the Missed nodes
table, :func:`hmlc_core.views.diagnose.table_csv`). A run's own
``node_metrics.csv`` and ``history.csv`` are data files that the project reads
back (:func:`hmlc_core.runs.load_run`), keyed by the exact node ids; they are
written as plain CSV.
"""

from __future__ import annotations

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection)."""

QUOTE = "'"
"""The prefix that makes a spreadsheet show a cell as text."""

_PREFIXED = (*FORMULA_STARTS, QUOTE)

__all__ = ["FORMULA_STARTS", "QUOTE", "csv_cell", "restore_csv_cell", "csv_safe_frame"]


def csv_cell(text: str) -> str:
    """``text`` as a CSV cell a spreadsheet shows as text: a leading ``'`` when it starts like a formula.

    Parameters
    ----------
    text : str
        A cell's text.

    Returns
    -------
    str
        ``"'" + text`` when ``text`` starts with one of :data:`FORMULA_STARTS` or with ``'``
        (so that :func:`restore_csv_cell` can undo it), else ``text`` unchanged.

    Raises
    ------
    TypeError
        If ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"csv_cell expects a str, got {type(text).__name__}")
    return QUOTE + text if text.startswith(_PREFIXED) else text


def restore_csv_cell(text: str) -> str:
    """Undo :func:`csv_cell`: strip the one leading ``'`` it added.

    Parameters
    ----------
    text : str
        A cell written by :func:`csv_cell`.

    Returns
    -------
    str
        ``text[1:]`` when ``text`` is ``'`` followed by one of :data:`FORMULA_STARTS` or ``'``, else
        ``text`` unchanged.

    Raises
    ------
    TypeError
        If ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"restore_csv_cell expects a str, got {type(text).__name__}")
    return text[1:] if text.startswith(QUOTE) and text[1:].startswith(_PREFIXED) else text


def _safe(value: object) -> object:
    return csv_cell(value) if isinstance(value, str) else value


def csv_safe_frame(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose string cells, index labels and column names went through :func:`csv_cell`.

    Only object and string columns change, and in them only the ``str`` values: numeric, boolean and
    datetime columns are returned as they are (a negative number stays a number).

    Parameters
    ----------
    table : pandas.DataFrame
        Any table, for example a per-node table indexed by node id.

    Returns
    -------
    pandas.DataFrame
        Same shape, dtypes and order; write it with ``to_csv``.
    """
    out = table.copy()
    for column in out.columns:
        dtype = out[column].dtype
        if dtype == object or pd.api.types.is_string_dtype(dtype):
            out[column] = out[column].map(_safe)
    out.index = out.index.map(_safe)
    out.columns = out.columns.map(_safe)
    if isinstance(out.index.name, str):
        out.index.name = csv_cell(out.index.name)
    return out
