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
    /// The SFTP servers flows and jobs may log in to, each `host` or `host:port`, optionally
    /// bound to the credentials that may be used there (`sftp.ota.example=ota_ed25519|
    /// TABIJI_SFTP_OTA_PASSWORD`); none turns SFTP off. Without the list, anyone allowed to save
    /// a flow could send a partner's password to a server of their own; with bindings, not
    /// even to another partner's.
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
    #[error(
        "{field}: {name} is not a credential the operator allows for {host} (--sftp-hosts binds each server to its own)"
    )]
    NotForThisHost {
        field: &'static str,
        name: String,
        host: String,
    },
}

/// Whether the operator's SFTP list lets `name` (a key file or password variable) be used to
/// log in to `host:port`: an entry naming the server without credentials allows any; one with
/// `=a|b` only those.
fn sftp_allows(hosts: &[String], host: &str, port: u16, name: &str) -> Option<bool> {
    let mut listed = None;
    for entry in hosts {
        let (place, bound) = match entry.split_once('=') {
            Some((place, names)) => (place.trim(), Some(names)),
            None => (entry.trim(), None),
        };
        if !host_listed(host, Some(port), &[place.to_string()]) {
            continue;
        }
        let allows = bound.is_none_or(|names| names.split('|').any(|n| n.trim() == name));
        listed = Some(listed.unwrap_or(false) || allows);
    }
    listed
}

/// The key file or password `login` names, from where the operator keeps them, once its
/// server is known to be one the operator lists.
pub fn credential(
    login: &SftpLogin<'_>,
    settings: &Transfers,
) -> Result<Credential, CredentialError> {
    let (field, name) = match (login.key, login.password_env) {
        (Some(key), _) => ("key", key),
        (None, password) => ("password_env", password.unwrap_or_default()),
    };
    let server = format!("{}:{}", login.host, login.port);
    match sftp_allows(&settings.sftp_hosts, login.host, login.port, name) {
        None => return Err(CredentialError::HostNotAllowed(server)),
        Some(false) => {
            return Err(CredentialError::NotForThisHost {
                field,
                name: name.to_string(),
                host: server,
            });
        }
        Some(true) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sftp_servers_can_be_bound_to_their_own_credentials() {
        let hosts: Vec<String> = [
            "sftp.ota.example=ota_ed25519|TABIJI_SFTP_OTA_PASSWORD",
            "files.points.example:2222",
        ]
        .map(String::from)
        .to_vec();
        let allows = |host, port, name| sftp_allows(&hosts, host, port, name);
        assert_eq!(allows("sftp.ota.example", 22, "ota_ed25519"), Some(true));
        assert_eq!(
            allows("sftp.ota.example", 22, "TABIJI_SFTP_OTA_PASSWORD"),
            Some(true)
        );
        assert_eq!(
            allows("sftp.ota.example", 22, "points_ed25519"),
            Some(false),
            "another partner's key is not sent here"
        );
        assert_eq!(allows("files.points.example", 2222, "anything"), Some(true));
        assert_eq!(allows("files.points.example", 22, "anything"), None);
        assert_eq!(allows("evil.example", 22, "ota_ed25519"), None);
    }
}
