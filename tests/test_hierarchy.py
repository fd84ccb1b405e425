"""Hierarchy: structure queries, ancestor matrix, propagation, coherence, persistence."""

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
