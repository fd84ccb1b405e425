"""Hostile and malformed input for the ARFF loader (hmlc_core.data).

Two parts:

* plain regression tests, one per finding of the adversarial probe of issue 13
  (memory blow-up on a long numeric field, huge or non-finite values, errors
  that named no file or line, files starting with a UTF-8 BOM);
* property-based tests (hypothesis): generated valid CLUS-style files (numeric
  and nominal attributes, a ``hierarchical`` class attribute in the tree style
  ``a/b/c`` or the DAG style ``parent/child``) must parse to exactly the values
  written, and randomly mutated files must either load or raise
  :class:`~hmlc_core.data.ArffError` naming the file and a line, in bounded time
  and memory.
"""

from __future__ import annotations

import math
import pickle
import tracemalloc
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmlc_core.data import ArffError, ArffTable, load_arff_files, parse_arff

FIX = Path(__file__).parent / "fixtures"
FUN = FIX / "fun_tiny.arff"
FUN_TEST = FIX / "fun_tiny_test.arff"
GO = FIX / "go_tiny.arff"

#: Shared settings: few examples, a generous per-example deadline (2 shared CPU cores),
#: no example database on disk (the tests write their files under tmp_path).
FUZZ = settings(
    max_examples=100,
    deadline=timedelta(seconds=5),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Memory allowed for parsing a file: this many bytes per byte of the file, plus a constant.
MEMORY_PER_BYTE = 64
MEMORY_CONSTANT = 2_000_000


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def _header(*attributes: str, hierarchy: str = "01,02") -> str:
    lines = ["@RELATION r"] + [f"@ATTRIBUTE {a}" for a in attributes]
    lines.append(f"@ATTRIBUTE class hierarchical {hierarchy}")
    lines.append("@DATA")
    return "\n".join(lines) + "\n"


def _peak_bytes(func, *args) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        func(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _assert_names_file_and_line(err: ArffError, path: Path, line: int | None = None) -> None:
    assert isinstance(err, ValueError)
    assert err.path == Path(path)
    assert isinstance(err.line, int) and err.line >= 1
    assert str(err).startswith(f"{path}:{err.line}: ")
    if line is not None:
        assert err.line == line


# =====================================================================
# regression: memory proportional to the file, not to rows x columns x longest field
# =====================================================================
def test_long_numeric_field_memory_is_proportional_to_file(tmp_path):
    long_one = "1." + "0" * 16_000  # a valid number (1.0) written with 16,002 characters
    rows = [f"{k}.5,{long_one if k == 0 else k},01" for k in range(400)]
    path = _write(tmp_path, "long.arff", _header("x numeric", "y numeric") + "\n".join(rows) + "\n")
    size = path.stat().st_size
    peak = _peak_bytes(parse_arff, path)
    # a fixed-width string array of 800 cells x 16,002 characters would take about 51 MB
    assert peak < MEMORY_PER_BYTE * size + MEMORY_CONSTANT, (peak, size)
    table = parse_arff(path)
    assert table.X[0, 1] == 1.0 and table.X[399, 1] == 399.0


def test_wide_one_hot_block_is_refused_before_allocation(tmp_path):
    # 7,000 rows x 7,000 declared values: a ~0.1 MB file whose dense one-hot matrix would take 392 MB
    values = ",".join(f"v{k}" for k in range(7000))
    rows = "".join(f"{k},v{k},01\n" for k in range(7000))
    path = _write(tmp_path, "wide.arff", _header("x numeric", f"colour {{{values}}}") + rows)
    size = path.stat().st_size
    outcome: list = []

    def attempt() -> None:
        with pytest.raises(ArffError, match=r"wide\.arff:3: .*'colour' declares 7000 values") as info:
            parse_arff(path)
        outcome.append(info.value)

    peak = _peak_bytes(attempt)
    assert peak < MEMORY_PER_BYTE * size + MEMORY_CONSTANT, (peak, size)
    _assert_names_file_and_line(outcome[0], path, 3)


# =====================================================================
# regression: huge, non-finite and overflowing values are errors naming file, line, attribute
# =====================================================================
@pytest.mark.parametrize("token", ["1e154", "-1e154", "1e300", "-1.7976931348623157e308", "1.5e151"])
def test_values_too_large_for_standardisation_rejected(tmp_path, token):
    path = _write(tmp_path, "big.arff", _header("x numeric", "y numeric") + f"1,2,01\n3,{token},02\n5,6,01\n")
    with pytest.raises(ArffError, match=r"big\.arff:7: .*'y'") as info:
        load_arff_files(path, path)
    _assert_names_file_and_line(info.value, path, 7)


@pytest.mark.parametrize("token", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e999"])
def test_non_finite_tokens_rejected(tmp_path, token):
    path = _write(tmp_path, "inf.arff", _header("x numeric", "y numeric") + f"1,2,01\n{token},4,02\n")
    with pytest.raises(ArffError, match=r"inf\.arff:7: .*'x'") as info:
        parse_arff(path)
    _assert_names_file_and_line(info.value, path, 7)


def test_large_but_allowed_values_standardise_to_finite_features(tmp_path):
    # the bound is 1e150 in magnitude; values at the bound and tiny ones still give finite float32 features
    path = _write(
        tmp_path,
        "edge.arff",
        _header("x numeric", "y numeric") + "1e150,1e-300\n-1e150,?\n1e150,5e-324\n".replace("\n", ",01\n"),
    )
    ds = load_arff_files(path, path)
    assert np.isfinite(ds.train.X).all()
    # x: 1e150, -1e150, 1e150 -> mean 1e150/3, std sqrt(8/9) * 1e150
    expected = (np.array([1.0, -1.0, 1.0]) - 1 / 3) / math.sqrt(8 / 9)
    np.testing.assert_allclose(ds.train.X[:, 0], expected, rtol=1e-6)


def test_question_mark_is_still_missing_and_imputed(tmp_path):
    path = _write(tmp_path, "miss.arff", _header("x numeric", "y numeric") + "1, ? ,01\n3,4,02\n?,8,01\n")
    table = parse_arff(path)
    np.testing.assert_array_equal(table.X, [[1, np.nan], [3, 4], [np.nan, 8]])
    ds = load_arff_files(path, path)
    # x imputed with mean 2: 1, 3, 2 -> standardised -1, 1, 0 (std sqrt(2/3))
    np.testing.assert_allclose(ds.train.X[:, 0], np.array([-1, 1, 0]) / math.sqrt(2 / 3), rtol=1e-6)


# =====================================================================
# regression: hierarchy problems and an empty data section name file and line
# =====================================================================
def test_dag_cycle_names_file_and_hierarchy_line(tmp_path):
    path = _write(tmp_path, "cyc.arff", _header("x numeric", hierarchy="root/A,A/B,B/C,C/A") + "1,B\n")
    with pytest.raises(ArffError, match=r"cyc\.arff:3: .*cycle") as info:
        parse_arff(path)
    _assert_names_file_and_line(info.value, path, 3)


def test_cycle_across_splits_names_the_file_that_closes_it(tmp_path):
    train = _write(tmp_path, "tr.arff", _header("x numeric", hierarchy="root/A,A/B") + "1,B\n")
    test = _write(tmp_path, "te.arff", "% comment\n" + _header("x numeric", hierarchy="root/A,B/A") + "1,A\n")
    with pytest.raises(ArffError, match=r"te\.arff:4: .*cycle.*tr\.arff") as info:
        load_arff_files(train, test)
    _assert_names_file_and_line(info.value, test, 4)


@pytest.mark.parametrize(("items", "expected"), [("root/01,02", {"root.01", "02"}), ("01,root", {"01"})])
def test_tree_path_starting_with_root_means_the_top_node(tmp_path, items, expected):
    # before the fix, the item 'root' gave a self-loop root -> root that failed without naming the file
    path = _write(tmp_path, "rootpath.arff", _header("x numeric", hierarchy=items) + "1,\n")
    ds = load_arff_files(path, path)
    assert set(ds.hierarchy.nodes) == {"root"} | expected
    assert ds.hierarchy.roots == ["root"]


@pytest.mark.parametrize("items", ["root/A,A/root", "root/A,A/B,B/root", "root/A,B/root"])
def test_dag_child_named_root_names_file_and_hierarchy_line(tmp_path, items):
    path = _write(tmp_path, "rootnode.arff", _header("x numeric", hierarchy=items) + "1,\n")
    with pytest.raises(ArffError, match=r"rootnode\.arff:3: .*'root'") as info:
        load_arff_files(path, path)
    _assert_names_file_and_line(info.value, path, 3)


def test_empty_data_section_names_file_and_data_line(tmp_path):
    path = _write(tmp_path, "empty.arff", _header("x numeric") + "% only a comment\n\n")
    with pytest.raises(ArffError, match=r"empty\.arff:4: .*no data rows") as info:
        load_arff_files(path, path)
    _assert_names_file_and_line(info.value, path, 4)


def test_no_feature_attribute_names_file_and_line(tmp_path):
    path = _write(tmp_path, "nofeat.arff", _header() + "01\n")
    with pytest.raises(ArffError, match=r"nofeat\.arff:3: .*no feature") as info:
        load_arff_files(path, path)
    _assert_names_file_and_line(info.value, path, 3)


def test_missing_data_section_names_last_line(tmp_path):
    path = _write(tmp_path, "nodata.arff", "@RELATION r\n@ATTRIBUTE x numeric\n")
    with pytest.raises(ArffError, match=r"nodata\.arff:2: .*@DATA") as info:
        parse_arff(path)
    _assert_names_file_and_line(info.value, path, 2)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin.arff"
    path.write_bytes(_header("x numeric").encode() + b"1,01\n2\xe9,02\n")
    with pytest.raises(ArffError, match=r"latin\.arff:6: .*UTF-8") as info:
        parse_arff(path)
    _assert_names_file_and_line(info.value, path, 6)


# =====================================================================
# regression: a UTF-8 byte order mark is accepted
# =====================================================================
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_utf8_bom_is_accepted(tmp_path, newline):
    plain = FUN.read_bytes().decode("utf-8")
    path = tmp_path / "bom.arff"
    path.write_bytes(b"\xef\xbb\xbf" + plain.replace("\n", newline).encode("utf-8"))
    got, want = parse_arff(path), parse_arff(FUN)
    assert got.relation == want.relation
    assert got.feature_names == want.feature_names
    np.testing.assert_array_equal(got.X, want.X)
    assert got.label_terms == want.label_terms and got.edges == want.edges


# =====================================================================
# one error type: ArffError(ValueError) with path and line, message "FILE:LINE: reason"
# =====================================================================
@pytest.mark.parametrize(
    ("name", "line"), [("bad_fieldcount.arff", 7), ("bad_label.arff", 7), ("sparse.arff", 5)]
)
def test_fixture_errors_are_arff_errors(name, line):
    with pytest.raises(ArffError) as info:
        parse_arff(FIX / name)
    _assert_names_file_and_line(info.value, FIX / name, line)
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value) and copy.path == info.value.path and copy.line == line


def test_split_disagreements_name_both_files_and_lines(tmp_path):
    other = _write(tmp_path, "other.arff", _header("expr1 numeric", "zz numeric") + "1,2,01\n")
    with pytest.raises(ArffError, match=r"fun_tiny\.arff:5: .*other\.arff:3\b") as info:
        load_arff_files(FUN, other)
    _assert_names_file_and_line(info.value, FUN, 5)
    dag = _write(tmp_path, "dag.arff", "@RELATION r\n@ATTRIBUTE expr1 numeric\n@ATTRIBUTE 'expr 2' numeric\n"
                 "@ATTRIBUTE chromosome {1,2,mit}\n@ATTRIBUTE class hierarchical root/01\n@DATA\n1,2,1,01\n")
    with pytest.raises(ArffError, match=r"fun_tiny\.arff:7: .*tree.*dag\.arff:5\b"):
        load_arff_files(FUN, dag)


# =====================================================================
# property-based: valid files parse to exactly what was written
# =====================================================================
_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=6)
_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=4)
_NUMBER = st.one_of(
    st.floats(min_value=-1e150, max_value=1e150, allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**6), max_value=10**6).map(float),
)


@st.composite
def _tree_hierarchy(draw):
    """Tree-style items (paths) and the label terms that may be used."""
    paths = draw(
        st.lists(
            st.lists(st.sampled_from(["01", "02", "03", "10", "x"]), min_size=1, max_size=3).map("/".join),
            min_size=1,
            max_size=6,
        )
    )
    prefixes = {"/".join(p.split("/")[:k]) for p in paths for k in range(1, p.count("/") + 2)}
    return "tree", paths, sorted(prefixes), lambda term: term.replace("/", ".")


@st.composite
def _dag_hierarchy(draw):
    """DAG-style ``parent/child`` items over nodes G0..Gk, parents before children (acyclic)."""
    n = draw(st.integers(min_value=1, max_value=6))
    nodes = [f"G{i}" for i in range(n)]
    items = []
    for i, node in enumerate(nodes):
        candidates = ["root"] + nodes[:i]
        parents = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=2, unique=True))
        items.extend(f"{p}/{node}" for p in parents)
    if not any(item.startswith("root/") for item in items):
        items.insert(0, f"root/{nodes[0]}")
    order = draw(st.permutations(items))
    return "dag", list(order), nodes, lambda term: term


@st.composite
def valid_arff(draw):
    """(text, expected) for a random valid CLUS-style ARFF file."""
    names = draw(st.lists(_NAME, min_size=1, max_size=5, unique=True))
    attributes = []
    for name in names:
        if draw(st.booleans()):
            attributes.append((name, None))
        else:
            attributes.append((name, draw(st.lists(_TOKEN, min_size=1, max_size=4, unique=True))))
    style, items, terms, to_node = draw(st.one_of(_tree_hierarchy(), _dag_hierarchy()))
    class_pos = draw(st.integers(min_value=0, max_value=len(attributes)))
    n_rows = draw(st.integers(min_value=1, max_value=8))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.booleans())

    header = ["% generated", "@RELATION gen"]
    decl = [f"@ATTRIBUTE {n} {'numeric' if v is None else '{' + ','.join(v) + '}'}" for n, v in attributes]
    decl.insert(class_pos, f"@attribute class HIERARCHICAL {','.join(items)}")
    header += decl + ["", "@DATA"]
    rows, X, labels = [], [], []
    for _ in range(n_rows):
        fields, xrow = [], []
        for name, values in attributes:
            if values is None:
                value = draw(st.one_of(st.just(None), _NUMBER))
                fields.append("?" if value is None else repr(value))
                xrow.append(np.nan if value is None else value)
            else:
                value = draw(st.one_of(st.just(None), st.sampled_from(values)))
                fields.append("?" if value is None else value)
                xrow.extend(1.0 if v == value else 0.0 for v in values)
        chosen = draw(st.lists(st.sampled_from(terms), max_size=3))
        fields.insert(class_pos, "@".join(chosen))
        rows.append(",".join(fields))
        X.append(xrow)
        labels.append(list(dict.fromkeys(to_node(t) for t in chosen)))
    text = newline.join(header + rows) + newline
    feature_names = [n if v is None else f"{n}={x}" for n, v in attributes for x in ([None] if v is None else v)]
    expected = {"style": style, "X": np.array(X, dtype=np.float64), "labels": labels, "names": feature_names}
    return ("\ufeff" if bom else "") + text, expected


@FUZZ
@given(case=valid_arff())
def test_valid_files_parse_to_what_was_written(tmp_path, case):
    text, expected = case
    path = tmp_path / "valid.arff"
    path.write_bytes(text.encode("utf-8"))
    table = parse_arff(path)
    assert table.style == expected["style"]
    assert table.feature_names == expected["names"]
    np.testing.assert_array_equal(table.X, expected["X"])
    assert table.label_terms == expected["labels"]
    ds = load_arff_files(path, path)
    assert ds.train.X.dtype == np.float32 and np.isfinite(ds.train.X).all()
    assert ds.hierarchy.is_coherent(ds.train.Y)


# =====================================================================
# property-based: mutated files load or raise ArffError naming the file, in bounded time and memory
# =====================================================================
_SPECIAL = [
    "nan", "inf", "-Infinity", "1e400", "1e154", "?", "root", "root/", "/root", "{", "}", "%", ",", "/", "@",
    "@DATA", "@ATTRIBUTE a numeric", "@ATTRIBUTE c hierarchical root/x,x/root", "'", '"', "\t", "\x00",
    "\u00e9", "\u4e2d", "\U0001f600", "\u2028", "\r", "\n", "\ufeff", "9" * 400, "1." + "0" * 20_000,
]


@st.composite
def _mutation(draw, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup_line", "drop_line", "swap_lines",
                                 "special", "bom", "crlf"]))
    data_at = max(data.find(b"@DATA"), 0)  # half of the mutations hit the data section
    pos = draw(st.integers(min_value=0, max_value=len(data)) | st.integers(min_value=data_at, max_value=len(data)))
    if kind == "flip" and data:
        pos = min(pos, len(data) - 1)
        return data[:pos] + bytes([draw(st.integers(0, 255))]) + data[pos + 1 :]
    if kind == "insert":
        inserted = st.binary(min_size=1, max_size=8) | st.text(min_size=1, max_size=8).map(str.encode)
        return data[:pos] + draw(inserted) + data[pos:]
    if kind == "delete":
        return data[:pos] + data[pos + draw(st.integers(1, 40)) :]
    if kind == "truncate":
        return data[:pos]
    if kind == "special":
        return data[:pos] + draw(st.sampled_from(_SPECIAL)).encode("utf-8") + data[pos:]
    if kind == "bom":
        return b"\xef\xbb\xbf" + data
    if kind == "crlf":
        return data.replace(b"\n", b"\r\n")
    lines = data.split(b"\n")
    i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    if kind == "dup_line":
        lines.insert(i, lines[j])
    elif kind == "drop_line":
        del lines[i]
    elif kind == "swap_lines":
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


@st.composite
def mutated_arff(draw) -> bytes:
    text, _ = draw(valid_arff())
    data = text.encode("utf-8")
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        data = draw(_mutation(data))
    return data


def _check_table(table: ArffTable) -> None:
    n, d = table.X.shape
    assert table.X.dtype == np.float64 and d == len(table.feature_names) and n == len(table.label_terms) >= 1
    values = table.X[~np.isnan(table.X)]
    assert (np.abs(values) <= 1e150).all()
    nodes = set(table.nodes) | {"root"}
    assert all(term in nodes for terms in table.label_terms for term in terms)


@FUZZ
@given(data=mutated_arff())
def test_mutated_files_load_or_raise_arff_error(tmp_path, data):
    path = tmp_path / "mutated.arff"
    path.write_bytes(data)
    outcome: list = []

    def attempt() -> None:
        try:
            outcome.append(parse_arff(path))
        except ArffError as err:
            outcome.append(err)

    peak = _peak_bytes(attempt)
    assert peak < MEMORY_PER_BYTE * len(data) + MEMORY_CONSTANT, (peak, len(data))
    result = outcome[0]
    if isinstance(result, ArffError):
        _assert_names_file_and_line(result, path)
        return
    _check_table(result)
    try:
        ds = load_arff_files(path, path)
    except ArffError as err:
        _assert_names_file_and_line(err, path)
        return
    assert np.isfinite(ds.train.X).all() and ds.train.X.shape == result.X.shape
    assert ds.hierarchy.is_coherent(ds.train.Y)
