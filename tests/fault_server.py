"""A loopback HTTP server that answers what a test tells it to: errors, garbage, or nothing
until released (a timeout). Used to inject client faults into the HTTP adapters."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.prometheus_harness import free_port

Answer = Callable[[bytes], tuple[int, bytes]]  # request body → (status, body)


class _Handler(BaseHTTPRequestHandler):
    server: FaultServer

    def log_message(self, format: str, *args: object) -> None:
        return

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests += 1
        status, payload = self.server.answer(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()


class FaultServer(ThreadingHTTPServer):
    """Counts requests; ``release`` is set when the test ends, so a hanging answer returns."""

    daemon_threads = True

    def __init__(self, answer: Answer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.requests = 0
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def fault_servers() -> Iterator[Callable[[Answer], FaultServer]]:
    """Start servers on demand; all are released and shut down on exit."""
    servers: list[FaultServer] = []

    def start(answer: Answer) -> FaultServer:
        server = FaultServer(answer)
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.release.set()
        server.shutdown()
        server.server_close()


def serve_fault(
    fault: str, answers: Mapping[str, Answer], start: Callable[[Answer], FaultServer]
) -> tuple[str, FaultServer | None]:
    """A URL showing ``fault``: ``unreachable`` (a port nobody listens on), ``timeout`` (a
    server that answers only once the test is over) or the server answering ``answers[fault]``;
    and that server, if any."""
    if fault == "unreachable":
        return f"http://127.0.0.1:{free_port()}", None
    if fault == "timeout":
        holder: list[FaultServer] = []

        def hang(_body: bytes) -> tuple[int, bytes]:
            holder[0].release.wait(10)
            return 200, b"{}"

        holder.append(start(hang))
        return holder[0].url, holder[0]
    server = start(answers[fault])
    return server.url, server
