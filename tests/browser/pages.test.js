// The pages under /app/ in a real browser, the whole story: a coordinator registers a member
// and records their hours at the partner desk; the member signs in (in Spanish) and makes a
// spend code; the venue's till shows what it will take, then takes it; the member sees the
// spend and its receipt, and the verifier page accepts that receipt and refuses it once altered.
// Also: a forged form is refused, guessed passwords are throttled, receipts and cards have a
// Print button, every page passes axe-core (WCAG A and AA) and fits a phone.
// Screenshots of each page go to target/browser-screenshots/.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  Api, VIEWPORTS, checkAccessibility, launchBrowser, screenshot, startService,
} from "./lib/harness.js";

let service, chrome, admin, club, pool;

before(async () => {
  service = await startService();
  admin = new Api(service.base, service.admin);
  club = await admin.earnPartner("Riverside Lunch Club", 100);
  const { partner } = await admin.call("POST", "/v1/partners", { name: "Town Pool", roles: ["spend"] });
  pool = partner;
  chrome = await launchBrowser();
});

after(async () => {
  await chrome?.close();
  await service?.stop();
});

/** A staff login for `holder`; returns its password. */
async function staffLogin(username, holder) {
  const made = await admin.call("POST", "/v1/staff-logins", { username, label: username, holder });
  return made.password;
}

/** A new browser context (its own cookies) at `viewport`, in `locale`. */
async function person(viewport = VIEWPORTS.desktop, locale = "en-GB") {
  const context = await chrome.browser.newContext({ viewport, locale });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  return { context, page };
}

/** Submits the form holding `button` and returns the navigation's response. */
async function submit(page, button) {
  const [response] = await Promise.all([page.waitForNavigation(), page.click(button)]);
  return response;
}

async function staffSignIn(page, username, password) {
  await page.goto(service.base + "/app/");
  await page.fill("#username", username);
  await page.fill("#password", password);
  return submit(page, "form[action='/app/sign-in'] button");
}

/** The page's Print button shows (the pages' one script) and opens the browser's Print. */
async function printsWithItsButton(page) {
  await page.evaluate(() => { window.print = () => { window.printed = true; }; });
  await page.click("button[data-print]");
  assert.equal(await page.evaluate(() => window.printed), true);
}

/** Checks the page for WCAG violations, that it fits the viewport, and keeps a screenshot. */
async function inspect(page, name) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${name}: ${overflow} px wider than the viewport`);
  await screenshot(page, `pages-${name}`);
  await checkAccessibility(page, name);
}

describe("the pages", () => {
  test("a coordinator, a member and a till run the scheme, and the member checks the receipt", async () => {
    const deskPassword = await staffLogin("coordinator", { kind: "partner", id: club.id });
    const tillPassword = await staffLogin("till", { kind: "partner", id: pool.id });

    // The partner desk, on a phone: register a member, then record their hours.
    const desk = await person(VIEWPORTS.phone);
    await staffSignIn(desk.page, "coordinator", deskPassword);
    assert.equal(await desk.page.textContent("h1"), "Partner desk");
    await inspect(desk.page, "desk-phone");
    await desk.page.fill("#new-reference", "M-0001");
    await submit(desk.page, "form[action='/app/desk/members'] button");
    const credential = (await desk.page.textContent("#secret")).trim();
    assert.match(credential, /^tcm_/);
    assert.ok(await desk.page.evaluate(() => document.querySelector(".qr img").naturalWidth) > 0, "the credential's QR code");
    await inspect(desk.page, "desk-registered");
    await printsWithItsButton(desk.page);
    await desk.page.goto(service.base + "/app/desk");
    const memberId = await desk.page.getAttribute("input[name='member']", "value");
    await desk.page.check("input[name='member']");
    await desk.page.fill("#activity", "lunch club");
    await desk.page.fill("#hours", "2");
    await desk.page.fill("#minutes", "30");
    await submit(desk.page, "form[action='/app/desk/earn'] button");
    assert.match(await desk.page.textContent("[role=status]"), /Recorded 1 entries/);

    // The member, in Spanish, scans the credential's QR code (the link it holds): the sign-in
    // page opens with the credential filled in and gone from the address; then the balance and a
    // spend code.
    const wallet = await person(VIEWPORTS.phone, "es-ES");
    await wallet.page.goto(service.base + "/app/#credential=" + credential);
    assert.equal(await wallet.page.textContent("h1"), "Iniciar sesión");
    assert.equal(await wallet.page.inputValue("#credential"), credential);
    assert.equal(wallet.page.url(), service.base + "/app/", "the credential left the address");
    await inspect(wallet.page, "sign-in-es");
    await submit(wallet.page, "form[action='/app/member-sign-in'] button");
    assert.equal(await wallet.page.textContent("#balance"), "2:30 horas");
    await inspect(wallet.page, "wallet-es");
    await submit(wallet.page, "form[action='/app/wallet/spend-code'] button");
    const code = (await wallet.page.textContent("#code")).trim();
    assert.match(code, /^[0-9A-Z]{8}$/);
    const qrWidth = await wallet.page.evaluate(() => document.querySelector(".qr img").naturalWidth);
    assert.ok(qrWidth > 0, "the code's QR image is shown");
    await inspect(wallet.page, "spend-code-es");

    // The till, on a tablet-sized desktop: an hour for one adult.
    const till = await person();
    await staffSignIn(till.page, "till", tillPassword);
    await inspect(till.page, "till");
    await till.page.fill("#code", code.toLowerCase());
    await till.page.fill("#activity", "swim");
    await till.page.fill("#hours", "1");
    await submit(till.page, "form[action='/app/till/review'] button");
    // The member sees what is taken before it is taken.
    assert.equal(await till.page.textContent("h1"), "Confirm what is taken");
    assert.equal(await till.page.textContent("dd.big"), "1:00");
    await inspect(till.page, "till-confirm");
    await submit(till.page, "form[action='/app/till/redeem'] button");
    assert.equal(await till.page.textContent("[role=status]"), "Credits taken.");
    await inspect(till.page, "till-receipt");
    await printsWithItsButton(till.page);
    const receiptLink = await till.page.getAttribute("a[href^='/app/receipts/']", "href");

    // The member sees the spend, downloads its receipt and checks it in the verifier page.
    await wallet.page.goto(service.base + "/app/wallet");
    assert.equal(await wallet.page.textContent("#balance"), "1:30 horas");
    const receipt = await (await wallet.context.request.get(service.base + receiptLink)).text();
    assert.match(receipt, /^c2sp.org\/tlog-proof@v1/);
    const vkey = await admin.verifierKey();
    await wallet.page.goto(service.base + "/app/verifier.html");
    const verdict = async (text) => {
      await wallet.page.fill("#receipt", text);
      await wallet.page.fill("#key", vkey);
      await wallet.page.click("#check");
      await wallet.page.waitForSelector("#result[data-outcome]:not([hidden])");
      return wallet.page.getAttribute("#result", "data-outcome");
    };
    assert.equal(await verdict(receipt), "verified");
    // The same receipt with the amount changed (60 minutes made 600) is refused.
    const lines = receipt.split("\n");
    const entry = Buffer.from(lines[1].slice("extra ".length), "base64").toString("utf8");
    lines[1] = "extra " + Buffer.from(entry.replace('"minutes":60', '"minutes":600')).toString("base64");
    assert.notEqual(await verdict(lines.join("\n")), "verified");
    assert.ok(memberId, "the member was listed on the desk");

    // Back at the desk: the latest earns, with a reverse button; a card for the member, its PIN
    // shown once; and a spreadsheet of hours uploaded as a file.
    await desk.page.goto(service.base + "/app/desk");
    assert.equal(await desk.page.locator("form[action='/app/desk/reverse'] button").count(), 1);
    await inspect(desk.page, "desk-latest-earns");
    await desk.page.goto(service.base + `/app/desk/members/${memberId}/card`);
    await submit(desk.page, `form[action='/app/desk/members/${memberId}/card'] button`);
    assert.match((await desk.page.textContent("#pin")).trim(), /^[0-9]{4,6}$/);
    const cardWidth = await desk.page.evaluate(() => document.querySelector(".card img").naturalWidth);
    assert.ok(cardWidth > 0, "the card's image is shown (a browser refuses an SVG that is not well-formed XML)");
    await inspect(desk.page, "desk-card");
    await printsWithItsButton(desk.page);
    await desk.page.goto(service.base + "/app/desk");
    await desk.page.setInputFiles("#sheet", {
      name: "hours.csv",
      mimeType: "text/csv",
      buffer: Buffer.from(`member_id,hours,activity\n${memberId},0:30,gardening\n`),
    });
    await submit(desk.page, "form[action='/app/desk/sheet'] button");
    assert.match(await desk.page.textContent("[role=status]"), /Recorded 1 entries/);
    // A mistyped member number: the field is marked, its message beside it and in the summary.
    await desk.page.fill("#member_id", "M-0001");
    await desk.page.fill("#activity", "lunch club");
    await desk.page.fill("#hours", "1");
    await submit(desk.page, "form[action='/app/desk/earn'] button");
    assert.equal(await desk.page.getAttribute("#member_id", "aria-invalid"), "true");
    assert.match(await desk.page.textContent("#member_id-error"), /not a member number/);
    await inspect(desk.page, "desk-field-error");

    // The office, for the first administrator.
    const office = await person();
    await staffSignIn(office.page, "admin", service.adminPassword);
    assert.equal(await office.page.textContent("h1"), "Programme office");
    assert.equal(await office.page.locator("svg[role=img] rect").count(), 1, "one month of hours");
    await inspect(office.page, "office");
    await Promise.all([desk, wallet, till, office].map((p) => p.context.close()));
  });

  test("a forged form is refused and changes nothing", async () => {
    const password = await staffLogin("coordinator2", { kind: "partner", id: club.id });
    const desk = await person();
    await staffSignIn(desk.page, "coordinator2", password);
    const before = await desk.page.textContent(".figure strong");
    await desk.page.fill("#new-reference", "M-forged");
    await desk.page.evaluate(() => {
      document.querySelector("form[action='/app/desk/members'] input[name=csrf]").value = "forged";
    });
    const response = await submit(desk.page, "form[action='/app/desk/members'] button");
    assert.equal(response.status(), 403);
    await inspect(desk.page, "csrf-refused");
    await desk.page.goto(service.base + "/app/desk");
    assert.equal(await desk.page.textContent(".figure strong"), before);
    assert.equal(await desk.page.locator("text=M-forged").count(), 0);
    await desk.context.close();
  });

  test("guessed passwords are throttled, and the page says for how long", async () => {
    const password = await staffLogin("till2", { kind: "partner", id: pool.id });
    const guesser = await person(VIEWPORTS.phone);
    const statuses = [];
    for (let guess = 0; guess < 6; guess += 1) {
      statuses.push((await staffSignIn(guesser.page, "till2", `guess-${guess}`)).status());
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
    const right = await staffSignIn(guesser.page, "till2", password);
    assert.equal(right.status(), 429);
    assert.match(await guesser.page.textContent("[role=alert]"), /minutes/);
    await inspect(guesser.page, "sign-in-throttled");
    await guesser.context.close();
  });
});
