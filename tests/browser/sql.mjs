// The SQL workspace in a real Chromium. An analyst (in English) writes a query, putting a table's
// name in by clicking it in the catalog, runs it with Ctrl+Enter and reads the rows; has a query
// naming a column that does not exist refused; keeps a result as an output table, opens it,
// copies it and drops the copy. A clerk who may run queries but not see phone numbers (in
// Japanese) finds no phone column in the catalog, has a query for phones refused, does not see
// the analyst's table of phones (only a table of prefectures) and is offered no saving. Prints what the screens showed as JSON
// for the Rust test (tests/e2e/editor.rs).
//
// usage: node sql.mjs ARTIFACT_DIR BASE_URL ANALYST PASSWORD CLERK PASSWORD
import { report, shows, signedInAtTourists, start, step, text } from "./harness.mjs";

const [artifacts, base, analyst, analystPassword, clerk, clerkPassword] = process.argv.slice(2);
const { browser, problems } = await start(artifacts);

const signedIn = (login, password, locale) =>
  signedInAtTourists(browser, problems, base, login, password, locale, { width: 1400, height: 1000 });


/** The result table on screen: its headings and rows of cell texts. */
const result = (page) => page.evaluate(() => {
  const table = document.querySelector("[data-test=sql-result]");
  return {
    columns: [...table.querySelectorAll("thead th")].map((th) => th.innerText),
    rows: [...table.querySelectorAll("tbody tr")].map((tr) => [...tr.querySelectorAll("td")].map((td) => td.innerText)),
  };
});

const catalogOf = (page) => page.evaluate(() => Object.fromEntries(
  [...document.querySelectorAll("[data-test=sql-catalog] details[data-table]")]
    .map((d) => [d.dataset.table, [...d.querySelectorAll("[data-column]")].map((b) => b.dataset.column)])));

const tablesListed = (page) => page.locator("[data-test=output-tables] tbody tr")
  .evaluateAll((rows) => rows.map((r) => r.dataset.table));

await report(browser, problems, async () => {
  step("the analyst writes a query with the catalog's help");
  const page = await signedIn(analyst, analystPassword, "en-US");
  await page.locator("[data-test=nav-sql]").click();
  await page.locator("[data-test=sql-catalog] details[data-table=tourists]").waitFor();
  const analystCatalog = await catalogOf(page);
  const editor = page.locator("[data-test=sql-text]");
  await editor.click();
  await editor.pressSequentially("SELECT prefecture, count(*) AS n FROM ");
  await page.locator("[data-test=sql-catalog] details[data-table=tourists] [data-test=put-table]").click();
  await editor.pressSequentially(" GROUP BY prefecture ORDER BY n DESC, prefecture");
  const written = await editor.inputValue();
  await editor.press("Control+Enter");
  const summary = await shows(page, "sql-summary", /rows/);
  const grouped = await result(page);
  await page.screenshot({ path: `${artifacts}/sql-result.png`, fullPage: true });

  step("a column that does not exist");
  await editor.fill("SELECT nosuch FROM tourists");
  await page.locator("[data-test=sql-run]").click();
  const refusal = await shows(page, "sql-message", /nosuch/);
  const resultAfterRefusal = await page.locator("[data-test=sql-result]").count();

  step("the result is kept as an output table, opened, copied and the copy dropped");
  await editor.fill("SELECT id AS tourist_id, phone FROM tourists WHERE phone IS NOT NULL ORDER BY id");
  await page.locator("[data-test=sql-run]").click();
  await shows(page, "sql-summary", /rows/);
  const phones = await result(page);
  const modes = await page.locator("[data-test=sql-save-mode] option").evaluateAll((o) => o.map((x) => x.value));
  await page.locator("[data-test=sql-save-name]").fill("with_phones");
  await page.locator("[data-test=sql-save-description]").fill("電話番号のある観光客");
  await page.locator("[data-test=sql-save] button[type=submit]").click();
  const saved = await shows(page, "sql-message", /Saved/);
  await page.locator("[data-test=output-tables] tr[data-table=with_phones]").waitFor();
  await editor.fill("");
  await page.locator("[data-test=output-tables] tr[data-table=with_phones] [data-test=table-open]").click();
  await page.waitForFunction(() => document.querySelector("[data-test=sql-result] thead th")?.innerText === "tourist_id");
  const opened = { sql: await editor.inputValue(), ...(await result(page)) };
  page.once("dialog", (d) => d.accept("with_phones_copy"));
  await page.locator("[data-test=output-tables] tr[data-table=with_phones] [data-test=table-copy]").click();
  await page.locator("[data-test=output-tables] tr[data-table=with_phones_copy]").waitFor();
  const afterCopy = await tablesListed(page);
  page.once("dialog", (d) => d.accept());
  await page.locator("[data-test=output-tables] tr[data-table=with_phones_copy] [data-test=table-drop]").click();
  await page.locator("[data-test=output-tables] tr[data-table=with_phones_copy]").waitFor({ state: "detached" });
  const afterDrop = await tablesListed(page);
  await page.screenshot({ path: `${artifacts}/sql-tables.png`, fullPage: true });

  step("a clerk who may not see phone numbers");
  const other = await signedIn(clerk, clerkPassword, "ja-JP");
  await other.locator("[data-test=nav-sql]").click();
  await other.locator("[data-test=sql-catalog] details[data-table=tourists]").waitFor();
  const clerkCatalog = await catalogOf(other);
  const clerkHeading = await other.locator(".sql-screen h1").innerText();
  await other.locator("[data-test=sql-text]").fill("SELECT phone FROM tourists");
  await other.locator("[data-test=sql-run]").click();
  const clerkRefusal = await shows(other, "sql-message", /phone/);
  await other.locator("[data-test=sql-text]").fill("SELECT count(*) AS n FROM tourists");
  await other.locator("[data-test=sql-run]").click();
  await shows(other, "sql-summary", /行/);
  const clerkCount = await result(other);
  const clerkMaySave = await other.locator("[data-test=sql-save]").count() > 0;
  await other.locator("[data-test=output-tables] tr[data-table=prefectures]").waitFor();
  const clerkTables = await tablesListed(other);

  return {
    analystCatalog, written, summary, grouped, refusal, resultAfterRefusal, phones, modes, saved,
    opened, afterCopy, afterDrop, clerkCatalog, clerkHeading, clerkRefusal, clerkCount,
    clerkMaySave, clerkTables,
  };
});
