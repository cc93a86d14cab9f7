"""Table: published and reproduced side by side, the claims with their verdicts and the numbers
behind them, the assumptions, and the downloads `repro compare --format ...` would print."""
import streamlit as st

from repro import results
from repro.compare import render, test_description
from repro.profiles import PROFILES
from repro_dashboard import common

st.title("Table")
paper, table_id = common.choose_table("table")
table = paper.table(table_id)
st.markdown(f"**{paper.id} Table {table.id}**: {table.caption}  \n{table.task} on {table.dataset}")
chosen = st.segmented_control("Profile", ["all", *PROFILES], default="all", key="table-profile")
profile = None if chosen in (None, "all") else chosen

with common.guard():
    [result] = results.comparison([paper], common.database(), table.id, profile)
    cells = results.cells([result])
    claims = results.comparisons([result])

if common.has_results(f"runs of {paper.id} Table {table.id}",
                      f"repro run --paper {paper.id} --table {table.id} --profile proxy"):
    for note in result.notes:  # what no run measures yet, with the command that would
        st.info(note)

st.subheader("Published and reproduced")
st.caption("Mean ± std over seeds and n, per profile. Only `paper` and `structure` results get a delta; the colour says how "
           "large it is against the seeds' spread (green within 1 std, amber 1-2, red over 2), or against the published "
           "value where there is no spread (within 1%, 1-5%, over 5%).")
shown = cells[["row", "label", "metric", "published", "reproduced", "std", "n", "delta", "delta_pct", "profile", "delta_band",
               "source"]]
if shown["delta"].isna().all():  # only claims-judged profiles here: no cell has a delta to show
    shown = shown.drop(columns=["delta", "delta_pct", "delta_band"])
    st.caption("No `paper` or `structure` result in this table yet: the profiles shown are judged by the claims below.")
number = st.column_config.NumberColumn
st.dataframe(common.colour_bands(shown, ["delta", "delta_pct", "delta_band"]), hide_index=True, column_config={
    "published": number(format="%.2f"), "reproduced": number(format="%.2f"), "std": number(format="%.2f"),
    "delta": number(format="%+.2f"), "delta_pct": number("delta %", format="%+.1f"), "delta_band": "delta vs spread",
    "source": st.column_config.TextColumn("where in the paper", width="medium")})
if result.stale:
    st.caption(f"{result.stale} finished run(s) of an older config ignored.")

st.subheader("Claims")
if not result.verdicts:
    st.caption("No claim judged yet: " + ("the table has no claims." if not table.claims else
                                          f"`repro run --paper {paper.id} --table {table.id} --profile proxy`"))
for prof in dict.fromkeys(v.profile for v in result.verdicts):
    mine = [v for v in result.verdicts if v.profile == prof]
    counts = ", ".join(f"{sum(v.verdict == k for v in mine)} {k}" for k in results.VERDICTS)
    st.markdown(f"**At profile `{prof}`**: {counts}")
    st.caption(test_description(prof))
    for verdict in mine:
        st.markdown(f"{common.VERDICT_MARKS[verdict.verdict]} {verdict.text} (`{verdict.metric}`)")
        with st.expander("the numbers behind it"):
            numbers = claims[(claims["claim"] == verdict.claim) & (claims["profile"] == prof)]
            st.dataframe(numbers[["left", "op", "right", "outcome", "mean_left", "std_left", "n_left", "mean_right", "std_right",
                                  "n_right", "difference", "p_value", "resolvable", "published_effect", "seeds_needed"]],
                         hide_index=True)
            for line in verdict.details:
                st.caption(line)

st.subheader("Assumptions")
assumed = results.assumptions(result)
if assumed.empty:
    st.caption("None recorded by the runs shown (each run records the assumptions its config rests on).")
else:
    st.dataframe(assumed, hide_index=True, column_config={"assumption": st.column_config.TextColumn(width="large")})

st.subheader("Download")
command = f"repro compare --paper {paper.id} --table {table.id}" + (f" --profile {profile}" if profile else "")
st.caption(f"The same bytes as `{command} --format FORMAT > FILE`.")
left, middle, right = st.columns(3)
for column, fmt, suffix, mime in ((left, "csv", "csv", "text/csv"), (middle, "markdown", "md", "text/markdown"),
                                  (right, "latex", "tex", "application/x-latex")):
    column.download_button({'csv': 'CSV', 'markdown': 'Markdown', 'latex': 'LaTeX'}[fmt], render([result], fmt) + "\n",
                           file_name=f"{paper.id}-table{table.id}{'-' + profile if profile else ''}.{suffix}", mime=mime,
                           key=f"download-{fmt}")
