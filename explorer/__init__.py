"""ResNet Explorer: an interactive companion to "Deep Residual Learning for Image Recognition".

The library (everything here but ``app.py`` and ``ui/``) never imports Streamlit, so the app, the
CLI (``python -m explorer``) and a notebook call the same functions.
"""

__version__ = "0.1.0"
