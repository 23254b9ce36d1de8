//! What the benchmarks that go through the HTTP API share: an administrator's API token, and
//! the real `tabiji serve` on a free loopback port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use tabiji_storage::Db;
use tabiji_storage::auth::{self as users, NewUser};

/// A new administrator's API token.
pub async fn admin_token(db: &Db) -> String {
    let admin = users::create_user(
        db,
        NewUser {
            login: format!("bench{}", std::process::id()),
            display_name: "bench".into(),
            password: "bench-password-1".into(),
            is_admin: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    users::create_token(db, admin.id, "bench", None, None)
        .await
        .unwrap()
        .1
}

/// `tabiji serve` over `url` with `args` and `env`, and the address it serves on. The rest
/// of its log is read, so that it never waits on a full pipe.
pub fn serve(url: &str, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> (Child, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_tabiji"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("DATABASE_URL", url)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tabiji serve starts");
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("serve prints its address").unwrap();
        if let Some(rest) = line.split("serving on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (server, base)
}
