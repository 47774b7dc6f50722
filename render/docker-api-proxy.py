#!/usr/bin/env python3
"""A Docker API proxy for one consumer (qui3tly-cloud render/dockerApi.ts): read-only, secrets removed.

    docker-api-proxy.py --rules RULES.json [--listen 0.0.0.0:2375] [--upstream /var/run/docker.sock]

Each consumer of the Docker API (promtail, cAdvisor, CrowdSec) gets its own instance, on a network it shares
with that consumer alone. RULES.json lists what the consumer may call:

    {"consumer": "promtail",
     "allow": [{"methods": ["GET"], "path": "^/containers/json$", "filter": "list"}, ...],
     "containers": ["traefik"]}

`path` is a regular expression matched against the request's path without its query and without the
`/v1.NN` version prefix the Docker clients add. Anything not listed gets 403 with a JSON message naming the
method and path (the Docker clients show it), and a line on stderr. `filter` names a whitelist applied to the
JSON answer before it leaves (FILTERS below): the inspect answer keeps what the consumers read (Config.Tty,
Config.Labels, State.Pid, Created ...) and drops the rest, Config.Env and Config.Cmd among it, so no consumer
ever reads another container's secrets. Answers without a filter (logs, the version) are streamed through as
they come. `containers`, if given, narrows every call to the containers of those names: a call naming another
container (inspect, logs) gets 403, and the list shows only those.

Why not tecnativa/docker-socket-proxy: it filters paths only (haproxy cannot rewrite bodies), and an allowed
inspect carries every environment. Python's standard library only: it runs in the official python image with
this file uploaded into it, and in the sandbox as it is.
"""
import argparse
import http.client
import http.server
import json
import re
import socket
import sys

# What each filter keeps of a JSON answer: True keeps the value whole, a dict keeps those keys of an object
# (recursively), "*" stands for every key (a map such as NetworkSettings.Networks). Everything else is dropped.
_NETWORK = {"*": True}
FILTERS = {
    # GET /containers/{id}/json. promtail reads Config.Tty; CrowdSec Config.Tty and Config.Labels; cAdvisor
    # Name, Created, RestartCount, State.Pid, Config.Labels, Config.Image, HostConfig.NetworkMode,
    # NetworkSettings.IPAddress, GraphDriver.Data.DeviceId. Config.Env, Config.Cmd, Args, Mounts, the
    # healthcheck's output ... are not kept: they are where secrets live.
    "inspect": {
        "Id": True,
        "Created": True,
        "Name": True,
        "RestartCount": True,
        "Image": True,
        "Driver": True,
        "Platform": True,
        "State": {
            "Status": True,
            "Running": True,
            "Paused": True,
            "Restarting": True,
            "OOMKilled": True,
            "Dead": True,
            "Pid": True,
            "ExitCode": True,
            "StartedAt": True,
            "FinishedAt": True,
            "Health": {"Status": True, "FailingStreak": True},
        },
        "Config": {"Hostname": True, "Image": True, "Labels": True, "Tty": True},
        "HostConfig": {"NetworkMode": True},
        "GraphDriver": {"Name": True, "Data": {"DeviceId": True}},
        "NetworkSettings": {"IPAddress": True, "Networks": _NETWORK},
    },
    # GET /containers/json: every item; Command (a command line can carry a password) and Mounts are dropped.
    # Prometheus' docker SD (in promtail) reads Id, Names, Labels, HostConfig.NetworkMode, Ports and the networks.
    "list": {
        "[]": {
            "Id": True,
            "Names": True,
            "Image": True,
            "ImageID": True,
            "Created": True,
            "Ports": True,
            "Labels": True,
            "State": True,
            "Status": True,
            "HostConfig": {"NetworkMode": True},
            "NetworkSettings": {"Networks": _NETWORK},
        }
    },
    # GET /info: what cAdvisor and CrowdSec read; the daemon's proxy settings (which may hold credentials),
    # registry config and labels are dropped.
    "info": {
        k: True
        for k in (
            "ID Name ServerVersion OperatingSystem OSType Architecture KernelVersion Driver DriverStatus "
            "DockerRootDir Containers ContainersRunning ContainersPaused ContainersStopped Images NCPU MemTotal "
            "CgroupDriver CgroupVersion LoggingDriver"
        ).split()
    },
}

VERSION_PREFIX = re.compile(r"^/v[0-9]+(\.[0-9]+)?(?=/)")
CONTAINER_PATH = re.compile(r"^/containers/([^/]+)/")
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones this proxy recomputes.
# Server and Date are the proxy's own (send_response adds them).
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length", "server", "date"}


def keep(value, spec):
    """value reduced to what spec keeps."""
    if spec is True:
        return value
    if isinstance(value, list) and "[]" in spec:
        return [keep(v, spec["[]"]) for v in value]
    if not isinstance(value, dict):
        return None
    out = {}
    for k, v in value.items():
        s = spec.get(k, spec.get("*"))
        if s is not None:
            out[k] = keep(v, s)
    return out


class Rules:
    def __init__(self, doc):
        self.consumer = doc["consumer"]
        self.containers = None if doc.get("containers") is None else frozenset(doc["containers"])
        self.allow = []
        for i, r in enumerate(doc["allow"]):
            if r.get("filter") is not None and r["filter"] not in FILTERS:
                raise ValueError(f"allow[{i}].filter: unknown filter {r['filter']!r}; expected one of {sorted(FILTERS)}")
            self.allow.append((frozenset(r["methods"]), re.compile(r["path"]), r.get("filter")))

    @staticmethod
    def bare(path):
        return VERSION_PREFIX.sub("", path.split("?", 1)[0], count=1)

    def match(self, method, path):
        """(allowed, filter name or None)."""
        path = self.bare(path)
        for methods, pattern, flt in self.allow:
            if method in methods and pattern.fullmatch(path):
                return True, flt
        return False, None


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("docker")  # the Host header dockerd gets, as the Docker clients send it
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def handler(rules, upstream):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # chunked answers: logs stream for as long as the consumer follows

        def log_message(self, fmt, *args):  # only refusals are logged (below): a log shipper polls often
            pass

        def refuse(self, why):
            sys.stderr.write(f"docker-api-proxy[{rules.consumer}]: refused {self.command} {self.path}: {why}\n")
            sys.stderr.flush()
            body = json.dumps(
                {"message": f"docker-api-proxy: {self.command} {self.path.split('?', 1)[0]} is not allowed for {rules.consumer}"}
            ).encode()
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            # The request's body is never read: the connection must not be read on as a next request.
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def serve(self):
            allowed, flt = rules.match(self.command, self.path)
            if not allowed:
                return self.refuse("not in the rules")
            if self.headers.get("Content-Length", "0") not in ("", "0") or self.headers.get("Transfer-Encoding"):
                return self.refuse("a request body")  # every allowed call is a read
            if self.headers.get("Upgrade"):
                return self.refuse("an upgrade")  # attach and exec hijack the connection: never allowed
            if rules.containers is not None:
                named = CONTAINER_PATH.match(rules.bare(self.path))
                if named and self.container_name(named.group(1)) not in rules.containers:
                    return self.refuse(f"not one of the containers {sorted(rules.containers)}")
            conn = UnixConnection(upstream)
            try:
                conn.request(self.command, self.path, headers={"User-Agent": self.headers.get("User-Agent", "")})
                resp = conn.getresponse()
                headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP]
                if flt is not None and resp.status == 200 and self.command == "GET":
                    doc = json.loads(resp.read())
                    if flt == "list" and rules.containers is not None:
                        doc = [c for c in doc if {n.lstrip("/") for n in c.get("Names") or []} & rules.containers]
                    body = json.dumps(keep(doc, FILTERS[flt])).encode()
                    self.send_response(resp.status)
                    for k, v in headers:
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(resp.status)
                for k, v in headers:
                    self.send_header(k, v)
                if self.command == "HEAD" or resp.status in (204, 304):
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while True:
                    chunk = resp.read1(65536)  # what has arrived: a followed log goes out line by line
                    if not chunk:
                        break
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the consumer went away (a log follow it stopped)
            except OSError as e:
                sys.stderr.write(f"docker-api-proxy[{rules.consumer}]: upstream {upstream}: {e}\n")
                self.send_error(502, "the Docker engine did not answer")
            finally:
                conn.close()

        def container_name(self, ref):
            """The name of the container an id or name refers to (the engine resolves it), or None."""
            conn = UnixConnection(upstream)
            try:
                conn.request("GET", f"/containers/{ref}/json")
                resp = conn.getresponse()
                return json.loads(resp.read()).get("Name", "").lstrip("/") if resp.status == 200 else None
            except (OSError, ValueError):
                return None
            finally:
                conn.close()

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = serve

    return Handler


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rules", required=True)
    p.add_argument("--listen", default="0.0.0.0:2375")
    p.add_argument("--upstream", default="/var/run/docker.sock")
    a = p.parse_args(argv)
    try:
        with open(a.rules) as fh:
            rules = Rules(json.load(fh))
    except (OSError, ValueError, KeyError, re.error) as e:
        sys.exit(f"docker-api-proxy: {a.rules}: {e}")
    host, _, port = a.listen.rpartition(":")
    server = http.server.ThreadingHTTPServer((host or "0.0.0.0", int(port)), handler(rules, a.upstream))
    server.daemon_threads = True
    sys.stderr.write(f"docker-api-proxy[{rules.consumer}]: listening on {server.server_address[0]}:{server.server_address[1]}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
