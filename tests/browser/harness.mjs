// What the browser scripts share: Debian's Chromium launched as this machine needs it (no
// browser download, no background networking), a log on stderr, and page errors collected.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

export const step = (what) => process.stderr.write(`browser: ${what}\n`);

/** Launches Chromium; screenshots go to `artifacts`. */
export async function start(artifacts) {
  mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  return { browser, problems: [] };
}

/** Collects the page's uncaught errors and console errors into `problems`. Refused calls (the
 * sign-in probe before signing in, a wrong password) are logged by Chromium as "Failed to load
 * resource"; what the app does about them is for each test to check. */
export function watch(page, problems) {
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console: ${m.text()}`);
  });
}

/** Runs `body` and prints what it gives as JSON for the Rust test; any failure, page error or
 * console error fails the script, with the reason on stderr. Closes the browser either way. */
export async function report(browser, problems, body) {
  try {
    const result = await body();
    if (problems.length) throw new Error(problems.join("\n"));
    process.stdout.write(JSON.stringify(result) + "\n");
  } catch (error) {
    step(`failed: ${error.stack || error}`);
    if (problems.length) step(problems.join("\n"));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

/** A new browser context in `locale` signed in as `login` at `#/tourists`, once the tourists
 * table shows its first row. */
export async function signedInAtTourists(browser, problems, base, login, password, locale, viewport) {
  const context = await browser.newContext({ locale, viewport });
  const page = await context.newPage();
  watch(page, problems);
  await page.goto(base + "/#/tourists");
  await page.locator("form.login input[name=login]").fill(login);
  await page.locator("form.login input[name=password]").fill(password);
  await page.locator("form.login button[type=submit]").click();
  await page.locator("[data-test=records] tbody tr").first().waitFor();
  return page;
}

/** The text of the element marked `data-test=test`. */
export const text = (page, test) => page.locator(`[data-test=${test}]`).innerText();

/** Waits until the text of the element marked `data-test=test` matches `pattern`, and gives it. */
export async function shows(page, test, pattern) {
  await page.waitForFunction(([test, pattern]) => {
    const el = document.querySelector(`[data-test=${test}]`);
    return el && new RegExp(pattern).test(el.innerText);
  }, [test, pattern.source]);
  return text(page, test);
}
