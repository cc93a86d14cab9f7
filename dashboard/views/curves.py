"""Curves: the per-epoch metrics of a table's runs, each seed drawn, with the mean ± std band."""
import altair as alt
import streamlit as st

from repro import results
from repro.profiles import PROFILES
from repro_dashboard import common

st.title("Curves")
if not common.has_results("curves"):
    st.stop()
with common.guard():
    every = results.runs(common.database())
if every.empty:
    common.empty_state("No runs in this database yet.", common.FILL_COMMAND)
    st.stop()
paper, table_id = common.choose_table("curves", lambda p: [t for t in p.tables if ((every["paper"] == p.id)
                                                                                    & (every["table"] == t)).any()])
runs = every[(every["paper"] == paper.id) & (every["table"] == table_id)]
if runs.empty:
    common.empty_state(f"No runs of {paper.id} Table {table_id} yet.",
                       f"repro run --paper {paper.id} --table {table_id} --profile proxy")
    st.stop()
left, right = st.columns(2)
profile = left.selectbox("Profile", [p for p in PROFILES if p in set(runs["profile"])], key="curves-profile")
runs = runs[runs["profile"] == profile]
rows = [r.id for r in paper.table(table_id).rows if r.id in set(runs["row"])]
chosen_rows = right.multiselect("Rows", rows, default=rows, key=f"curves-rows-{paper.id}-{table_id}-{profile}")
runs = runs[runs["row"].isin(chosen_rows)]
with common.guard():
    curves = results.curves(common.database(), list(runs["id"]))
if curves.empty:
    st.info(f"No per-epoch metrics for these runs (the `{profile}` profile records none, or they have not run an epoch yet).")
    st.stop()
metrics = sorted(curves["name"].unique())
headline = next((m for m in paper.table(table_id).metrics if m in metrics), metrics[0])  # the table's first metric
metric = st.selectbox("Metric", metrics, index=metrics.index(headline), key="curves-metric")
data = curves[curves["name"] == metric]
band = results.curve_band(data)

epoch = alt.X("step:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d"))
base = alt.Chart(data).encode(x=epoch, color=alt.Color("row:N", sort=rows))
seeds = base.mark_line(opacity=0.35, strokeWidth=1).encode(y=alt.Y("value:Q", title=metric), detail="seed:N",
                                                         tooltip=["row", "seed", "step", alt.Tooltip("value:Q", format=".4g")])
spread = alt.Chart(band).mark_area(opacity=0.2).encode(x=epoch, y="low:Q", y2="high:Q", color=alt.Color("row:N", sort=rows))
mean = alt.Chart(band).mark_line(strokeWidth=2.5).encode(
    x=epoch, y="mean:Q", color=alt.Color("row:N", sort=rows),
    tooltip=["row", "step", alt.Tooltip("mean:Q", format=".4g"), alt.Tooltip("std:Q", format=".3g"), "n"])
st.altair_chart((spread + seeds + mean).properties(height=420).interactive())
st.caption("Thin lines: one seed each; thick line and band: the mean over seeds ± one standard deviation at each epoch "
           "(epochs count across a recipe's stages).")
st.dataframe(band, hide_index=True)
