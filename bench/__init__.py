"""Benchmarks of the project's training step against a dense reference formulation (see bench/README.md)."""
