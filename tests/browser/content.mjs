// The content screen in a real Chromium. An administrator (in English) opens the saved
// template, sees it previewed for the first tourist, names a snippet that does not exist yet and
// sees the preview refuse it under the subject; creates that snippet, test-runs it with a
// syntax error (the error selects its line in the code), fixes it, runs it with an argument and
// saves it; previews and saves the template's new subject, loads the first version back into
// the form, and tries to save HTML that does not compile; writes, saves and deletes a part. A marketer who may only view
// templates (in Japanese) sees them and their preview but no snippets and nothing to save; a
// front-desk user sees no content screen at all. Prints what the screens showed as JSON for
// the Rust test (tests/e2e/editor.rs).
//
// usage: node content.mjs ARTIFACT_DIR BASE_URL ADMIN PASSWORD MARKETER PASSWORD DESK PASSWORD
import { report, shows, signedInAtTourists, start, step, text } from "./harness.mjs";

const [artifacts, base, admin, adminPassword, marketer, marketerPassword, desk, deskPassword] =
  process.argv.slice(2);
const { browser, problems } = await start(artifacts);

const signedIn = (login, password, locale) =>
  signedInAtTourists(browser, problems, base, login, password, locale, { width: 1500, height: 1100 });

const input = (page, name) => page.locator(`[data-input=${name}]`);

await report(browser, problems, async () => {
  step("the administrator opens the saved template");
  const page = await signedIn(admin, adminPassword, "en-US");
  await page.locator("[data-test=nav-content]").click();
  await page.locator("[data-test=content-hint]").waitFor();
  for (const [kind, key] of [["templates", "autumn"], ["parts", "legal"], ["snippets", "greeting"]]) {
    await page.locator(`[data-kind=${kind}] a[data-key=${key}]`).waitFor();
  }
  const index = await page.evaluate(() => Object.fromEntries(
    [...document.querySelectorAll("[data-kind]")].filter((d) => d.closest("[data-test=content-index]"))
      .map((d) => [d.dataset.kind, [...d.querySelectorAll("a[data-key]")].map((a) => a.dataset.key)])));
  await page.locator("[data-kind=templates] a[data-key=autumn]").click();
  const firstSubject = await shows(page, "preview-subject", /様/);
  const previewFrame = page.frameLocator("[data-test=preview-html]");
  await previewFrame.locator("p", { hasText: "さまへ" }).waitFor();
  const previewHtml = await previewFrame.locator("body").innerHTML();
  // The preheader is hidden by its inline style: the frame keeps the message's styles.
  const preheaderDisplay = await previewFrame.locator("body > div").first()
    .evaluate((d) => getComputedStyle(d).display);
  const previewText = await text(page, "preview-text");
  const tourist = await page.locator("[data-test=preview-tourist]").inputValue();
  await page.screenshot({ path: `${artifacts}/content-template.png`, fullPage: true });

  step("a subject that calls a snippet not saved yet");
  await input(page, "subject").fill('{{script "season" "冬"}}のご案内');
  await page.locator("[data-test=run-preview]").click();
  const unknownSnippet = await shows(page, "preview-message", /./);
  const subjectError = await page.locator("[data-error=subject]").innerText();

  step("the developer writes that snippet: a syntax error first");
  await page.locator("[data-test=new-snippets] input").fill("season");
  await page.locator("[data-test=new-snippets] button").click();
  await page.waitForFunction(() => location.hash === "#/content/snippets/season");
  const newMessage = await shows(page, "content-message", /saved/i);
  const broken = "let x = 1;\nlet y = (x + ;\nx";
  await input(page, "source").fill(broken);
  await page.locator("[data-test=run-snippet]").click();
  const runError = await shows(page, "run-error", /line 2/);
  const errorAt = await input(page, "source").evaluate((t) => t.selectionStart);
  await page.screenshot({ path: `${artifacts}/content-snippet-error.png`, fullPage: true });

  step("fixed, run with an argument, saved");
  await input(page, "description").fill("季節の旅");
  await input(page, "source").fill('args[0] + "の旅"');
  await page.locator("[data-test=run-args]").fill('["冬"]');
  await page.locator("[data-test=run-snippet]").click();
  const runValue = await shows(page, "run-value", /旅/);
  const runMicros = await text(page, "run-micros");
  await page.locator("[data-test=save-content]").click();
  const snippetSaved = await shows(page, "content-message", /v1/);
  await page.locator("[data-kind=snippets] a[data-key=season]").waitFor();
  await page.screenshot({ path: `${artifacts}/content-snippet.png`, fullPage: true });

  step("the template's new subject, previewed and saved");
  await page.locator("[data-kind=templates] a[data-key=autumn]").click();
  await shows(page, "preview-subject", /様/);
  await input(page, "subject").fill('{{script "season" "冬"}}のご案内');
  await page.locator("[data-test=run-preview]").click();
  const newSubject = await shows(page, "preview-subject", /冬の旅/);
  await page.locator("[data-test=save-content]").click();
  const templateSaved = await shows(page, "content-message", /v2/);
  await page.waitForFunction(() => document.querySelectorAll("[data-test=versions] li").length === 2);
  const saveDisabledAfterSave = await page.locator("[data-test=save-content]").isDisabled();

  step("the first version back in the form");
  await page.locator("[data-test=versions] li[data-version='1'] [data-test=load-version]").click();
  const loadedSubject = await input(page, "subject").inputValue();
  await page.locator("[data-test=run-preview]").click();
  const loadedPreview = await shows(page, "preview-subject", /紅葉/);

  step("HTML that does not compile is refused under it");
  await input(page, "html").fill("<p>\n{{#if contact.given_name}}</p>");
  await page.locator("[data-test=save-content]").click();
  await page.waitForFunction(() => document.querySelector("[data-error=html]")?.innerText.length > 0);
  const htmlError = await page.locator("[data-error=html]").innerText();
  const refusal = await text(page, "content-message");

  step("switching the channel to SMS leaves the e-mail inputs out");
  await input(page, "channel").selectOption("sms");
  const smsInputs = await page.evaluate(() =>
    [...document.querySelectorAll("[data-test=content-form] [data-input]")].map((i) => i.dataset.input));

  step("a part written, saved and deleted");
  await page.locator("[data-test=new-parts] input").fill("scratch");
  await page.locator("[data-test=new-parts] button").click();
  await page.waitForFunction(() => location.hash === "#/content/parts/scratch");
  await input(page, "body").fill("下書き {{contact.given_name}}");
  await page.locator("[data-test=save-content]").click();
  await shows(page, "content-message", /v1/);
  await page.locator("[data-kind=parts] a[data-key=scratch]").waitFor();
  page.once("dialog", (dialog) => dialog.accept());
  await page.locator("[data-test=delete-content]").click();
  await page.waitForFunction(() => location.hash === "#/content/parts");
  await page.locator("[data-kind=parts] a[data-key=scratch]").waitFor({ state: "detached" });
  // The screen reads its lists again: the parts that are left.
  await page.locator("[data-kind=parts] a[data-key=legal]").waitFor();
  const partsAfterDelete = await page.evaluate(() =>
    [...document.querySelectorAll("[data-kind=parts] a[data-key]")].map((a) => a.dataset.key));

  step("a marketer who may only view templates");
  const viewer = await signedIn(marketer, marketerPassword, "ja-JP");
  await viewer.locator("[data-test=nav-content]").click();
  await viewer.locator("[data-kind=templates] a[data-key=autumn]").click();
  const viewerSubject = await shows(viewer, "preview-subject", /冬の旅/);
  const viewerKinds = await viewer.evaluate(() =>
    [...document.querySelectorAll("[data-test=content-index] [data-kind]")].map((d) => d.dataset.kind));
  const viewer_can_save = !(await viewer.locator("[data-test=save-content]").isDisabled());
  const viewer_inputs_locked = await viewer.evaluate(() =>
    [...document.querySelectorAll("[data-test=content-form] [data-input]")].every((i) => i.disabled));
  const viewer_can_create = await viewer.locator("[data-test=new-templates]").count() > 0;
  const viewerHeading = await viewer.locator(".content-screen h1").innerText();
  await viewer.screenshot({ path: `${artifacts}/content-viewer.png`, fullPage: true });

  step("a front-desk user sees no content screen");
  const clerk = await signedIn(desk, deskPassword, "ja-JP");
  const desk_sees_content = await clerk.locator("[data-test=nav-content]").count() > 0;

  return {
    index, firstSubject, previewHtml, preheaderDisplay, previewText, tourist, unknownSnippet, subjectError,
    newMessage, runError, errorAt, runValue, runMicros, snippetSaved, newSubject, templateSaved,
    saveDisabledAfterSave, loadedSubject, loadedPreview, htmlError, refusal, smsInputs,
    viewerSubject, viewerKinds, viewer_can_save, viewer_inputs_locked, viewer_can_create,
    viewerHeading, desk_sees_content, partsAfterDelete,
  };
});
