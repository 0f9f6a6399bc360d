"""The live panel alone, for AppTest: the run folders to show are in st.session_state["run_dirs"]."""

# A worker process started by a multiprocessing forkserver re-imports the main script as
# __mp_main__; the panel is drawn only when Streamlit runs this file.
if __name__ == "__main__":
    import streamlit as st

    from explorer.ui.live import live_panel

    live_panel(st.session_state["run_dirs"])
