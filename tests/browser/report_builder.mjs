// The report builder and dashboard arranging in a real Chromium (MA-17, CF-8). An administrator
// (in English) builds a report by picking fields: tourists grouped by prefecture, counted and
// their spending totalled, only those who spent something; the pie is refused while two
// measures are picked; the bar preview is drawn from the server's rows; the report is saved,
// edited back to a pie with one measure. A report whose filter the form cannot show opens as
// JSON. A new dashboard is made, two reports added, one narrowed and retitled, the other
// dragged in front of it, and the layout saved; a reload shows it so. A member of staff who may
// only view reports (in Japanese) is offered none of this. Prints what the screens showed as
// JSON for the Rust test (tests/e2e/editor.rs).
//
// usage: node report_builder.mjs ARTIFACT_DIR BASE_URL ADMIN PASSWORD STAFF PASSWORD
import { report, signedInAtTourists, start, step } from "./harness.mjs";

const [artifacts, base, admin, adminPassword, staff, staffPassword] = process.argv.slice(2);
const { browser, problems } = await start(artifacts);

const bars = (page, scope) => page.locator(`${scope} rect.bar`).evaluateAll((rs) => rs.map((r) => Number(r.dataset.value)));

/** The dashboard's widgets on screen, in order. */
const widgets = (page) => page.locator("[data-test=dashboard] figure[data-report]").evaluateAll((fs) => fs.map((f) => ({
  report: f.dataset.report,
  span: [...f.classList].find((c) => c.startsWith("span-")),
  caption: f.querySelector("figcaption").innerText,
  chart: f.querySelector("[data-chart]")?.dataset.chart ?? null,
})));

await report(browser, problems, async () => {
  step("the administrator starts a new report");
  const page = await signedInAtTourists(browser, problems, base, admin, adminPassword, "en-US", { width: 1500, height: 1100 });
  await page.locator("[data-test=nav-reports]").click();
  await page.locator("[data-test=new-report]").click();
  const builder = page.locator("[data-test=report-builder]");
  await builder.waitFor();
  // The entity's fields arrive, then the first grouping is picked.
  await builder.locator("[data-group='0'] select[data-field=group] option[value=prefecture]").waitFor({ state: "attached" });
  await builder.locator("[data-group='0'] select[data-field=group]").selectOption("prefecture");
  await builder.locator("[data-test=add-measure]").click();
  await builder.locator("[data-measure='1'] select[data-field=verb]").selectOption("sum");
  await builder.locator("[data-measure='1'] select[data-field=measured]").selectOption("total_spend");
  await builder.locator("[data-test=conditions] [data-row='0'] select[data-field=field]").selectOption("total_spend");
  await builder.locator("[data-test=conditions] [data-row='0'] select[data-field=op]").selectOption("gt");
  await builder.locator("[data-test=conditions] [data-row='0'] input[data-field=value]").fill("0");
  await builder.locator("[data-test=conditions] [data-row='0'] input[data-field=value]").dispatchEvent("change");
  const pieRefused = {
    disabled: await builder.locator("input[data-chart-choice=pie]").isDisabled(),
    why: await builder.locator("label.chart-choice:has(input[data-chart-choice=pie])").getAttribute("title"),
  };
  await builder.locator("input[data-chart-choice=bar]").check();
  await builder.locator("[data-test=preview] [data-chart=bar] rect.bar").first().waitFor();
  // The preview settles on the last definition: wait until its bars stop changing.
  let previewBars = await bars(page, "[data-test=preview]");
  for (let i = 0; i < 20; i++) {
    await page.waitForTimeout(200);
    const again = await bars(page, "[data-test=preview]");
    if (JSON.stringify(again) === JSON.stringify(previewBars)) break;
    previewBars = again;
  }
  await builder.locator("details.design-json summary").click();
  const shownDefinition = JSON.parse(await builder.locator("[data-test=definition-json]").inputValue());
  await page.screenshot({ path: `${artifacts}/report-builder.png`, fullPage: true });

  step("saved under a key");
  await builder.locator("[data-test=report-key]").fill("spend_by_prefecture");
  await builder.locator("[data-test=report-name]").fill("都道府県別の購入");
  await builder.locator("[data-test=save-report]").click();
  await page.waitForFunction(() => location.hash === "#/reports/spend_by_prefecture");
  await page.locator("[data-test=report] rect.bar").first().waitFor();
  const savedBars = await bars(page, "[data-test=report]");
  const listed = await page.locator("[data-test=reports] a[data-key=spend_by_prefecture]").innerText();

  step("edited back to a pie of one measure");
  await page.locator("[data-test=edit-report]").click();
  await page.waitForFunction(() => location.hash === "#/reports/edit/spend_by_prefecture");
  const again = page.locator("[data-test=report-builder]");
  await again.locator("[data-measure='1'] select[data-field=verb]").waitFor();
  // The form is drawn with the saved choices once the entity's fields have arrived.
  await again.locator("[data-group='0'] select[data-field=group] option[value=prefecture]").waitFor({ state: "attached" });
  await again.locator("[data-measure='1'] select[data-field=measured] option[value=total_spend]").waitFor({ state: "attached" });
  const reopened = {
    group: await again.locator("[data-group='0'] select[data-field=group]").inputValue(),
    measured: await again.locator("[data-measure='1'] select[data-field=measured]").inputValue(),
    condition: await again.locator("[data-test=conditions] [data-row='0'] input[data-field=value]").inputValue(),
    chart: await again.locator("input[data-chart-choice=bar]").isChecked(),
  };
  await again.locator("[data-measure='1'] button").click();
  await again.locator("input[data-chart-choice=pie]").check();
  await again.locator("[data-test=preview] [data-chart=pie] path.slice").first().waitFor();
  await again.locator("[data-test=save-report]").click();
  await page.waitForFunction(() => location.hash === "#/reports/spend_by_prefecture");
  await page.locator("[data-test=report] path.slice").first().waitFor();

  step("a definition the form cannot show opens as JSON");
  await page.goto(`${base}/#/reports/edit/nested`);
  await page.locator("[data-test=json-only]").waitFor();
  await page.locator("details.design-json summary").click();
  const nestedJson = JSON.parse(await page.locator("[data-test=definition-json]").inputValue());
  await page.locator("[data-test=preview] [data-chart=table] [data-test=report-rows]").waitFor();

  step("a new dashboard, arranged");
  await page.goto(`${base}/#/reports`);
  await page.locator("[data-test=new-dashboard] summary").click();
  await page.locator("[data-test=dashboard-key]").fill("sales");
  await page.locator("[data-test=dashboard-name]").fill("売上");
  await page.locator("[data-test=create-dashboard]").click();
  await page.waitForFunction(() => location.hash === "#/reports/dashboards/sales");
  await page.locator("[data-test=arrange-bar]").waitFor();
  for (const key of ["spend_by_prefecture", "by_month"]) {
    await page.locator("[data-test=add-report]").selectOption(key);
    await page.locator("[data-test=add-widget]").click();
  }
  await page.locator("[data-test=dashboard] figure[data-report=by_month] [data-chart=line]").waitFor();
  const first = page.locator("[data-test=dashboard] figure[data-index='0']");
  await first.locator("select[data-field=width]").selectOption("4");
  await first.locator("input[data-field=title]").fill("購入の割合");
  await first.locator("input[data-field=title]").dispatchEvent("change");
  await page.locator("[data-test=dashboard] figure[data-report=by_month]").dragTo(
    page.locator("[data-test=dashboard] figure[data-report=spend_by_prefecture]"));
  const arranged = await widgets(page);
  await page.screenshot({ path: `${artifacts}/dashboard-arranging.png`, fullPage: true });
  await page.locator("[data-test=save-layout]").click();
  await page.locator("[data-test=arrange]").waitFor();
  await page.reload();
  await page.locator("[data-test=dashboard] figure[data-report=spend_by_prefecture] path.slice").first().waitFor();
  const reloaded = await widgets(page);
  const address = await page.evaluate(() => location.hash);

  step("staff who may only view reports");
  const other = await signedInAtTourists(browser, problems, base, staff, staffPassword, "ja-JP", { width: 1400, height: 1000 });
  await other.goto(`${base}/#/reports/dashboards/sales`);
  await other.locator("[data-test=dashboard] figure[data-report=by_month] [data-chart=line]").waitFor();
  const offered = await other.evaluate(() => ["new-report", "new-dashboard", "arrange", "edit-report"]
    .filter((t) => document.querySelector(`[data-test=${t}]`)));
  await other.locator("[data-test=reports] a[data-key=by_month]").click();
  await other.locator("[data-test=report] [data-chart=line]").waitFor();
  const offeredOnReport = await other.evaluate(() => ["edit-report"].filter((t) => document.querySelector(`[data-test=${t}]`)));

  return {
    pieRefused, previewBars, shownDefinition, savedBars, listed, reopened, nestedJson,
    arranged, reloaded, address, offered, offeredOnReport,
  };
});
