"""Hypothesis strategies for DAG codes."""

from hypothesis import strategies as st

from archscale.core.dag import OP_SETS, Dag


@st.composite
def dags(draw, ops: str = "mlp", min_vertices: int = 2, max_vertices: int = 7, digits=None):
    n = draw(st.integers(min_vertices, max_vertices))
    allowed = list(range(len(OP_SETS[ops]))) if digits is None else list(digits)
    groups = [[draw(st.sampled_from(allowed)) for _ in range(i)] for i in range(1, n)]
    return Dag(groups, ops=ops)
