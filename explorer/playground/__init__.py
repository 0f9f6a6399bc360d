"""The residual playground: plain against residual deep MLPs on 2-D points, trained live.

    settings.py   PlaygroundSettings, their limits, and parsing from a URL's query or the CLI's flags
    engine.py     the nets, their training a few steps at a time, and what the page draws of them
    live.py       LivePlayground: a playground trained by its own worker thread, for the page
    figures.py    the decision boundary as an image, the loss and gradient-norm curves

The data (``explorer/data/toy2d.py``) and the model (``explorer/models/mlp.py``) live with the
other data sets and models; the page's widgets live in ``explorer/ui/playground.py``.
"""

from explorer.playground.engine import Evaluation, NetView, Playground, PlaygroundNet, one_thread, summarise, train_once
from explorer.playground.live import LivePlayground, Snapshot
from explorer.playground.figures import (
    CLASS_COLOURS,
    NET_COLOURS,
    NET_TITLES,
    boundary_image,
    gradient_norms_figure,
    loss_curves_figure,
)
from explorer.playground.settings import (
    DEFAULTS,
    LIVE_FIELDS,
    NETS,
    NORMS,
    OPTIMISERS,
    PlaygroundSettings,
    add_playground_flags,
    settings_from_args,
    settings_from_query,
    settings_to_query,
)

__all__ = [
    "CLASS_COLOURS", "DEFAULTS", "Evaluation", "LIVE_FIELDS", "LivePlayground", "NETS", "NET_COLOURS", "NET_TITLES", "NORMS",
    "NetView", "OPTIMISERS", "Playground", "PlaygroundNet", "PlaygroundSettings", "Snapshot", "add_playground_flags",
    "boundary_image", "gradient_norms_figure", "loss_curves_figure", "one_thread", "settings_from_args",
    "settings_from_query", "settings_to_query", "summarise", "train_once",
]
