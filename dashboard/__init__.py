"""The dashboard (``streamlit run dashboard/app.py``), installed as ``repro_dashboard``."""
