//! A PostgreSQL server of the test's own (Debian's `postgresql` binaries, a throwaway data
//! folder, a free loopback port) that the test may stop and start again: the shared server
//! `DATABASE_URL` names must never be restarted under other tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct PrivatePostgres {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
    /// initdb and postgres refuse to run as root: as root, they run as the `postgres` user.
    as_postgres: bool,
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
fn binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

impl PrivatePostgres {
    /// Creates and starts a server; panics saying what to install when PostgreSQL's server
    /// binaries are missing.
    pub fn start() -> PrivatePostgres {
        let bin = binaries().expect(
            "PostgreSQL's server binaries (/usr/lib/postgresql/*/bin/initdb) are missing: apt-get install postgresql",
        );
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let dir = crate::fresh_dir("tabiji-postgres");
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(&dir)
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown postgres {}", dir.display());
        }
        let server = PrivatePostgres {
            port: crate::sshd::free_port(),
            bin,
            dir,
            as_postgres,
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        server.start_again();
        server
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Runs one of the server's programs, as `postgres` when the tests run as root.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let output = command
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("{} runs: {e}", path.display()));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        output
    }

    /// The server's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`: a URL [`Scratch::postgres`] can make
    /// scratch databases with.
    ///
    /// [`Scratch::postgres`]: tabiji_storage::scratch::Scratch::postgres
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server as a crash would: every backend killed at once, no checkpoint; the
    /// next start recovers from the write-ahead log.
    pub fn crash(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    fn running(&self) -> bool {
        Path::new(&self.dir.join("data/postmaster.pid")).exists()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running() {
            let path = self.bin.join("pg_ctl");
            let data = self.data();
            let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
            let _ = if self.as_postgres {
                Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(&path)
                    .args(args)
                    .output()
            } else {
                Command::new(&path).args(args).output()
            };
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
