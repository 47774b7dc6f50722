"""What a primary offers its secondaries (render/sync.ts): a snapshot of a few files, read-only, over HTTP.

    python3 sync-share.py PORT FILE...

GET /manifest   takes a snapshot of FILE... and lists it, a `<sha256>  <path>` line each (a file that does not
                exist is left out: the secondary keeps its own)
GET /file<path> that file, as of the latest snapshot (so its hash is the manifest's)
GET /metrics    the snapshots taken and failed, for Prometheus (it scrapes this port through the site's node)

An SQLite file (`*.db`) is copied with SQLite's online backup, never read as bytes while its program writes it.
Only the FILE... named on the command line are ever served: not the rest of the volumes mounted here.
"""
import hashlib
import http.server
import os
import shutil
import sqlite3
import sys
import tempfile
import threading

PORT = int(sys.argv[1])
FILES = sys.argv[2:]
SNAPSHOT = tempfile.mkdtemp(prefix="sync-share-")
lock = threading.Lock()
counts = {"ok": 0, "failed": 0}


def copy(src, dst):
    if src.endswith(".db"):
        with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as s, sqlite3.connect(dst) as d:
            s.backup(d)
        return
    shutil.copyfile(src, dst)


def snapshot():
    lines = []
    for path in FILES:
        if not os.path.isfile(path):
            continue
        dst = os.path.join(SNAPSHOT, path.strip("/").replace("/", "__"))
        tmp = dst + ".tmp"
        if os.path.exists(tmp):
            os.remove(tmp)
        copy(path, tmp)
        os.replace(tmp, dst)
        with open(dst, "rb") as fh:
            lines.append(f"{hashlib.sha256(fh.read()).hexdigest()}  {path}\n")
    return "".join(lines).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def send(self, code, body, kind="text/plain; charset=utf-8"):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock:
            if self.path == "/manifest":
                try:
                    body = snapshot()
                    counts["ok"] += 1
                except (OSError, sqlite3.Error) as e:
                    counts["failed"] += 1
                    self.send(500, f"snapshot failed: {e}\n".encode())
                    return
                self.send(200, body)
            elif self.path.startswith("/file/") and self.path[len("/file"):] in FILES:
                dst = os.path.join(SNAPSHOT, self.path[len("/file/"):].replace("/", "__"))
                if not os.path.isfile(dst):
                    self.send(404, b"not in the latest snapshot: GET /manifest first\n")
                    return
                with open(dst, "rb") as fh:
                    self.send(200, fh.read(), "application/octet-stream")
            elif self.path == "/metrics":
                self.send(200, (
                    "# HELP qcloud_sync_share_snapshots_total Snapshots taken for secondaries.\n"
                    "# TYPE qcloud_sync_share_snapshots_total counter\n"
                    f"qcloud_sync_share_snapshots_total {counts['ok']}\n"
                    "# HELP qcloud_sync_share_snapshot_failures_total Snapshots that failed.\n"
                    "# TYPE qcloud_sync_share_snapshot_failures_total counter\n"
                    f"qcloud_sync_share_snapshot_failures_total {counts['failed']}\n"
                ).encode(), "text/plain; version=0.0.4")
            elif self.path == "/healthz":
                self.send(200, b"ok\n")
            else:
                self.send(404, b"not shared\n")

    def log_message(self, fmt, *args):
        sys.stderr.write("sync-share: " + (fmt % args) + "\n")


http.server.ThreadingHTTPServer(("", PORT), Handler).serve_forever()
