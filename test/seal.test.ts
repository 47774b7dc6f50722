import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import YAML from "yaml";
import { servicesSite } from "./fixtures";
import { ConfigError } from "../config/errors";
import { mapSource } from "../config/source";
import { checkSealKey } from "../model/seal";
import { loadSite } from "../model/site";
import {
  SEAL_VERSION,
  SealError,
  canonicalJson,
  seal,
  sealKeyPair,
  sealPublicKeyOf,
  unseal,
} from "../render/seal";
import { withSealPublicKey } from "../scripts/stackFile";

/** Sealed boxes with the real node:crypto: no double anywhere in this file. */

const lady = sealKeyPair();
const madam = sealKeyPair();
const SECRET = crypto.randomBytes(32);
const BUNDLE = canonicalJson({ meshAuthKey: "hskey-0123456789abcdef", wireguardPrivateKey: "wg+/=" });

describe("render/seal: ECIES over X25519, HKDF-SHA256, AES-256-GCM", () => {
  test("a key pair: 32-byte halves in base64; the public half derives from the private one", () => {
    for (const k of [k1(lady), k1(madam)]) expect(k).toEqual([32, 32]);
    expect(sealPublicKeyOf(lady.privateKey)).toBe(lady.publicKey);
    expect(lady.publicKey).not.toBe(madam.publicKey);
  });

  test("round trip: sealed for lady, opened by lady's private key; the box carries its version and no plaintext", () => {
    const box = seal(BUNDLE, "lady", lady.publicKey, SECRET);
    expect(box.startsWith(`${SEAL_VERSION}:`)).toBe(true);
    expect(box).not.toContain("hskey");
    expect(Buffer.from(box.slice(SEAL_VERSION.length + 1), "base64").toString("latin1")).not.toContain(
      "hskey",
    );
    // Ephemeral public key (32) + ciphertext (as long as the plaintext) + tag (16).
    expect(Buffer.from(box.slice(SEAL_VERSION.length + 1), "base64")).toHaveLength(32 + BUNDLE.length + 16);
    expect(unseal(box, "lady", lady.privateKey)).toBe(BUNDLE);
  });

  test("deterministic: the same bundle, site, key and secret give the same box; any change gives another", () => {
    const box = seal(BUNDLE, "lady", lady.publicKey, SECRET);
    expect(seal(BUNDLE, "lady", lady.publicKey, SECRET)).toBe(box);
    const others = [
      seal(`${BUNDLE} `, "lady", lady.publicKey, SECRET),
      seal(BUNDLE, "lady", madam.publicKey, SECRET),
      seal(BUNDLE, "lady", lady.publicKey, crypto.randomBytes(32)),
    ];
    // A new ephemeral key each time: the boxes share not even their first 32 bytes.
    for (const o of others) expect(o.slice(0, 40)).not.toBe(box.slice(0, 40));
    expect(new Set([box, ...others]).size).toBe(4);
    // The same object with its keys in another order is the same text, so the same box.
    expect(canonicalJson({ b: 1, a: { d: 2, c: 3 } })).toBe('{"a":{"c":3,"d":2},"b":1}');
  });

  test.each([
    ["another site's private key", (box: string) => unseal(box, "lady", madam.privateKey)],
    // The site's name is associated data: lady's box handed over as madam's does not open, even with the same pair.
    ["another site's name", (box: string) => unseal(box, "madam", lady.privateKey)],
    ["one bit of the ciphertext flipped", (box: string) => unseal(flip(box, 40), "lady", lady.privateKey)],
    ["the tag altered", (box: string) => unseal(flip(box, -1), "lady", lady.privateKey)],
    ["the ephemeral key altered", (box: string) => unseal(flip(box, 2), "lady", lady.privateKey)],
  ])("does not open with %s", (_what, open) => {
    const box = seal(BUNDLE, "lady", lady.publicKey, SECRET);
    expect(() => open(box)).toThrow(SealError);
  });

  test("a wrong key or altered box says what went wrong; not a box, another version or a short one too", () => {
    const box = seal(BUNDLE, "lady", lady.publicKey, SECRET);
    expect(() => unseal(box, "lady", madam.privateKey)).toThrow(
      "it does not open: a private key other than the one it was sealed to, a box made for another site, or an altered box",
    );
    expect(() => unseal(box.replace("v1", "v2"), "lady", lady.privateKey)).toThrow(
      /^expected a box of format `qcloud-seal-v1`, found `qcloud-seal-v2:/,
    );
    expect(() => unseal(`${SEAL_VERSION}:AAAA`, "lady", lady.privateKey)).toThrow("the box is too short");
    expect(() => seal(BUNDLE, "lady", "not-a-key", SECRET)).toThrow(
      "expected site `lady`'s sealing public key as 32 bytes of base64 (44 characters)",
    );
    expect(() => seal(BUNDLE, "lady", lady.publicKey, Buffer.alloc(16))).toThrow(/at least 32 bytes/);
  });
});

describe("the sealing keys in config", () => {
  const source = (mesh: Record<string, unknown>, role = "services") =>
    mapSource(
      "Pulumi.lady.yaml",
      "lady",
      servicesSite(role === "services" ? { mesh } : { role, controlPlane: undefined, mesh }),
    );

  test.each([
    ["not base64", "lady's key"],
    ["31 bytes", Buffer.alloc(31, 1).toString("base64")],
    ["33 bytes", Buffer.alloc(33, 1).toString("base64")],
    // 32 bytes leave 4 bits of the last character unused: `B` sets one of them, so it is no key's encoding.
    ["non-canonical base64", `${lady.publicKey.slice(0, 42)}B=`],
  ])("`mesh.sealPublicKey` %s: file and field named", (_what, key) => {
    expect(() => loadSite(source({ sealPublicKey: key }))).toThrow(
      "Pulumi.lady.yaml: `qui3tly-cloud:site.mesh.sealPublicKey`: expected an X25519 public key: 32 bytes of base64 (44 characters), as `npm run seal-key` writes it",
    );
  });

  test("a control plane has none: it makes the keys and opens nothing", () => {
    expect(() => loadSite(source({ sealPublicKey: lady.publicKey }, "control-plane"))).toThrow(
      "Pulumi.lady.yaml: `qui3tly-cloud:site.mesh.sealPublicKey`: expected no value on a control plane",
    );
  });

  const model = loadSite(source({ sealPublicKey: lady.publicKey }));
  test.each([
    [
      "missing",
      undefined,
      true,
      "Pulumi.lady.yaml: `qui3tly-cloud:sealKey`: missing secret: the private key that opens what `master` seals for this site; run `npm run seal-key -- --stack lady` (then `pulumi up --stack master`)",
    ],
    [
      "in plain text",
      lady.privateKey,
      false,
      "Pulumi.lady.yaml: `qui3tly-cloud:sealKey`: expected a secret, found plain text: make a new pair with `npm run seal-key -- --stack lady` (this one is exposed)",
    ],
    [
      "not a key",
      "abc",
      true,
      "Pulumi.lady.yaml: `qui3tly-cloud:sealKey`: expected an X25519 private key: 32 bytes of base64 (44 characters); run `npm run seal-key -- --stack lady`",
    ],
    [
      "another pair's",
      madam.privateKey,
      true,
      `Pulumi.lady.yaml: \`qui3tly-cloud:sealKey\`: expected the private half of \`qui3tly-cloud:site.mesh.sealPublicKey\` (${lady.publicKey}); it is another key's: set the matching one, or run \`npm run seal-key -- --stack lady\` and then \`pulumi up --stack master\``,
    ],
  ])("`sealKey` %s is refused, with the command that fixes it", (_what, key, secret, message) => {
    expect(() => checkSealKey(model, key, secret)).toThrow(ConfigError);
    expect(() => checkSealKey(model, key, secret)).toThrow(message);
  });

  test("the matching private half passes; a control plane needs none", () => {
    expect(() => checkSealKey(model, lady.privateKey, true)).not.toThrow();
    expect(() => checkSealKey({ ...model, controlPlane: "lady" }, undefined, true)).not.toThrow();
  });
});

function k1(k: { privateKey: string; publicKey: string }): number[] {
  return [Buffer.from(k.privateKey, "base64").length, Buffer.from(k.publicKey, "base64").length];
}

/** The box with one bit flipped at a byte of its body (negative: from the end). */
function flip(box: string, at: number): string {
  const prefix = `${SEAL_VERSION}:`;
  const raw = Buffer.from(box.slice(prefix.length), "base64");
  const i = at < 0 ? raw.length + at : at;
  raw[i] = raw[i]! ^ 1;
  return prefix + raw.toString("base64");
}

describe("npm run seal-key writes the public half into the stack file", () => {
  test("only `mesh.sealPublicKey` changes: comments, other keys and what Pulumi wrote stay", () => {
    const committed = fs.readFileSync(path.join(__dirname, "..", "Pulumi.lady.yaml"), "utf8");
    const withSecret = `${committed}  qui3tly-cloud:sealKey:\n    secure: v1:abc\nencryptionsalt: v1:salt\n`;
    const text = withSealPublicKey(withSecret, madam.publicKey);
    expect(text).toContain(`      sealPublicKey: ${madam.publicKey}\n`);
    const before = withSecret.split("\n").filter((l) => !l.includes("sealPublicKey"));
    expect(text.split("\n").filter((l) => !l.includes("sealPublicKey"))).toEqual(before);
    const site = loadSite(mapSource("Pulumi.lady.yaml", "lady", YAML.parse(text).config));
    expect(site.mesh.sealPublicKey).toBe(madam.publicKey);
  });
});
