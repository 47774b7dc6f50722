import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { ConfigError } from "../config/errors";
import { defaultBackupSchedules } from "../config/schema";
import { mapSource } from "../config/source";
import { loadEstate, loadProjectSite } from "../model/estate";
import { loadSite } from "../model/site";
import {
  GAUGES,
  backupPlan,
  renderBackupCron,
  renderBackupInstall,
  renderBackupScript,
  renderBackupSecrets,
  repositoryUrl,
  startOrder,
} from "../render/backup";
import { chooseSnapshot } from "../scripts/snapshots";
import { openBundle } from "../components";
import { deploySite } from "../stacks/site";
import {
  TEST_SEAL_KEYS,
  controlPlaneSite,
  servicesSite,
  snapshot,
  testSecrets,
  withTestSealKey,
} from "./fixtures";
import { isSecretValue, recordResources, reveal, valueOf } from "./mocks";

const { recorded, capture } = recordResources();
const ROOT = path.resolve(__dirname, "..");
const SITE = "qui3tly-cloud:site";
const lady = loadProjectSite(ROOT, "lady");
const master = loadProjectSite(ROOT, "master");

/** Each committed site's volumes and how each is kept: written out by hand, so a change is a reviewed diff. */
const KEPT: Record<string, Record<string, string>> = {
  lady: {
    "backup-repository-data": "none",
    "nextcloud-db-data": "postgres",
    "nextcloud-html": "files",
    "nextcloud-redis-data": "none",
    "promtail-positions": "none",
    "tailscale-egress-backup-state": "files",
    "tailscale-egress-promtail-state": "files",
    "tailscale-state": "files",
    "traefik-acme": "files",
    "uisp-crm-data": "files",
    "uisp-data": "export",
    "uisp-fluentd-logs": "none",
    "uisp-nginx-cert": "files",
    "uisp-postgres-data": "postgres",
    "uisp-rabbitmq-data": "none",
    "uisp-siridb-data": "none",
    "unifi-config": "export",
    "unifi-db-data": "none",
  },
  master: {
    "alertmanager-data": "files",
    "backup-repository-data": "none",
    "crowdsec-config": "files",
    "crowdsec-data": "none",
    "grafana-data": "sqlite",
    "headscale-data": "sqlite",
    "homepage-config": "files",
    "loki-data": "none",
    "ntfy-cache": "sqlite",
    "pihole-config": "sqlite",
    "pihole-dnsmasq": "files",
    "portainer-data": "files",
    "prometheus-data": "none",
    "promtail-positions": "none",
    "tailscale-egress-backup-state": "files",
    "tailscale-egress-prometheus-state": "files",
    "tailscale-state": "files",
    "traefik-acme": "files",
    "uptime-kuma-data": "sqlite",
  },
};

describe("what the catalog backs up", () => {
  test.each([
    ["lady", lady],
    ["master", master],
  ])("every retained volume of %s says how it is kept, or why not", (name, model) => {
    const volumes = model.services.flatMap((s) => s.containers.flatMap((c) => c.volumes));
    expect(volumes.map((v) => v.volume).sort()).toEqual(
      model.services.flatMap((s) => s.containers.flatMap((c) => c.ownedVolumes)).sort(),
    );
    expect(Object.fromEntries(volumes.map((v) => [v.volume, v.backup.method]))).toEqual(KEPT[name]);
    for (const v of volumes) {
      if (v.backup.method === "none" || v.backup.method === "export")
        expect(v.backup.why.length).toBeGreaterThan(10);
    }
  });

  test("the plan: one line per kept volume; databases dumped with their own image; services in start order", () => {
    const { lines, services } = backupPlan(lady);
    expect(services).toEqual(["nextcloud", "tailscale", "traefik", "uisp", "unifi"]);
    expect(lines.find((l) => l.volume === "nextcloud-db-data")).toEqual({
      service: "nextcloud",
      method: "postgres",
      volume: "nextcloud-db-data",
      container: "nextcloud-db",
      args: ["nextcloud", "nextcloud", "docker.io/library/postgres:16.6-alpine"],
    });
    const nextcloud = lady.services.find((s) => s.name === "nextcloud")!;
    const order = startOrder(nextcloud.containers);
    // Every container after what it depends on.
    for (const c of nextcloud.containers) {
      for (const d of c.dependsOn) expect(order.indexOf(d)).toBeLessThan(order.indexOf(c.name));
    }
    expect(order).toHaveLength(nextcloud.containers.length);
  });
});

describe("targets, schedules, retention", () => {
  test("services sites back up to their control plane, the control plane to its first services site", () => {
    expect([lady.backup.target, master.backup.target]).toEqual(["master", "lady"]);
    expect(master.backup.hosted.map((h) => h.site)).toEqual(["lady", "madam"]);
    expect(lady.backup.hosted.map((h) => h.site)).toEqual(["master"]);
    expect(lady.services.map((s) => s.name)).toContain("backup-repository");
  });

  test("default times: daily 01:00-04:59 and weekly at 05:xx, spread by name, the same every time", () => {
    for (const site of ["master", "lady", "madam", "a", "zz-top"]) {
      const { schedule, restoreTest } = defaultBackupSchedules(site);
      expect(schedule).toMatch(/^([0-9]|[1-5][0-9]) [1-4] \* \* \*$/);
      expect(restoreTest).toMatch(/^([0-9]|[1-5][0-9]) 5 \* \* [0-6]$/);
      expect(defaultBackupSchedules(site)).toEqual({ schedule, restoreTest });
    }
    expect(defaultBackupSchedules("master").schedule).not.toBe(defaultBackupSchedules("lady").schedule);
  });

  test("the cron file: backup and restore test, and on a site that keeps repositories, their upkeep", () => {
    const lines = renderBackupCron(lady).split("\n");
    expect(lines.filter((l) => l.includes("root /usr/local/sbin/qcloud-backup"))).toEqual([
      `${lady.backup.schedule} root /usr/local/sbin/qcloud-backup run >>/var/log/qcloud-backup.log 2>&1`,
      `${lady.backup.restoreTest} root /usr/local/sbin/qcloud-backup restore-test >>/var/log/qcloud-backup.log 2>&1`,
      `${lady.backup.schedule.split(" ")[0]} 7 * * * root /usr/local/sbin/qcloud-backup maintain >>/var/log/qcloud-backup.log 2>&1`,
      `${lady.backup.schedule.split(" ")[0]} 8 * * ${lady.backup.restoreTest.split(" ")[4]} root /usr/local/sbin/qcloud-backup check >>/var/log/qcloud-backup.log 2>&1`,
    ]);
  });

  const base = () =>
    servicesSite({
      services: { nextcloud: true },
      backup: { retention: { daily: 3 }, schedule: "0 2 * * *" },
    });
  type Case = [string, (c: Record<string, any>) => void, string, RegExp];
  const cases: Case[] = [
    ["a schedule in words", (c) => (c[SITE].backup.schedule = "daily"), "backup.schedule", /five fields/],
    [
      "a schedule of four fields",
      (c) => (c[SITE].backup.restoreTest = "0 5 * *"),
      "backup.restoreTest",
      /five/,
    ],
    [
      "a negative retention",
      (c) => (c[SITE].backup.retention.daily = -1),
      "backup.retention.daily",
      /0 or more/,
    ],
    [
      "a retention that keeps nothing",
      (c) => (c[SITE].backup.retention = { daily: 0, weekly: 0, monthly: 0 }),
      "backup.retention",
      /would delete every backup/,
    ],
    ["an unknown field", (c) => (c[SITE].backup.bucket = "s3"), "backup", /unknown field\(s\) `bucket`/],
    [
      "the repository placed by hand",
      (c) => (c[SITE].services["backup-repository"] = true),
      "services.backup-repository",
      /expected no entry: the estate places it/,
    ],
  ];
  test.each(cases)("refused in the stack file: %s", (_name, breakIt, field, expected) => {
    const config = base();
    breakIt(config);
    const err = (() => {
      try {
        loadSite(mapSource("Pulumi.lady.yaml", "lady", config));
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error("accepted");
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.issues.map((i) => [i.file, i.path])).toContainEqual(["Pulumi.lady.yaml", `${SITE}.${field}`]);
    expect(err.message).toMatch(expected);
  });

  const estateWith = (target: string, controlPlane = "master") => [
    mapSource("Pulumi.master.yaml", "master", controlPlaneSite()),
    // Another tailnet: its own server and domain (a host name or a server two sites share is refused too).
    mapSource(
      "Pulumi.other.yaml",
      "other",
      controlPlaneSite({ domain: "other.example", host: { kind: "existing", address: "203.0.113.30" } }),
    ),
    mapSource("Pulumi.lady.yaml", "lady", servicesSite({ controlPlane, backup: { target } })),
  ];
  test.each([
    ["an unknown site", "nowhere", /expected a site of the estate \(lady, master, other\)/],
    ["itself", "lady", /expected another site: a backup on the site it protects is lost with it/],
    [
      "a site of another tailnet",
      "other",
      /expected a site of the same tailnet \(control plane `master`\); `other`'s is `other`/,
    ],
  ])("refused across the estate: a target that is %s", (_name, target, expected) => {
    expect(() => loadEstate(estateWith(target))).toThrow(expected);
    try {
      loadEstate(estateWith(target));
    } catch (e) {
      expect((e as ConfigError).issues.map((i) => [i.file, i.path])).toEqual([
        ["Pulumi.lady.yaml", `${SITE}.backup.target`],
      ]);
    }
  });
});

describe("the job", () => {
  test.each([
    ["lady", lady],
    ["master", master],
  ])(
    "%s's script is valid bash and names its repository, its services and the repositories it keeps",
    (_n, model) => {
      const script = renderBackupScript(model);
      const r = spawnSync("bash", ["-n"], { input: script, encoding: "utf8" });
      expect([r.status, r.stderr]).toEqual([0, ""]);
      expect(script).toContain(`TARGET=${model.backup.target}\n`);
      expect(script).toContain(`SERVICES=(${backupPlan(model).services.join(" ")})\n`);
      expect(script).toContain(`HOSTED=(${model.backup.hosted.map((h) => h.site).join(" ")})\n`);
    },
  );

  test("no secret in the script, the cron file or the install: the secrets come on stdin", () => {
    const install = renderBackupInstall(lady);
    expect(install).toContain(
      `while read -r name value; do printf '%s\\n' "$value" >"/var/lib/qcloud/backup/secrets/$name"; done`,
    );
    expect(install).not.toMatch(/rest:http:\/\/[^@]*:[^@]*@/);
    expect(
      renderBackupSecrets({
        repository: "rest:http://lady:pw@h:8000/lady/",
        password: "x",
        "hosted/master": "y",
      }),
    ).toBe("repository rest:http://lady:pw@h:8000/lady/\npassword x\nhosted/master y\n");
    expect(() => renderBackupSecrets({ password: "has space" })).toThrow(/unexpected characters/);
  });

  test("every gauge the job writes is documented in docs/metrics.md with the same help", () => {
    const doc = fs.readFileSync(path.join(ROOT, "docs/metrics.md"), "utf8");
    for (const [name, help] of Object.entries(GAUGES)) expect(doc).toContain(`# HELP ${name} ${help}\n`);
  });

  test("the repository URL: the REST user is the site, its path the site's own; the target by MagicDNS", () => {
    expect(repositoryUrl(lady.estate, "lady", "master", "s3cret")).toBe(
      "rest:http://lady:s3cret@master.mesh.qui3tly.cloud:8000/lady/",
    );
    expect(() => repositoryUrl(lady.estate, "lady", "nowhere", "x")).toThrow(/not a site of the estate/);
  });
});

describe("the stacks under mocks", () => {
  test("master makes every site's credentials; lady installs its job with them as stdin secrets and keeps master's repository", async () => {
    recorded.length = 0;
    const cp = deploySite(
      // The estate in which lady's public key is the test one.
      { ...master, estate: withTestSealKey(lady).estate },
      { configSecret: (k) => pulumi.secret(`cfg-${k}`) },
      { transformations: [capture] },
    );
    // Lady's box holds her credentials and master's repository password (she keeps it); master's stay home.
    const sealed = await valueOf(cp.outputs.controlPlane!.sealed);
    expect(Object.keys(sealed)).toEqual(["lady", "madam"]);
    const box = openBundle(sealed, "lady", "master", TEST_SEAL_KEYS.lady!.privateKey);
    expect([box.backup, box.hosted]).toEqual([
      { repository: "pw-master-backup-lady-repository", rest: "pw-master-backup-lady-rest" },
      {
        master: {
          repository: "pw-master-backup-master-repository",
          htpasswd: "master:$2a$10$hash-of-master-backup-master-rest",
        },
      },
    ]);
    // Master exports no password of its own: every site's stack reference would hold it.
    expect(cp.outputs.backup!.password).toBeUndefined();
    const passwords = recorded.filter(
      (r) => r.type === "random:index/randomPassword:RandomPassword" && /-backup-/.test(r.name),
    );
    expect(passwords.map((p) => [p.name, p.opts.protect])).toEqual([
      ["master-backup-lady-repository", true],
      ["master-backup-lady-rest", true],
      ["master-backup-madam-repository", true],
      ["master-backup-madam-rest", true],
      ["master-backup-master-repository", true],
      ["master-backup-master-rest", true],
    ]);

    recorded.length = 0;
    const site = deploySite(withTestSealKey(lady), testSecrets("lady"), { transformations: [capture] });
    await valueOf(pulumi.all([site.backups!.installed, site.outputs.backup!.password]));
    const install = recorded.find((r) => r.type === "command:remote:Command" && r.name === "lady-backup")!;
    expect(install.opts.additionalSecretOutputs).toContain("stdin");
    expect(isSecretValue(install.inputs.stdin)).toBe(true);
    // From the stack reference's mock: lady's own credentials and master's repository password.
    expect(reveal<string>(install.inputs.stdin)).toBe(
      "repository rest:http://lady:rest-pw-lady@master.mesh.qui3tly.cloud:8000/lady/\n" +
        "password repo-pw-lady\nhosted/master repo-pw-master\n",
    );
    expect(install.inputs.create).toContain(
      "cat >/usr/local/sbin/qcloud-backup.tmp <<'QCLOUD_BACKUP_SCRIPT'",
    );
    expect(JSON.stringify(install.inputs.create)).not.toContain("pw-");
    const repo = recorded.find(
      (r) => r.type === "docker:index/container:Container" && r.name === "lady-backup-repository",
    )!;
    expect(
      reveal<{ file: string; content: unknown }[]>(repo.inputs.uploads).map((u) => [
        u.file,
        reveal(u.content),
      ]),
    ).toEqual([["/etc/rest-server/htpasswd", "master:$2a$10$hash-of-master\n"]]);
    expect(site.outputs.backup).toMatchObject({
      target: "master",
      repository: "rest:http://lady@master.mesh.qui3tly.cloud:8000/lady/",
    });
  }, 30_000);
});

describe("npm run restore picks a snapshot, or says why none fits", () => {
  const all = [
    snapshot("aaaaaaaa", "nextcloud", "2026-11-28T03:00:00Z"),
    snapshot("bbbbbbbb", "nextcloud", "2026-11-29T03:00:00Z"),
    snapshot("cccccccc", "unifi", "2026-11-29T03:01:00Z"),
    snapshot("dddddddd", "nextcloud", "2026-11-30T03:00:00Z", "master"),
  ];
  test.each([
    ["the newest of the service, of this site", {}, "bbbbbbbb"],
    ["one by id", { snapshot: "aaaaaaaa" }, "aaaaaaaa"],
    ["the newest before a time", { before: "2026-11-29T00:00:00Z" }, "aaaaaaaa"],
  ])("%s", (_n, pick, id) => {
    expect(chooseSnapshot(all, "lady", "nextcloud", pick).short_id).toBe(id);
  });
  test.each([
    ["an unknown id", { snapshot: "eeeeeeee" }, "nextcloud", /no snapshot `eeeeeeee` of site `lady`/],
    [
      "another service's snapshot",
      { snapshot: "cccccccc" },
      "nextcloud",
      /holds service `unifi`, not `nextcloud`: pick one of nextcloud's \(aaaaaaaa, bbbbbbbb\)/,
    ],
    [
      "another site's snapshot",
      { snapshot: "dddddddd" },
      "nextcloud",
      /no snapshot `dddddddd` of site `lady`/,
    ],
    ["not an id", { snapshot: "xyz" }, "nextcloud", /expected a snapshot id/],
    [
      "nothing before the time",
      { before: "2026-11-01T00:00:00Z" },
      "nextcloud",
      /no snapshot of `nextcloud` before .*the oldest is aaaaaaaa/,
    ],
    ["a time that is none", { before: "yesterday-ish" }, "nextcloud", /expected a time such as/],
    ["a service never backed up", {}, "uisp", /no snapshot of `uisp` on site `lady` yet/],
  ])("refuses %s", (_n, pick, service, expected) => {
    expect(() => chooseSnapshot(all, "lady", service, pick)).toThrow(expected);
  });
});
