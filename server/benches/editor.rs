//! The browser editor in Debian's Chromium (issue 7): the bundle's size, a 200-node flow opened
//! and drawn, and a node dragged across it.
//!
//! Saves a flow of BENCH_NODES nodes (200: sends and waits in a chain, laid out on a grid) to a
//! scratch SQLite database, serves it with the real `tabiji serve` and the built editor
//! (`scripts/build-editor`), and runs `tests/browser/bench_editor.mjs`, which measures, in the
//! same browser: the reference, an empty page loaded from the same server; the flow opened in a
//! new tab (the app loaded, signed in, the flow fetched and every node drawn) and opened from the
//! flow list in the running app; and a node dragged for two seconds, its frames per second
//! against the same pointer moves over an empty page. Prints the figures and their ratios, and
//! the WebAssembly's size raw and gzip-compressed against the 2 MB target.
//! `cargo bench -p tabiji-server --bench editor` (or `scripts/bench/editor`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tabiji_storage::scratch::Scratch;

// Shared by the benchmarks: this one needs the store, not the loading or timing helpers.
#[allow(dead_code)]
mod common;
mod served;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A chain of `nodes` nodes (sends and waits, an exit last), laid out twenty to a row.
fn large_flow(nodes: usize) -> Value {
    let list: Vec<Value> = (0..nodes)
        .map(|i| {
            let position = json!([60 + (i % 20) * 220, 80 + (i / 20) * 140]);
            let id = format!("n{i}");
            let next = format!("n{}", i + 1);
            if i + 1 == nodes {
                json!({"id": id, "type": "exit", "position": position})
            } else if i % 2 == 0 {
                json!({"id": id, "type": "send", "channel": "test", "template": "bench", "next": next, "position": position})
            } else {
                json!({"id": id, "type": "wait", "duration": "1d", "next": next, "position": position})
            }
        })
        .collect();
    json!({
        "format": 1, "name": format!("{nodes} nodes"),
        "entry": {"type": "api", "next": "n0"},
        "nodes": list
    })
}

/// The size of a file of the built editor and of the gzip copy `scripts/build-editor` writes
/// beside it (what browsers that accept gzip are sent).
fn sizes(dist: &Path, name: &str) -> (usize, usize) {
    let size = |name: &str| {
        std::fs::metadata(dist.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}: run scripts/build-editor"))
            .len() as usize
    };
    (size(name), size(&format!("{name}.gz")))
}

/// The server, stopped when the benchmark ends, however it ends.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1_000_000.0
}

#[tokio::main]
async fn main() {
    let nodes = env_or("BENCH_NODES", 200) as usize;
    let dist = checkout().join("target/editor/dist");
    assert!(
        tabiji_server::editor::is_built(&dist),
        "the editor is not built in {}: run scripts/build-editor",
        dist.display()
    );
    let browser_dir = checkout().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: npm ci --prefix tests/browser"
    );

    let (wasm, wasm_gz) = sizes(&dist, "tabiji_editor_bg.wasm");
    let (glue, glue_gz) = sizes(&dist, "tabiji_editor.js");
    println!(
        "bundle: WebAssembly {:.2} MB ({:.2} MB gzip), JavaScript {:.0} kB ({:.0} kB gzip); \
         {:.2} MB gzip in all against the 2 MB target ({:.0} %)",
        mb(wasm),
        mb(wasm_gz),
        glue as f64 / 1000.0,
        glue_gz as f64 / 1000.0,
        mb(wasm_gz + glue_gz),
        (wasm_gz + glue_gz) as f64 / 2_000_000.0 * 100.0
    );

    let scratch = Scratch::sqlite();
    let store = common::open(&scratch.url).await;
    let db = store.db().clone();
    let token = served::admin_token(&db).await;
    let login = format!("bench{}", std::process::id());
    let (server, base) = served::serve(
        &scratch.url,
        &[],
        &[
            ("TABIJI_EDITOR_DIR", dist.as_os_str()),
            ("RUST_LOG", "warn".as_ref()),
        ],
    );
    let _server = Stopped(server);
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{base}/api/flows"))
        .bearer_auth(&token)
        .json(&large_flow(nodes))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let flow = created["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("the flow is saved: {created}"));

    let artifacts = checkout().join("target/browser-artifacts/bench");
    let out = std::process::Command::new("node")
        .arg(browser_dir.join("bench_editor.mjs"))
        .arg(&artifacts)
        .args([
            base.as_str(),
            &login,
            "bench-password-1",
            &flow.to_string(),
            &(nodes + 1).to_string(),
        ])
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "bench_editor.mjs failed\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "reference: an empty page from the same server, median of {}: {:.1} ms",
        m["runs"],
        f("blank_ms")
    );
    println!(
        "{nodes}-node flow opened in a new tab (app loaded, signed in, flow fetched, {} nodes drawn): \
         median {:.0} ms, worst {:.0} ms ({:.1}x the empty page; target 1,000 ms)",
        m["drawn"],
        f("cold_ms"),
        f("cold_worst_ms"),
        f("cold_ms") / f("blank_ms")
    );
    println!(
        "{nodes}-node flow opened from the flow list in the running app: median {:.0} ms, worst {:.0} ms",
        f("warm_ms"),
        f("warm_worst_ms")
    );
    println!(
        "dragging a node for {:.1} s ({} pointer moves): {:.1} frames/s, the node drawn somewhere new in {:.1} of them, longest frame {:.1} ms, \
         95th percentile {:.1} ms; the same for 2 s over an empty page ({} moves): {:.1} frames/s \
         (ratio {:.2}; target 50 frames/s)",
        f("drag_seconds"),
        m["moves"],
        f("drag_fps"),
        f("drag_redrawn"),
        f("drag_longest_ms"),
        f("drag_p95_ms"),
        m["blank_moves"],
        f("blank_fps"),
        f("drag_fps") / f("blank_fps")
    );
    println!("moved: {}", m["moved"]);
}
