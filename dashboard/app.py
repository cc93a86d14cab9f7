"""bnn-repro dashboard: ``streamlit run dashboard/app.py [-- --db URL] [--mlflow-ui URL]``.

Pages: Overview (papers x tables), Table (published beside reproduced, claims, assumptions,
downloads), Runs, Curves, Structure, Kernels. Every number comes from ``repro.results``, the
layer ``repro compare`` reads through.
"""
from pathlib import Path

import streamlit as st

from repro_dashboard import common

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="bnn-repro", layout="wide")
page = st.navigation([
    st.Page(VIEWS / "overview.py", title="Overview", icon=":material/grid_view:", default=True),
    st.Page(VIEWS / "table.py", title="Table", icon=":material/table:", url_path="table"),
    st.Page(VIEWS / "runs.py", title="Runs", icon=":material/list:", url_path="runs"),
    st.Page(VIEWS / "curves.py", title="Curves", icon=":material/show_chart:", url_path="curves"),
    st.Page(VIEWS / "structure.py", title="Structure", icon=":material/account_tree:", url_path="structure"),
    st.Page(VIEWS / "kernels.py", title="Kernels", icon=":material/speed:", url_path="kernels"),
])
common.sidebar()
page.run()
