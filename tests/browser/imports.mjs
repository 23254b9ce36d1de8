// The import screen in a real Chromium. An administrator (in English) sends a Shift_JIS partner
// file through an import flow and watches its progress bar to the end: the stages the bar went
// through are recorded as they happened, so the Rust test can check they only ever went
// forward. The run's counts and rejected rows are read off the screen, the rejected rows
// downloaded as CSV, and the page reloaded at the run's address shows the same run. An
// importer who may not see a field the flow fills (in Japanese) sees the run but not its
// rejected rows; a front-desk user is not offered the screen. Prints what the screens showed
// as JSON for the Rust test (tests/e2e/editor.rs).
//
// usage: node imports.mjs ARTIFACT_DIR BASE_URL FILE ADMIN PASSWORD IMPORTER PASSWORD DESK PASSWORD
import { readFileSync } from "node:fs";
import { report, signedInAtTourists, start, step, text } from "./harness.mjs";

const [artifacts, base, file, admin, adminPassword, importer, importerPassword, desk, deskPassword] =
  process.argv.slice(2);
const { browser, problems } = await start(artifacts);

const signedIn = (login, password, locale) =>
  signedInAtTourists(browser, problems, base, login, password, locale, { width: 1400, height: 1000 });


/** The counts of the run on screen, by name. */
const counts = (page) => page.evaluate(() => Object.fromEntries(
  [...document.querySelectorAll("[data-test=run-counts] td[data-count]")]
    .map((td) => [td.dataset.count, td.innerText])));

await report(browser, problems, async () => {
  step("the administrator opens the import screen");
  const page = await signedIn(admin, adminPassword, "en-US");
  await page.locator("[data-test=nav-imports]").click();
  await page.locator("[data-test=import-flow] option[value=ota_users]").waitFor({ state: "attached" });
  const startDisabledWithoutFile = await page.locator("[data-test=import-start]").isDisabled();
  await page.locator("[data-test=import-flow]").selectOption("ota_users");
  const summary = await text(page, "flow-summary");
  const accept = await page.locator("[data-test=import-file]").getAttribute("accept");

  step("the file is sent and followed to its end");
  // Every stage and percent the bars show, in the order they were shown.
  await page.evaluate(() => {
    window.stagesSeen = [];
    const note = () => {
      for (const bar of document.querySelectorAll("[data-test=import-progress]")) {
        const seen = `${bar.dataset.stage} ${bar.querySelector("progress").value}`;
        if (window.stagesSeen.at(-1) !== seen) window.stagesSeen.push(seen);
      }
    };
    new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true });
  });
  await page.locator("[data-test=import-file]").setInputFiles(file);
  await page.locator("[data-test=import-start]").click();
  await page.locator("[data-test=run-panel] [data-test=import-progress][data-stage=done]").waitFor({ timeout: 120_000 });
  await page.locator("[data-test=rejects] tbody tr").first().waitFor();
  const stagesSeen = await page.evaluate(() => window.stagesSeen);
  const address = await page.evaluate(() => location.hash);
  const runFile = await text(page, "run-file");
  const shownCounts = await counts(page);
  const rejects = await page.locator("[data-test=rejects] tbody tr").evaluateAll((rows) =>
    rows.map((r) => [...r.querySelectorAll("td")].map((td) => td.innerText)));
  const historyFirst = await page.locator("[data-test=import-history] tbody tr").first()
    .evaluate((r) => ({ run: r.dataset.run, current: r.classList.contains("current"),
      cells: [...r.querySelectorAll("td")].map((td) => td.innerText) }));
  await page.screenshot({ path: `${artifacts}/imports-done.png`, fullPage: true });

  step("the rejected rows are downloaded");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.locator("[data-test=rejects-download]").click(),
  ]);
  const downloadName = download.suggestedFilename();
  const downloaded = readFileSync(await download.path()).toString("utf8");

  step("the run's address shows it again after a reload");
  await page.reload();
  await page.locator("[data-test=run-panel] [data-test=import-progress][data-stage=done]").waitFor();
  const countsAfterReload = await counts(page);

  step("an importer who may not see the genders");
  const other = await signedIn(importer, importerPassword, "ja-JP");
  await other.locator("[data-test=nav-imports]").click();
  await other.locator(`[data-test=import-history] tr[data-run="${historyFirst.run}"] a`).click();
  await other.locator("[data-test=run-panel] [data-test=import-progress][data-stage=done]").waitFor();
  const importerHidden = await other.locator("[data-test=rejects-hidden]").innerText();
  const importerCounts = await counts(other);
  const importerHeading = await other.locator(".imports-screen h1").innerText();
  await other.screenshot({ path: `${artifacts}/imports-importer.png`, fullPage: true });

  step("a front-desk user");
  const front = await signedIn(desk, deskPassword, "ja-JP");
  const deskSeesImports = await front.locator("[data-test=nav-imports]").count() > 0;

  return {
    startDisabledWithoutFile, summary, accept, stagesSeen, address, runFile, shownCounts, rejects,
    historyFirst, downloadName, downloaded, countsAfterReload, importerHidden, importerCounts,
    importerHeading, deskSeesImports,
  };
});
