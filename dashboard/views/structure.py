"""Structure: each row's model measured by the `structure` profile (params, FLOPs, binary MACs,
size) against the published values, and its packed size against the float one."""
import altair as alt
import streamlit as st

from repro import results
from repro_dashboard import common

st.title("Structure")
st.caption("The `structure` profile builds each row's paper-size model and measures it without training: `params_m` (conv and "
           "linear weights, the papers' convention), `flops_g` (real-valued layers), `binary_macs_g` (XNOR-popcount "
           "layers), sizes in float32 and packed (1 bit a binary weight).")
paper, table_id = common.choose_table("structure")
command = f"repro run --paper {paper.id} --table {table_id} --profile structure    # seconds a row, no data"
if not common.has_results("structure measurements", command):
    st.stop()
with common.guard():
    measured = results.structure(paper, table_id, common.database())
if measured["measured"].isna().all():
    common.empty_state(f"No structure runs of {paper.id} Table {table_id} yet.", command)
    st.stop()

order = [r.id for r in paper.table(table_id).rows]
labels = {r.id: r.label for r in paper.table(table_id).rows}
st.subheader("Measured against published")
wide = measured.pivot(index="row", columns="measure", values="measured")
for measure in measured.loc[measured["published"].notna(), "measure"].unique():  # published beside measured
    wide[f"{measure} published"] = measured[measured["measure"] == measure].set_index("row")["published"]
    wide[f"{measure} delta %"] = measured[measured["measure"] == measure].set_index("row")["delta_pct"]
wide = wide.reindex([r for r in order if r in wide.index]).reset_index()
wide.insert(1, "label", wide["row"].map(labels))
number = st.column_config.NumberColumn
st.dataframe(wide, hide_index=True, column_config={
    c: number(format="%+.1f" if c.endswith("delta %") else "%.4f") for c in wide.columns if c not in ("row", "label")})
st.caption("Columns: the measures in millions (params), GFLOPs / binary GMACs and MB; `published` and `delta %` where the "
           "paper printed the value.")

st.subheader("Packed against float size")
if {"size_float32_mb", "size_packed_mb"} <= set(wide.columns):
    sizes = wide[["row", "size_float32_mb", "size_packed_mb"]].dropna()
    long = sizes.melt(id_vars="row", var_name="size", value_name="MB").replace(
        {"size": {"size_float32_mb": "float32", "size_packed_mb": "packed (1 bit a binary weight)"}})
    chart = alt.Chart(long).mark_bar().encode(
        x=alt.X("MB:Q"), y=alt.Y("row:N", sort=order, title=None), yOffset="size:N", color=alt.Color("size:N"),
        tooltip=["row", "size", alt.Tooltip("MB:Q", format=".3f")]).properties(height=44 * len(sizes))
    st.altair_chart(chart)
    st.dataframe(sizes.assign(smaller=sizes["size_float32_mb"] / sizes["size_packed_mb"]), hide_index=True,
                 column_config={"smaller": number("float / packed", format="%.1fx")})
