// Record cards in a real Chromium. An administrator (in English) opens a tourist from the
// tourists table, reads the timeline (purchases, points, an inquiry, the mail a flow sent, its
// opening, the flow), narrows it to one source, pages it, edits the city and saves, then types a
// date that does not exist and sees the refusal on that field; opens a business from the
// businesses screen and an inquiry from the inquiries screen, reads their interactions and
// responses, and adds a response from the inquiry's card. A front-desk user without the right to see phone numbers (in Japanese) opens the
// same tourist: no phone number, no phone field, no timeline sources and no screens they may
// not view. Prints what the screens showed as JSON on stdout for the Rust test
// (tests/e2e/editor.rs).
//
// usage: node cards.mjs ARTIFACT_DIR BASE_URL ADMIN PASSWORD CLERK PASSWORD PHONE
import { report, signedInAtTourists, start, step } from "./harness.mjs";

const [artifacts, base, admin, adminPassword, clerk, clerkPassword, phone] = process.argv.slice(2);
const { browser, problems } = await start(artifacts);

const signedIn = (login, password, locale) =>
  signedInAtTourists(browser, problems, base, login, password, locale, { width: 1500, height: 1100 });

/** The card's heading, once the record is read (the timeline may arrive before it). */
async function cardTitle(page) {
  await page.waitForFunction(() => document.querySelector("[data-test=card-title]")?.innerText.trim());
  return page.locator("[data-test=card-title]").innerText();
}

/** The timeline as shown: each entry's source, id and line. */
const shownTimeline = (page) => page.evaluate(() =>
  [...document.querySelectorAll("[data-test=timeline] li[data-source]")].map((li) => ({
    source: li.dataset.source, id: Number(li.dataset.entry),
    at: li.querySelector("time").innerText, what: li.querySelector(".what").innerText,
  })));

/** What the page shows, the values in its inputs included (innerText leaves them out). */
const shownText = (page) => page.evaluate(() => [document.body.innerText,
  ...[...document.querySelectorAll("input, textarea, select")].map((i) => i.value)].join("\n"));

/** Whether `text` holds the phone number, however it is written. */
const holdsPhone = (text) => text.includes(phone)
  || text.replace(/[^0-9]/g, " ").includes(phone.replace(/[^0-9]/g, ""));

await report(browser, problems, async () => {
  step("the administrator opens the first tourist");
  const page = await signedIn(admin, adminPassword, "en-US");
  await page.locator("[data-test=open-record]").first().click();
  await page.waitForFunction(() => /^#\/tourists\/[0-9]+$/.test(location.hash));
  const id = Number((await page.evaluate(() => location.hash)).split("/").pop());
  await page.locator("[data-test=timeline] li[data-source]").first().waitFor();
  await page.locator("input[data-field=city]").waitFor();
  const title = await cardTitle(page);
  // The first page holds 30; the tourist has more, so "older" pages on.
  const firstPage = await shownTimeline(page);
  await page.locator("[data-test=older]").click();
  await page.waitForFunction((n) =>
    document.querySelectorAll("[data-test=timeline] li[data-source]").length > n, firstPage.length);
  await page.locator("[data-test=older]:disabled").waitFor();
  const timeline = await shownTimeline(page);
  const adminText = await shownText(page);
  await page.screenshot({ path: `${artifacts}/tourist-card.png`, fullPage: true });

  step("only the purchases");
  const sources = await page.evaluate(() =>
    [...document.querySelectorAll("input[data-source]")].map((i) => i.dataset.source));
  for (const source of sources) {
    if (source !== "purchases") await page.locator(`input[data-source=${source}]`).uncheck();
  }
  await page.waitForFunction(() => {
    const shown = [...document.querySelectorAll("[data-test=timeline] li[data-source]")];
    return shown.length > 0 && shown.every((li) => li.dataset.source === "purchases");
  });
  const purchasesOnly = await shownTimeline(page);

  step("edit the city and save");
  await page.locator("input[data-field=city]").fill("高山市");
  await page.locator("[data-test=save-record]").click();
  await page.locator("[data-test=message]", { hasText: "Saved" }).waitFor();
  const cityAfterSave = await page.locator("input[data-field=city]").inputValue();

  step("a date that does not exist is refused on its field");
  await page.locator("input[data-field=birth_date]").fill("1990/2/30");
  await page.locator("[data-test=save-record]").click();
  await page.locator("[data-error=birth_date]:not(:empty)").waitFor();
  const birthDateError = await page.locator("[data-error=birth_date]").innerText();
  const statusLine = await page.locator("[data-test=message]").innerText();
  await page.screenshot({ path: `${artifacts}/tourist-card-refused.png`, fullPage: true });

  step("a business and its interactions");
  await page.locator("[data-test=nav-businesses]").click();
  await page.locator("[data-test=records] tbody tr").first().waitFor();
  await page.locator("[data-test=open-record]").first().click();
  await page.locator("[data-test=timeline] li[data-source]").first().waitFor();
  const business = {
    title: await cardTitle(page),
    timeline: await shownTimeline(page),
  };
  await page.screenshot({ path: `${artifacts}/business-card.png`, fullPage: true });

  step("an inquiry and its responses");
  await page.locator("[data-test=nav-inquiries]").click();
  await page.locator("[data-test=records] tbody tr").first().waitFor();
  await page.locator("[data-test=open-record]").first().click();
  await page.locator("[data-test=timeline] li[data-source]").first().waitFor();
  const inquiry = {
    title: await cardTitle(page),
    timeline: await shownTimeline(page),
  };

  step("add a response to the inquiry from its card");
  const form = page.locator("[data-test=add-entry]");
  await page.locator("[data-test=entry-store]").selectOption("inquiry_responses");
  await form.locator("[data-field=body]").waitFor();
  inquiry.started_at = await form.locator("input[data-field=responded_at]").inputValue();
  await form.locator("select[data-field=status]").selectOption("closed");
  await form.locator("input[data-field=staff]").fill("山本");
  await form.locator("[data-field=body]").fill("ご本人が受け取りに来られました");
  await page.locator("[data-test=add-entry-submit]").click();
  await page.locator("[data-test=entry-message]", { hasText: "Added" }).waitFor();
  await page.waitForFunction(() =>
    document.querySelectorAll("[data-test=timeline] li[data-source]").length === 2);
  inquiry.after = await shownTimeline(page);
  await page.screenshot({ path: `${artifacts}/inquiry-card.png`, fullPage: true });

  step("the inquiry's tourist opens from it");
  const link = page.locator("[data-test=open-tourist_id]");
  await page.waitForFunction(() =>
    !document.querySelector("[data-test=open-tourist_id]").innerText.includes("Tourists"));
  inquiry.tourist_link = await link.innerText();
  await link.click();
  await page.waitForFunction((id) => location.hash === `#/tourists/${id}`, id);
  await page.locator("[data-test=card-title]", { hasText: "山田" }).waitFor();
  inquiry.tourist_title = await cardTitle(page);

  step("the front desk opens the same card");
  const desk = await signedIn(clerk, clerkPassword, "ja-JP");
  await desk.goto(`${base}/#/tourists/${id}`);
  await desk.locator("input[data-field=city]").waitFor();
  await desk.locator("[data-test=timeline] li").first().waitFor();
  const deskFields = await desk.evaluate(() =>
    [...document.querySelectorAll("[data-test=record] [data-field]")].map((i) => i.dataset.field));
  const deskSources = await desk.evaluate(() =>
    [...document.querySelectorAll("input[data-source]")].map((i) => i.dataset.source));
  const deskTimeline = await shownTimeline(desk);
  const deskText = await shownText(desk);
  const deskScreens = await desk.evaluate(() =>
    [...document.querySelectorAll(".topbar nav a[data-test^=nav-]")].map((a) => a.dataset.test));
  await desk.screenshot({ path: `${artifacts}/tourist-card-front-desk.png`, fullPage: true });

  return {
    id, title, first_page: firstPage.length, timeline, purchases_only: purchasesOnly,
    admin_sees_phone: holdsPhone(adminText), city_after_save: cityAfterSave,
    birth_date_error: birthDateError, status_line: statusLine,
    desk_fields: deskFields, desk_sources: deskSources, desk_timeline: deskTimeline,
    desk_sees_phone: holdsPhone(deskText),
    desk_heading: await desk.locator(".timeline h2").innerText(),
    desk_screens: deskScreens, business, inquiry,
    desk_add_entry: await desk.locator("[data-test=add-entry]").count(),
  };
});
