// The browser-test harness: the real `timecredits` binary on a free port with a temporary data
// directory, the API calls a test needs to make a scheme, Debian's headless Chromium driven by
// Playwright, screenshots kept under target/browser-screenshots/, and the axe-core check.
//
// Nothing here downloads anything: playwright-core has no browser of its own (and
// PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 is set for npm ci); Chromium is Debian's package.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtemp, mkdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository's root. */
export const ROOT = path.resolve(here, "../../..");
/** The binary under test: the debug build `cargo test` leaves (TIMECREDITS_BIN to override). */
export const BINARY = process.env.TIMECREDITS_BIN || path.join(ROOT, "target/debug/timecredits");
/** Where screenshots are kept after the run. */
export const SCREENSHOTS = path.join(ROOT, "target/browser-screenshots");
/** Debian's Chromium. */
export const CHROMIUM = "/usr/bin/chromium";
/** How long the service may take to say where it listens. */
const START_TIMEOUT_MS = 20_000;

/**
 * Starts `timecredits serve` on a free loopback port with a fresh data directory, and returns
 * its base URL, the first administrator's key and the password of its sign-in to the pages
 * (`admin`), and `stop()`. The service's log is kept and shown
 * if it exits early.
 */
export async function startService() {
  const dataDir = await mkdtemp(path.join(tmpdir(), "timecredits-browser-"));
  const child = spawn(
    BINARY,
    ["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--data-dir", dataDir],
    // Only what the test gives: an operator's TIMECREDITS_* variables must not leak in.
    { env: { PATH: process.env.PATH, TIMECREDITS_LOG_FORMAT: "json" }, stdio: ["ignore", "ignore", "pipe"] },
  );
  const log = [];
  const lines = createInterface({ input: child.stderr });
  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the service did not start:\n${log.join("\n")}`)), START_TIMEOUT_MS);
    child.once("error", (e) => reject(new Error(`cannot run ${BINARY} (build it with cargo build -p timecredits-server): ${e.message}`)));
    child.once("exit", (code) => reject(new Error(`the service exited with ${code}:\n${log.join("\n")}`)));
    lines.on("line", (line) => {
      log.push(line);
      try {
        const event = JSON.parse(line);
        if (event.message === "timecredits is listening") {
          clearTimeout(timer);
          resolve(event.addr);
        }
      } catch {
        // Not JSON: kept in the log for the error message.
      }
    });
  });
  const admin = (await readFile(path.join(dataDir, "admin-api-key"), "utf8")).trim();
  const adminPassword = (await readFile(path.join(dataDir, "admin-password"), "utf8")).trim();
  return {
    base: `http://${address}`,
    admin,
    adminPassword,
    log,
    async stop() {
      child.removeAllListeners("exit");
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A client of the service's API with one credential. */
export class Api {
  constructor(base, token) {
    this.base = base;
    this.token = token;
  }

  /** Calls the API; returns the body (JSON when it is JSON), failing on any status but `want`. */
  async call(method, route, body, want = method === "POST" ? 201 : 200) {
    const headers = { authorization: `Bearer ${this.token}` };
    if (method === "POST") headers["idempotency-key"] = randomUUID();
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(this.base + route, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (response.status !== want) {
      throw new Error(`${method} ${route}: ${response.status}, wanted ${want}: ${text}`);
    }
    return (response.headers.get("content-type") || "").includes("json") ? JSON.parse(text) : text;
  }

  /** As the first administrator: an earn partner with a budget of `hours`, and its API key. */
  async earnPartner(name, hours) {
    const { partner } = await this.call("POST", "/v1/partners", { name, roles: ["earn"] });
    const { secret } = await this.call("POST", "/v1/api-keys", {
      label: `${name} office`,
      holder: { kind: "partner", id: partner.id },
    });
    await this.call("POST", "/v1/allocations", { partner_id: partner.id, hours, reference: "grant" });
    return { id: partner.id, api: new Api(this.base, secret) };
  }

  /** As a partner: a new member, with their id and credential. */
  async member(reference) {
    const body = await this.call("POST", `/v1/members?reference=${encodeURIComponent(reference)}`);
    return { id: body.member_id, api: new Api(this.base, body.credential) };
  }

  /** As an earn partner: records time given; returns the entry. */
  async earn(member, minutes, activity, reference) {
    const { entry } = await this.call("POST", "/v1/earn", { member_id: member.id, minutes, activity, reference });
    return entry;
  }

  /** A receipt (C2SP tlog-proof text) for an entry the caller may see. */
  receipt(entryId) {
    return this.call("GET", `/v1/entries/${entryId}/receipt`);
  }

  /** The ledger's current verifier key. */
  async verifierKey() {
    return (await this.call("GET", "/v1/ledger/key")).verifier_key;
  }
}

/**
 * Debian's Chromium, headless, nothing in the background (no updates, sync or QUIC). Playwright
 * gives each launch a fresh profile (`--user-data-dir` in a new temporary directory, removed on
 * close; it refuses one passed as an argument). Returns the browser and `close()`.
 */
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  return { browser, close: () => browser.close() };
}

/** Viewports the pages must work at: a small phone and a desktop. */
export const VIEWPORTS = {
  phone: { width: 360, height: 740 },
  desktop: { width: 1280, height: 900 },
};

/** Saves a full-page PNG as target/browser-screenshots/NAME.png; returns its path. */
export async function screenshot(page, name) {
  await mkdir(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

const axeSource = await readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** The WCAG levels checked: A and AA of WCAG 2.0, 2.1 and 2.2. */
export const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];

/**
 * Runs axe-core in the page and fails, listing each violation and the elements it found, if
 * there is any. axe is evaluated through the DevTools protocol, so a page's strict content policy
 * (script hashes only) does not have to be loosened for the test.
 */
export async function checkAccessibility(page, what) {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async (tags) => {
    const results = await window.axe.run(document, { runOnly: { type: "tag", values: tags } });
    return results.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary}`),
    }));
  }, AXE_TAGS);
  if (violations.length > 0) {
    const report = violations
      .map((v) => `- ${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.join("\n    ")}`)
      .join("\n");
    throw new Error(`${what}: ${violations.length} accessibility violation(s):\n${report}`);
  }
}
