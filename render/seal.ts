import * as crypto from "node:crypto";

/**
 * Sealed boxes: what the control plane hands one site through its stack's outputs, readable by that site only.
 * ECIES from node:crypto alone: X25519 between an ephemeral key and the site's public key, HKDF-SHA256 to an
 * AES-256-GCM key and nonce, the site's name and the format's version as associated data (a box sealed for one
 * site does not open as another's, even with the same key pair).
 *
 * The ephemeral key is not random but an HMAC, under a secret only the control plane holds, of the version, the
 * site, its public key and the plaintext: the same bundle sealed again gives the same box, so a second `up`
 * changes no output. That is safe because the HMAC is a PRF: the ephemeral key is as unpredictable as a random
 * one to anyone without the secret, and it is distinct for every distinct (recipient, plaintext). An AES-GCM key
 * and nonce are therefore never reused for two different plaintexts (the only way GCM breaks); what determinism
 * gives away is whether two boxes hold the same plaintext, which the output's diff shows anyway.
 */

/** The format's version: in every box and in its associated data. */
export const SEAL_VERSION = "qcloud-seal-v1";

// DER headers of raw X25519 keys (RFC 8410): node:crypto takes and gives keys in these containers.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");
const KEY_BYTES = 32;
const TAG_BYTES = 16;

/** A box that does not open: a wrong key, a box altered or made for another site, or not a box at all. */
export class SealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SealError";
  }
}

function rawKey(b64: string, what: string): Buffer {
  const raw = Buffer.from(b64, "base64");
  if (raw.length !== KEY_BYTES || raw.toString("base64") !== b64) {
    throw new SealError(`expected ${what} as 32 bytes of base64 (44 characters)`);
  }
  return raw;
}

const privateKeyObject = (raw: Buffer) =>
  crypto.createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" });
const publicKeyObject = (raw: Buffer) =>
  crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: "der", type: "spki" });
const publicRaw = (key: crypto.KeyObject) =>
  (key.type === "private" ? crypto.createPublicKey(key) : key)
    .export({ format: "der", type: "spki" })
    .subarray(SPKI_PREFIX.length);

/** A new X25519 key pair, both halves base64 (raw 32 bytes). */
export function sealKeyPair(): { readonly privateKey: string; readonly publicKey: string } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("x25519");
  return {
    privateKey: privateKey
      .export({ format: "der", type: "pkcs8" })
      .subarray(PKCS8_PREFIX.length)
      .toString("base64"),
    publicKey: publicRaw(publicKey).toString("base64"),
  };
}

/** The public half of a private key (base64). */
export function sealPublicKeyOf(privateKey: string): string {
  return publicRaw(privateKeyObject(rawKey(privateKey, "a private key"))).toString("base64");
}

const associatedData = (site: string) => Buffer.from(`${SEAL_VERSION}\0${site}`);

/** The AES-256-GCM key and nonce of one box. */
function boxKey(shared: Buffer, ephemeralPublic: Buffer, recipient: Buffer, site: string) {
  // All-zero: the peer's key is of low order (no secret agreed); node:crypto refuses most, this catches the rest.
  if (shared.every((b) => b === 0)) throw new SealError("the key agreement gave no secret (a low-order key)");
  const okm = Buffer.from(
    crypto.hkdfSync("sha256", shared, Buffer.concat([ephemeralPublic, recipient]), associatedData(site), 44),
  );
  return { key: okm.subarray(0, 32), nonce: okm.subarray(32, 44) };
}

/**
 * Seals `plaintext` for `site`, whose public key is `publicKey` (base64). `secret` (at least 32 bytes, kept by
 * the sealer) makes the ephemeral key: the same inputs give the same box. Returns `qcloud-seal-v1:<base64>`, the
 * base64 of the ephemeral public key, the ciphertext and the tag.
 */
export function seal(plaintext: string, site: string, publicKey: string, secret: Buffer): string {
  if (secret.length < 32) throw new Error("the sealing secret must have at least 32 bytes");
  const recipient = rawKey(publicKey, `site \`${site}\`'s sealing public key`);
  const ephemeralRaw = crypto
    .createHmac("sha256", secret)
    .update(associatedData(site))
    .update("\0")
    .update(recipient)
    .update(plaintext, "utf8")
    .digest();
  const ephemeral = privateKeyObject(ephemeralRaw);
  const ephemeralPublic = publicRaw(ephemeral);
  const shared = crypto.diffieHellman({ privateKey: ephemeral, publicKey: publicKeyObject(recipient) });
  const { key, nonce } = boxKey(shared, ephemeralPublic, recipient, site);
  const cipher = crypto.createCipheriv("aes-256-gcm", key, nonce);
  cipher.setAAD(associatedData(site));
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return `${SEAL_VERSION}:${Buffer.concat([ephemeralPublic, body, cipher.getAuthTag()]).toString("base64")}`;
}

/** Opens a box sealed for `site` with the site's private key (base64). Throws SealError if it does not open. */
export function unseal(box: string, site: string, privateKey: string): string {
  const prefix = `${SEAL_VERSION}:`;
  if (!box.startsWith(prefix)) {
    throw new SealError(`expected a box of format \`${SEAL_VERSION}\`, found \`${box.slice(0, 16)}...\``);
  }
  const raw = Buffer.from(box.slice(prefix.length), "base64");
  if (raw.length < KEY_BYTES + TAG_BYTES) throw new SealError("the box is too short");
  const ephemeralPublic = raw.subarray(0, KEY_BYTES);
  const body = raw.subarray(KEY_BYTES, raw.length - TAG_BYTES);
  const priv = privateKeyObject(rawKey(privateKey, "a private key"));
  let shared: Buffer;
  try {
    shared = crypto.diffieHellman({ privateKey: priv, publicKey: publicKeyObject(ephemeralPublic) });
  } catch {
    throw new SealError("the box's ephemeral key is not a usable X25519 key (altered?)");
  }
  const { key, nonce } = boxKey(shared, ephemeralPublic, publicRaw(priv), site);
  const decipher = crypto.createDecipheriv("aes-256-gcm", key, nonce);
  decipher.setAAD(associatedData(site));
  decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8");
  } catch {
    throw new SealError(
      "it does not open: a private key other than the one it was sealed to, a box made for another site, or an altered box",
    );
  }
}

/** JSON with keys sorted at every level: the same object always gives the same text (and so the same box). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}
