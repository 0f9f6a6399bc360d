import os
import sys
import tempfile
from pathlib import Path

# Runs the tests start (the app's pages, the browser test's server) go to a folder of their own.
os.environ.setdefault("RESNET_EXPLORER_RUNS", tempfile.mkdtemp(prefix="explorer-test-runs-"))
# Traced model profiles: one cache for this test session (every server and CLI process it starts
# shares it), never the user's, so that each session measures afresh what it checks.
os.environ.setdefault("RESNET_EXPLORER_PROFILE_CACHE", tempfile.mkdtemp(prefix="explorer-test-profiles-"))
# The published converged CIFAR nets made into run folders: this session's own; and their weights come
# from a port where nothing listens (offline, whatever the machine), unless a test serves them itself.
os.environ.setdefault("RESNET_EXPLORER_PRETRAINED_RUNS", tempfile.mkdtemp(prefix="explorer-test-pretrained-"))
os.environ.setdefault("RESNET_EXPLORER_CIFAR_WEIGHTS_URL", "http://127.0.0.1:9")
# No CIFAR-10 on the machine unless a test puts it there: a developer's downloaded copy would make the CPU
# presets default to it (explorer/train/presets.py: real_images_on_machine) and the tests slow and different.
os.environ["RESNET_EXPLORER_DATA"] = tempfile.mkdtemp(prefix="explorer-test-data-")
os.environ.pop("RESNET_EXPLORER_REAL_IMAGES", None)

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# The tiny trained pair of the lesion and landscape tests: fixtures here, so it is trained once a session.
from tests.tiny_runs import one_thread, runs  # noqa: E402, F401
# The published nets' files made here, for their tests and their pages' tests.
from tests.published_files import hub, published_pair  # noqa: E402, F401


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; run where one is present")
    config.addinivalue_line("markers", "browser: drives a real Chromium against a running server")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine (GPU tests run on the device machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def call_at_once(function, times: int = 4) -> tuple[list, list]:
    """``function()`` in ``times`` threads started together: (what they returned, what they raised)."""
    import threading

    returned, raised = [], []

    def call():
        try:
            returned.append(function())
        except Exception as error:  # noqa: BLE001 - handed to the test
            raised.append(error)

    threads = [threading.Thread(target=call) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return returned, raised
