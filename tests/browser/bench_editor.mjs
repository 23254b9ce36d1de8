// The editor's speed in a real Chromium, for server/benches/editor.rs: an empty page loaded
// from the same server (the reference); a large flow opened in a new tab and from the flow list,
// until every node is drawn; a node dragged for two seconds, its frames counted, against the
// same pointer moves over an empty page. Prints the figures as JSON on stdout.
//
// usage: node bench_editor.mjs ARTIFACT_DIR BASE_URL LOGIN PASSWORD FLOW_ID NODES_DRAWN
import { report, start, step, watch } from "./harness.mjs";

const [artifacts, base, login, password, flowId, drawnText] = process.argv.slice(2);
const drawn = Number(drawnText);
const RUNS = 5;
const { browser, problems } = await start(artifacts);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const worst = (xs) => Math.max(...xs);

/** Resolves, in the page, once `count` nodes are on the canvas and the frame after is painted. */
const nodesDrawn = (count) => new Promise((resolve) => {
  const check = () => {
    if (document.querySelectorAll("g.node[data-node]").length >= count) {
      requestAnimationFrame(() => resolve(performance.now()));
    } else {
      requestAnimationFrame(check);
    }
  };
  check();
});

/** Counts frames in the page from now until `stopFrames()`: their number, time and gaps, and
 * in how many of them the element `watched` (if any) was drawn somewhere new. */
const countFrames = (watched) => {
  const gaps = [];
  let last = performance.now();
  const started = last;
  let running = true;
  let redrawn = 0;
  let place = null;
  const tick = (now) => {
    gaps.push(now - last);
    last = now;
    const element = watched && document.querySelector(watched);
    const here = element && element.getAttribute("transform");
    if (here !== place) {
      if (place !== null) redrawn += 1;
      place = here;
    }
    if (running) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  window.stopFrames = () => {
    running = false;
    return { frames: gaps.length, ms: last - started, gaps, redrawn };
  };
};

/** Presses at `from` and moves the pointer back and forth over `dx` for `seconds`, as fast as
 * the browser takes the moves, counting frames. */
async function sweep(page, from, seconds, dx, watched) {
  await page.evaluate(countFrames, watched);
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  const t0 = Date.now();
  let moves = 0;
  while (Date.now() - t0 < seconds * 1000) {
    moves += 1;
    const phase = (moves % 40) / 40;
    const offset = phase < 0.5 ? phase * 2 * dx : (1 - phase) * 2 * dx;
    await page.mouse.move(from.x + offset, from.y + offset / 3);
  }
  await page.mouse.up();
  const counted = await page.evaluate(() => window.stopFrames());
  const gaps = counted.gaps.slice(1).sort((a, b) => a - b);
  return {
    moves,
    fps: counted.frames / (counted.ms / 1000),
    redrawn: counted.redrawn / (counted.ms / 1000),
    seconds: counted.ms / 1000,
    longest: gaps[gaps.length - 1],
    p95: gaps[Math.floor(gaps.length * 0.95)],
  };
}

await report(browser, problems, async () => {
  const context = await browser.newContext({ locale: "en-US", viewport: { width: 1600, height: 1000 } });
  const page = await context.newPage();
  watch(page, problems);

  step("the reference: an empty page from the same server");
  const blank = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = Date.now();
    await page.goto(`${base}/api/health`);
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    blank.push(Date.now() - t0);
  }

  step("sign in");
  await page.goto(base + "/#/flows");
  await page.locator("form.login input[name=login]").fill(login);
  await page.locator("form.login input[name=password]").fill(password);
  await page.locator("form.login button[type=submit]").click();
  await page.locator("[data-test=new-flow]").waitFor();

  step(`the flow in a new tab, ${RUNS} times`);
  const cold = [];
  for (let i = 0; i < RUNS; i++) {
    const tab = await context.newPage();
    watch(tab, problems);
    const t0 = Date.now();
    await tab.goto(`${base}/#/flows/${flowId}`);
    await tab.evaluate(nodesDrawn, drawn);
    cold.push(Date.now() - t0);
    await tab.close();
  }

  step(`the flow from the list, ${RUNS} times`);
  await page.evaluate(`window.nodesDrawn = ${nodesDrawn.toString()}`);
  const warm = [];
  for (let i = 0; i < RUNS; i++) {
    await page.evaluate(() => { location.hash = "#/flows"; });
    await page.locator(`tr[data-flow="${flowId}"]`).waitFor();
    warm.push(await page.evaluate(async ([id, count]) => {
      const t0 = performance.now();
      location.hash = `#/flows/${id}`;
      return (await window.nodesDrawn(count)) - t0;
    }, [flowId, drawn]));
  }
  await page.screenshot({ path: `${artifacts}/large-flow.png` });

  step("drag a node for two seconds");
  const node = page.locator('g.node[data-node="n21"] rect.body');
  const box = await node.boundingBox();
  const from = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  const before = await page.locator('g.node[data-node="n21"]').getAttribute("transform");
  const drag = await sweep(page, from, 2, 160, 'g.node[data-node="n21"]');
  const after = await page.locator('g.node[data-node="n21"]').getAttribute("transform");

  step("the same moves over an empty page");
  await page.goto(`${base}/api/health`);
  const empty = await sweep(page, from, 2, 160, null);

  return {
    runs: RUNS, drawn,
    blank_ms: median(blank),
    cold_ms: median(cold), cold_worst_ms: worst(cold),
    warm_ms: median(warm), warm_worst_ms: worst(warm),
    moves: drag.moves, drag_seconds: drag.seconds, drag_fps: drag.fps, drag_redrawn: drag.redrawn, drag_longest_ms: drag.longest, drag_p95_ms: drag.p95,
    blank_fps: empty.fps, blank_moves: empty.moves,
    moved: `${before} -> ${after}`,
  };
});
