"""Hierarchy: structure queries, ancestor matrix, propagation, coherence, persistence."""

import copy

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hmlc_core.hierarchy import Hierarchy

# A small DAG: d has two parents (b and c), like a GO term.
#        root
#       /    \
#      a      b
#     / \      \
#    c   e      |
#     \________/
#         d  (children of b and c)
DAG_EDGES = [("root", "a"), ("root", "b"), ("a", "c"), ("a", "e"), ("c", "d"), ("b", "d")]


@pytest.fixture
def dag():
    return Hierarchy(DAG_EDGES)


def test_order_depth_and_roots(dag):
    assert dag.nodes == ["root", "a", "b", "c", "d", "e"]
    assert dag.roots == ["root"]
    assert dict(zip(dag.nodes, dag.depth.tolist())) == {"root": 0, "a": 1, "b": 1, "c": 2, "e": 2, "d": 2}
    assert not dag.is_tree
    assert dag.eval_mask.tolist() == [False, True, True, True, True, True]


def test_queries(dag):
    assert dag.parents("d") == ["b", "c"]
    assert dag.children("a") == ["c", "e"]
    assert dag.ancestors("d") == ["root", "a", "b", "c"]
    assert dag.descendants("a") == ["c", "d", "e"]
    assert dag.siblings("c") == ["e"]
    assert dag.first_parent("d") == "b"
    assert dag.first_parent("root") is None
    assert dag.leaves == ["d", "e"]
    with pytest.raises(KeyError, match="zzz"):
        dag.parents("zzz")


def test_ancestor_matrix_is_reflexive_closure(dag):
    a = dag.ancestor_matrix()
    i = dag.index
    expected = np.eye(6, dtype=bool)
    for node, ancs in {"a": "root", "b": "root", "c": "a root", "e": "a root", "d": "b c a root"}.items():
        for anc in ancs.split():
            expected[i[node], i[anc]] = True
    np.testing.assert_array_equal(a, expected)
    # C-HMCNN's R = A.T: the root's row of R is all ones (docs/method.md, *Data and hierarchy*).
    assert a.T[i["root"]].all()


def test_propagation_and_coherence(dag):
    y = dag.label_matrix([["d"], ["e"], []])
    i = dag.index
    assert {n for n in dag.nodes if y[0, i[n]]} == {"d", "b", "c", "a", "root"}
    assert {n for n in dag.nodes if y[1, i[n]]} == {"e", "a", "root"}
    assert y[2].sum() == 0
    assert dag.is_coherent(y)
    bad = y.copy()
    bad[1, i["a"]] = 0  # e positive, its parent a negative
    assert dag.coherence_violations(bad) == 1
    scores = y.astype(float) * 0.5
    scores[0, i["d"]] = 0.55  # 0.05 above both its parents, b and c (0.5)
    assert dag.coherence_violations(scores) == 2
    assert dag.coherence_violations(scores, tol=0.1) == 0 and dag.is_coherent(scores, tol=0.1)
    with pytest.raises(KeyError, match="sample 0"):
        dag.label_matrix([["nope"]])


def test_skip_eval_and_roundtrip(dag):
    h = Hierarchy(DAG_EDGES, skip_eval=["root", "a", "GO0003674"])
    assert h.skipped == ["a", "root"]
    again = Hierarchy.from_dict(h.to_dict())
    assert again.nodes == h.nodes
    assert sorted(again.graph.edges) == sorted(h.graph.edges)
    np.testing.assert_array_equal(again.eval_mask, h.eval_mask)


def test_errors():
    with pytest.raises(ValueError, match="cycle"):
        Hierarchy([("a", "b"), ("b", "c"), ("c", "a")])
    with pytest.raises(ValueError, match="self-loop"):
        Hierarchy([("a", "a")])
    with pytest.raises(ValueError, match="lacks the field"):
        Hierarchy.from_dict({"nodes": []})


@st.composite
def random_dags(draw):
    """Edges of a random DAG (a parent always has a smaller number), with several roots and shared children."""
    n = draw(st.integers(1, 25))
    edges = set()
    for child in range(1, n):
        parents = draw(st.lists(st.integers(0, child - 1), max_size=3, unique=True))
        edges |= {(f"n{p}", f"n{child}") for p in parents}
    return [f"n{i}" for i in range(n)], sorted(edges)


@settings(max_examples=60, deadline=None)
@given(random_dags(), st.randoms(use_true_random=False))
def test_depth_ancestors_and_propagation_match_networkx(dag_edges, rng):
    nodes, edges = dag_edges
    h = Hierarchy(edges, nodes=nodes)
    g = nx.DiGraph(edges)
    g.add_nodes_from(nodes)
    roots = [n for n in g if g.in_degree(n) == 0]
    shortest = nx.multi_source_dijkstra_path_length(g, roots)
    assert h.roots == sorted(roots)
    assert dict(zip(h.nodes, h.depth.tolist())) == shortest
    assert h.nodes == sorted(nodes, key=lambda n: (shortest[n], n))
    for n in nodes:
        assert set(h.ancestors(n)) == nx.ancestors(g, n)
    y = np.array([[rng.random() < 0.2 for _ in h.nodes] for _ in range(7)], dtype=np.uint8)
    expected = np.zeros_like(y)
    for i, j in zip(*np.nonzero(y)):
        for node in nx.ancestors(g, h.nodes[j]) | {h.nodes[j]}:
            expected[i, h.index[node]] = 1
    np.testing.assert_array_equal(h.propagate(y), expected)
    assert h.propagate(y).dtype == np.uint8
    np.testing.assert_array_equal(h.propagate_sparse(y).toarray() > 0, expected == 1)


def test_cycle_is_named_in_the_error():
    with pytest.raises(ValueError, match=r"cycle: (b -> c -> d -> b|c -> d -> b -> c|d -> b -> c -> d)"):
        Hierarchy([("root", "a"), ("a", "b"), ("b", "c"), ("c", "d"), ("d", "b")])


def _reference(edges, nodes=None, skip_eval=None):
    """What ``Hierarchy`` computed when it was built on a networkx graph (the code before the dict-based one).

    Returns the graph and every attribute, or the ValueError's message (a self-loop, no node, a cycle).
    """
    graph = nx.DiGraph()
    if nodes is not None:
        graph.add_nodes_from(str(n) for n in nodes)
    pairs = [(str(p), str(c)) for p, c in edges]
    for p, c in pairs:
        if p == c:
            return f"hierarchy edge {p!r} -> {c!r} is a self-loop"
    graph.add_edges_from(pairs)
    if graph.number_of_nodes() == 0:
        return "a hierarchy needs at least one node"
    try:
        order = list(nx.topological_sort(graph))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(graph)
        return "the hierarchy has a cycle: " + " -> ".join([cycle[0][0]] + [v for _, v in cycle])
    depth, ancestors = {}, {}
    for n in order:
        parents = list(graph.predecessors(n))
        depth[n] = min(depth[p] for p in parents) + 1 if parents else 0
        ancestors[n] = set(parents).union(*(ancestors[p] for p in parents))
    ordered = sorted(graph.nodes, key=lambda n: (depth[n], n))
    index = {n: i for i, n in enumerate(ordered)}
    skipped = {n for n in graph if graph.in_degree(n) == 0} if skip_eval is None else {str(s) for s in skip_eval}
    return {"graph": graph, "nodes": ordered, "index": index, "depth": [depth[n] for n in ordered],
            "ancestors": ancestors, "roots": sorted(n for n in graph if graph.in_degree(n) == 0),
            "skipped": sorted(s for s in skipped if s in index), "eval_mask": [n not in skipped for n in ordered]}


def _assert_same_as_reference(h: Hierarchy, ref: dict) -> None:
    g, index = ref["graph"], ref["index"]
    by_column = index.__getitem__
    assert h.nodes == ref["nodes"] and h.index == index and h.n_nodes == len(index)
    assert h.depth.dtype == np.int64 and h.depth.tolist() == ref["depth"]
    assert h.eval_mask.dtype == bool and h.eval_mask.tolist() == ref["eval_mask"]
    assert h.roots == ref["roots"] and h.skipped == ref["skipped"]
    assert h.is_tree == all(d <= 1 for _, d in g.in_degree())
    assert h.n_edges == g.number_of_edges()
    assert h.leaves == [n for n in ref["nodes"] if g.out_degree(n) == 0]
    for n in ref["nodes"]:
        assert h.parents(n) == sorted(g.predecessors(n), key=by_column)
        assert h.children(n) == sorted(g.successors(n), key=by_column)
        assert h.ancestors(n) == sorted(ref["ancestors"][n], key=by_column)
        assert h.descendants(n) == sorted(nx.descendants(g, n), key=by_column)
        assert h.siblings(n) == sorted({c for p in g.predecessors(n) for c in g.successors(p)} - {n}, key=by_column)
    # the graph itself: node order and each node's neighbour order as networkx built them from the same input
    assert list(h.graph.nodes) == list(g.nodes) and list(h.graph.edges) == list(g.edges)
    for n in g:
        assert list(h.graph.predecessors(n)) == list(g.predecessors(n))
        assert list(h.graph.successors(n)) == list(g.successors(n))
    assert h.edges() == list(g.edges)
    some = set(ref["nodes"][::2])
    assert h.edges(among=some) == [(p, c) for p, c in g.edges if p in some and c in some]
    child, parent = h.edge_index()
    assert child.tolist() == [index[c] for _, c in g.edges] and parent.tolist() == [index[p] for p, _ in g.edges]
    rows, cols = h.ancestor_pairs()
    want = [(index[n], a) for n in ref["nodes"] for a in sorted([index[n], *(index[x] for x in ref["ancestors"][n])])]
    assert list(zip(rows.tolist(), cols.tolist())) == want
    assert h.to_dict() == {"nodes": ref["nodes"],
                           "edges": [[p, c] for p, c in sorted(g.edges, key=lambda e: (index[e[1]], index[e[0]]))],
                           "skip_eval": ref["skipped"]}
    kind = "tree" if h.is_tree else "DAG"
    assert repr(h) == (f"Hierarchy({kind}, {len(index)} nodes, {g.number_of_edges()} edges, "
                       f"max depth {max(ref['depth'])}, {sum(ref['eval_mask'])} evaluated)")


@st.composite
def hierarchy_inputs(draw):
    """Constructor arguments in any order: shuffled and repeated edges, extra (lone) nodes, ids that do not sort
    like their numbers (so the insertion order, the column order and networkx's orders all differ)."""
    nodes, edges = draw(random_dags())
    name = {n: f"{draw(st.sampled_from('zab'))}{int(n[1:]) * 7 % 31}_{n}" for n in nodes}
    edges = [(name[p], name[c]) for p, c in edges]
    edges = draw(st.permutations(edges + draw(st.lists(st.sampled_from(edges), max_size=3)) if edges else edges))
    given = draw(st.none() | st.permutations([name[n] for n in nodes]).map(lambda ns: ns[: len(ns) // 2]))
    skip = draw(st.none() | st.lists(st.sampled_from([name[n] for n in nodes] + ["GO0003674"]), max_size=3))
    return edges, given, skip


@settings(max_examples=120, deadline=None)
@given(hierarchy_inputs())
def test_dict_based_hierarchy_gives_exactly_what_the_networkx_one_gave(inputs):
    edges, nodes, skip_eval = inputs
    ref = _reference(edges, nodes, skip_eval)
    if isinstance(ref, str):
        with pytest.raises(ValueError) as error:
            Hierarchy(edges, nodes=nodes, skip_eval=skip_eval)
        assert str(error.value) == ref
        return
    h = Hierarchy(edges, nodes=nodes, skip_eval=skip_eval)
    _assert_same_as_reference(h, ref)
    again = Hierarchy.from_dict(h.to_dict())  # a run's hierarchy.json read back
    _assert_same_as_reference(again, _reference(h.to_dict()["edges"], h.nodes, h.skipped))


@pytest.mark.parametrize("edges", [
    [("a", "b"), ("b", "c"), ("c", "a")],
    [("root", "a"), ("a", "b"), ("b", "c"), ("c", "d"), ("d", "b")],
    [("r", "x"), ("y", "z"), ("z", "w"), ("w", "y"), ("x", "q")],
    [("r", "a"), ("a", "a")],
    [("r", "a"), ("a", "r"), ("b", "b")],
    [],
])
def test_cycle_self_loop_and_empty_errors_are_the_networkx_ones(edges):
    with pytest.raises(ValueError) as error:
        Hierarchy(edges)
    assert str(error.value) == _reference(edges)


def test_graph_is_built_once_and_only_when_asked_for(dag):
    assert "graph" not in vars(dag)
    dag.parents("d"), dag.children("a"), dag.descendants("a"), dag.ancestors("d"), dag.to_dict(), dag.edge_index()
    assert "graph" not in vars(dag)
    assert dag.graph is dag.graph


def test_depth_is_one_below_the_shallowest_parent_even_when_a_deeper_parent_is_met_first():
    # x's parents: a (depth 1, but after c in every topological order, as c is also a's parent) and c (depth 2)
    edges = [("root", "a"), ("root", "b"), ("b", "c"), ("c", "a"), ("a", "x"), ("c", "x")]
    h = Hierarchy(edges)
    assert dict(zip(h.nodes, h.depth.tolist())) == {"root": 0, "a": 1, "b": 1, "c": 2, "x": 2}
    _assert_same_as_reference(h, _reference(edges))


def _from_dict_reference(data: dict) -> Hierarchy:
    """What from_dict did before its column-order shortcut: the general constructor, then the order check."""
    h = Hierarchy(data["edges"], nodes=data["nodes"], skip_eval=data["skip_eval"])
    if h.nodes != list(data["nodes"]):
        raise ValueError("hierarchy data: the stored node order does not match the (depth, id) order")
    return h


@st.composite
def stored_hierarchies(draw):
    """A hierarchy's to_dict, often damaged the ways a hand-edited or corrupted hierarchy.json can be."""
    edges, given, skip = draw(hierarchy_inputs())
    try:
        data = Hierarchy(edges, nodes=given, skip_eval=skip).to_dict()
    except ValueError:
        data = {"nodes": sorted({n for e in edges for n in e}), "edges": [list(e) for e in edges], "skip_eval": []}
    nodes, stored = data["nodes"], data["edges"]
    damage = draw(st.sampled_from(["none", "swap", "drop_node", "unknown_end", "repeat_edge", "self_loop",
                                   "reverse_edge", "int_ids", "repeat_node", "extra_node_last"]))
    if damage == "swap" and len(nodes) > 1:
        i, j = draw(st.lists(st.integers(0, len(nodes) - 1), min_size=2, max_size=2, unique=True))
        nodes[i], nodes[j] = nodes[j], nodes[i]
    elif damage == "drop_node" and nodes:
        nodes.pop(draw(st.integers(0, len(nodes) - 1)))
    elif damage == "unknown_end" and nodes:
        stored.append([draw(st.sampled_from(nodes)), "zz_unknown"])
    elif damage in ("repeat_edge", "reverse_edge") and stored:
        p, c = draw(st.sampled_from(stored))
        stored.append([p, c] if damage == "repeat_edge" else [c, p])
    elif damage == "self_loop" and nodes:
        n = draw(st.sampled_from(nodes))
        stored.append([n, n])
    elif damage == "int_ids":
        data = {"nodes": list(range(len(nodes))), "edges": [[nodes.index(p), nodes.index(c)] for p, c in stored],
                "skip_eval": []}
    elif damage == "repeat_node" and nodes:
        nodes.append(draw(st.sampled_from(nodes)))
    elif damage == "extra_node_last":
        nodes.append("zz_lone")
    return data


@settings(max_examples=200, deadline=None)
@given(stored_hierarchies())
def test_from_dict_gives_what_the_constructor_gives_on_any_stored_data(data):
    try:
        ref = _from_dict_reference(copy.deepcopy(data))
    except ValueError as exc:
        with pytest.raises(ValueError) as error:
            Hierarchy.from_dict(data)
        assert str(error.value) == str(exc)
        return
    h = Hierarchy.from_dict(data)
    _assert_same_as_reference(h, _reference(ref.to_dict()["edges"], ref.nodes, ref.skipped))
    assert (list(h.graph.nodes), list(h.graph.edges)) == (list(ref.graph.nodes), list(ref.graph.edges))


def test_from_dict_takes_the_stored_order_without_the_constructor(monkeypatch):
    data = Hierarchy(DAG_EDGES).to_dict()
    monkeypatch.setattr(Hierarchy, "__init__", lambda *a, **k: pytest.fail("the general constructor ran"))
    h = Hierarchy.from_dict(data)
    assert h.nodes == data["nodes"] and h.parents("d") == ["b", "c"]
