//! A real OpenSSH server (Debian's `openssh-server`) on a loopback port with a throwaway host
//! key, serving SFTP only, and a throwaway client key the server accepts: the peer SFTP import
//! sources are tested against.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

pub struct SshServer {
    pub port: u16,
    /// The login the client key is accepted for (the user running the tests).
    pub user: String,
    /// `SHA256:…` of the server's host key.
    pub host_key: String,
    /// The folder holding the client key, named [`SshServer::KEY`].
    pub keys: PathBuf,
    /// An empty folder on the server for the test's files.
    pub folder: PathBuf,
    dir: PathBuf,
    child: Child,
}

impl SshServer {
    pub const KEY: &'static str = "partner_ed25519";

    /// Starts sshd; panics saying what to install when OpenSSH's server is missing.
    pub fn start() -> SshServer {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: SFTP sources are tested against a real OpenSSH server (apt-get install openssh-server)"
        );
        let dir = crate::fresh_dir("tabiji-sshd");
        let keys = dir.join("keys");
        let folder = dir.join("outgoing");
        for made in [&dir, &keys, &folder] {
            std::fs::create_dir_all(made).unwrap();
        }
        let host_key = dir.join("host_ed25519");
        let client_key = keys.join(Self::KEY);
        for key in [&host_key, &client_key] {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "tabiji-test", "-f"])
                .arg(key)
                .status()
                .expect("ssh-keygen runs");
            assert!(status.success(), "ssh-keygen made {}", key.display());
        }
        std::fs::copy(
            client_key.with_extension("pub"),
            dir.join("authorized_keys"),
        )
        .unwrap();
        std::fs::remove_file(client_key.with_extension("pub")).unwrap();
        let user = String::from_utf8(
            Command::new("id")
                .arg("-un")
                .output()
                .expect("id runs")
                .stdout,
        )
        .unwrap()
        .trim()
        .to_string();
        // sshd checks its privilege separation folder exists even when it never uses it.
        if user == "root" {
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {host}\n\
                 PidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/authorized_keys\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PasswordAuthentication yes\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n\
                 AllowUsers {user}\n\
                 Subsystem sftp internal-sftp\n\
                 ForceCommand internal-sftp\n\
                 LogLevel ERROR\n",
                host = host_key.display(),
                dir = dir.display(),
            ),
        )
        .unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sshd starts");
        let fingerprint = String::from_utf8(
            Command::new("ssh-keygen")
                .arg("-lf")
                .arg(host_key.with_extension("pub"))
                .output()
                .expect("ssh-keygen -l runs")
                .stdout,
        )
        .unwrap();
        let host_key = fingerprint
            .split_whitespace()
            .nth(1)
            .expect("ssh-keygen -l prints a fingerprint")
            .to_string();
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sshd listens on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SshServer {
            port,
            user,
            host_key,
            keys,
            folder,
            dir,
            child,
        }
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
