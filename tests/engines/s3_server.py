"""An S3-compatible server for the tests: moto's, on 127.0.0.1, counting the object bytes
it sends.

    python s3_server.py PORT

``GET /_qudata/fetched`` answers, since the start or the last ``POST /_qudata/reset``,
the body bytes of the object reads (``GET`` of a key, ranged or not), the number of
those reads, of ``HEAD`` requests (an object's metadata: fsspec's ``info``) and of
listings (``GET`` of a bucket or with a query), separated by spaces.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

Start = Callable[..., Any]


class Counting:
    """WSGI middleware: the body bytes of object reads, and the two control paths."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.fetched = 0
        self.requests = 0
        self.heads = 0
        self.listings = 0
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start: Start) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_qudata/"):
            if path == "/_qudata/reset":
                with self.lock:
                    self.fetched = self.requests = self.heads = self.listings = 0
            body = f"{self.fetched} {self.requests} {self.heads} {self.listings}".encode()
            start("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        method = environ.get("REQUEST_METHOD")
        is_object = (
            method == "GET"
            and len([p for p in path.split("/") if p]) >= 2
            and not environ.get("QUERY_STRING")
        )
        with self.lock:
            if method == "HEAD":
                self.heads += 1
            elif method == "GET" and not is_object:
                self.listings += 1
        body = self.app(environ, start)
        return self._count(body) if is_object else body

    def _count(self, body: Iterable[bytes]) -> Iterator[bytes]:
        with self.lock:
            self.requests += 1
        for chunk in body:
            with self.lock:
                self.fetched += len(chunk)
            yield chunk
        close = getattr(body, "close", None)
        if close is not None:
            close()


def main() -> None:
    port = int(sys.argv[1])
    app = Counting(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
