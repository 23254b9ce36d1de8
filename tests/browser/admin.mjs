// The users and rights screen in a real Chromium. An administrator (in Japanese) creates a role
// for the front desk, ticks "view" on tourists, hides their phone numbers and saves; creates a
// user with that role; the new user signs in (in English) and finds tourists without a phone
// column; the administrator signs them out everywhere, and their next step finds the sign-in
// form with the reason. A user who is not an administrator is not offered the screen. Prints
// what the screens showed as JSON for the Rust test (tests/e2e/editor.rs).
//
// usage: node admin.mjs ARTIFACT_DIR BASE_URL ADMIN PASSWORD NEW_LOGIN NEW_PASSWORD
import { report, shows, signedInAtTourists, start, step } from "./harness.mjs";

const [artifacts, base, admin, adminPassword, newLogin, newPassword] = process.argv.slice(2);
const { browser, problems } = await start(artifacts);
// A role name with a space, a slash and Japanese: it must reach the server whole in addresses.
const ROLE = "受付 front/desk";

await report(browser, problems, async () => {
  step("the administrator creates a role and grants it the tourists without phone numbers");
  const page = await signedInAtTourists(browser, problems, base, admin, adminPassword, "ja-JP", { width: 1500, height: 1100 });
  await page.locator("[data-test=nav-admin]").click();
  await page.locator(`[data-test=users] tr[data-user=${admin}]`).waitFor();
  const heading = await page.locator(".admin-screen h1").innerText();
  await page.locator("[data-test=new-role] input[name=name]").fill(ROLE);
  await page.locator("[data-test=new-role] input[name=description]").fill("受付");
  await page.locator("[data-test=new-role] button[type=submit]").click();
  await page.locator(`[data-test=rights-editor][data-holder="${ROLE}"]`).waitFor();
  const roleCreated = await shows(page, "admin-message", /front\/desk/);
  await page.locator("[data-test=rights-matrix] input[data-target=tourists][data-op=view]").check();
  await page.locator("[data-fields=tourists] summary").click();
  await page.locator("[data-fields=tourists] select[data-field=phone]").selectOption("none");
  await page.locator("[data-test=rights-save]").click();
  const roleSaved = await shows(page, "admin-message", /保存しました/);

  step("a user with that role");
  await page.locator("[data-test=new-user] input[name=login]").fill(newLogin);
  await page.locator("[data-test=new-user] input[name=display_name]").fill("受付 花子");
  await page.locator("[data-test=new-user] input[name=password]").fill(newPassword);
  await page.locator(`[data-test=new-user] input[data-role="${ROLE}"]`).check();
  await page.locator("[data-test=new-user] button[type=submit]").click();
  await page.locator(`[data-test=rights-editor][data-holder=${newLogin}]`).waitFor();
  await page.locator(`[data-test=users] tr[data-user=${newLogin}]`).waitFor();
  const userRow = await page.locator(`[data-test=users] tr[data-user=${newLogin}] td`)
    .evaluateAll((cells) => cells.map((c) => c.innerText));
  const userRoleTicked = await page.locator(`[data-test=user-roles] input[data-role="${ROLE}"]`).isChecked();
  await page.screenshot({ path: `${artifacts}/admin.png`, fullPage: true });

  step("the new user signs in and finds no phone numbers");
  const desk = await signedInAtTourists(browser, problems, base, newLogin, newPassword, "en-US", { width: 1300, height: 900 });
  const deskColumns = await desk.locator("[data-test=records] thead th").evaluateAll((ths) => ths.map((t) => t.innerText));
  const deskSeesAdmin = await desk.locator("[data-test=nav-admin]").count() > 0;

  step("the administrator signs them out everywhere");
  await page.locator(`[data-test=users] tr[data-user=${newLogin}] [data-test=user-logout]`).click();
  const loggedOut = await shows(page, "admin-message", /セッション/);
  await desk.locator("[data-test=nav-tourists]").click();
  await desk.reload();
  await desk.locator("[data-test=session-ended]").waitFor();
  const deskEnded = await desk.locator("[data-test=session-ended]").innerText();

  return { heading, roleCreated, roleSaved, userRow, userRoleTicked, deskColumns, deskSeesAdmin, loggedOut, deskEnded };
});
