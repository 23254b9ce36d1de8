// A new user builds the patent scenario in the editor by drag and drop, in a real Chromium:
// e-mail → wait 3 days for it to be opened → opened: e-mail 2 / not opened: SMS, both then
// leaving the flow. It publishes
// the flow, reloads, and finds the canvas unchanged. Prints what it drew as JSON on stdout for
// the Rust test (tests/e2e/editor.rs), which checks it against what the server stored.
//
// usage: node flow_editor.mjs ARTIFACT_DIR BASE_URL LOGIN PASSWORD
import { report, start, step, watch } from "./harness.mjs";

const [artifacts, base, login, password] = process.argv.slice(2);
const { browser, problems } = await start(artifacts);

async function center(locator) {
  const box = await locator.boundingBox();
  if (!box) throw new Error(`not on screen: ${locator}`);
  return { x: box.x + box.width / 2, y: box.y + box.height / 2 };
}

/** Presses the mouse at `from`, moves in steps to `to` and lets go, as a hand would. */
async function drag(page, from, to) {
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move((from.x + to.x) / 2, (from.y + to.y) / 2, { steps: 6 });
  await page.mouse.move(to.x, to.y, { steps: 6 });
  await page.mouse.up();
}

const node = (page, id) => page.locator(`g.node[data-node="${id}"]`);

/** What the canvas shows: each node with its kind and place, and each wire. */
async function drawn(page) {
  return page.evaluate(() => ({
    nodes: [...document.querySelectorAll("g.node[data-node]")]
      .filter((g) => g.dataset.node !== "entry")
      .map((g) => ({ id: g.dataset.node, kind: g.dataset.kind, transform: g.getAttribute("transform") }))
      .sort((a, b) => a.id.localeCompare(b.id)),
    wires: [...document.querySelectorAll("path.wire[data-from]")]
      .map((p) => `${p.dataset.from}->${p.dataset.to}`)
      .sort(),
  }));
}

await report(browser, problems, async () => {
  const context = await browser.newContext({ locale: "ja-JP", viewport: { width: 1680, height: 900 } });
  const page = await context.newPage();
  watch(page, problems);

  step("sign in");
  await page.goto(base + "/");
  await page.locator("form.login input[name=login]").fill(login);
  await page.locator("form.login input[name=password]").fill("wrong password");
  await page.locator("form.login button[type=submit]").click();
  await page.locator("form.login .error", { hasText: "パスワードが違います" }).waitFor();
  await page.locator("form.login input[name=password]").fill(password);
  await page.locator("form.login button[type=submit]").click();
  await page.locator("[data-test=new-flow]").waitFor();
  await page.screenshot({ path: `${artifacts}/flows.png` });

  step("a new scenario");
  await page.locator("[data-test=new-flow]").click();
  const canvas = page.locator("[data-test=canvas]");
  await canvas.waitFor();
  if ((await page.locator(".palette-item[data-kind=email]").innerText()).trim() !== "メール") {
    throw new Error("the palette is not in Japanese for a Japanese browser");
  }
  const name = page.locator("[data-test=flow-name]");
  await name.fill("特許シナリオ");
  await name.press("Tab");

  step("drag five nodes on");
  const box = await canvas.boundingBox();
  const at = (x, y) => ({ x: box.x + x, y: box.y + y });
  const place = async (kind, x, y) =>
    drag(page, await center(page.locator(`.palette-item[data-kind=${kind}]`)), at(x, y));
  await place("email", 330, 240);
  await place("wait_for_event", 560, 240);
  await place("email", 790, 130);
  await place("sms", 790, 350);
  await place("exit", 1020, 240);
  for (const id of ["email_1", "wait_for_event_1", "email_2", "sms_1", "exit_1"]) await node(page, id).waitFor();

  step("connect the ports");
  const connect = async (from, port, to) =>
    drag(page,
      await center(node(page, from).locator(`g.port[data-port="${port}"] circle`)),
      await center(node(page, to).locator("rect.body")));
  await connect("entry", 0, "email_1");
  await connect("email_1", 0, "wait_for_event_1");
  await connect("wait_for_event_1", 0, "email_2");
  await connect("wait_for_event_1", 1, "sms_1");
  await connect("email_2", 0, "exit_1");
  await connect("sms_1", 0, "exit_1");
  const wires = (await drawn(page)).wires;
  const expectedWires = ["email_1->wait_for_event_1", "email_2->exit_1", "entry->email_1", "sms_1->exit_1",
    "wait_for_event_1->email_2", "wait_for_event_1->sms_1"];
  if (JSON.stringify(wires) !== JSON.stringify(expectedWires)) {
    throw new Error(`wires drawn: ${JSON.stringify(wires)}`);
  }

  step("move a node, delete one and undo it");
  const before = await center(node(page, "sms_1").locator("rect.body"));
  await drag(page, before, { x: before.x + 40, y: before.y + 30 });
  await node(page, "sms_1").locator("rect.body").click();
  await canvas.press("Delete");
  await node(page, "sms_1").waitFor({ state: "detached" });
  await canvas.press("Control+z");
  await node(page, "sms_1").waitFor();
  if ((await drawn(page)).wires.length !== 6) throw new Error("undo did not bring the wires back");

  step("fill in the property panels");
  const props = page.locator("[data-test=properties]");
  const choose = async (id, field, value) => {
    await node(page, id).locator("text.title").click();
    await props.locator(`h2[data-test=node-heading]`, { hasText: id }).waitFor();
    await props.locator(`select[data-field=${field}]`).selectOption(value);
  };
  await choose("email_1", "template", "welcome");
  await choose("email_2", "template", "followup");
  await choose("sms_1", "template", "reminder");
  await choose("wait_for_event_1", "awaited", "opened");
  await props.locator("select[data-field=of]").selectOption("email_1");
  const timeout = props.locator("input[data-field=timeout]");
  await timeout.fill("3d");
  await timeout.press("Tab");
  await page.locator("[data-test=problems] li.ok").waitFor();

  step("switch language and back");
  await page.locator("[data-test=language]").click();
  await page.locator(".palette-item[data-kind=email]", { hasText: "E-mail" }).waitFor();
  await page.locator("[data-test=language]").click();
  await page.locator(".palette-item[data-kind=email]", { hasText: "メール" }).waitFor();

  step("publish");
  await page.locator("[data-test=publish]").click();
  await page.locator("[data-test=message]", { hasText: "公開しました（版 1）" }).waitFor();
  await page.locator("[data-test=status].active").waitFor();
  const hash = await page.evaluate(() => location.hash);
  const flowId = Number(hash.replace("#/flows/", ""));
  if (!flowId) throw new Error(`the address is ${hash}`);
  const published = await drawn(page);
  await page.screenshot({ path: `${artifacts}/editor-published.png` });

  step("reload");
  await page.reload();
  await node(page, "sms_1").waitFor();
  await page.locator("[data-test=status].active").waitFor();
  const reloaded = await drawn(page);
  if (JSON.stringify(reloaded) !== JSON.stringify(published)) {
    throw new Error(`after reload: ${JSON.stringify(reloaded)}, before: ${JSON.stringify(published)}`);
  }
  if ((await page.locator("[data-test=dirty]").innerText()).trim() !== "") {
    throw new Error("a reloaded flow shows unsaved changes");
  }
  await page.screenshot({ path: `${artifacts}/editor-reloaded.png` });

  step("the same account signs in elsewhere: this browser is told why it was signed out");
  const elsewhere = await fetch(`${base}/api/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ login, password }),
  });
  if (elsewhere.status !== 200) throw new Error(`signing in elsewhere: ${elsewhere.status}`);
  await page.reload();
  await page
    .locator("form.login [data-test=session-ended]", { hasText: "別の場所からログイン" })
    .waitFor();
  await page.screenshot({ path: `${artifacts}/signed-out-elsewhere.png` });

  return { flow_id: flowId, ...published };
});
