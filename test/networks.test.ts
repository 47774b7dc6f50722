/**
 * Who is on each Docker network of the committed sites, and who can reach the Docker API or its store: listed by
 * hand, so any new member or bind shows up in review (issue 9, hole 1: the old `socket-proxy` answered every
 * container's environment to all 17 containers on master's `metrics`).
 */
import * as path from "node:path";
import { NODE_EXPORTER_UID } from "../catalog/agents";
import { loadProjectSite } from "../model/estate";
import type { ContainerModel, SiteModel } from "../render/siteModel";

const ROOT = path.resolve(__dirname, "..");
const SITES = { master: loadProjectSite(ROOT, "master"), lady: loadProjectSite(ROOT, "lady") };
const containers = (m: SiteModel): ContainerModel[] => m.services.flatMap((s) => s.containers);

function members(m: SiteModel): Record<string, string[]> {
  const nets: Record<string, string[]> = {};
  for (const c of containers(m)) {
    const on = c.networkMode ? [`(${c.networkMode})`] : c.networks.length ? c.networks : ["(default bridge)"];
    for (const n of on) (nets[n] ??= []).push(c.name);
  }
  return Object.fromEntries(
    Object.entries(nets)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([n, cs]) => [n, cs.sort()]),
  );
}

/** Host paths through which a container reaches the Docker API, its store or the host's /proc. */
const EXPOSING =
  /^(\/|\/var\/run|\/run|\/var\/run\/docker\.sock|\/run\/docker\.sock|\/var\/lib\/docker(\/.*)?)$/;
function exposing(m: SiteModel): string[] {
  return containers(m).flatMap((c) =>
    c.binds
      .filter((b) => EXPOSING.test(b.hostPath))
      .map((b) => `${c.name} ${b.hostPath}${b.readOnly ? " ro" : " rw"} ${c.user ?? "(image's user)"}`),
  );
}

describe("who is on each network", () => {
  test("master", () => {
    expect(members(SITES.master)).toEqual({
      "(host)": ["wireguard"],
      alertmanager: ["alertmanager", "alertmanager-ntfy"],
      "cadvisor-docker-api": ["cadvisor", "cadvisor-docker-api"],
      crowdsec: ["crowdsec", "crowdsec-bouncer"],
      "crowdsec-docker-api": ["crowdsec", "crowdsec-docker-api"],
      edge: [
        "alertmanager",
        "crowdsec-bouncer",
        "grafana",
        "headscale",
        "headscale-ui",
        "homepage",
        "ntfy",
        "pihole",
        "portainer",
        "prometheus",
        "traefik",
        "uptime-kuma",
      ],
      // Each flow's consumer alone with its egress node (the site's node forwards that node's metrics in). The
      // backup job is no container: it joins with `docker run --network qcloud-egress-backup`.
      "egress-backup": ["tailscale", "tailscale-egress-backup"],
      "egress-prometheus": ["prometheus", "tailscale", "tailscale-egress-prometheus"],
      headscale: ["headscale", "headscale-ui"],
      ingress: ["pihole", "tailscale", "traefik"],
      metrics: [
        "alertmanager",
        "alertmanager-ntfy",
        "backup-repository",
        "blackbox",
        "cadvisor",
        "crowdsec",
        "grafana",
        "headscale",
        "loki",
        "node-exporter",
        "ntfy",
        "pihole-exporter",
        "prometheus",
        "promtail",
        // No egress node on `metrics`: nothing there reaches a proxy out.
        "tailscale",
        "traefik",
      ],
      pihole: ["pihole", "pihole-exporter", "pihole-unbound"],
      "promtail-docker-api": ["promtail", "promtail-docker-api"],
    });
  });

  test("lady", () => {
    expect(members(SITES.lady)).toEqual({
      // Alone there: no other container is on Docker's default bridge.
      "(default bridge)": ["portainer-agent"],
      "(host)": ["wireguard"],
      "cadvisor-docker-api": ["cadvisor", "cadvisor-docker-api"],
      edge: ["nextcloud", "nextcloud-office", "traefik", "uisp-nginx", "unifi"],
      "egress-backup": ["tailscale", "tailscale-egress-backup"],
      "egress-promtail": ["promtail", "tailscale", "tailscale-egress-promtail"],
      ingress: ["tailscale", "traefik"],
      metrics: [
        "backup-repository",
        "cadvisor",
        "nextcloud-db-exporter",
        "nextcloud-exporter",
        "nextcloud-redis-exporter",
        "node-exporter",
        "promtail",
        // No egress node on `metrics`: nothing there reaches a proxy out.
        "tailscale",
        "traefik",
        "unifi-exporter",
      ],
      nextcloud: [
        "nextcloud",
        "nextcloud-cron",
        "nextcloud-db",
        "nextcloud-db-exporter",
        "nextcloud-exporter",
        "nextcloud-office",
        "nextcloud-redis",
        "nextcloud-redis-exporter",
      ],
      "promtail-docker-api": ["promtail", "promtail-docker-api"],
      uisp: [
        "uisp",
        "uisp-crm",
        "uisp-fluentd",
        "uisp-netflow",
        "uisp-nginx",
        "uisp-postgres",
        "uisp-rabbitmq",
        "uisp-siridb",
      ],
      unifi: ["unifi", "unifi-db", "unifi-exporter"],
    });
  });
});

describe.each(Object.entries(SITES))("the Docker API on %s", (_site, model) => {
  const proxies = containers(model).filter((c) => c.key === "docker-api");

  test("each proxy is on its consumer's own network, and that network holds the two of them alone", () => {
    expect(proxies.length).toBeGreaterThan(0);
    const nets = members(model);
    for (const p of proxies) {
      const own = `${p.service}-docker-api`;
      expect([p.name, p.networks]).toEqual([p.name, [own]]);
      expect([own, nets[own]]).toEqual([own, [p.service, p.name].sort()]);
    }
    // No other network has a proxy on it (the old socket-proxy was on `metrics`).
    for (const [n, cs] of Object.entries(nets)) {
      if (n.endsWith("-docker-api")) continue;
      expect([n, cs.filter((c) => c.endsWith("-docker-api"))]).toEqual([n, []]);
    }
  });

  test("each consumer's Docker host is its own proxy", () => {
    const cmd = (name: string) => containers(model).find((c) => c.name === name)!;
    expect(cmd("cadvisor").command).toContain("--docker=tcp://cadvisor-docker-api:2375");
    expect(cmd("promtail").files["/etc/promtail/config.yml"]).toContain(
      "host: tcp://promtail-docker-api:2375",
    );
    if (model.name === "master") {
      expect(cmd("crowdsec").env.DOCKER_HOST).toBe("tcp://crowdsec-docker-api:2375");
      expect(cmd("crowdsec").files["/etc/crowdsec/acquis.d/traefik.yaml"]).toContain(
        "docker_host: tcp://crowdsec-docker-api:2375",
      );
    }
    // Nobody names the old shared proxy any more.
    expect(containers(model).map((c) => c.name)).not.toContain("socket-proxy");
    expect(JSON.stringify(model.services).includes("tcp://socket-proxy")).toBe(false);
  });
});

describe("who binds the Docker socket, its store or the host's root", () => {
  test("master: the proxies (read-only), Portainer (an admin tool: the full API), node-exporter as its own uid", () => {
    expect(exposing(SITES.master).sort()).toEqual([
      "cadvisor /var/lib/docker/image ro (image's user)",
      "cadvisor-docker-api /var/run/docker.sock ro (image's user)",
      "crowdsec-docker-api /var/run/docker.sock ro (image's user)",
      `node-exporter / ro ${NODE_EXPORTER_UID}:${NODE_EXPORTER_UID}`,
      "portainer /var/run/docker.sock rw (image's user)",
      "promtail-docker-api /var/run/docker.sock ro (image's user)",
    ]);
  });

  test("lady: the proxies, the Portainer agent (the full API, alone on the default bridge), node-exporter", () => {
    expect(exposing(SITES.lady).sort()).toEqual([
      "cadvisor /var/lib/docker/image ro (image's user)",
      "cadvisor-docker-api /var/run/docker.sock ro (image's user)",
      `node-exporter / ro ${NODE_EXPORTER_UID}:${NODE_EXPORTER_UID}`,
      "portainer-agent /var/lib/docker/volumes ro (image's user)",
      "portainer-agent /var/run/docker.sock rw (image's user)",
      "promtail-docker-api /var/run/docker.sock ro (image's user)",
    ]);
  });

  test("node-exporter's uid is its own: no other container runs as it, nor as the image's `nobody`", () => {
    for (const m of Object.values(SITES)) {
      const as = containers(m).filter(
        (c) => c.user !== undefined && /^(9100|65534|nobody)(:|$)/.test(c.user),
      );
      expect(as.map((c) => `${c.name} ${c.user}`)).toEqual([
        `node-exporter ${NODE_EXPORTER_UID}:${NODE_EXPORTER_UID}`,
      ]);
    }
  });

  test("the Portainer agent is on no shared network; Portainer's only network is `edge` (its UI through Traefik)", () => {
    const agent = containers(SITES.lady).find((c) => c.name === "portainer-agent")!;
    expect([agent.networks, agent.ports]).toEqual([[], []]);
    const portainer = containers(SITES.master).find((c) => c.name === "portainer")!;
    expect([portainer.networks, portainer.ports]).toEqual([["edge"], []]);
  });
});
