"""Overview: every paper's tables, what is published, what was reproduced, the claims' verdicts."""
import altair as alt
import pandas as pd
import streamlit as st

from repro import results
from repro_dashboard import common

st.title("Published vs reproduced")
st.caption("Every table of every paper: published cells, cells reproduced by profile, claims by verdict, runs by state. "
           "Only `paper` and `structure` results are compared number to number; `smoke` and `proxy` ones by the claims.")

papers = list(common.papers().values())
with common.guard():  # without a database the published side still shows
    grid = results.overview(papers, common.database())
    coverage = results.coverage(grid)
if common.has_results("reproduced values") and not grid[[c for c in grid if c.startswith("runs ")]].to_numpy().any():
    common.empty_state("No runs in this database yet.", common.FILL_COMMAND)

st.subheader("Coverage")
columns = st.columns(len(coverage))
for column, row in zip(columns, coverage.to_dict("records")):
    column.metric(row["paper"], f"{row['cells compared']}/{row['published cells']} cells",
                  help="published cells compared number to number (paper, structure profiles)")
    column.caption(f"{row['claims tested']}/{row['claims']} claims tested · {row['tables with runs']}/{row['tables']} "
                   f"tables with runs")
long = pd.concat([
    pd.DataFrame({"paper": coverage["paper"], "what": "cells compared", "percent": coverage["cells %"]}),
    pd.DataFrame({"paper": coverage["paper"], "what": "claims tested", "percent": coverage["claims %"]}),
])
chart = alt.Chart(long).mark_bar().encode(
    x=alt.X("percent:Q", scale=alt.Scale(domain=[0, 100]), title="% of the paper's"),
    y=alt.Y("what:N", title=None), row=alt.Row("paper:N", title=None), color=alt.Color("what:N", legend=None),
    tooltip=["paper", "what", alt.Tooltip("percent:Q", format=".1f")]).properties(height=40)
st.altair_chart(chart)

st.subheader("Tables")
grid = grid.assign(open=[f"./table?paper={p}&table={t}" for p, t in zip(grid["paper"], grid["table"])])
state_columns = [c for c in grid if c.startswith("runs ") and grid[c].any()]
profile_columns = [c for c in grid if c.startswith("reproduced ")]
shown = grid[["paper", "table", "open", "caption", "published cells", "cells compared", *profile_columns, "claims", "holds",
              "fails", "inconclusive", *state_columns]]
st.dataframe(shown, hide_index=True, height=35 * (len(shown) + 1) + 3, column_config={  # every table, no scrolling
    "open": st.column_config.LinkColumn("open", display_text="table page"),
    "caption": st.column_config.TextColumn(width="large")})
