"""Dashboard-facing views: plotly figures, pyvis HTML and the tables the pages show.

The only part of :mod:`hmlc_core` that imports plotly and pyvis; the rest of
the package (data, hierarchy, model, losses, training, metrics, runs) stays
free of them. Everything here is pure (no Streamlit), so it is tested without a
browser, and none of it imports torch (the dashboard's read path stays light).

Modules
-------
explore
    Hierarchy explorer: sunburst, neighbourhood graph, node card, run discovery.
diagnose
    Overview and Missed nodes: missed-node tables, recall charts, hierarchical scores.
compare
    Compare: headline tables, per-node differences, paired tests across nodes.
teaching
    How it works and the Overview's story: the method's pieces as small figures computed by the core.
decision
    Every page's decision rule: a run's metrics under a rule, a node's PR curve, the shrinkage trade-off.
images
    Image runs: a node's missed and falsely found test images (from the run's images.npz), scaled for display.
"""
