//! What the operator lets files travel through: the folder import flows may read below, the
//! folder scheduled exports may write below, and the SFTP key folder; and how an SFTP login's
//! credential is found there. Secrets are never in a flow or a job: a key is a file the
//! operator placed, a password an environment variable named `TABIJI_SFTP_…`.

use std::path::PathBuf;

use tabiji_connectors::http_pull::host_listed;
use tabiji_connectors::sftp::Credential;
use tabiji_model::import::{
    HTTP_HEADER_ENV_PREFIX, HttpSource, SFTP_PASSWORD_ENV_PREFIX, SftpLogin, is_plain_file_name,
};

#[derive(Debug, Clone, Default)]
pub struct Transfers {
    /// The folder directory import flows may read below; `None` turns directory sources off.
    pub import_root: Option<PathBuf>,
    /// The folder directory exports may write below; `None` turns directory destinations off.
    pub export_root: Option<PathBuf>,
    /// The folder holding the private keys SFTP logins name; `None` turns SFTP keys off.
    pub sftp_keys: Option<PathBuf>,
    /// The hosts (`host` or `host:port`) HTTP sources may download from; none turns them off.
    pub http_hosts: Vec<String>,
    /// The SFTP servers (`host` or `host:port`) flows and jobs may log in to; none turns SFTP
    /// off. Without it, anyone allowed to save a flow could send a partner's password to a
    /// server of their own.
    pub sftp_hosts: Vec<String>,
}

/// Variables that configure tabiji and are no secret a flow may name.
const SETTINGS: [&str; 3] = ["TABIJI_SFTP_KEYS", "TABIJI_SFTP_HOSTS", "TABIJI_HTTP_HOSTS"];

/// Why an SFTP login has no credential; the message starts with the login field concerned.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "key: SFTP keys are off: start tabiji with --sftp-keys (TABIJI_SFTP_KEYS) naming the folder that holds the key files"
    )]
    NoKeyFolder,
    #[error("key: {0:?} is not a file name in the SFTP key folder")]
    KeyName(String),
    #[error(
        "password_env: {0} is not set in the tabiji process (only variables starting with {SFTP_PASSWORD_ENV_PREFIX} are read)"
    )]
    NoPassword(String),
    #[error(
        "headers.{header}: {variable} is not set in the tabiji process (only variables starting with {HTTP_HEADER_ENV_PREFIX} are read)"
    )]
    NoHeaderValue { header: String, variable: String },
    #[error(
        "host: {0} is not among the SFTP servers flows may log in to: the operator lists them with --sftp-hosts (TABIJI_SFTP_HOSTS)"
    )]
    HostNotAllowed(String),
}

/// The key file or password `login` names, from where the operator keeps them, once its
/// server is known to be one the operator lists.
pub fn credential(
    login: &SftpLogin<'_>,
    settings: &Transfers,
) -> Result<Credential, CredentialError> {
    if !host_listed(login.host, Some(login.port), &settings.sftp_hosts) {
        return Err(CredentialError::HostNotAllowed(format!(
            "{}:{}",
            login.host, login.port
        )));
    }
    if let Some(name) = login.key {
        let keys = settings
            .sftp_keys
            .as_ref()
            .ok_or(CredentialError::NoKeyFolder)?;
        if !is_plain_file_name(name) {
            return Err(CredentialError::KeyName(name.to_string()));
        }
        return Ok(Credential::Key(keys.join(name)));
    }
    let variable = login.password_env.unwrap_or_default().to_string();
    if !variable.starts_with(SFTP_PASSWORD_ENV_PREFIX) || SETTINGS.contains(&variable.as_str()) {
        return Err(CredentialError::NoPassword(variable));
    }
    std::env::var(&variable)
        .map(Credential::Password)
        .map_err(|_| CredentialError::NoPassword(variable))
}

/// The values of the secret headers an HTTP source names, from the process's environment.
pub fn header_values(source: &HttpSource) -> Result<Vec<(String, String)>, CredentialError> {
    source
        .headers
        .iter()
        .map(|(header, variable)| {
            let missing = || CredentialError::NoHeaderValue {
                header: header.clone(),
                variable: variable.clone(),
            };
            if !variable.starts_with(HTTP_HEADER_ENV_PREFIX)
                || SETTINGS.contains(&variable.as_str())
            {
                return Err(missing());
            }
            let value = std::env::var(variable).map_err(|_| missing())?;
            Ok((header.clone(), value))
        })
        .collect()
}
