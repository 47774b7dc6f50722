"""What a primary offers its secondaries (render/sync.ts): a snapshot of a few files, read-only, over HTTP.

    python3 sync-share.py SHARE_PORT METRICS_PORT FILE...

On SHARE_PORT (forwarded by the site's tailnet node, to the secondaries' egress nodes alone):
GET /manifest   refreshes the snapshot of FILE... (a file is copied again only when it changed) and lists it, a
                `<sha256>  <path>` line each; a file that does not exist is left out: the secondary keeps its own
GET /file<path> that file, as of the latest snapshot (so its hash is the manifest's)
On METRICS_PORT (scraped by Prometheus): GET /metrics, the snapshots taken and failed; GET /healthz.

An SQLite file (`*.db`) is copied with SQLite's online backup, never read as bytes while its program writes it.
Only the FILE... named on the command line are ever served, not the rest of the volumes mounted here (read-only).
The lock covers taking a snapshot, not sending one: a slow reader holds up nobody; a silent one is cut off.
"""
import contextlib
import hashlib
import http.server
import os
import shutil
import sqlite3
import sys
import tempfile
import threading

SHARE_PORT, METRICS_PORT = int(sys.argv[1]), int(sys.argv[2])
FILES = sys.argv[3:]
SNAPSHOT = tempfile.mkdtemp(prefix="sync-share-")
lock = threading.Lock()
counts = {"ok": 0, "failed": 0}
# Per file: the source's (mtime, size) when last copied (a database's with its -wal), and the copy's sha256.
copied = {}


def stamp(path):
    parts = [path, path + "-wal"] if path.endswith(".db") else [path]
    return tuple((s.st_mtime_ns, s.st_size) for s in (os.stat(p) for p in parts if os.path.exists(p)))


def copy(src, dst):
    if src.endswith(".db"):
        with contextlib.closing(sqlite3.connect(f"file:{src}?mode=ro", uri=True)) as s, \
                contextlib.closing(sqlite3.connect(dst)) as d:
            s.backup(d)
            # One file, whatever the source's journal: a WAL copy would want a -wal beside it on the secondary.
            d.execute("PRAGMA journal_mode=DELETE")
        return
    shutil.copyfile(src, dst)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def snapshot_path(path):
    return os.path.join(SNAPSHOT, path.strip("/").replace("/", "__"))


def snapshot():
    lines = []
    for path in FILES:
        if not os.path.isfile(path):
            continue
        now = stamp(path)
        if copied.get(path, (None,))[0] != now:
            dst = snapshot_path(path)
            tmp = dst + ".tmp"
            if os.path.exists(tmp):
                os.remove(tmp)
            copy(path, tmp)
            # A reader of the older copy keeps its open file: a rename never cuts it short.
            os.replace(tmp, dst)
            copied[path] = (now, sha256(dst))
        lines.append(f"{copied[path][1]}  {path}\n")
    return "".join(lines).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    # A client that stops reading or sending is dropped after this many seconds.
    timeout = 60

    def head(self, code, length, kind="text/plain; charset=utf-8"):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def send(self, code, body, kind="text/plain; charset=utf-8"):
        self.head(code, len(body), kind)
        self.wfile.write(body)

    def do_GET(self):
        port = self.server.server_address[1]
        if port == METRICS_PORT:
            self.metrics()
        elif self.path == "/manifest":
            with lock:
                try:
                    body = snapshot()
                    counts["ok"] += 1
                except (OSError, sqlite3.Error) as e:
                    counts["failed"] += 1
                    body = None
                    error = e
            if body is None:
                self.send(500, f"snapshot failed: {error}\n".encode())
            else:
                self.send(200, body)
        elif self.path.startswith("/file/") and self.path[len("/file"):] in FILES:
            try:
                fh = open(snapshot_path(self.path[len("/file"):]), "rb")
            except FileNotFoundError:
                self.send(404, b"not in the latest snapshot: GET /manifest first\n")
                return
            with fh:
                self.head(200, os.fstat(fh.fileno()).st_size, "application/octet-stream")
                shutil.copyfileobj(fh, self.wfile, 1 << 20)
        else:
            self.send(404, b"not shared\n")

    def metrics(self):
        if self.path == "/healthz":
            self.send(200, b"ok\n")
        elif self.path == "/metrics":
            self.send(200, (
                "# HELP qcloud_sync_share_snapshots_total Manifests served to secondaries (each refreshes the snapshot).\n"
                "# TYPE qcloud_sync_share_snapshots_total counter\n"
                f"qcloud_sync_share_snapshots_total {counts['ok']}\n"
                "# HELP qcloud_sync_share_snapshot_failures_total Snapshots that failed (the manifest answered 500).\n"
                "# TYPE qcloud_sync_share_snapshot_failures_total counter\n"
                f"qcloud_sync_share_snapshot_failures_total {counts['failed']}\n"
            ).encode(), "text/plain; version=0.0.4")
        else:
            self.send(404, b"not here\n")

    def log_message(self, fmt, *args):
        sys.stderr.write("sync-share: " + (fmt % args) + "\n")


for p in (SHARE_PORT, METRICS_PORT):
    threading.Thread(target=http.server.ThreadingHTTPServer(("", p), Handler).serve_forever, daemon=True).start()
threading.Event().wait()
