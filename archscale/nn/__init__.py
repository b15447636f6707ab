"""Torch networks built from a Dag, the one DAG traversal, and MKL's reproducible mode."""
