/**
 * How the verifier sends its requests. The default is Node's own `http`/`https`, whose sockets
 * do not keep the process alive while the background loop uses them (a held long-poll must not
 * stop a process from exiting);
 * a `fetch` given in the options replaces it (for a proxy or custom TLS), and then an open
 * long-poll keeps the process alive until `close()`.
 */
import * as http from "node:http";
import * as https from "node:https";

/** The part of a `fetch` Response the verifier reads. */
export interface HttpResponse {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}

/** The part of `fetch` the verifier calls; the global `fetch` is one. */
export type FetchLike = (
  url: string,
  init: { method: "GET"; headers: Record<string, string>; signal: AbortSignal },
) => Promise<HttpResponse>;

/**
 * The transport as the client calls it: `background` requests (the loop's) must not keep the
 * process alive; the ones `createVerifier` awaits must. A `FetchLike` ignores the flag.
 */
export type Transport = (
  url: string,
  init: { method: "GET"; headers: Record<string, string>; signal: AbortSignal },
  background: boolean,
) => Promise<HttpResponse>;

/** A larger answer is refused (a full 10,000-entry page is about 2 MB). */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

/** A transport on `node:http`/`node:https`, with its own keep-alive pools. */
export function nodeTransport(): { fetch: Transport; close(): void } {
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 4 });
  const fetch: Transport = (url, init, background) =>
    new Promise<HttpResponse>((resolve, reject) => {
      const target = new URL(url);
      const secure = target.protocol === "https:";
      const request = (secure ? https : http).request(
        target,
        {
          method: init.method,
          headers: init.headers,
          signal: init.signal,
          agent: secure ? httpsAgent : httpAgent,
        },
        (answer) => {
          const chunks: Buffer[] = [];
          let size = 0;
          answer.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_BODY_BYTES) {
              request.destroy(new Error("the answer is too large"));
              return;
            }
            chunks.push(chunk);
          });
          answer.on("error", reject);
          answer.on("close", () => {
            if (!answer.complete) {
              reject(new Error("the connection closed before the answer was complete"));
            }
          });
          answer.on("end", () => {
            const body = Buffer.concat(chunks).toString("utf8");
            const headers = answer.headers;
            resolve({
              status: answer.statusCode ?? 0,
              headers: {
                get(name) {
                  const value = headers[name.toLowerCase()];
                  if (value === undefined) return null;
                  return Array.isArray(value) ? value.join(", ") : value;
                },
              },
              text: () => Promise.resolve(body),
            });
          });
        },
      );
      // The pool unrefs idle sockets; a background request's socket stays so.
      request.on("socket", (socket) => (background ? socket.unref() : socket.ref()));
      request.on("error", reject);
      request.end();
    });
  return {
    fetch,
    close() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
