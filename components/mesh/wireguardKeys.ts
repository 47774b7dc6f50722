import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { wireguardPrivateKey, wireguardPublicKey } from "../../render/wireguard";

export interface WireguardKeysArgs {
  /** The sites with a tunnel. */
  readonly sites: readonly string[];
}

/**
 * The tunnels' X25519 key pairs, made on the control plane (so no two site stacks wait on each other): random
 * bytes kept in state as a secret, stable across runs; the public half derived with node:crypto.
 */
export class WireguardKeys extends pulumi.ComponentResource {
  /** Private keys by site: secret. */
  public readonly privateKeys: pulumi.Output<Record<string, string>>;
  /** Public keys by site. */
  public readonly publicKeys: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: WireguardKeysArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:mesh:WireguardKeys", name, {}, opts);
    const priv: Record<string, pulumi.Output<string>> = {};
    const pub: Record<string, pulumi.Output<string>> = {};
    for (const site of args.sites) {
      const bytes = new random.RandomBytes(`${name}-${site}`, { length: 32 }, { parent: this });
      priv[site] = pulumi.secret(bytes.base64.apply((b) => wireguardPrivateKey(Buffer.from(b, "base64"))));
      // The public half of a secret is not secret: unwrap it so peers and reviews can see it.
      pub[site] = pulumi.unsecret(priv[site].apply(wireguardPublicKey));
    }
    this.privateKeys = pulumi.secret(pulumi.all(priv));
    this.publicKeys = pulumi.all(pub);
    this.registerOutputs({ privateKeys: this.privateKeys, publicKeys: this.publicKeys });
  }
}
