"""Streamlit helpers: the only place besides ``explorer/app.py`` that imports streamlit."""
