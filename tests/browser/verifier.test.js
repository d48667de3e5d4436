// The receipt verifier page (crates/server/src/pages/verifier.html) in a real browser: a real
// receipt from the running service is verified; the same receipt altered is refused at the check
// the alteration breaks, each with its own message; nothing is requested but the page itself
// (from the service and from a saved file, with the network cut); the keyboard alone works; no
// WCAG A or AA violation; and it fits a 360-px phone.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import {
  Api, VIEWPORTS, checkAccessibility, launchBrowser, screenshot, startService,
} from "./lib/harness.js";

const PAGE = "/app/verifier.html";

let service, chrome, receipt, vkey, entry;

before(async () => {
  service = await startService();
  const admin = new Api(service.base, service.admin);
  const club = await admin.earnPartner("Riverside Lunch Club", 100);
  const member = await club.api.member("M-0001");
  const other = await club.api.member("M-0002");
  // The member's entry, then more after it, so its proof has several hashes on both sides.
  entry = await club.api.earn(member, 150, "lunch club", "R-1042");
  await club.api.earn(other, 60, "befriending", "R-1043");
  await club.api.earn(other, 45, "gardening", "R-1044");
  receipt = await member.api.receipt(entry.id);
  vkey = await admin.verifierKey();
  chrome = await launchBrowser();
});

after(async () => {
  await chrome?.close();
  await service?.stop();
});

/** A new page at `viewport`, recording every request it makes. */
async function open(viewport = VIEWPORTS.desktop, url = service.base + PAGE) {
  const context = await chrome.browser.newContext({ viewport });
  // A page that does nothing (its script blocked, say) fails in seconds, not Playwright's 30.
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const requests = [];
  page.on("request", (request) => requests.push(request.url()));
  await page.goto(url);
  return { context, page, requests };
}

/** Pastes a receipt and a key, checks, and returns what the page says. */
async function check(page, receiptText, keyText) {
  await page.fill("#receipt", receiptText);
  await page.fill("#key", keyText);
  await page.click("#check");
  await page.waitForSelector("#result[data-outcome]:not([hidden])");
  return page.evaluate(() => {
    const result = document.getElementById("result");
    return {
      outcome: result.dataset.outcome,
      failedCheck: result.dataset.failedCheck,
      reason: result.dataset.reason,
      title: document.getElementById("result-title").textContent,
      summary: document.getElementById("result-summary").textContent,
      details: document.getElementById("result-entry").innerText,
      focused: document.activeElement?.id,
    };
  });
}

// The receipt's parts, to alter one at a time as a forger would.
function parts(text) {
  const lines = text.split("\n");
  return { lines, extra: Buffer.from(lines[1].slice("extra ".length), "base64").toString("utf8") };
}
function withEntry(text, entryText) {
  const { lines } = parts(text);
  lines[1] = `extra ${Buffer.from(entryText, "utf8").toString("base64")}`;
  return lines.join("\n");
}
function proofLines(text) {
  const { lines } = parts(text);
  const first = 3;
  let end = first;
  while (lines[end] !== "") end += 1;
  return { lines, first, end };
}
/** A verifier key of a fresh Ed25519 key, named `name`: another ledger's key. */
function otherKey(name) {
  const { publicKey } = generateKeyPairSync("ed25519");
  const raw = Buffer.concat([Buffer.of(1), Buffer.from(publicKey.export({ format: "jwk" }).x, "base64url")]);
  const id = createHash("sha256").update(Buffer.concat([Buffer.from(`${name}\n`), raw])).digest().subarray(0, 4);
  return `${name}+${id.toString("hex")}+${raw.toString("base64")}`;
}

describe("the verifier page", () => {
  test("verifies a real receipt and says what it proves, at 360 px and on a desktop", async () => {
    for (const [name, viewport] of Object.entries(VIEWPORTS)) {
      const { context, page } = await open(viewport);
      const result = await check(page, receipt, vkey);
      assert.equal(result.outcome, "verified", `${name}: ${result.summary}`);
      assert.equal(result.title, "Verified");
      assert.match(result.summary, new RegExp(`entries, and this entry is number ${entry.seq} in it`));
      // What it proves, in plain words: the amount, what for, who, when.
      assert.match(result.details, /2 hours 30 minutes \(150 minutes/);
      assert.match(result.details, /lunch club/);
      assert.match(result.details, /R-1042/);
      assert.ok(result.details.includes(entry.credit), "the member's account");
      assert.ok(result.details.includes(entry.effective), "the day the time was given");
      assert.equal(result.focused, "result-title", "the focus moves to the outcome");
      // Nothing is wider than the screen: no sideways scrolling on a phone.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${name}: ${overflow} px wider than the viewport`);
      await screenshot(page, `verifier-verified-${name}`);
      await checkAccessibility(page, `verified, ${name}`);
      await context.close();
    }
  });

  test("refuses the receipt once altered, naming the check each alteration breaks", async () => {
    const { extra } = parts(receipt);
    const amount = `"minutes":${entry.minutes},`;
    assert.ok(extra.includes(amount), extra);
    const { lines, first, end } = proofLines(receipt);
    assert.ok(end - first >= 2, `a proof of ${end - first} hashes`);
    const replaced = [...lines];
    replaced[first + 1] = createHash("sha256").update("another subtree").digest("base64");
    const removed = [...lines];
    removed.splice(first + 1, 1);
    // The checkpoint's signature: its last line, the key id then 64 bytes; one bit of them flipped.
    const signatureAt = lines.findLastIndex((l) => l.startsWith("\u2014 "));
    const [dash, signer, signature] = lines[signatureAt].split(" ");
    const flipped = Buffer.from(signature, "base64");
    flipped[20] ^= 1;
    const forged = [...lines];
    forged[signatureAt] = [dash, signer, flipped.toString("base64")].join(" ");
    // The tree size the checkpoint states, changed under the ledger's signature.
    const sizeAt = signatureAt - 3;
    const resized = [...lines];
    resized[sizeAt] = String(Number(lines[sizeAt]) + 1);
    const origin = vkey.split("+")[0];

    const cases = [
      ["the amount changed", withEntry(receipt, extra.replace(amount, `"minutes":${entry.minutes * 10},`)), vkey, "inclusion", "rootMismatch"],
      ["the amount changed, carelessly", withEntry(receipt, extra.replace(amount, `"minutes": ${entry.minutes * 10},`)), vkey, "entry", "entryNotCanonical"],
      ["the entry's number changed", withEntry(receipt, extra.replace(`"seq":${entry.seq},`, `"seq":${entry.seq + 1},`)), vkey, "entry", "entrySeq"],
      ["a proof hash changed", replaced.join("\n"), vkey, "inclusion", "rootMismatch"],
      ["a proof hash removed", removed.join("\n"), vkey, "inclusion", "proofLength"],
      ["the checkpoint's signature changed", forged.join("\n"), vkey, "signature", "badSignature"],
      ["the checkpoint's size changed", resized.join("\n"), vkey, "signature", "badSignature"],
      ["another ledger's key of the same name", receipt, otherKey(origin), "signature", "noSignatureByKey"],
      ["another ledger's key", receipt, otherKey("other.example/timecredits"), "signature", "noSignatureByKey"],
      ["a mistyped key id", receipt, vkey.replace(/\+([0-9a-f]{8})\+/, (_, id) => `+${id.slice(0, 7)}${id[7] === "0" ? "1" : "0"}+`), "key", "badKeyId"],
      ["not a receipt", "hello", vkey, "receipt", "notReceipt"],
    ];
    const { context, page } = await open();
    const seen = new Map();
    for (const [what, receiptText, keyText, failedCheck, reason] of cases) {
      const result = await check(page, receiptText, keyText);
      assert.equal(result.outcome, "failed", `${what}: ${result.summary}`);
      assert.equal(result.title, "Not verified", what);
      assert.deepEqual([result.failedCheck, result.reason], [failedCheck, reason], `${what}: ${result.summary}`);
      assert.equal(result.details, "", `${what}: nothing of the entry is shown as proven`);
      seen.set(result.summary, what);
    }
    // Each alteration is told in words of its own, but for the checkpoint's size and its
    // signature: a changed size is a signature that no longer matches, in the same words.
    assert.equal(seen.size, cases.length - 1, [...seen.values()].join(", "));
    // Checked again once verified: the page does not keep an old outcome.
    assert.equal((await check(page, receipt, vkey)).outcome, "verified");
    await screenshot(page, "verifier-verified-again-desktop");
    await check(page, forged.join("\n"), vkey);
    await screenshot(page, "verifier-refused-desktop");
    await checkAccessibility(page, "refused");
    await context.close();
  });

  test("ties a field's error to the field", async () => {
    const { context, page } = await open(VIEWPORTS.phone);
    await check(page, "", vkey);
    const receiptError = await page.evaluate(() => {
      const field = document.getElementById("receipt");
      return {
        invalid: field.getAttribute("aria-invalid"),
        describedBy: field.getAttribute("aria-describedby"),
        error: document.getElementById("receipt-error").textContent,
      };
    });
    assert.equal(receiptError.invalid, "true");
    assert.ok(receiptError.describedBy.split(" ").includes("receipt-error"));
    assert.match(receiptError.error, /Paste a receipt/);
    await screenshot(page, "verifier-field-error-phone");
    await checkAccessibility(page, "a field's error");
    const result = await check(page, receipt, "not a key");
    assert.equal(result.reason, "badKey");
    assert.equal(await page.getAttribute("#key", "aria-invalid"), "true");
    assert.equal(await page.getAttribute("#receipt", "aria-invalid"), null, "the fixed field is no longer marked");
    await context.close();
  });

  test("works with the keyboard alone, in the order the fields are read", async () => {
    const { context, page } = await open(VIEWPORTS.phone);
    const order = [];
    for (let i = 0; i < 5; i += 1) {
      await page.keyboard.press("Tab");
      order.push(await page.evaluate(() => document.activeElement?.id));
    }
    assert.deepEqual(order, ["lang", "receipt", "receipt-file", "key", "check"]);
    await page.focus("#receipt");
    await page.keyboard.insertText(receipt);
    await page.focus("#key");
    await page.keyboard.insertText(vkey);
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#result[data-outcome]:not([hidden])");
    assert.equal(await page.getAttribute("#result", "data-outcome"), "verified");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "result-title");
    // The focus is visible: an outline of at least 2 px on the focused button.
    await page.focus("#check");
    const outline = await page.evaluate(() => parseFloat(getComputedStyle(document.activeElement).outlineWidth));
    assert.ok(outline >= 2, `outline ${outline}px`);
    await context.close();
  });

  test("speaks Spanish when asked, the outcome included", async () => {
    const { context, page } = await open(VIEWPORTS.phone);
    await check(page, receipt, vkey);
    await page.selectOption("#lang", "es");
    assert.equal(await page.getAttribute("html", "lang"), "es");
    assert.equal(await page.textContent("#result-title"), "Verificado");
    assert.match(await page.textContent("#result-summary"), new RegExp(`este apunte es el número ${entry.seq}`));
    assert.match(await page.textContent("#check"), /Comprobar el recibo/);
    await screenshot(page, "verifier-verified-es-phone");
    await checkAccessibility(page, "in Spanish");
    await context.close();
  });

  test("requests nothing but itself, served or saved, with the network cut", async () => {
    // Served: the page loads, then the network goes; the check needs none of it.
    const served = await open();
    await served.context.setOffline(true);
    assert.equal((await check(served.page, receipt, vkey)).outcome, "verified");
    assert.deepEqual(served.requests, [service.base + PAGE]);
    // Saved: the file a member downloads, byte for byte, opened from disk with no network at all.
    const response = await fetch(service.base + PAGE);
    const bytes = Buffer.from(await response.arrayBuffer());
    const digest = response.headers.get("repr-digest");
    assert.equal(digest, `sha-256=:${createHash("sha256").update(bytes).digest("base64")}:`);
    const dir = await mkdtemp(path.join(tmpdir(), "timecredits-saved-"));
    const file = path.join(dir, "verifier.html");
    await writeFile(file, bytes);
    const context = await chrome.browser.newContext({ viewport: VIEWPORTS.phone, offline: true });
    context.setDefaultTimeout(10_000);
    const page = await context.newPage();
    const requests = [];
    page.on("request", (request) => requests.push(request.url()));
    await page.goto(pathToFileURL(file).href);
    const result = await check(page, receipt, vkey);
    assert.equal(result.outcome, "verified", result.summary);
    assert.deepEqual(requests, [pathToFileURL(file).href]);
    await screenshot(page, "verifier-saved-file-phone");
    await context.close();
    await served.context.close();
    await rm(dir, { recursive: true, force: true });
  });
});
