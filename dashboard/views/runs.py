"""Runs: each run's state, where and how it ran, its error and its MLflow run."""
import streamlit as st

from repro import db as dbm
from repro import results
from repro.profiles import PROFILES
from repro.tracking import tracking_uri
from repro_dashboard import common

st.title("Runs")
if not common.has_results("runs"):
    st.stop()
with common.guard():
    runs = results.runs(common.database())
if runs.empty:
    common.empty_state("No runs in this database yet.", common.FILL_COMMAND)
    st.stop()

papers, tables, profiles, states = st.columns(4)
chosen_papers = papers.multiselect("Paper", sorted(runs["paper"].unique()), key="runs-paper")
offered = runs[runs["paper"].isin(chosen_papers)] if chosen_papers else runs
chosen_tables = tables.multiselect("Table", sorted(offered["table"].unique(), key=lambda t: (len(t), t)), key="runs-table")
chosen_profiles = profiles.multiselect("Profile", [p for p in PROFILES if p in set(runs["profile"])], key="runs-profile")
chosen_states = states.multiselect("State", [s for s in dbm.RUN_STATES if s in set(runs["status"])], key="runs-state")
for column, chosen in (("paper", chosen_papers), ("table", chosen_tables), ("profile", chosen_profiles),
                       ("status", chosen_states)):
    if chosen:
        runs = runs[runs[column].isin(chosen)]

counts = runs["status"].value_counts()
st.caption(f"{len(runs)} run(s): " + ", ".join(f"{counts[s]} {s}" for s in dbm.RUN_STATES if s in counts))
ui = common.options().mlflow_ui.rstrip("/")
shown = runs.assign(
    error=[(e or "").strip().splitlines()[0] if isinstance(e, str) and e.strip() else "" for e in runs["error"]],
    mlflow=[f"{ui}/#/experiments/{e}/runs/{r}" if isinstance(r, str) and isinstance(e, str) else None
            for e, r in zip(runs["mlflow_experiment_id"], runs["mlflow_run_id"])])
st.dataframe(shown[["hash", "paper", "table", "row", "seed", "profile", "status", "host", "executor", "job_id", "array_id",
                    "attempts", "duration_s", "started_at", "finished_at", "error", "mlflow"]],
             hide_index=True, column_config={
                 "duration_s": st.column_config.NumberColumn("seconds", format="%.0f"),
                 "job_id": "job", "array_id": "array",
                 "mlflow": st.column_config.LinkColumn("MLflow", display_text="open run"),
                 "error": st.column_config.TextColumn("error (first line)", width="large")})
st.caption(f"MLflow links open the MLflow UI at {ui} (`--mlflow-ui URL` to change): start it with "
           f"`mlflow ui --backend-store-uri '{dbm.safe_url(tracking_uri(common.database()))}'`.")

failed = runs[runs["error"].fillna("").str.strip() != ""]
if len(failed):
    st.subheader("Errors")
    for run in failed.head(50).to_dict("records"):
        first = run["error"].strip().splitlines()[0]
        with st.expander(f"{run['paper']} table {run['table']} {run['row']} seed {run['seed']} ({run['profile']}, "
                         f"{run['status']}): {first[:120]}"):
            st.code(run["error"], language=None)
    if len(failed) > 50:
        st.caption(f"{len(failed) - 50} more: narrow the filters above.")
