"""A real `streamlit run explorer/app.py` for the tests that talk to one: the browser tests and the
concurrent sessions' test."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager, suppress

import pytest

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def streamlit_server(extra_env: dict | None = None):
    """`streamlit run explorer/app.py` on a free port of 127.0.0.1; yields (url, its process)."""
    port = free_port()
    log = tempfile.TemporaryFile("w+")  # not a pipe: a server whose pipe nobody reads stalls once it is full
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "explorer/app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        # Pretrained weights come from a port where nothing listens: offline, whatever the machine.
        env={**os.environ, "RESNET_EXPLORER_WEIGHTS_URL": "http://127.0.0.1:9",
             "RESNET_EXPLORER_CIFAR_WEIGHTS_URL": "http://127.0.0.1:9",
             "TORCH_HOME": str(ROOT / "test-artifacts" / "torch-home"), **(extra_env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            log.seek(0)
            pytest.fail(f"streamlit did not start:\n{log.read()}")
        time.sleep(0.5)
    try:
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        with suppress(ProcessLookupError):  # a worker or fork server of this server's that outlived it
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
