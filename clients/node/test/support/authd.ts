/**
 * A real `authd serve` child process for the tests, with its own SQLite database in a temporary
 * directory and a free loopback port, and the HTTP calls a user makes to it.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

export const PASSWORD = "correct horse battery";

/** The package directory (this file is dist-test/support/authd.js once built). */
const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The authd binary: `AUTHD_BIN`, else `../../target/release/authd`; never a silent skip. */
export function authdBinary(): string {
  const given = process.env.AUTHD_BIN;
  const path = given ? resolve(given) : resolve(PACKAGE_DIR, "..", "..", "target", "release", "authd");
  if (!existsSync(path)) {
    throw new Error(
      `the authd binary is missing at ${path}: build it with \`cargo build --release\` in the ` +
        "repository root (or point AUTHD_BIN at one); these tests need a live authd",
    );
  }
  return path;
}

/** A port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The environment of an authd process: nothing of ours, plus its own settings. */
function environment(databaseUrl: string, listen?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("AUTHD_") && name !== "DATABASE_URL" && name !== "RUST_LOG") env[name] = value;
  }
  Object.assign(env, {
    DATABASE_URL: databaseUrl,
    AUTHD_RATE_LIMITS: "off",
    AUTHD_REUSE_GRACE_SECS: "0",
    AUTHD_LOG_FORMAT: "json",
    RUST_LOG: "warn",
  });
  if (listen) env.AUTHD_LISTEN = listen;
  return env;
}

/** What a login answers in body delivery. */
export interface Tokens {
  access_token: string;
  refresh_token: string;
  session_id: string;
}

/** A running authd, on its own database. */
export class Authd {
  readonly binary = authdBinary();
  readonly dir = mkdtempSync(join(tmpdir(), "authd-node-kit-"));
  readonly databaseUrl = `sqlite://${join(this.dir, "authd.db")}?mode=rwc`;
  #child: ChildProcess | undefined;
  #log = "";
  #port = 0;
  #users = 0;

  /** Starts authd (on a new free port unless `port` is given) and waits for `/healthz`. */
  static async start(): Promise<Authd> {
    const authd = new Authd();
    await authd.serve();
    return authd;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Serves on the same port and database again after {@link stop} (or for the first time). */
  async serve(): Promise<void> {
    if (this.#child) throw new Error("authd is already running");
    if (this.#port === 0) this.#port = await freePort();
    const child = spawn(this.binary, ["serve"], {
      env: environment(this.databaseUrl, `127.0.0.1:${this.#port}`),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (chunk: Buffer) => {
      this.#log = (this.#log + chunk.toString("utf8")).slice(-20_000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    let exited = false;
    child.once("exit", () => {
      exited = true;
    });
    this.#child = child;
    killOnExit.add(child);
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (exited) {
        this.#child = undefined;
        throw new Error(`authd exited at start-up:\n${this.#log}`);
      }
      try {
        const answer = await fetch(`${this.baseUrl}/healthz`);
        if (answer.status === 200) return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`authd did not answer /healthz within 15 s:\n${this.#log}`);
      }
      await sleep(50);
    }
  }

  /** Stops authd (SIGKILL: a real outage, not a goodbye) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((done) => {
        child.once("exit", () => done());
        child.kill("SIGKILL");
      });
    }
    killOnExit.delete(child);
  }

  /** Stops authd and removes its database. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs `authd <args>` on this database and returns its stdout. */
  async cli(...args: string[]): Promise<string> {
    const { stdout } = await run(this.binary, args, { env: environment(this.databaseUrl) });
    return stdout;
  }

  /**
   * Creates a service key with `authd service-keys create` and waits until the server (which
   * reloads its keys every 500 ms) accepts it on the feed.
   */
  async serviceKey(name = "kit", scope = "revocations:read"): Promise<string> {
    const key = (await this.cli("service-keys", "create", "--name", name, "--scope", scope)).trim();
    if (!key.startsWith("authd_sk_"))
      throw new Error(`unexpected service-keys output: ${key.slice(0, 12)}...`);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const answer = await fetch(`${this.baseUrl}/auth/revocations`, {
        headers: { authorization: `Bearer ${key}` },
      });
      await answer.arrayBuffer();
      // A key without the feed's scope answers 403 once it is known.
      if (answer.status === 200 || answer.status === 403) return key;
      if (Date.now() > deadline) throw new Error(`the new service key is still refused (${answer.status})`);
      await sleep(100);
    }
  }

  /** `POST path` with a JSON body (and an access token), expecting `status`. */
  async post(path: string, body: unknown, access?: string, expected = 200): Promise<unknown> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (access) headers.authorization = `Bearer ${access}`;
    const answer = await fetch(`${this.baseUrl}${path}`, {
      method: "POST",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await answer.text();
    if (answer.status !== expected) {
      throw new Error(`POST ${path}: ${answer.status} ${text} (expected ${expected})`);
    }
    return text ? JSON.parse(text) : undefined;
  }

  /** A new, unique email. */
  email(): string {
    this.#users += 1;
    return `user${this.#users}-${process.pid}@example.com`;
  }

  /** Registers `email` and logs it in (body delivery). */
  async user(email = this.email()): Promise<Tokens & { email: string }> {
    await this.post("/auth/register", { email, password: PASSWORD }, undefined, 201);
    return { email, ...(await this.login(email)) };
  }

  /** A new session of `email`. */
  async login(email: string, password = PASSWORD): Promise<Tokens> {
    return (await this.post("/auth/login", { email, password, delivery: "body" })) as Tokens;
  }

  /** `POST /auth/logout?scope=...` with the access token. */
  async logout(access: string, scope: "local" | "others" | "global" = "local"): Promise<void> {
    await this.post(`/auth/logout?scope=${scope}`, undefined, access, 204);
  }

  /** `DELETE /auth/sessions/{id}` with another session's access token. */
  async deleteSession(access: string, sessionId: string): Promise<void> {
    const answer = await fetch(`${this.baseUrl}/auth/sessions/${sessionId}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${access}` },
    });
    await answer.arrayBuffer();
    if (answer.status !== 204) throw new Error(`DELETE /auth/sessions: ${answer.status}`);
  }

  /** `POST /auth/refresh` in body delivery. */
  async refresh(refreshToken: string, expected = 200): Promise<Tokens | undefined> {
    return (await this.post("/auth/refresh", { refresh_token: refreshToken }, undefined, expected)) as
      Tokens | undefined;
  }

  /** The JWKS's first key. */
  async jwk(): Promise<{ kid: string; x: string }> {
    const answer = await fetch(`${this.baseUrl}/.well-known/jwks.json`);
    const { keys } = (await answer.json()) as { keys: { kid: string; x: string }[] };
    if (!keys[0]) throw new Error("authd's JWKS is empty");
    return keys[0];
  }
}

/** Every authd still running is killed when the test process exits, whatever happens. */
const killOnExit = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of killOnExit) child.kill("SIGKILL");
});
