import { configSecrets, deploymentSecrets, findLeaks, fingerprint } from "../scripts/secretsAudit";

/** A value as `pulumi stack export --show-secrets` writes a secret: the signature, and the JSON of its value. */
const secret = (v: unknown) => ({
  "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
  plaintext: JSON.stringify(v),
});

const exported = {
  version: 3,
  deployment: {
    resources: [
      {
        urn: "urn:pulumi:lady::qui3tly-cloud::random:index/randomPassword:RandomPassword::lady-nextcloud-db",
        outputs: { length: 32, result: secret("Zx9-long-generated-password"), special: false },
      },
      {
        urn: "urn:pulumi:lady::qui3tly-cloud::pulumi:pulumi:Stack::qui3tly-cloud-lady",
        outputs: {
          controlPlane: secret({ meshAuthKeys: { lady: "hskey-auth-0123456789abcdef", master: "short" } }),
          name: "lady.mesh.qui3tly.cloud",
        },
      },
    ],
  },
};

describe("audit:secrets", () => {
  test("collects every long string inside a secret value, named by its resource, each once", () => {
    expect(deploymentSecrets(exported)).toEqual([
      {
        value: "Zx9-long-generated-password",
        source:
          "urn:pulumi:lady::qui3tly-cloud::random:index/randomPassword:RandomPassword::lady-nextcloud-db.outputs.result",
      },
      {
        value: "hskey-auth-0123456789abcdef",
        source:
          "urn:pulumi:lady::qui3tly-cloud::pulumi:pulumi:Stack::qui3tly-cloud-lady.outputs.controlPlane.meshAuthKeys.lady",
      },
    ]);
  });

  test("secret config keys only", () => {
    expect(
      configSecrets({
        "qui3tly-cloud:sshPrivateKey": { value: "-----BEGIN OPENSSH PRIVATE KEY-----", secret: true },
        "qui3tly-cloud:site": { value: "a plain value long enough", secret: false },
      }),
    ).toEqual([
      { value: "-----BEGIN OPENSSH PRIVATE KEY-----", source: "config qui3tly-cloud:sshPrivateKey" },
    ]);
  });

  test("finds a secret as is and base64-encoded, names where by a fingerprint, and passes clean text", () => {
    const secrets = deploymentSecrets(exported);
    const b64 = Buffer.from("Zx9-long-generated-password").toString("base64");
    const leaks = findLeaks(
      secrets,
      new Map([
        ["engine log", "TS_AUTHKEY=hskey-auth-0123456789abcdef\n"],
        ["user data", `write_files: [{encoding: b64, content: ${b64}}]`],
        ["clean", "TS_AUTHKEY=[secret] short lady.mesh.qui3tly.cloud"],
      ]),
    );
    expect(leaks).toEqual([
      {
        where: "engine log",
        source: secrets[1]!.source,
        fingerprint: fingerprint("hskey-auth-0123456789abcdef"),
        encoding: "plain",
      },
      {
        where: "user data",
        source: secrets[0]!.source,
        fingerprint: fingerprint("Zx9-long-generated-password"),
        encoding: "base64",
      },
    ]);
    expect(JSON.stringify(leaks)).not.toContain("hskey-auth");
  });
});
