// The access log and live sessions screen in a real Chromium (CF-3, CF-11). A member of staff
// signs in (in Japanese). An administrator (in English) opens the access log, finds the staff
// member's refusals by user and outcome, and the export link carries the same search; a bad
// record id is refused naming the field. Among the live sessions they find the staff member's,
// in Chromium on Linux, and end it: it leaves the list, and the staff member's next step shows
// the sign-in form saying an administrator signed them out. Prints what the screens showed as
// JSON for the Rust test (tests/e2e/editor.rs).
//
// usage: node audit.mjs ARTIFACT_DIR BASE_URL ADMIN PASSWORD STAFF PASSWORD
import { report, shows, signedInAtTourists, start, step, text } from "./harness.mjs";

const [artifacts, base, admin, adminPassword, staff, staffPassword] = process.argv.slice(2);
const { browser, problems } = await start(artifacts);

const entries = (page) => page.locator("[data-test=access-log] tbody tr").evaluateAll((trs) => trs.map((tr) => ({
  login: tr.querySelector("[data-column=login]").innerText,
  action: tr.querySelector("[data-column=action]").innerText,
  outcome: tr.querySelector("[data-column=outcome]").innerText,
  denied: tr.classList.contains("denied"),
})));

await report(browser, problems, async () => {
  step("staff signs in");
  const desk = await signedInAtTourists(browser, problems, base, staff, staffPassword, "ja-JP", { width: 1200, height: 800 });

  step("the administrator opens the access log");
  const page = await signedInAtTourists(browser, problems, base, admin, adminPassword, "en-US", { width: 1400, height: 1000 });
  await page.locator("[data-test=nav-audit]").click();
  await page.locator("[data-test=access-log] tbody tr").first().waitFor();
  const keptSince = await text(page, "kept-since");

  step("the staff member's refusals");
  await page.locator("[data-test=login]").fill(staff);
  await page.locator("[data-test=outcome]").selectOption("denied");
  await page.locator("[data-test=find]").click();
  await page.waitForFunction((login) => {
    const rows = [...document.querySelectorAll("[data-test=access-log] tbody tr")];
    return rows.length > 0 && rows.every((r) => r.querySelector("[data-column=login]").innerText === login);
  }, staff);
  const refusals = await entries(page);
  const exportHref = await page.locator("[data-test=export-log]").getAttribute("href");
  await page.screenshot({ path: `${artifacts}/audit.png`, fullPage: true });

  step("a record id that is not a number");
  await page.locator("[data-test=record]").fill("abc");
  await page.locator("[data-test=find]").click();
  const badRecord = await shows(page, "problem", "record_id");
  await page.locator("[data-test=record]").fill("");

  step("the staff member's session, ended");
  const row = page.locator(`[data-test=sessions] tr[data-login=${staff}]`);
  await row.waitFor();
  const staffSession = await row.locator("td").evaluateAll((tds) => tds.map((t) => t.innerText));
  const ownMarked = await page.locator(`[data-test=sessions] tr[data-login=${admin}] .hint`).count();
  const ownEndable = await page.locator(`[data-test=sessions] tr[data-login=${admin}] [data-test=end-session]`).isEnabled();
  await row.locator("[data-test=end-session]").click();
  await row.waitFor({ state: "detached" });
  await desk.reload();
  await desk.locator("[data-test=session-ended]").waitFor();
  const deskEnded = await desk.locator("[data-test=session-ended]").innerText();

  return { keptSince, refusals, exportHref, badRecord, staffSession, ownMarked, ownEndable, deskEnded };
});
