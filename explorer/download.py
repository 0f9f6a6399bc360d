"""One downloader for everything the project fetches (CIFAR-10, pretrained weights).

It reports progress, counts a server that sends nothing for ``timeout`` seconds as offline, and
writes to ``<name>.part``, renamed only once the digest is right: an interrupted or corrupt
download never leaves a file under the final name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

Progress = Callable[[int, int], None]  # (bytes done, bytes in all; 0 when the server does not say)
CHUNK = 1 << 20  # bytes read per call: a progress update every MiB


def fetch(url: str, destination: Path, *, what: str, algorithm: str, expected: str, if_offline: str,
          progress: Progress | None = None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``destination`` and check its ``algorithm`` digest starts with ``expected``.

    ``expected`` may be a whole digest (CIFAR-10's md5) or its prefix (torchvision names weight
    files after the first hex digits of their sha256). Failures raise ValueError with ``what`` and,
    when the server cannot be reached, ``if_offline``: what to do instead.
    """
    partial = destination.with_name(destination.name + ".part")
    digest = hashlib.new(algorithm)
    done = total = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            if progress is not None:
                progress(0, total)
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException, ValueError) as error:
        partial.unlink(missing_ok=True)
        if isinstance(error, urllib.error.HTTPError):
            reason = f"HTTP {error.code} {error.reason}"
        else:
            reason = getattr(error, "reason", None) or error
        raise ValueError(f"could not download {what} from {url} ({reason}); {if_offline}") from None
    except BaseException:  # disk full, Ctrl-C: never leave a partial file behind
        partial.unlink(missing_ok=True)
        raise
    if total and done != total:
        partial.unlink(missing_ok=True)
        raise ValueError(f"the download of {url} stopped after {done:,} of {total:,} bytes; try again")
    if not digest.hexdigest().startswith(expected.lower()):
        partial.unlink(missing_ok=True)
        raise ValueError(f"the file downloaded from {url} has {algorithm} {digest.hexdigest()}, expected {expected}; "
                         f"it was removed: try again, or {if_offline}")
    os.replace(partial, destination)
    return destination


def check_reachable(url: str, *, what: str, if_offline: str, timeout: float = 5.0) -> None:
    """Refuse at once, in words a class can read, when ``url`` cannot be reached: before a run is
    created for data that would only fail to download in its worker. Asks for the headers only."""
    host = urllib.parse.urlsplit(url).netloc or url
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            pass
    except urllib.error.HTTPError as error:
        raise ValueError(f"{what} is not on this machine, and {host} answered HTTP {error.code} {error.reason} "
                         f"when asked for it; {if_offline}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException, ValueError):
        # The OS's words ("[Errno -2] Name or service not known") say less to a class than this.
        raise ValueError(f"{what} is not on this machine, and it cannot be downloaded: {host} cannot be reached "
                         f"(this machine is offline, or that server is down); {if_offline}") from None
