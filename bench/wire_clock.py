"""A clock on the wire between browsers and the Streamlit server: when a click's request reached
the server's door and when the page's title left it.

    clock = WireClock(upstream_port, browsers)       # a process of its own; one port per browser
    ...                                               # browser i opens http://127.0.0.1:<clock.ports[i]>
    clock.answer(port, clicked_at, "Runs")            # seconds from the request in to the title out

Every byte is passed on unchanged at once; a copy of each websocket stream is parsed into frames and
decoded as Streamlit's protobuf messages: from the browser, a BackMsg asking for a script run (the
page it asks for) or a fragment's rerun (its id: the page's own polling), from the server, a ForwardMsg that draws an h1
heading (its text). The times are time.monotonic() (CLOCK_MONOTONIC, the same in every process) taken
in this process, which runs at the server's priority: what lies between a "rerun" and its "title" is
the server's work and its wait for a core, not the browser's (whose pages may share the machine).
"""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
import threading
import time

HEAD_END = b"\r\n\r\n"


class Frames:
    """Websocket frames out of a byte stream that starts with an HTTP head (request or response)."""

    def __init__(self):
        self.buffer = bytearray()
        self.in_head = True
        self.websocket = False

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """The whole frames that ``data`` completes: (payload, whether it is compressed)."""
        self.buffer += data
        if self.in_head:
            end = self.buffer.find(HEAD_END)
            if end < 0:
                return []
            head, self.buffer = bytes(self.buffer[:end]).lower(), self.buffer[end + len(HEAD_END):]
            self.in_head = False
            self.websocket = b"upgrade: websocket" in head or b"101 switching protocols" in head
        if not self.websocket:
            self.buffer = bytearray()
            return []
        frames = []
        while True:
            frame, used = _one_frame(self.buffer)
            if frame is None:
                return frames
            compressed = bool(self.buffer[0] & 0x40)  # RSV1: permessage-deflate (Streamlit's default: off)
            del self.buffer[:used]
            frames.append((frame, compressed))


def _one_frame(data: bytearray) -> tuple[bytes | None, int]:
    """(payload, bytes used) of the first whole frame in ``data``, unmasked; (None, 0) if incomplete.
    Continuation frames are not joined: Streamlit sends each message as one frame."""
    if len(data) < 2:
        return None, 0
    masked, length = data[1] & 0x80, data[1] & 0x7F
    at = 2
    if length == 126:
        if len(data) < 4:
            return None, 0
        length, at = struct.unpack(">H", data[2:4])[0], 4
    elif length == 127:
        if len(data) < 10:
            return None, 0
        length, at = struct.unpack(">Q", data[2:10])[0], 10
    mask = b""
    if masked:
        if len(data) < at + 4:
            return None, 0
        mask, at = data[at:at + 4], at + 4
    if len(data) < at + length:
        return None, 0
    payload = bytes(data[at:at + length])
    if mask:
        payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return payload, at + length


def _rerun_asked(payload: bytes) -> tuple[str, str] | None:
    """What a browser's BackMsg asks the server to run: ("rerun", the page) for a page's script run,
    ("fragment", its id) for a fragment's; None for any other message."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    try:
        message = BackMsg.FromString(payload)
    except Exception:  # noqa: BLE001 - not a BackMsg: nothing to time
        return None
    if message.WhichOneof("type") != "rerun_script":
        return None
    if message.rerun_script.fragment_id:
        return "fragment", message.rerun_script.fragment_id
    # A sidebar click asks by the page's script hash; its name is given only on a first load.
    return "rerun", message.rerun_script.page_name or message.rerun_script.page_script_hash


def _title_drawn(payload: bytes) -> str | None:
    """The text of the h1 heading a server's ForwardMsg draws, if it draws one."""
    if b"h1" not in payload:  # most messages: skip the decoding
        return None
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    try:
        message = ForwardMsg.FromString(payload)
    except Exception:  # noqa: BLE001
        return None
    if message.WhichOneof("type") != "delta" or message.delta.WhichOneof("type") != "new_element":
        return None
    element = message.delta.new_element
    if element.WhichOneof("type") == "heading" and element.heading.tag == "h1":
        return element.heading.body
    return None


async def _pipe(reader, writer, frames: Frames, on_frame) -> None:
    try:
        while data := await reader.read(65536):
            now = time.monotonic()
            writer.write(data)
            for payload, compressed in frames.feed(data):
                on_frame(now, payload, compressed)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def _serve(upstream_port: int, count: int) -> None:
    """Listen on ``count`` free ports, pass everything to ``upstream_port``; "ready" and the ports on
    stdout, then one line per event."""

    def emit(port: int, now: float, kind: str, detail: str) -> None:
        print(json.dumps([port, now, kind, detail]), flush=True)

    async def handle(listen_port: int, browser_reader, browser_writer) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream_port)

        def from_browser(now: float, payload: bytes, compressed: bool) -> None:
            asked = None if compressed else _rerun_asked(payload)
            if asked is not None:
                emit(listen_port, now, *asked)

        def from_server(now: float, payload: bytes, compressed: bool) -> None:
            title = None if compressed else _title_drawn(payload)
            if title is not None:
                emit(listen_port, now, "title", title)

        await asyncio.gather(_pipe(browser_reader, server_writer, Frames(), from_browser),
                             _pipe(server_reader, browser_writer, Frames(), from_server))

    async def main() -> None:
        servers = []
        for _ in range(count):  # bound here, to port 0: a port chosen elsewhere may be taken meanwhile
            holder: list[int] = []
            server = await asyncio.start_server(lambda r, w, holder=holder: handle(holder[0], r, w), "127.0.0.1", 0)
            holder.append(server.sockets[0].getsockname()[1])
            servers.append(server)
        print("ready", *(server.sockets[0].getsockname()[1] for server in servers), flush=True)
        await asyncio.gather(*(server.serve_forever() for server in servers))

    asyncio.run(main())


class WireClock:
    """The proxy in a process of its own (started before the caller lowers its own priority, it keeps
    the server's), and a thread here that gathers its events per listening port."""

    def __init__(self, upstream_port: int, count: int):
        self._process = subprocess.Popen([sys.executable, __file__, str(upstream_port), str(count)],
                                         stdout=subprocess.PIPE, text=True)
        ready, *ports = self._process.stdout.readline().split()
        if ready != "ready" or len(ports) != count:
            raise RuntimeError("the wire clock did not start")
        self.ports, self.pid = [int(port) for port in ports], self._process.pid
        self._events: dict[int, list[tuple[float, str, str]]] = {port: [] for port in self.ports}
        self._lock = threading.Lock()
        threading.Thread(target=self._gather, daemon=True).start()

    def _gather(self) -> None:
        for line in self._process.stdout:
            port, now, kind, detail = json.loads(line)
            with self._lock:
                self._events[port].append((now, kind, detail))

    def events(self, port: int) -> list[tuple[float, str, str]]:
        with self._lock:
            return list(self._events[port])

    def answer(self, port: int, after: float, title: str, wait: float = 2.0) -> float:
        """Seconds from the first request for a page's script run after ``after`` (time.monotonic)
        to the first ``title`` the server sent after it; nan if either was not seen (within ``wait`` s)."""
        deadline = time.monotonic() + wait
        while True:
            events = self.events(port)
            asked = next((t for t, kind, detail in events if kind == "rerun" and t >= after), None)
            drawn = next((t for t, kind, detail in events if asked is not None and kind == "title" and t >= asked
                          and detail == title), None)
            if drawn is not None or time.monotonic() > deadline:
                return drawn - asked if drawn is not None else float("nan")
            time.sleep(0.05)

    def requests(self, port: int, start: float, end: float) -> int:
        """How many script runs and fragment reruns the browser on ``port`` asked for between two
        time.monotonic() readings: the load its page put on the server."""
        return sum(kind in ("rerun", "fragment") and start <= t < end for t, kind, _ in self.events(port))

    def close(self) -> None:
        self._process.kill()
        self._process.wait(5)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
