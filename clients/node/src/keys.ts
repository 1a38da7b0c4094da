/** authd's public keys, from its JWKS: the only keys a token may be verified with. */
import { importJWK, type CryptoKey } from "jose";

import { FetchError } from "./errors.js";

/** The Ed25519 keys of one JWKS answer, by `kid`. */
export type KeySet = ReadonlyMap<string, CryptoKey>;

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * The Ed25519 signing keys of a JWKS document; keys of any other kind or use are skipped. A
 * document without one usable key is an error, so that a broken answer never empties the set.
 */
export async function parseJwks(text: string): Promise<KeySet> {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (e) {
    throw new FetchError("body", `JWKS: ${(e as Error).message}`);
  }
  const list = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) {
    throw new FetchError("body", "JWKS: no keys array");
  }
  const keys = new Map<string, CryptoKey>();
  for (const jwk of list as unknown[]) {
    const usable = usableKey(jwk);
    if (!usable) continue;
    try {
      const key = await importJWK({ kty: "OKP", crv: "Ed25519", x: usable.x }, "EdDSA");
      keys.set(usable.kid, key as CryptoKey);
    } catch {
      // A key that does not import is skipped like a key of another kind.
    }
  }
  if (keys.size === 0) {
    throw new FetchError("no_keys", "the JWKS holds no Ed25519 signing key");
  }
  return keys;
}

/** The `kid` and `x` of an Ed25519 signature key, or `undefined` for any other JWK. */
function usableKey(jwk: unknown): { kid: string; x: string } | undefined {
  if (typeof jwk !== "object" || jwk === null) return undefined;
  const { kty, crv, x, kid, alg, use } = jwk as Record<string, unknown>;
  if (kty !== "OKP" || crv !== "Ed25519") return undefined;
  if (alg !== undefined && alg !== "EdDSA") return undefined;
  if (use !== undefined && use !== "sig") return undefined;
  if (typeof kid !== "string" || kid === "") return undefined;
  if (typeof x !== "string" || !BASE64URL.test(x)) return undefined;
  if (Buffer.from(x, "base64url").length !== 32) return undefined;
  return { kid, x };
}
