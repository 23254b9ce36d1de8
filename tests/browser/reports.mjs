// The reports screen in a real Chromium. An administrator (in English) opens Reports and finds
// the first dashboard drawn: a bar chart, a pie and a funnel, each from the rows the server
// evaluated; opens one report on its own with its rows under the chart. A member of staff who
// may view reports and tourists but not flows (in Japanese) sees the same bars and, in the
// funnel's place, why it is not shown. Prints what the screens showed as JSON for the Rust test
// (tests/e2e/editor.rs).
//
// usage: node reports.mjs ARTIFACT_DIR BASE_URL ADMIN PASSWORD STAFF PASSWORD
import { report, signedInAtTourists, start, step } from "./harness.mjs";

const [artifacts, base, admin, adminPassword, staff, staffPassword] = process.argv.slice(2);
const { browser, problems } = await start(artifacts);

/** What the dashboard on screen draws, widget by widget. */
const drawn = (page) => page.evaluate(() => Object.fromEntries(
  [...document.querySelectorAll("[data-test=dashboard] figure[data-report]")].map((f) => [f.dataset.report, {
    chart: f.querySelector("[data-chart]")?.dataset.chart ?? null,
    bars: [...f.querySelectorAll("rect.bar")].map((r) => Number(r.dataset.value)),
    slices: [...f.querySelectorAll("path.slice")].map((p) => Number(p.dataset.share)),
    error: f.querySelector("[data-test=widget-error]")?.innerText ?? null,
    caption: f.querySelector("figcaption").innerText,
  }])));

await report(browser, problems, async () => {
  step("the administrator opens the reports");
  const page = await signedInAtTourists(browser, problems, base, admin, adminPassword, "en-US", { width: 1400, height: 1000 });
  await page.locator("[data-test=nav-reports]").click();
  await page.locator("[data-test=dashboard] figure[data-report=by_prefecture] rect.bar").first().waitFor();
  await page.locator("[data-test=dashboard] figure[data-report=prefecture_share] path.slice").first().waitFor();
  const adminDashboard = await drawn(page);
  await page.screenshot({ path: `${artifacts}/reports-dashboard.png`, fullPage: true });

  step("one report on its own");
  await page.locator("[data-test=reports] a[data-key=by_prefecture]").click();
  await page.locator("[data-test=report] [data-test=report-rows] tbody tr").first().waitFor();
  const rows = await page.locator("[data-test=report] [data-test=report-rows] tbody tr")
    .evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.innerText)));
  const reportBars = await page.locator("[data-test=report] rect.bar").evaluateAll((rs) => rs.map((r) => Number(r.dataset.value)));
  const address = await page.evaluate(() => location.hash);

  step("staff who may not view flows");
  const other = await signedInAtTourists(browser, problems, base, staff, staffPassword, "ja-JP", { width: 1400, height: 1000 });
  await other.locator("[data-test=nav-reports]").click();
  await other.locator("[data-test=dashboard] figure[data-report=welcome_funnel] [data-test=widget-error]").waitFor();
  await other.locator("[data-test=dashboard] figure[data-report=by_prefecture] rect.bar").first().waitFor();
  const staffDashboard = await drawn(other);
  const staffHeading = await other.locator(".reports-screen h1").innerText();
  await other.screenshot({ path: `${artifacts}/reports-staff.png`, fullPage: true });

  return { adminDashboard, rows, reportBars, address, staffDashboard, staffHeading };
});
