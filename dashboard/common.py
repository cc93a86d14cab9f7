"""What every page shares: which database, one-line errors, empty states, the table chosen.

The database is ``--db URL`` after ``--`` on the streamlit command line, else ``REPRO_DB``, else
``sqlite:///results.db`` (as for ``repro``). A missing SQLite file is never created here: the
pages say how to fill it. Every number comes from :mod:`repro.results`.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

import pandas as pd
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from repro import db as dbm
from repro import results
from repro.errors import ReproError
from repro.plugins import Paper, discover

FILL_COMMAND = "make run    # or: repro run --paper bulat2019 --table 1 --profile proxy"
BAND_COLOURS = {"within 1 std": "#d4edda", "within 1%": "#d4edda", "1-2 std": "#fff3cd", "1-5%": "#fff3cd",
                "over 2 std": "#f8d7da", "over 5%": "#f8d7da"}
VERDICT_MARKS = {"holds": ":green-background[holds]", "fails": ":red-background[fails]",
                 "inconclusive": ":orange-background[inconclusive]"}


def options(argv: list[str] | None = None) -> argparse.Namespace:
    """``streamlit run dashboard/app.py -- [--db URL] [--mlflow-ui URL]``."""
    parser = argparse.ArgumentParser(prog="dashboard/app.py", add_help=False)
    parser.add_argument("--db", default=None)
    parser.add_argument("--mlflow-ui", default=os.environ.get("MLFLOW_UI_URL", "http://127.0.0.1:5000"))
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    known.db = dbm.database_url(known.db)
    return known


def database() -> str:
    return options().db


@contextlib.contextmanager
def guard():
    """A database fault (corrupt file, server down) is one line on the page, never a traceback."""
    try:
        yield
    except ReproError as exc:
        st.error(f"repro: error: {exc}")
        st.stop()
    except SQLAlchemyError as exc:
        st.error(f"repro: error: {dbm.describe_error(exc, database())}")
        st.stop()


def has_results(what: str = "results", command: str = FILL_COMMAND) -> bool:
    """False, with the command that would fill it, where the database does not exist yet."""
    url = database()
    if results.exists(url):
        return True
    empty_state(f"No results database at `{dbm.safe_url(url)}` yet, so no {what} to show.", command)
    return False


def empty_state(message: str, command: str) -> None:
    st.info(message + " Fill it with:", icon=":material/lightbulb:")
    st.code(command, language="bash")


def papers() -> dict[str, Paper]:
    return discover()


def choose_table(key: str, tables_with=None) -> tuple[Paper, str]:
    """Paper and table selectboxes, kept in the page's URL (``?paper=bulat2019&table=1``) so a view
    can be linked, the table run last by default; ``tables_with(paper)`` narrows the tables offered."""
    every = papers()
    params = st.query_params
    paper_ids = list(every)
    with guard():
        latest = results.latest_table(database()) or (paper_ids[0], None)  # by default the table run last
    wanted = params.get("paper", latest[0])
    left, right = st.columns(2)
    paper_id = left.selectbox("Paper", paper_ids, index=paper_ids.index(wanted) if wanted in paper_ids else 0,
                              key=f"{key}-paper")
    paper = every[paper_id]
    table_ids = list(tables_with(paper) if tables_with else paper.tables)
    if not table_ids:
        table_ids = list(paper.tables)
    wanted = params.get("table", latest[1] if paper_id == latest[0] else table_ids[0])
    table_id = right.selectbox("Table", table_ids, index=table_ids.index(wanted) if wanted in table_ids else 0,
                               key=f"{key}-table-{paper_id}",
                               format_func=lambda t: f"Table {t}: {paper.tables[t].caption[:70]}")
    st.query_params.update({"paper": paper_id, "table": table_id})
    return paper, table_id


def colour_bands(frame: pd.DataFrame, columns: list[str]):
    """A Styler colouring ``columns`` by each row's ``delta_band``."""
    def colour(row):
        fill = BAND_COLOURS.get(row.get("delta_band", ""), "")
        return [f"background-color: {fill}" if fill and c in columns else "" for c in row.index]
    return frame.style.apply(colour, axis=1)


def sidebar() -> None:
    st.sidebar.caption(f"Database: `{dbm.safe_url(database())}`")
    st.sidebar.caption("Another one: `streamlit run dashboard/app.py -- --db URL` or `REPRO_DB=URL`")
