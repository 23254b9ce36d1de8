//! Partner files over SFTP: log in with a pinned host key, list a folder, download its files
//! with a size limit and move each processed file to the folder's `done` subfolder on the
//! server (import flows); upload a file whole, under a partial name until complete (scheduled
//! exports).
//!
//! The host key is checked against the fingerprint the flow names before any credential is
//! sent, so a server that is not the partner's never sees the key or the password. Credentials
//! live outside the flow (a key file the operator placed, or an environment variable), and
//! neither the password nor key material appears in errors or logs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;
use tokio::io::AsyncReadExt;

/// How long connecting, key exchange and login may take, and how long one SFTP request may
/// wait for its answer; a server that stops answering cannot hold a worker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT_SECS: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    #[error("{server} cannot be reached: {message}")]
    Connect { server: String, message: String },
    #[error("{server} did not complete the SSH login within {} s", CONNECT_TIMEOUT.as_secs())]
    Timeout { server: String },
    #[error(
        "{server} offered the host key {offered}, not {expected}: nothing was sent to it. If the partner confirms {offered} is their server's key, put it in source.host_key"
    )]
    HostKey {
        server: String,
        offered: String,
        expected: String,
    },
    #[error(
        "{server} refused the login of {user} with the {method}: check the user and the {method}"
    )]
    Refused {
        server: String,
        user: String,
        method: &'static str,
    },
    #[error("the SFTP key {path}: {message}")]
    Key { path: String, message: String },
    #[error("{server}: {message}")]
    Session { server: String, message: String },
    #[error("{path} on the SFTP server: {message}")]
    File { path: String, message: String },
}

/// How to log in. The password is kept out of `Debug`.
pub enum Credential {
    /// An unencrypted OpenSSH private key file.
    Key(PathBuf),
    Password(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Key(path) => f.debug_tuple("Key").field(path).finish(),
            Credential::Password(_) => f.write_str("Password(…)"),
        }
    }
}

/// Where to log in.
#[derive(Debug)]
pub struct Server<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    /// `SHA256:…` as `ssh-keygen -lf` prints it.
    pub host_key: &'a str,
}

impl<'a> Server<'a> {
    pub fn of(login: &tabiji_model::import::SftpLogin<'a>) -> Server<'a> {
        Server {
            host: login.host,
            port: login.port,
            user: login.user,
            host_key: login.host_key,
        }
    }

    fn name(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A file in the remote folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub name: String,
    pub bytes: u64,
    pub modified: SystemTime,
}

/// Refuses every host key but the pinned one, remembering what was offered for the error.
struct PinnedHostKey {
    expected: String,
    offered: Arc<Mutex<Option<String>>>,
}

impl client::Handler for PinnedHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let fingerprint = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256),
            PublicKeyOrCertificate::Certificate(certificate) => {
                certificate.public_key().fingerprint(HashAlg::Sha256)
            }
        }
        .to_string();
        let matches = fingerprint == self.expected;
        *self.offered.lock().expect("not poisoned") = Some(fingerprint);
        Ok(matches)
    }
}

/// A logged-in SFTP session on one folder.
pub struct SftpFolder {
    server: String,
    folder: String,
    session: client::Handle<PinnedHostKey>,
    sftp: SftpSession,
}

impl SftpFolder {
    /// Connects, checks the host key, logs in and opens the SFTP subsystem on `folder`.
    pub async fn open(
        server: &Server<'_>,
        credential: &Credential,
        folder: &str,
    ) -> Result<SftpFolder, SftpError> {
        let name = server.name();
        match tokio::time::timeout(CONNECT_TIMEOUT, Self::login(server, credential, folder)).await {
            Ok(result) => result,
            Err(_) => Err(SftpError::Timeout { server: name }),
        }
    }

    async fn login(
        server: &Server<'_>,
        credential: &Credential,
        folder: &str,
    ) -> Result<SftpFolder, SftpError> {
        let name = server.name();
        let session_error = |e: russh::Error| SftpError::Session {
            server: name.clone(),
            message: e.to_string(),
        };
        // The key is read first: a missing key should not cost a connection.
        let key = match credential {
            Credential::Key(path) => Some(read_key(path)?),
            Credential::Password(_) => None,
        };
        let offered = Arc::new(Mutex::new(None));
        let handler = PinnedHostKey {
            expected: server.host_key.to_string(),
            offered: offered.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(REQUEST_TIMEOUT_SECS)),
            ..Default::default()
        });
        let mut session = match client::connect(config, (server.host, server.port), handler).await {
            Ok(session) => session,
            Err(e) => {
                let seen = offered.lock().expect("not poisoned").clone();
                return Err(match seen {
                    Some(offered) if offered != server.host_key => SftpError::HostKey {
                        server: name,
                        offered,
                        expected: server.host_key.to_string(),
                    },
                    _ => SftpError::Connect {
                        server: name,
                        message: e.to_string(),
                    },
                });
            }
        };
        let (method, result) = match (credential, key) {
            (_, Some(key)) => {
                let hash = session
                    .best_supported_rsa_hash()
                    .await
                    .map_err(session_error)?
                    .flatten();
                let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
                (
                    "key",
                    session.authenticate_publickey(server.user, key).await,
                )
            }
            (Credential::Password(password), None) => (
                "password",
                session
                    .authenticate_password(server.user, password.as_str())
                    .await,
            ),
            (Credential::Key(_), None) => unreachable!("a key credential has its key read"),
        };
        if !result.map_err(session_error)?.success() {
            return Err(SftpError::Refused {
                server: name,
                user: server.user.to_string(),
                method,
            });
        }
        let channel = session
            .channel_open_session()
            .await
            .map_err(session_error)?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(session_error)?;
        let sftp =
            SftpSession::new(channel.into_stream())
                .await
                .map_err(|e| SftpError::Session {
                    server: name.clone(),
                    message: format!("the SFTP subsystem did not start: {e}"),
                })?;
        sftp.set_timeout(REQUEST_TIMEOUT_SECS);
        Ok(SftpFolder {
            server: name,
            folder: folder.trim_end_matches('/').to_string(),
            session,
            sftp,
        })
    }

    /// The folder's path on the server joined with `name`.
    pub fn path_of(&self, name: &str) -> String {
        if self.folder.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.folder)
        }
    }

    /// `server:path` of a file, for messages.
    pub fn describe(&self, name: &str) -> String {
        format!("sftp://{}/{}", self.server, self.path_of(name))
    }

    fn file_error(&self, name: &str, e: impl std::fmt::Display) -> SftpError {
        SftpError::File {
            path: self.path_of(name),
            message: e.to_string(),
        }
    }

    /// The folder's regular files (links, folders and names with a `/` are left out).
    pub async fn list(&self) -> Result<Vec<RemoteFile>, SftpError> {
        let entries = self
            .sftp
            .read_dir(self.path_of("."))
            .await
            .map_err(|e| self.file_error(".", e))?;
        let mut files = Vec::new();
        for entry in entries {
            let name = entry.file_name();
            let meta = entry.metadata();
            if !meta.is_regular() || name.contains('/') {
                continue;
            }
            files.push(RemoteFile {
                bytes: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                name,
            });
        }
        Ok(files)
    }

    /// A file's bytes, refusing files over `limit` bytes (checked again while reading, since
    /// the listing may be stale).
    pub async fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>, SftpError> {
        let mut file = self
            .sftp
            .open(self.path_of(name))
            .await
            .map_err(|e| self.file_error(name, e))?;
        let too_large = || self.file_error(name, format!("is larger than {limit} bytes"));
        let size = file
            .metadata()
            .await
            .map_err(|e| self.file_error(name, e))?
            .len();
        if size > limit {
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(size as usize);
        (&mut file)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| self.file_error(name, e))?;
        // Closing a read handle cannot lose data; its error is not worth a failed import.
        let _ = file.close().await;
        if bytes.len() as u64 > limit {
            return Err(too_large());
        }
        Ok(bytes)
    }

    /// Moves `name` into the folder's `done` subfolder (made if need be) under `done_name`.
    pub async fn move_to_done(&self, name: &str, done_name: &str) -> Result<(), SftpError> {
        let done = self.path_of(DONE);
        let exists = self
            .sftp
            .try_exists(done.clone())
            .await
            .map_err(|e| self.file_error(DONE, e))?;
        if !exists {
            self.sftp
                .create_dir(done.clone())
                .await
                .map_err(|e| self.file_error(DONE, e))?;
        }
        self.sftp
            .rename(self.path_of(name), format!("{done}/{done_name}"))
            .await
            .map_err(|e| self.file_error(name, format!("cannot be moved to {DONE}/: {e}")))
    }

    /// Writes `local` to the folder as `name`: first under a hidden partial name, renamed once
    /// complete, so the partner never picks up half a file; a file of that name is replaced.
    pub async fn upload(
        &self,
        name: &str,
        partial: &str,
        local: &mut tokio::fs::File,
    ) -> Result<(), SftpError> {
        let written = self.write_partial(partial, local).await;
        let result = match written {
            Ok(()) => self.replace(partial, name).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            // Best effort: a partial file left behind is hidden and named as such.
            let _ = self.sftp.remove_file(self.path_of(partial)).await;
        }
        result
    }

    async fn write_partial(
        &self,
        partial: &str,
        local: &mut tokio::fs::File,
    ) -> Result<(), SftpError> {
        use tokio::io::AsyncWriteExt;
        let mut remote = self
            .sftp
            .create(self.path_of(partial))
            .await
            .map_err(|e| self.file_error(partial, e))?;
        tokio::io::copy(local, &mut remote)
            .await
            .map_err(|e| self.file_error(partial, e))?;
        remote
            .flush()
            .await
            .map_err(|e| self.file_error(partial, e))?;
        remote
            .close()
            .await
            .map_err(|e| self.file_error(partial, e))
    }

    /// Renames `partial` to `name`, replacing a file of that name.
    async fn replace(&self, partial: &str, name: &str) -> Result<(), SftpError> {
        let target = self.path_of(name);
        if self
            .sftp
            .try_exists(target.clone())
            .await
            .map_err(|e| self.file_error(name, e))?
        {
            self.sftp
                .remove_file(target.clone())
                .await
                .map_err(|e| self.file_error(name, format!("cannot be replaced: {e}")))?;
        }
        self.sftp
            .rename(self.path_of(partial), target)
            .await
            .map_err(|e| self.file_error(partial, format!("cannot be renamed to {name}: {e}")))
    }

    /// Whether `done/name` exists on the server.
    pub async fn done_has(&self, name: &str) -> Result<bool, SftpError> {
        self.sftp
            .try_exists(format!("{}/{name}", self.path_of(DONE)))
            .await
            .map_err(|e| self.file_error(DONE, e))
    }

    /// Ends the session politely; failures here change nothing already done.
    pub async fn close(self) {
        let _ = self.sftp.close().await;
        let _ = self
            .session
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// Where processed files go, inside the folder.
pub const DONE: &str = "done";

/// Reads an unencrypted private key, refusing one that others than its owner can read (as
/// OpenSSH does).
fn read_key(path: &std::path::Path) -> Result<russh::keys::PrivateKey, SftpError> {
    use std::os::unix::fs::PermissionsExt;
    let key_error = |message: String| SftpError::Key {
        path: path.display().to_string(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| key_error(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(key_error(
            "can be read by others than its owner: chmod 600 it".into(),
        ));
    }
    russh::keys::load_secret_key(path, None).map_err(|e| {
        key_error(format!(
            "is not an unencrypted OpenSSH private key ({e}); write one with ssh-keygen -t ed25519 -N ''"
        ))
    })
}
