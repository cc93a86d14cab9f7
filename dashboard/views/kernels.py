"""Kernels: binary XNOR-popcount kernels against each stored baseline, per shape and device, with
the ceiling the hardware allows, and the papers' efficiency claims beside what was measured."""
import altair as alt
import streamlit as st

from repro import results
from repro_dashboard import common

st.title("Kernels")
st.caption("Ratio = baseline time / binary time (above 1: the binary kernel wins). The ceiling (tick) is the most the "
           "binary kernel could gain on that machine from its instruction rates; the rule at 1 is break-even.")
command = "repro kernels bench          # CPU, 1 thread; --device cuda on a GPU; repro kernels bench-model for models"
papers = list(common.papers().values())
if not common.has_results("kernel benchmarks", command):
    st.stop()
with common.guard():
    kernels = results.kernel_benchmarks(common.database())
    claims = results.efficiency_claims(papers, kernels)
if kernels.empty:
    common.empty_state("No kernel benchmarks stored yet.", command)
else:
    for device, mine in kernels.groupby("device", sort=False):
        threads = ", ".join(str(t) for t in sorted(mine["threads"].unique()))
        st.subheader(f"{device} ({threads} thread(s))")
        order = list(dict.fromkeys(mine["name"]))
        base = alt.Chart(mine).encode(y=alt.Y("name:N", sort=order, title=None))
        bars = base.mark_bar().encode(
            x=alt.X("ratio:Q", title="baseline time / binary time"), yOffset="baseline:N", color=alt.Color("baseline:N"),
            tooltip=["name", "baseline", "backend", alt.Tooltip("ratio:Q", format=".2f"), alt.Tooltip("binary_ms:Q", format=".3f"),
                     alt.Tooltip("baseline_ms:Q", format=".3f")])
        ceiling = base.mark_tick(color="black", thickness=2, size=18).encode(
            x="ceiling_ratio:Q", tooltip=["name", alt.Tooltip("ceiling_ratio:Q", format=".1f", title="ceiling")])
        even = alt.Chart().mark_rule(strokeDash=[4, 4], color="gray").encode(x=alt.datum(1))
        st.altair_chart(alt.layer(bars, ceiling.transform_filter("datum.ceiling_ratio > 0"), even, data=mine)
                        .properties(height=max(160, 26 * len(order) * max(1, mine["baseline"].nunique()))))
        st.dataframe(mine[["kind", "name", "baseline", "backend", "threads", "binary_ms", "baseline_ms", "ratio",
                           "ceiling_ratio", "memory_ratio", "created_at"]], hide_index=True, column_config={
            "ratio": st.column_config.NumberColumn(format="%.2fx"),
            "ceiling_ratio": st.column_config.NumberColumn("ceiling", format="%.1fx"),
            "memory_ratio": st.column_config.NumberColumn("memory", format="%.1fx")})

st.subheader("The papers' efficiency claims")
st.dataframe(claims[["paper", "claimed", "kind", "scope", "device", "measured_median", "measured", "text"]], hide_index=True,
             column_config={"claimed": st.column_config.NumberColumn(format="%gx"),
                            "measured_median": st.column_config.NumberColumn("measured (median)", format="%.2fx"),
                            "text": st.column_config.TextColumn(width="large"),
                            "measured": st.column_config.TextColumn(width="large")})
