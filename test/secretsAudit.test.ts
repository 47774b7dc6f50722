import {
  configSecrets,
  deploymentSecrets,
  findLeaks,
  fingerprint,
  undeclared,
} from "../scripts/secretsAudit";

/** A value as `pulumi stack export --show-secrets` writes a secret: the signature, and the JSON of its value. */
const SIG = { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270" };
const secret = (v: unknown) => ({ ...SIG, plaintext: JSON.stringify(v) });

const PASSWORD = "Zx9-long-generated-password";
const AUTH_KEY = "hskey-auth-0123456789abcdef";
const SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----";
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey";
const urn = (type: string, name: string) => `urn:pulumi:lady::qui3tly-cloud::${type}::${name}`;

const exported = {
  version: 3,
  deployment: {
    resources: [
      {
        urn: urn("random:index/randomPassword:RandomPassword", "lady-nextcloud-db"),
        type: "random:index/randomPassword:RandomPassword",
        outputs: { length: 32, result: secret(PASSWORD), special: false },
      },
      {
        urn: urn("pulumi:pulumi:Stack", "qui3tly-cloud-lady"),
        type: "pulumi:pulumi:Stack",
        outputs: {
          controlPlane: secret({ meshAuthKeys: { lady: AUTH_KEY, master: "short" } }),
          name: "lady.mesh.qui3tly.cloud",
        },
      },
      {
        // A secret connection holding a secret: the nested marker is not a value.
        urn: urn("command:remote:Command", "lady-docker"),
        type: "command:remote:Command",
        outputs: {
          connection: secret({
            host: "127.0.0.1",
            hostKey: HOST_KEY,
            privateKey: { ...SIG, value: SSH_KEY },
          }),
        },
      },
      {
        // Docker marks the whole env list secret for one secret in it: none of it counts here.
        urn: urn("docker:index/container:Container", "lady-nextcloud-db"),
        type: "docker:index/container:Container",
        outputs: { envs: secret(["TZ=Europe/Podgorica", `POSTGRES_PASSWORD=${PASSWORD}`]) },
      },
    ],
  },
};

describe("audit:secrets", () => {
  test("collects the long strings inside secret outputs, named by resource, each once; not docker's echoes", () => {
    expect(deploymentSecrets(exported)).toEqual([
      {
        value: PASSWORD,
        source: `${urn("random:index/randomPassword:RandomPassword", "lady-nextcloud-db")}.outputs.result`,
      },
      {
        value: AUTH_KEY,
        source: `${urn("pulumi:pulumi:Stack", "qui3tly-cloud-lady")}.outputs.controlPlane.meshAuthKeys.lady`,
      },
      {
        value: HOST_KEY,
        source: `${urn("command:remote:Command", "lady-docker")}.outputs.connection.hostKey`,
      },
      {
        value: SSH_KEY,
        source: `${urn("command:remote:Command", "lady-docker")}.outputs.connection.privateKey`,
      },
    ]);
  });

  test("secret config keys only; what plain config declares is not a secret", () => {
    const config = {
      "qui3tly-cloud:sshPrivateKey": { value: SSH_KEY, secret: true },
      // As the CLI prints an object: its JSON, and the object.
      "qui3tly-cloud:site": {
        value: JSON.stringify({ host: { hostKey: HOST_KEY } }),
        objectValue: { host: { hostKey: HOST_KEY }, name: "a plain value long enough" },
        secret: false,
      },
      "qui3tly-cloud:note": { value: JSON.stringify({ also: "a plain object's JSON" }), secret: false },
    };
    expect(configSecrets(config)).toEqual([{ value: SSH_KEY, source: "config qui3tly-cloud:sshPrivateKey" }]);
    expect(undeclared(deploymentSecrets(exported), config).map((s) => s.value)).toEqual([
      PASSWORD,
      AUTH_KEY,
      SSH_KEY,
    ]);
  });

  test("finds a secret as is and base64-encoded, names where by a fingerprint, and passes clean text", () => {
    const secrets = deploymentSecrets(exported);
    const leaks = findLeaks(
      secrets,
      new Map([
        ["engine log", `TS_AUTHKEY=${AUTH_KEY}\n`],
        ["user data", `write_files: [{encoding: b64, content: ${Buffer.from(PASSWORD).toString("base64")}}]`],
        ["clean", "TS_AUTHKEY=[secret] short lady.mesh.qui3tly.cloud TZ=Europe/Podgorica"],
      ]),
    );
    expect(leaks).toEqual([
      {
        where: "engine log",
        source: secrets[1]!.source,
        fingerprint: fingerprint(AUTH_KEY),
        encoding: "plain",
      },
      {
        where: "user data",
        source: secrets[0]!.source,
        fingerprint: fingerprint(PASSWORD),
        encoding: "base64",
      },
    ]);
    expect(JSON.stringify(leaks)).not.toContain("hskey-auth");
  });
});
