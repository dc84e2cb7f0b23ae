"""The studio's web server: the standard library's threading HTTP server, one static page, a JSON API.

Why the standard library: the page is one static file that talks JSON, the server is local and serves
one user, so a framework (gradio, or an ASGI stack) would add dependencies and a second event model
without adding anything the page needs. Request threads only parse and wait; the torch work runs on
one worker thread where a newer frame request replaces a waiting one (worker.py).

Routes: GET / (the page), /studio.js, /studio.css, /api/info, /api/leakage.png; POST /api/frame,
/api/export, /api/upload (JSON bodies). Safe by default: it binds 127.0.0.1; a request whose Host is
not the server's own is refused (a web page elsewhere cannot reach it by DNS rebinding); POSTs must be
JSON (a cross-site form cannot send that without the browser asking first); bodies are size-limited;
the page's values are checked (view.py, uploads.py) and no path from the page is ever opened.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import traceback
from concurrent.futures import TimeoutError as FutureTimeout
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from stylevid.studio import uploads
from stylevid.studio.backend import Studio
from stylevid.studio.worker import LatestWins, Superseded

PAGES = {"/": ("index.html", "text/html"), "/studio.js": ("studio.js", "text/javascript"),
         "/studio.css": ("studio.css", "text/css")}  # fmt: skip
MAX_BODY = uploads.MAX_FILES * uploads.MAX_FILE_BYTES * 4 // 3 + 2**16  # base64 photos plus the JSON
MAX_VIEW_BODY = 2**16  # a view is a few hundred bytes
EXPORT_SECONDS = 600  # a grid clip renders n * n videos
LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")


def static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files by route, read once from the package: requests never touch the file system."""
    folder = resources.files("stylevid.studio") / "static"
    return {route: ((folder / name).read_bytes(), kind) for route, (name, kind) in PAGES.items()}


class StudioServer(ThreadingHTTPServer):
    """The HTTP server of one Studio: its worker thread, its page, the Host names it answers to."""

    daemon_threads = True

    def __init__(self, studio: Studio, host: str = "127.0.0.1", port: int = 7860):
        self.studio = studio
        self.worker = LatestWins()
        self.files = static_files()
        try:
            super().__init__((host, port), Handler)
        except OSError as exc:
            self.worker.close()
            raise OSError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port (0: any free)"
            ) from None
        self.port = self.server_address[1]
        self.hosts = {f"{name}:{self.port}" for name in (*LOCAL_NAMES, host, f"[{host}]")}
        if _any_address(host):
            self.hosts = None  # bound to every interface on purpose: any name may reach it

    @property
    def url(self) -> str:
        host = self.server_address[0]
        shown = "127.0.0.1" if _any_address(host) else f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/"

    def server_close(self) -> None:
        super().server_close()
        self.worker.close()


def _any_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Handler(BaseHTTPRequestHandler):
    """One request: routes to the page's files or the API; errors are JSON {"error": message}."""

    server: StudioServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        """Quiet: a slider sends many requests; failures are reported where they happen."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._host_ok():
            return
        path = self.path.split("?", 1)[0]
        if path in self.server.files:
            data, kind = self.server.files[path]
            return self._send(HTTPStatus.OK, data, f"{kind}; charset=utf-8")
        if path == "/api/info":
            return self._json(HTTPStatus.OK, self.server.studio.info())
        if path == "/api/leakage.png":
            return self._work("leakage", self._leakage)
        self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {path!r} here"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            return
        path = self.path.split("?", 1)[0]
        routes = {"/api/frame": self._frame, "/api/export": self._export, "/api/upload": self._upload}
        if path not in routes:
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"no API {path!r} here"})
        body = self._body(MAX_BODY if path == "/api/upload" else MAX_VIEW_BODY)
        if body is not None:
            routes[path](body)

    def _frame(self, body: dict) -> None:
        studio = self.server.studio
        # Latest wins per page: a page's newer view replaces its view still waiting to render.
        key = ("frame", str(body.get("client", "")))
        seq = str(body.get("seq", ""))
        self._work(key, lambda: studio.frame(studio.parse(body.get("view"))), {"X-Studio-Seq": seq})

    def _export(self, body: dict) -> None:
        studio = self.server.studio
        kind = body.get("kind")

        def job():
            data, content_type, name = studio.export(studio.parse(body.get("view")), kind)
            return data, content_type, {"Content-Disposition": f'attachment; filename="{name}"'}

        self._work(("export", id(body)), job, timeout=EXPORT_SECONDS)

    def _upload(self, body: dict) -> None:
        studio = self.server.studio
        self._work(("upload", id(body)), lambda: _as_json(studio.upload(body.get("files"))))

    def _leakage(self):
        studio = self.server.studio
        image = studio.leakage_image()
        if image is None:
            raise LookupError(studio.leakage_source)
        return image

    def _work(self, key, job, headers: dict | None = None, timeout: float = 120) -> None:
        """Run job on the worker; send its bytes (or (bytes, type, headers)), or the error as JSON."""
        try:
            result = self.server.worker.run(key, job, timeout)
        except Superseded as exc:
            return self._json(HTTPStatus.CONFLICT, {"superseded": True, "error": str(exc)})
        except LookupError as exc:
            return self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        except ValueError as exc:  # the page's values, an upload: the message is for the user
            return self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except FutureTimeout:
            return self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"no result in {timeout:g} s"})
        except Exception as exc:  # a fault of ours: said on the page and the console, and the server goes on
            traceback.print_exception(exc, file=sys.stderr)
            return self._json(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"error": f"the studio failed: {type(exc).__name__}: {exc} (the console shows where)"},
            )
        if isinstance(result, bytes):
            result = (result, "image/png", {})
        data, content_type, extra = result
        self._send(HTTPStatus.OK, data, content_type, {**extra, **(headers or {})})

    def _host_ok(self) -> bool:
        hosts = self.server.hosts
        if hosts is None or self.headers.get("Host", "") in hosts:
            return True
        self.close_connection = True  # a body, if any, is left unread
        self._json(HTTPStatus.FORBIDDEN, {"error": "this studio answers only to its own address"})
        return False

    def _body(self, limit: int) -> dict | None:
        """The request's JSON object, or None after answering why it cannot be read."""
        self.close_connection = True  # until the body is read, the connection cannot be reused
        if self.headers.get_content_type() != "application/json":
            self._json(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "the studio's API takes application/json"}
            )
            return None
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._json(HTTPStatus.LENGTH_REQUIRED, {"error": "a request body needs a Content-Length"})
            return None
        if not 0 <= length <= limit:
            self._json(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                {"error": f"the request is {length} bytes, more than the {limit // 2**20 or 1} MiB allowed"},
            )
            return None
        data = self.rfile.read(length)
        self.close_connection = False
        try:
            body = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"the request is not JSON: {exc}"})
            return None
        if not isinstance(body, dict):
            self._json(HTTPStatus.BAD_REQUEST, {"error": "the request must be a JSON object"})
            return None
        return body

    def _json(self, status: HTTPStatus, value) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _send(self, status: HTTPStatus, data: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _as_json(value) -> tuple[bytes, str, dict]:
    return json.dumps(value).encode(), "application/json", {}


def serve(studio: Studio, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the studio until interrupted, printing its address."""
    server = StudioServer(studio, host, port)
    print(f"stylevid studio: {server.url}  ({studio.network}; Ctrl+C stops)", flush=True)
    if not _loopback(host):
        print(f"warning: --host {host} lets other machines reach the studio; it has no login", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
