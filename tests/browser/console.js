// Drives the weir console in Debian's headless Chromium (playwright-core, no browser download).
// Started by tests/integration/console.rs against a real `weir serve` and a real Flink cluster.
// Env: WEIR_CONSOLE_URL, WEIR_API_TOKEN, WEIR_JOB_AUTO (deployed and redeployed),
// WEIR_JOB_MANUAL (waiting for approval), WEIR_SCREENSHOTS (directory), WEIR_PROFILE (a fresh
// Chromium user-data-dir). Exits non-zero with a message on the first failed check.
"use strict";
const { chromium } = require("playwright-core");
const path = require("path");

const base = process.env.WEIR_CONSOLE_URL;
const token = process.env.WEIR_API_TOKEN;
const auto = process.env.WEIR_JOB_AUTO;
const manual = process.env.WEIR_JOB_MANUAL;
const shots = process.env.WEIR_SCREENSHOTS;
const profile = process.env.WEIR_PROFILE;

function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
  console.log("ok: " + what);
}

// Every page is screenshotted, and none may hold the API token (secrets never reach a page).
async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, name + ".png"), fullPage: true });
  check(!(await page.content()).includes(token), name + ": the API token is not on the page");
}

async function rowOf(page, job) {
  const row = page.locator("table.jobs tbody tr", { has: page.locator(`a[href="/jobs/${job}"]`) });
  return (await row.count()) === 1 ? (await row.innerText()) : null;
}

async function main() {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run",
    ],
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);

  // Jobs: both listed with their states.
  await page.goto(base + "/");
  const autoRow = await rowOf(page, auto);
  const manualRow = await rowOf(page, manual);
  check(autoRow && autoRow.includes("Synced") && autoRow.includes("RUNNING"), `${auto} is Synced and RUNNING: ${autoRow}`);
  check(manualRow && manualRow.includes("OutOfSync"), `${manual} is OutOfSync (waiting for approval): ${manualRow}`);
  check((await page.locator(".notice", { hasText: "A plan waits for approval" }).count()) === 1, "the pending plan is announced");
  await shot(page, "01-jobs");
  await page.emulateMedia({ colorScheme: "dark" });
  await shot(page, "01-jobs-dark");
  await page.emulateMedia({ colorScheme: "light" });

  // A filter narrows the list, and stays in the URL.
  await page.selectOption("select[name=sync]", "Synced");
  await page.waitForURL(/sync=Synced/);
  check((await rowOf(page, auto)) !== null, "the Synced filter keeps " + auto);
  check((await rowOf(page, manual)) === null, "the Synced filter hides " + manual);
  await page.fill("input[name=q]", manual);
  await page.selectOption("select[name=sync]", "");
  await page.waitForURL((u) => !u.search.includes("sync=Synced"));
  check((await rowOf(page, auto)) === null && (await rowOf(page, manual)) !== null, "the name search narrows to " + manual);
  await shot(page, "02-jobs-filtered");

  // A job's page: its savepoint lineage after the redeploy, the Flink UI link, the definition.
  await page.goto(base + "/jobs/" + auto);
  const lineage = await page.locator("section", { has: page.locator("#lineage") }).innerText();
  check(lineage.includes("taken by") && lineage.includes("restored"), "the lineage shows a savepoint taken and restored: " + lineage);
  const flink = await page.locator("a", { hasText: "Open in Flink's UI" }).getAttribute("href");
  check(/\/#\/job\/running\/[0-9a-f]{32}\/overview$/.test(flink), "the Flink UI link: " + flink);
  check((await page.locator("section", { has: page.locator("#applies") }).locator("ol.steps li").count()) > 0, "the job's applies list their steps");
  await shot(page, "03-job");

  // The job waiting for approval: why it is out of sync (the pending change and its diff).
  await page.goto(base + "/jobs/" + manual);
  const why = await page.locator("section", { has: page.locator("#pending") }).innerText();
  check(why.includes("create") && why.includes("args"), "the out-of-sync job shows its pending change: " + why);
  await shot(page, "03-job-out-of-sync");

  // The pending plan; approving without a token is refused.
  await page.goto(base + "/plans");
  await shot(page, "04-plans");
  await page.locator("section.approve a").first().click();
  await page.waitForURL(/\/plans\/[^/]+$/);
  const planUrl = page.url();
  check((await page.locator("section.change h2", { hasText: manual }).count()) === 1, "the plan shows the change of " + manual);
  await shot(page, "05-plan");
  await page.click("button:has-text('Approve and apply')");
  await page.waitForLoadState();
  const refused = await page.locator("main").innerText();
  check(refused.includes("Not approved") && refused.includes("Sign in"), "approving without a token is refused: " + refused);
  await shot(page, "06-approve-refused");

  // Sign in (a wrong token first), then approve: the apply page shows the steps.
  await page.goto(base + "/login?next=" + encodeURIComponent(new URL(planUrl).pathname));
  await page.fill("#token", "not-the-token");
  await page.click("button:has-text('Sign in')");
  check((await page.locator(".notice.bad").count()) === 1, "a wrong token is refused");
  await shot(page, "07-login");
  await page.fill("#token", token);
  await page.click("button:has-text('Sign in')");
  await page.waitForURL(planUrl);
  check((await page.locator("text=Signed in").count()) === 1, "signed in");
  await page.click("button:has-text('Approve and apply')");
  await page.waitForURL(/\/applies\//);
  // The page follows the apply by itself until it ends.
  await page.locator(".titlebar .badge", { hasText: "succeeded" }).waitFor({ timeout: 120000 });
  const steps = await page.locator("ol.steps li").allInnerTexts();
  check(steps.some((s) => s.includes("submit") && s.includes("POST /jars/")), "the apply shows its submit step and REST call: " + steps.join(" | "));
  check(steps.some((s) => s.includes("await_running")), "the apply shows the wait for RUNNING");
  await shot(page, "08-apply");

  await page.goto(base + "/pulls");
  await shot(page, "09-pulls");
  await page.goto(base + "/settings");
  check((await page.locator("section", { has: page.locator("#clusters") }).innerText()).includes("reachable"), "settings show the cluster's reachability");
  const html = await page.content();
  check(!html.includes(token), "the token is not on the settings page");
  await shot(page, "10-settings");
  await page.goto(base + "/");
  await shot(page, "11-jobs-after");
  await context.close();
}

main().catch((e) => { console.error(e && e.stack ? e.stack : String(e)); process.exit(1); });
