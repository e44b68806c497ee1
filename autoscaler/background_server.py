"""A stdlib HTTP server served from a daemon thread: the lifecycle the controller's own endpoints
(``/metrics`` and probes, the external metrics API) share."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Self


class BackgroundServer:
    """Subclasses set ``self._httpd`` in ``__init__`` and call ``super().__init__()``."""

    _httpd: ThreadingHTTPServer

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
