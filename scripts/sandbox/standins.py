#!/usr/bin/env python3
"""Plan the stand-in image for every image ref the rendered sites use (qui3tly-cloud scripts/sandbox).

    standins.py OUT_DIR RENDER_DIR...

Each RENDER_DIR is the output of `npm run render -- --stack S --out RENDER_DIR` (site.json plus the
generated config files). For every distinct image ref (of its containers, and its `jobImages`: the images host
jobs run with `docker run --rm`) this writes OUT_DIR/<slug>/Dockerfile (+ rootfs/ with healthcheck shims and
entrypoint paths) and prints `ref<TAB>kind<TAB>context-dir` on stdout; OUT_DIR/plan.json records what each
stand-in serves and why.

A stand-in is either the real program (KINDS below: from Debian (python3 for the python image, which runs the
stack's uploaded scripts such as the Docker API proxies), or for headscale, tailscale, wireguard-go, traefik,
restic, rest-server and cadvisor built from their Go modules by scripts/mesh-tools.sh; the image's ENTRYPOINT/CMD contract
is kept, the catalog's command is appended as with the official image), or the generic HTTP stand-in
(images/standin-base/server.py) serving 200 on every port the container is expected to serve:
its healthcheck URLs, its routes, its published TCP ports, the ports Prometheus scrapes it on, listen
addresses in its env/command, and the few well-known ports in EXTRA_PORTS. A job image must be a real program:
a job waits for its container to exit, which the generic stand-in never does.
"""
import hashlib
import json
import os
import re
import shutil
import sys

# Repositories served by the real program: repository -> stand-in kind (images/standin-<kind>).
KINDS = {
    "quay.io/prometheus/prometheus": "prometheus",
    "docker.io/prom/prometheus": "prometheus",
    "quay.io/prometheus/alertmanager": "alertmanager",
    "docker.io/prom/alertmanager": "alertmanager",
    "quay.io/prometheus/node-exporter": "node-exporter",
    "docker.io/prom/node-exporter": "node-exporter",
    "quay.io/prometheus/blackbox-exporter": "blackbox-exporter",
    "docker.io/prom/blackbox-exporter": "blackbox-exporter",
    "docker.io/library/postgres": "postgres",
    "docker.io/ubnt/unms-postgres": "postgres",
    "docker.io/library/redis": "redis",
    # Real binaries built from Go modules (scripts/mesh-tools.sh), copied in by images.sh.
    "docker.io/headscale/headscale": "headscale",
    "ghcr.io/juanfont/headscale": "headscale",
    "docker.io/tailscale/tailscale": "tailscale",
    "ghcr.io/tailscale/tailscale": "tailscale",
    "lscr.io/linuxserver/wireguard": "wireguard",
    "docker.io/linuxserver/wireguard": "wireguard",
    "docker.io/library/traefik": "traefik",
    "docker.io/restic/rest-server": "rest-server",
    # The cAdvisor library behind a minimal main (scripts/sandbox/cadvisor): real container metrics.
    "gcr.io/cadvisor/cadvisor": "cadvisor",
    # The interpreter (Debian's python3), for scripts the stack uploads: each Docker API proxy.
    "docker.io/library/python": "python",
    # Run by host jobs (site.json's jobImages), not as a site's containers.
    "docker.io/restic/restic": "restic",
    "docker.io/keinos/sqlite3": "sqlite3",
}
# Programs a real-program stand-in has itself: a healthcheck or entrypoint naming them gets no shim (which
# would hide the real program).
REAL_PROGRAMS = {
    "headscale": {"headscale"},
    "tailscale": {"tailscale", "tailscaled", "containerboot", "run.sh"},
    "wireguard": {"wg", "wg-quick", "wireguard-go", "init"},
    "traefik": {"traefik"},
    "rest-server": {"rest-server", "entrypoint.sh", "create_user", "delete_user", "htpasswd"},
    "restic": {"restic", "entrypoint.sh"},
    "sqlite3": {"sqlite3", "tini"},
    "python": {"python3", "python"},
    "cadvisor": {"cadvisor"},
}
# Generic stand-ins that also answer DNS on :53 (dnsmasq, local answers only: the sandbox never recurses
# to the internet, which a real unbound would).
DNS = {"docker.io/pihole/pihole", "docker.io/mvance/unbound"}
# Pi-hole's local DNS records: the file its admin UI writes and FTL reads as extra hosts (re-read on SIGHUP, which
# `pihole restartdns reload` sends), and its dnsmasq config directory (read at start: `pihole restartdns`). The
# stand-in's dnsmasq does the same, so a record synced to a secondary, or a site's own records file, answers.
PIHOLE = "docker.io/pihole/pihole"
PIHOLE_HOSTS = "/etc/pihole/custom.list"
PIHOLE_CONF_DIR = "/etc/dnsmasq.d/,*.conf"
# Every name answered here, as a Pi-hole with an upstream answers: NODATA for an AAAA of a name with an A record
# only, NXDOMAIN for the rest. Without it the stand-in, which forwards nothing, REFUSEs them, and a tailnet client's
# resolver (MagicDNS) waits on the other Pi-holes for a better answer: with one site down, until it times out.
PIHOLE_LOCAL = "local=/#/"
PIHOLE_SHIM = """#!/bin/sh
# Stand-in for `pihole` of docker.io/pihole/pihole: `restartdns reload[-lists]` makes dnsmasq re-read the local
# records (SIGHUP, as FTL takes it); `restartdns` restarts it, so it reads its config again; no other subcommand.
case "$1 ${2:-}" in
"restartdns reload"*) exec pkill -HUP -x dnsmasq ;;
"restartdns ")
  # The stand-in's PID 1 reaps no children: the old dnsmasq stays a zombie, which holds no socket. The new one
  # binds as soon as the old has closed its port, its output nowhere (`docker exec` waits for every holder of it).
  pkill -x dnsmasq || true
  for _ in $(seq 50); do
    dnsmasq --conf-file=/etc/standin/dnsmasq.conf </dev/null >/dev/null 2>&1 && exit 0
    sleep 0.1
  done
  echo "pihole stand-in: dnsmasq did not start again" >&2; exit 1 ;;
*) echo "pihole stand-in: only restartdns [reload]" >&2; exit 1 ;;
esac
"""
# Ports the real program serves that nothing in the site model names (so a client finds them).
EXTRA_PORTS = {
    "docker.io/crowdsecurity/crowdsec": [8080, 6060],
    "docker.io/fbonalair/traefik-crowdsec-bouncer": [8080],
    "docker.io/library/mongo": [27017],
    "docker.io/library/rabbitmq": [5672, 15692],
    "docker.io/oliver006/redis_exporter": [9121],
    "docker.io/portainer/portainer-ce": [9000],
    "docker.io/portainer/agent": [9001],
    "docker.io/grafana/promtail": [9080],
    "docker.io/xenrox/ntfy-alertmanager": [8080],
    "docker.io/ubnt/unms-siridb": [9000],
    "docker.io/ubnt/unms-fluentd": [24224],
}
TLS_PORTS = {443, 8443, 9443}
# The sandbox registry as the sites name it (`images.registry`): refs are planned without it.
STRIP = os.environ.get("STANDIN_REGISTRY", "registry:5000").rstrip("/") + "/"
# What the healthcheck shims probe: command -> (port, what the real command prints on success).
SHIMS = {
    "cscli": (8080, ""),  # `cscli lapi status`: the local API
    "/healthchecker": (8080, ""),  # traefik-crowdsec-bouncer
    "extra/healthcheck": (3001, ""),  # uptime-kuma (WORKDIR /app)
    "mongosh": (27017, "1"),  # `mongosh --eval "db.adminCommand('ping').ok"`
    "rabbitmq-diagnostics": (5672, ""),  # `rabbitmq-diagnostics -q ping`
}
# Programs the stand-in base really has: healthchecks calling them need no shim.
TOOLS = {"wget", "curl", "dig", "drill", "pg_isready", "redis-cli", "pgrep", "sh", "test", "true", "psql", "busybox"}
WORKDIRS = {"docker.io/louislam/uptime-kuma": "/app"}
# Entrypoints the catalog sets that must behave like the real image's script, not just stay up.
ENTRYPOINTS = {"/cron.sh": "exec /usr/local/lib/standin/cron.sh"}


def repository(ref):
    return ref.split("@")[0].rsplit(":", 1)[0] if ":" in ref.split("/")[-1] else ref.split("@")[0]


def url_ports(text):
    for scheme, port in re.findall(r"(https?)://(?:127\.0\.0\.1|localhost)(?::(\d+))?", text):
        yield int(port or (443 if scheme == "https" else 80)), scheme == "https"


def listen_ports(c):
    for k, v in c.get("env", {}).items():
        if re.fullmatch(r"(0\.0\.0\.0)?:\d+", v) or (k == "PORT" and v.isdigit()):
            yield int(v.rsplit(":", 1)[-1])
    for arg in c.get("command") or []:
        m = re.match(r"--?[\w.-]*listen[\w.-]*=[^:]*:(\d+)$", arg)
        if m:
            yield int(m.group(1))


def health_program(hc):
    if not isinstance(hc, dict):
        return None
    test = hc["test"]
    if test[0] == "CMD":
        return test[1]
    if test[0] == "CMD-SHELL":
        return test[1].split()[0]
    return None


def plan(images, ref):
    """The plan of ref (created on first use), ref as the sites name it."""
    if ref.startswith(STRIP):  # a stack that already pulls through the sandbox registry
        ref = ref[len(STRIP):]
    return images.setdefault(ref, {"ref": ref, "repository": repository(ref), "containers": [], "jobs": [],
                                   "http": set(), "https": set(), "shims": {}, "entrypoints": set()})


def main(out, render_dirs):
    images = {}  # ref -> plan
    scrape = {}  # container name -> ports
    for d in render_dirs:
        for root, _dirs, files in os.walk(d):
            for f in files:
                if f == "prometheus.yml":
                    text = open(os.path.join(root, f)).read()
                    for name, port in re.findall(r"^\s*-\s*'?([a-z0-9-]+):(\d+)'?\s*$", text, re.M):
                        scrape.setdefault(name, set()).add(int(port))
    for d in render_dirs:
        site = json.load(open(os.path.join(d, "site.json")))
        for ref in site.get("jobImages", []):  # absent from renders older than the backup jobs
            p = plan(images, ref)
            if p["repository"] not in KINDS:
                sys.exit(f"standins.py: job image {ref} of {site['site']} has no real-program kind (KINDS)")
            p["jobs"].append(site["site"])
        for c in site["containers"]:
            p = plan(images, c["image"])
            repo = p["repository"]
            p["containers"].append(f'{site["site"]}/{c["name"]}')
            ports = {}  # port -> tls
            hc = c.get("healthcheck")
            if isinstance(hc, dict):
                for port, tls in url_ports(" ".join(hc["test"])):
                    ports[port] = tls
            for r in site.get("routes", []):
                if r["container"] == c["name"]:
                    ports[r["port"]] = ports.get(r["port"], False) or r["scheme"] == "https"
            for spec in c.get("ports", []):
                internal, _, proto = spec.rsplit(":", 1)[-1].partition("/")
                if proto in ("", "tcp"):
                    ports.setdefault(int(internal), int(internal) in TLS_PORTS)
            for port in list(listen_ports(c)) + sorted(scrape.get(c["name"], ())) + EXTRA_PORTS.get(repo, []):
                ports.setdefault(port, port in TLS_PORTS)
            real = REAL_PROGRAMS.get(KINDS.get(repo, ""), set())
            prog = health_program(hc)
            if prog and prog not in TOOLS and os.path.basename(prog) not in real:
                port, output = SHIMS.get(prog, (min(ports) if ports else 0, ""))
                ports.setdefault(port, False) if port else None
                p["shims"][prog] = (port, output)
            for ep in (c.get("entrypoint") or [])[:1]:
                if os.path.basename(ep) not in real:
                    p["entrypoints"].add(ep)
            for port, tls in ports.items():
                (p["https"] if tls else p["http"]).add(port)
    os.makedirs(out, exist_ok=True)
    summary = []
    for ref, p in sorted(images.items()):
        repo = p["repository"]
        kind = KINDS.get(repo) or ("generic+dns" if repo in DNS else "generic")
        slug = re.sub(r"[^a-z0-9.-]+", "_", ref.lower())
        ctx = os.path.join(out, slug)
        shutil.rmtree(ctx, ignore_errors=True)
        os.makedirs(ctx)
        rootfs = {}
        workdir = WORKDIRS.get(repo)
        for prog, (port, output) in sorted(p["shims"].items()):
            if prog.startswith("/"):
                path = prog
            elif "/" in prog:
                workdir = workdir or "/app"
                path = os.path.join(workdir, prog)
            else:
                path = "/usr/local/bin/" + prog
            probe = f"exec /usr/local/bin/standin-probe {port} {output}" if port else "pgrep -f standin >/dev/null"
            rootfs[path] = f"#!/bin/sh\n# Stand-in for `{prog}` (healthcheck of {ref}): probes the stand-in.\n{probe}\n"
        if repo == PIHOLE:
            rootfs["/usr/local/bin/pihole"] = PIHOLE_SHIM
        for ep in sorted(p["entrypoints"]):
            run = ENTRYPOINTS.get(ep, 'exec /usr/local/bin/standin "$@"')
            rootfs[ep] = f"#!/bin/sh\n# Stand-in for the entrypoint {ep} of {ref}.\n{run}\n"
        if kind.startswith("generic"):
            https = sorted(p["https"] - {53})
            http = sorted(p["http"] - p["https"] - {53})
        else:  # the real program serves its own ports
            http, https = [], []
        lines = [f"FROM qcloud-sandbox/standin-{kind if not kind.startswith('generic') else 'base'}:bookworm"]
        if rootfs:
            for path, text in rootfs.items():
                dest = os.path.join(ctx, "rootfs", path.lstrip("/"))
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, "w") as fh:
                    fh.write(text)
                os.chmod(dest, 0o755)
            lines.append("COPY rootfs/ /")
        env = [f'STANDIN_NAME="{ref}"', f'STANDIN_HTTP_PORTS="{" ".join(map(str, http))}"',
               f'STANDIN_HTTPS_PORTS="{" ".join(map(str, https))}"']
        if kind == "generic+dns":
            env.append("STANDIN_DNS=1")
        if repo == PIHOLE:
            lines.append(f"RUN printf '%s\\n' 'addn-hosts={PIHOLE_HOSTS}' 'conf-dir={PIHOLE_CONF_DIR}' '{PIHOLE_LOCAL}' >>/etc/standin/dnsmasq.conf")
        lines.append("ENV " + " ".join(env))
        lines.append(f'LABEL cloud.qui3tly.standin="{kind}" cloud.qui3tly.standin.of="{ref}"')
        if workdir:
            lines.append(f"WORKDIR {workdir}")
        with open(os.path.join(ctx, "Dockerfile"), "w") as fh:
            fh.write("# Generated by scripts/sandbox/standins.py: the stand-in for " + ref + "\n")
            fh.write("\n".join(lines) + "\n")
        summary.append({"ref": ref, "kind": kind, "containers": p["containers"], "jobs": p["jobs"],
                        "http": http, "https": https,
                        "shims": {k: v[0] for k, v in p["shims"].items()}, "entrypoints": sorted(p["entrypoints"]),
                        "dockerfile": hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]})
        print(f"{ref}\t{kind}\t{ctx}")
    with open(os.path.join(out, "plan.json"), "w") as fh:
        json.dump(summary, fh, indent=2)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
