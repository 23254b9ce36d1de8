//! A real SMTP server (`aiosmtpd`, PyPI) on a loopback port that keeps every message exactly as
//! received, and DKIM verification by `dkimpy` (PyPI): the peers the e-mail channel is tested
//! against. Both scripts are in `tests/peers/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn peer(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(script)
}

pub struct SmtpSink {
    pub port: u16,
    folder: PathBuf,
    child: Child,
}

impl SmtpSink {
    /// Starts the sink; panics saying what to install when aiosmtpd is missing.
    pub fn start() -> SmtpSink {
        let folder = crate::fresh_dir("tabiji-smtp");
        let port = crate::sshd::free_port();
        let mut child = Command::new("python3")
            .arg(peer("smtp_sink.py"))
            .arg(port.to_string())
            .arg(&folder)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut why = String::new();
                if let Some(mut err) = child.stderr.take() {
                    use std::io::Read;
                    let _ = err.read_to_string(&mut why);
                }
                panic!(
                    "the SMTP sink stopped ({status}): {why}\nIt needs aiosmtpd: pip install aiosmtpd dkimpy"
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the SMTP sink listens on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpSink {
            port,
            folder,
            child,
        }
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, in order, as bytes on the wire.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// Runs a peer script over `message` (written to a temporary file) with more arguments.
fn run_peer(script: &str, message: &[u8], args: &[&str]) -> std::process::Output {
    let file = std::env::temp_dir().join(format!(
        "tabiji-peer-{}-{}.eml",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::write(&file, message).unwrap();
    let out = Command::new("python3")
        .arg(peer(script))
        .arg(&file)
        .args(args)
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_file(&file);
    out
}

/// Whether dkimpy verifies `message`'s DKIM signature against the key `record` (the TXT
/// record's text); the reason when it does not.
pub fn dkim_verify(message: &[u8], record: &str) -> Result<(), String> {
    let out = run_peer("dkim_verify.py", message, &[record]);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `message` as Python's MIME parser reads it: `subject`, `from`, `headers`, and the decoded
/// `text` and `html` parts.
pub fn mime_parts(message: &[u8]) -> serde_json::Value {
    let out = run_peer("mime_parts.py", message, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
