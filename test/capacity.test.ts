import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import YAML from "yaml";
import { ConfigError } from "../config/errors";
import { mapSource } from "../config/source";
import {
  CPU_OVERCOMMIT,
  MEMORY_OVERCOMMIT,
  capacity,
  capacityIssue,
  capacityWarning,
  hostSize,
  siteLimits,
} from "../model/capacity";
import type { HostConfig } from "../config/schema";
import { loadSite } from "../model/site";
import type { ServiceModel } from "../render/siteModel";
import { checkStackFiles } from "../scripts/stackCheck";
import { TEST_SEAL_KEYS, hcloudHostConfig, servicesSite } from "./fixtures";

const ROOT = path.resolve(__dirname, "..");
const SITE = "qui3tly-cloud:site";
const HOST = `${SITE}.host`;

/** Services of containers with these limits (name, MiB, CPUs): all the capacity check reads of a model. */
const services = (...cs: [string, number, number][]): ServiceModel[] =>
  cs.map(([name, memoryMb, cpus]) => ({
    name,
    containers: [{ name, memoryMb, cpus }],
  })) as unknown as ServiceModel[];
const existing = (size: { memory?: number; cpus?: number } = {}): HostConfig => ({
  kind: "existing",
  address: "203.0.113.20",
  user: "root",
  port: 22,
  ...size,
});
const hcloud = (serverType: string): HostConfig => ({
  kind: "hcloud",
  serverType,
  location: "fsn1",
  image: "debian-12",
  sshKeys: ["ssh-ed25519 AAAA"],
  sshSources: ["0.0.0.0/0"],
});

describe("the host's size", () => {
  test("an hcloud server's comes from its type; an existing host's from what it declares, or none", () => {
    expect(hostSize(hcloud("cx22"))).toEqual({ memoryMb: 4096, cpus: 2, from: "cx22" });
    expect(hostSize(hcloud("ccx13"))).toEqual({ memoryMb: 8192, cpus: 2, from: "ccx13" });
    expect(hostSize(existing({ memory: 8192, cpus: 4 }))).toEqual({
      memoryMb: 8192,
      cpus: 4,
      from: "declared",
    });
    expect(hostSize(existing())).toBeUndefined();
  });
});

describe("the site's limits", () => {
  test("are summed (CPUs to the hundredth: 0.1 + 0.2 is 0.3) and the largest named, by memory and by CPU", () => {
    const l = siteLimits(services(["a", 512, 0.1], ["b", 1024, 0.2], ["c", 256, 2], ["d", 1024, 0.5]), 2);
    expect(l).toEqual({
      memoryMb: 2816,
      cpus: 2.8,
      topMemory: [
        { container: "b", memoryMb: 1024, cpus: 0.2 },
        { container: "d", memoryMb: 1024, cpus: 0.5 },
      ],
      topCpu: [
        { container: "c", memoryMb: 256, cpus: 2 },
        { container: "d", memoryMb: 1024, cpus: 0.5 },
      ],
    });
    expect(siteLimits(services(["a", 1, 0.1], ["b", 1, 0.2])).cpus).toBe(0.3);
  });

  test("the factors: memory small (the OOM killer), CPU larger (throttling)", () => {
    expect([MEMORY_OVERCOMMIT, CPU_OVERCOMMIT]).toEqual([1.25, 4]);
  });

  // A 4 GB, 2 vCPU host (cx22).
  test.each<[string, number, number, string, string]>([
    ["well within", 2048, 1, "ok", "ok"],
    ["exactly the host", 4096, 2, "ok", "ok"],
    ["past the host", 4097, 2.01, "warn", "warn"],
    ["exactly the factors", 5120, 8, "warn", "warn"],
    ["past the memory factor only", 5121, 2, "fail", "ok"],
    ["past the CPU factor only", 1024, 8.01, "ok", "fail"],
  ])("%s: %d MiB, %d CPUs on a cx22 -> memory %s, CPU %s", (_name, mb, cpus, memory, cpu) => {
    const c = capacity({ host: hcloud("cx22"), services: services(["x", mb, cpus]) });
    expect([c.memory, c.cpu]).toEqual([memory, cpu]);
  });
});

describe("what check prints and refuses", () => {
  const madam = services(
    ["traefik", 256, 1],
    ["cadvisor", 256, 0.5],
    ["uisp", 2048, 1.5],
    ["uisp-crm", 1024, 1],
  );

  test("past the host: a warning naming the file, the sums, the host and the largest consumers", () => {
    const c = capacity({ host: hcloud("cx22"), services: madam });
    expect(capacityIssue("Pulumi.madam.yaml", c)).toBeUndefined();
    expect(capacityWarning("Pulumi.madam.yaml", c)).toBe(
      `Pulumi.madam.yaml: \`${HOST}\`: the limits add up to more CPU than the host has: memory limits 3584 MiB on 4096 MiB (0.88x), CPU limits 4 on 2 CPUs (2.00x) of the host (cx22); refused past 1.25x memory or 4x CPU; largest CPU limits: uisp 1.5, traefik 1, uisp-crm 1, cadvisor 0.5`,
    );
  });

  test("past a factor: an issue at `host` (no warning), naming what to lower", () => {
    const c = capacity({ host: existing({ memory: 2048, cpus: 2 }), services: madam });
    expect(capacityWarning("Pulumi.madam.yaml", c)).toBeUndefined();
    expect(capacityIssue("Pulumi.madam.yaml", c)).toEqual({
      file: "Pulumi.madam.yaml",
      path: HOST,
      message:
        "the containers' limits overcommit the host: memory limits 3584 MiB on 2048 MiB (1.75x), CPU limits 4 on 2 CPUs (2.00x) of the host (declared), memory past 1.25x (MEMORY_OVERCOMMIT) of model/capacity.ts; expected a larger host, a service moved to another site (`npm run move`), or lower `resources` on the largest memory limits: uisp 2048 MiB, uisp-crm 1024 MiB, cadvisor 256 MiB, traefik 256 MiB",
    });
  });

  test("within the host: neither", () => {
    const c = capacity({ host: hcloud("cx33"), services: madam });
    expect([capacityWarning("f", c), capacityIssue("f", c)]).toEqual([undefined, undefined]);
  });

  test("an existing host without its size: a warning that the capacity is not checked, and what to declare", () => {
    const c = capacity({ host: existing(), services: madam });
    expect(capacityIssue("Pulumi.lady.yaml", c)).toBeUndefined();
    expect(capacityWarning("Pulumi.lady.yaml", c)).toBe(
      `Pulumi.lady.yaml: \`${HOST}.memory\` and \`${HOST}.cpus\` are not set: the capacity of this site is not checked (its limits: 3584 MiB, 4 CPUs); declare the host's size from the provider's bill, such as \`memory: 8g\` and \`cpus: 4\``,
    );
  });

  describe("npm run check on a new site's file", () => {
    const dirs: string[] = [];
    afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true })));
    /** The committed estate and a madam on an existing host of this size, running UISP. */
    const check = (size: Record<string, unknown>) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "check-capacity-"));
      dirs.push(dir);
      for (const f of ["Pulumi.yaml", "Pulumi.master.yaml", "Pulumi.lady.yaml"])
        fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
      const config = servicesSite({
        host: { kind: "existing", address: "madam.qui3tly.cloud", ...size },
        mesh: { sealPublicKey: TEST_SEAL_KEYS.madam!.publicKey },
        // On a host name of its own (lady runs UISP too).
        services: { uisp: { routes: { web: { host: "uisp-madam.qui3tly.cloud" } } } },
      });
      fs.writeFileSync(path.join(dir, "Pulumi.madam.yaml"), YAML.stringify({ config }));
      return checkStackFiles([path.join(dir, "Pulumi.madam.yaml")]);
    };

    test("warns past the host and passes; FAILs past a factor (exit 1), at `host`", () => {
      const warned = check({ memory: "6g", cpus: 4 });
      expect(warned.status).toBe(0);
      expect(warned.lines.filter((l) => l.includes("limits add up"))).toEqual([
        "WARN Pulumi.madam.yaml: `qui3tly-cloud:site.host`: the limits add up to more memory and CPU than the host has: memory limits 6976 MiB on 6144 MiB (1.14x), CPU limits 9.5 on 4 CPUs (2.38x) of the host (declared); refused past 1.25x memory or 4x CPU; largest memory limits: uisp 2048 MiB, uisp-crm 1024 MiB, uisp-postgres 1024 MiB, uisp-rabbitmq 512 MiB, uisp-siridb 512 MiB; largest CPU limits: uisp 1.5, traefik 1, uisp-crm 1, uisp-postgres 1, cadvisor 0.5",
      ]);
      const refused = check({ memory: "4g", cpus: 4 });
      expect(refused).toEqual({
        status: 1,
        lines: [
          expect.stringMatching(
            /^FAIL Pulumi\.madam\.yaml: `qui3tly-cloud:site\.host`: the containers' limits overcommit the host: memory limits 6976 MiB on 4096 MiB \(1\.70x\), .* memory past 1\.25x \(MEMORY_OVERCOMMIT\) of model\/capacity\.ts; /,
          ),
        ],
      });
    });
  });

  test("loadSite refuses an overcommitted site (what `pulumi up` runs first)", () => {
    const config = servicesSite({
      host: { kind: "existing", address: "203.0.113.20", memory: "512m", cpus: 4 },
    });
    expect(() => loadSite(mapSource("Pulumi.lady.yaml", "lady", config))).toThrow(ConfigError);
    expect(() => loadSite(mapSource("Pulumi.lady.yaml", "lady", config))).toThrow(
      /^Pulumi\.lady\.yaml: `qui3tly-cloud:site\.host`: the containers' limits overcommit the host: memory limits \d+ MiB on 512 MiB/,
    );
  });
});

describe("the host's config", () => {
  const hcloudHost = hcloudHostConfig("cx33");
  const load = (host: Record<string, unknown>) => {
    try {
      loadSite(
        mapSource(
          "Pulumi.madam.yaml",
          "madam",
          servicesSite({ host }, { "hcloud:token": { secure: "v1:x" } }),
        ),
      );
    } catch (e) {
      if (e instanceof ConfigError) return e.message;
      throw e;
    }
    return "accepted";
  };

  test.each<[string, Record<string, unknown>, string, RegExp]>([
    [
      "an unknown server type",
      { ...hcloudHost, serverType: "cx99" },
      `${HOST}.serverType`,
      /expected a Hetzner server type of config\/hcloudTypes\.ts: cax11, .*cx22, cx23, .*cx53 \(a newer one is added there/,
    ],
    [
      "an Arm server in the US (cax is sold in the EU only)",
      { ...hcloudHost, serverType: "cax11", location: "ash" },
      `${HOST}.serverType`,
      /`cax11` is not offered in `ash`; expected one of ccx13, .*cpx22, .* there/,
    ],
    [
      "a host memory in the wrong unit",
      { kind: "existing", address: "203.0.113.20", memory: "8gb" },
      `${HOST}.memory`,
      /expected a size such as `512m` or `2g`/,
    ],
    [
      "no CPUs",
      { kind: "existing", address: "203.0.113.20", cpus: 0 },
      `${HOST}.cpus`,
      /expected a positive number of CPUs such as `4`/,
    ],
    [
      "a negative price",
      { kind: "existing", address: "203.0.113.20", monthlyPrice: -1 },
      `${HOST}.monthlyPrice`,
      /expected a price in EUR such as `12.5`/,
    ],
    [
      "memory without CPUs",
      { kind: "existing", address: "203.0.113.20", memory: "8g" },
      `${HOST}.cpus`,
      /^Pulumi\.madam\.yaml: `qui3tly-cloud:site\.host\.cpus`: expected the host's CPU count \(such as `4`\) alongside `host\.memory`$/,
    ],
    [
      "CPUs without memory (a price does not stand in for it)",
      { kind: "existing", address: "203.0.113.20", cpus: 4, monthlyPrice: 6.49 },
      `${HOST}.memory`,
      /^Pulumi\.madam\.yaml: `qui3tly-cloud:site\.host\.memory`: expected the host's memory \(such as `8g`\) alongside `host\.cpus`$/,
    ],
    [
      "a size on an hcloud host (its type says it)",
      { ...hcloudHost, memory: "8g" },
      HOST,
      /unknown field\(s\) `memory`/,
    ],
  ])("refused: %s", (_name, host, field, expected) => {
    const message = load(host);
    expect(message).toContain(`Pulumi.madam.yaml: \`${field}\`: `);
    expect(message).toMatch(expected);
  });

  test.each<[string, Record<string, unknown>]>([
    ["a price alone", { monthlyPrice: 6.49 }],
    ["neither size nor price", {}],
  ])("accepted: %s", (_name, extra) => {
    expect(load({ kind: "existing", address: "203.0.113.20", ...extra })).toBe("accepted");
  });

  test("accepted: an existing host's size and price, memory in MiB", () => {
    const m = loadSite(
      mapSource(
        "Pulumi.lady.yaml",
        "lady",
        servicesSite({
          host: { kind: "existing", address: "203.0.113.20", memory: "8g", cpus: 4, monthlyPrice: 12.5 },
        }),
      ),
    );
    expect(m.host).toEqual({
      kind: "existing",
      address: "203.0.113.20",
      user: "root",
      port: 22,
      memory: 8192,
      cpus: 4,
      monthlyPrice: 12.5,
    });
  });
});
