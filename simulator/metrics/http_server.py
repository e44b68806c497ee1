"""Serve every simulated pod's ``/metrics`` on its own port, as a cluster of vLLM servers would.

Why it exists: a real Prometheus (the integration tests, a Grafana demo) should scrape simulated
pods with an ordinary scrape config — one target per pod, ``http://127.0.0.1:<port>/metrics`` —
and see the same bytes a vLLM server sends. One port per pod, rather than one endpoint with all
pods, keeps ``instance`` labels, ``up`` and scrape failures per pod, which is what the controller's
queries are written against.

Each pod gets a stdlib ``ThreadingHTTPServer`` bound at :meth:`MetricsHTTPServer.register` (so
``port=0`` resolves to a free port immediately and :meth:`~MetricsHTTPServer.url_for` works before
serving starts) and served from a daemon thread once :meth:`~MetricsHTTPServer.start` is called.
A scrape snapshots the pod's metrics first and renders the copy, so the engine thread can keep
writing while a scrape is in flight.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from simulator.metrics.exposition import CONTENT_TYPE, render_prometheus_text
from simulator.metrics.samples import MetricsSource

__all__ = ["MetricsHTTPServer"]


class _PodServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], source: MetricsSource) -> None:
        self.source = source
        super().__init__(address, _MetricsHandler)


class _MetricsHandler(BaseHTTPRequestHandler):
    server: _PodServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/metrics":
            self._reply(404, b"only /metrics is served here\n", "text/plain; charset=utf-8")
            return
        try:
            body = render_prometheus_text([self.server.source]).encode("utf-8")
        except Exception as exc:  # a broken source must not kill the server thread
            self._reply(500, f"rendering metrics failed: {exc!r}\n".encode(), "text/plain")
            return
        self._reply(200, body, CONTENT_TYPE)

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request access log on stderr."""


class MetricsHTTPServer:
    """One HTTP endpoint per registered pod, each at ``http://<host>:<port>/metrics``.

    >>> with MetricsHTTPServer() as server:                    # doctest: +SKIP
    ...     server.register("pod-0", pod_metrics)               # port 0: any free port
    ...     urllib.request.urlopen(server.url_for("pod-0")).read()

    Pods may be registered and unregistered while serving (scale-up, scale-down).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._servers: dict[str, _PodServer] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._running = False
        self._lock = threading.Lock()

    @property
    def pods(self) -> list[str]:
        """Registered pod names, in registration order."""
        return list(self._servers)

    def register(self, pod: str, source: MetricsSource, port: int = 0) -> int:
        """Bind ``pod``'s endpoint (``port=0``: a free port) and return the port.

        If the server is already running, the pod is served at once.
        """
        with self._lock:
            if pod in self._servers:
                raise ValueError(f"pod {pod!r} is already registered")
            server = _PodServer((self.host, port), source)
            self._servers[pod] = server
            if self._running:
                self._serve(pod, server)
            return server.server_address[1]

    def unregister(self, pod: str) -> None:
        """Stop serving ``pod`` and release its port."""
        with self._lock:
            server = self._servers.pop(pod)
            thread = self._threads.pop(pod, None)
        self._close(server, thread)

    def port_for(self, pod: str) -> int:
        """The TCP port ``pod`` is served on."""
        return self._servers[pod].server_address[1]

    def url_for(self, pod: str) -> str:
        """``http://<host>:<port>/metrics`` for ``pod``."""
        return f"http://{self.host}:{self.port_for(pod)}/metrics"

    def start(self) -> MetricsHTTPServer:
        """Serve every registered pod, each from its own daemon thread."""
        with self._lock:
            if not self._running:
                self._running = True
                for pod, server in self._servers.items():
                    self._serve(pod, server)
        return self

    def stop(self) -> None:
        """Stop serving and release every port; registered pods are forgotten."""
        with self._lock:
            self._running = False
            servers, self._servers = self._servers, {}
            threads, self._threads = self._threads, {}
        for pod, server in servers.items():
            self._close(server, threads.get(pod))

    def __enter__(self) -> MetricsHTTPServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self, pod: str, server: _PodServer) -> None:
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"metrics-{pod}",
            daemon=True,
        )
        thread.start()
        self._threads[pod] = thread

    @staticmethod
    def _close(server: _PodServer, thread: threading.Thread | None) -> None:
        if thread is not None:
            server.shutdown()
            thread.join()
        server.server_close()
