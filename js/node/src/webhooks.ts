// Verification of keyplane's webhooks, per the Standard Webhooks spec:
// headers webhook-id, webhook-timestamp and webhook-signature (space-separated
// "v1,<base64 HMAC-SHA256(secret, `${id}.${timestamp}.${body}`)>"), a secret
// "whsec_<base64>", a timestamp within 5 minutes. WebCrypto only: no dependency.

export class WebhookVerificationError extends Error {
  override name = "WebhookVerificationError";
}

export interface WebhookVerifyOptions {
  /** toleranceSeconds is how far the timestamp may be from now; default 300. */
  toleranceSeconds?: number;
  /** now is the clock in ms; default Date.now. */
  now?: () => number;
}

export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

/** WebhookEvent is the body keyplane sends: `{type, timestamp, data}`. */
export interface WebhookEvent<T = Record<string, unknown>> {
  type: string;
  timestamp: string;
  data: T;
}

const enc = new TextEncoder();

function header(h: WebhookHeaders, name: string): string | undefined {
  if (typeof (h as Headers).get === "function") return (h as Headers).get(name) ?? undefined;
  const rec = h as Record<string, string | string[] | undefined>;
  const v = rec[name] ?? rec[Object.keys(rec).find((k) => k.toLowerCase() === name) ?? ""];
  return Array.isArray(v) ? v[0] : v;
}

function decodeSecret(secret: string): Uint8Array<ArrayBuffer> {
  if (!secret) throw new TypeError("keyplane: empty webhook secret");
  const b64 = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret;
  return new Uint8Array(Buffer.from(b64, "base64"));
}

/**
 * Webhook verifies (and, for tests, signs) messages for one endpoint's
 * secrets: pass both during a rotation's overlap.
 */
export class Webhook {
  private readonly keys: Promise<CryptoKey[]>;
  private readonly tolerance: number;
  private readonly now: () => number;

  constructor(secrets: string | string[], opts: WebhookVerifyOptions = {}) {
    const list = Array.isArray(secrets) ? secrets : [secrets];
    if (list.length === 0) throw new TypeError("keyplane: no webhook secret");
    const raw = list.map(decodeSecret);
    this.keys = Promise.all(
      raw.map((k) => crypto.subtle.importKey("raw", k, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"])),
    );
    this.tolerance = opts.toleranceSeconds ?? 300;
    this.now = opts.now ?? Date.now;
  }

  /**
   * verify checks the headers against the raw body (the exact bytes
   * received: parse JSON only afterwards) and returns the parsed event.
   * It throws WebhookVerificationError when anything is missing, stale or wrong.
   */
  async verify<T = Record<string, unknown>>(body: string | Uint8Array, headers: WebhookHeaders): Promise<WebhookEvent<T>> {
    const id = header(headers, "webhook-id");
    const ts = header(headers, "webhook-timestamp");
    const sigs = header(headers, "webhook-signature");
    if (!id || !ts || !sigs) throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature");
    if (!/^\d+$/.test(ts)) throw new WebhookVerificationError("invalid webhook-timestamp");
    const seconds = Number(ts);
    const nowSeconds = Math.floor(this.now() / 1000);
    if (seconds < nowSeconds - this.tolerance) throw new WebhookVerificationError("message timestamp too old");
    if (seconds > nowSeconds + this.tolerance) throw new WebhookVerificationError("message timestamp too new");
    const bodyBytes = typeof body === "string" ? enc.encode(body) : body;
    const signed = concat(enc.encode(`${id}.${ts}.`), bodyBytes);
    const keys = await this.keys;
    for (const part of sigs.split(" ")) {
      const comma = part.indexOf(",");
      if (comma < 0 || part.slice(0, comma) !== "v1") continue;
      let mac: Uint8Array<ArrayBuffer>;
      try {
        mac = new Uint8Array(Buffer.from(part.slice(comma + 1), "base64"));
      } catch {
        continue;
      }
      if (mac.length !== 32) continue;
      for (const key of keys) {
        // HMAC verify compares in constant time.
        if (await crypto.subtle.verify("HMAC", key, mac, signed)) {
          const text = typeof body === "string" ? body : new TextDecoder().decode(body);
          try {
            return JSON.parse(text) as WebhookEvent<T>;
          } catch {
            throw new WebhookVerificationError("the signed body is not JSON");
          }
        }
      }
    }
    throw new WebhookVerificationError("no matching signature");
  }

  /** sign returns the webhook-signature value for a message, with the first secret (for tests of receivers). */
  async sign(id: string, timestampSeconds: number, body: string): Promise<string> {
    const [key] = await this.keys;
    const mac = await crypto.subtle.sign("HMAC", key!, enc.encode(`${id}.${timestampSeconds}.${body}`));
    return "v1," + Buffer.from(mac).toString("base64");
  }
}

/** verifyWebhook is `new Webhook(secret, opts).verify(body, headers)`. */
export function verifyWebhook<T = Record<string, unknown>>(
  secret: string | string[],
  body: string | Uint8Array,
  headers: WebhookHeaders,
  opts?: WebhookVerifyOptions,
): Promise<WebhookEvent<T>> {
  return new Webhook(secret, opts).verify<T>(body, headers);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
