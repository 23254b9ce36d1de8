//! Channels administrators configure through the API (SMS, LINE, webhook): their credentials
//! sealed with the installation's master key before they are stored, and the connectors
//! built from them, rebuilt in every process when any changes.
//!
//! The master key never reaches the database: it is a file the operator keeps (`tabiji
//! master-key generate`), so a copy of the database (a backup, a dump) holds no usable
//! credential. A credential sealed under another key says so instead of failing to send.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use tabiji_connectors::Connector;
use tabiji_connectors::http::Reach;
use tabiji_connectors::line::Line;
use tabiji_connectors::sms::Sms;
use tabiji_connectors::webhook::Webhook;
use tabiji_model::channel::{ChannelSettings, SettingsError};
use tabiji_model::flow::Channel;
use tabiji_storage::{StorageError, Store, channels};

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(
        "channel credentials cannot be stored: start tabiji with --master-key-file (TABIJI_MASTER_KEY_FILE), made once with `tabiji master-key generate FILE`"
    )]
    NoMasterKey,
    #[error("the master key {path}: {why}")]
    MasterKey { path: String, why: String },
    #[error(
        "the {channel} channel's credential was sealed with master key {sealed_with}, but this process has key {have}: start it with the key the credential was saved under, or save the channel again"
    )]
    OtherKey {
        channel: String,
        sealed_with: String,
        have: String,
    },
    #[error("the {channel} channel's credential cannot be opened: {why}")]
    Unsealable { channel: String, why: String },
    #[error("{} settings are not valid: {}", .channel, .problems.iter().map(|p| format!("{}: {}", p.at, p.message)).collect::<Vec<_>>().join("; "))]
    Settings {
        channel: String,
        problems: Vec<SettingsError>,
    },
    #[error(
        "give the {channel} channel's {credential}: it is new, or its address or account changed (a saved credential never follows a new address)"
    )]
    NoCredential {
        channel: String,
        credential: &'static str,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Seals and opens credentials with AES-256-GCM under the master key. The channel and where
/// the credential goes ([`ChannelSettings::destination`]) are the associated data, so a
/// credential moved to another channel's row, or pointed at another address, does not open.
pub struct Vault {
    key: LessSafeKey,
    /// The first 8 hex digits of the key's SHA-256, stored with each credential so a process
    /// started with another key can say so.
    id: String,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("id", &self.id).finish()
    }
}

impl Vault {
    /// A new master key, base64, for a key file.
    pub fn generate() -> String {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .expect("the system's random source works");
        BASE64.encode(key)
    }

    pub fn from_base64(text: &str, shown_as: &str) -> Result<Vault, ChannelError> {
        let bad = |why: &str| ChannelError::MasterKey {
            path: shown_as.to_string(),
            why: why.to_string(),
        };
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| bad("is not base64 (make one with `tabiji master-key generate FILE`)"))?;
        if bytes.len() != 32 {
            return Err(bad("must hold 32 bytes (256 bits) in base64"));
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| bad("is not an AES key"))?;
        Ok(Vault {
            key: LessSafeKey::new(key),
            id: hex::encode(&Sha256::digest(&bytes)[..4]),
        })
    }

    /// Reads a key file, refusing one that others than its owner can read.
    pub fn read(path: &Path) -> Result<Vault, ChannelError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display().to_string();
        let bad = |why: String| ChannelError::MasterKey {
            path: shown.clone(),
            why,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(bad(
                "can be read by others than its owner: chmod 600 it".into()
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        Vault::from_base64(&text, &shown)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `v1.<key id>.<base64 of nonce, ciphertext and tag>`, bound to `context`.
    pub fn seal(&self, context: &str, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut sealed = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .expect("a credential fits AES-GCM");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("v1.{}.{}", self.id, BASE64.encode(out))
    }

    /// Opens a credential sealed for `context` (`channel` names it in errors).
    pub fn open(&self, channel: &str, context: &str, sealed: &str) -> Result<String, ChannelError> {
        let unsealable = |why: &str| ChannelError::Unsealable {
            channel: channel.to_string(),
            why: why.to_string(),
        };
        let mut pieces = sealed.splitn(3, '.');
        let (Some("v1"), Some(id), Some(data)) = (pieces.next(), pieces.next(), pieces.next())
        else {
            return Err(unsealable("it is not in a form this version knows"));
        };
        if id != self.id {
            return Err(ChannelError::OtherKey {
                channel: channel.to_string(),
                sealed_with: id.to_string(),
                have: self.id.clone(),
            });
        }
        let bytes = BASE64
            .decode(data)
            .map_err(|_| unsealable("it is not base64"))?;
        if bytes.len() < NONCE_LEN {
            return Err(unsealable("it is too short"));
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let mut rest = rest.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unsealable("bad nonce"))?;
        let opened = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut rest)
            .map_err(|_| unsealable("it was changed, or belongs to another channel or address"))?;
        String::from_utf8(opened.to_vec()).map_err(|_| unsealable("it is not text"))
    }
}

/// A configured channel as administrators see it: the settings, whether a credential is set
/// (never the credential), who saved it and when.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    pub channel: String,
    pub settings: Json,
    pub credential: &'static str,
    pub credential_set: bool,
    /// Whether this process can open the credential with its master key.
    pub usable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub revision: i64,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// What a credential is sealed to: the channel and where it is sent.
fn context(settings: &ChannelSettings) -> String {
    format!(
        "{}\n{}",
        settings.channel().as_str(),
        settings.destination()
    )
}

/// The stored settings, parsed.
fn parsed(stored: &channels::StoredChannel) -> Result<ChannelSettings, String> {
    serde_json::from_value(stored.settings.clone())
        .map_err(|e| format!("the stored {} settings are not valid: {e}", stored.channel))
}

/// The stored credential opened, or why it cannot be.
fn open(stored: &channels::StoredChannel, vault: Option<&Vault>) -> Result<String, String> {
    let settings = parsed(stored)?;
    let vault = vault.ok_or_else(|| ChannelError::NoMasterKey.to_string())?;
    vault
        .open(&stored.channel, &context(&settings), &stored.credential)
        .map_err(|e| e.to_string())
}

fn view(stored: channels::StoredChannel, vault: Option<&Vault>) -> ChannelView {
    let credential = parsed(&stored)
        .map(|s| s.credential_name())
        .unwrap_or("credential");
    let problem = open(&stored, vault).err();
    ChannelView {
        channel: stored.channel,
        settings: stored.settings,
        credential,
        credential_set: true,
        usable: problem.is_none(),
        problem,
        revision: stored.revision,
        updated_by: stored.updated_by,
        updated_at: stored.updated_at,
    }
}

pub async fn list(store: &Store, vault: Option<&Vault>) -> Result<Vec<ChannelView>, ChannelError> {
    Ok(channels::list(store)
        .await?
        .into_iter()
        .map(|s| view(s, vault))
        .collect())
}

pub async fn get(
    store: &Store,
    vault: Option<&Vault>,
    channel: Channel,
) -> Result<Option<ChannelView>, ChannelError> {
    Ok(channels::get(store, channel.as_str())
        .await?
        .map(|s| view(s, vault)))
}

/// Saves a channel's settings (already checked against the schema by the caller) and its
/// credential; without a credential, the one saved before is kept.
pub async fn save(
    store: &Store,
    vault: Option<&Vault>,
    reach: Reach,
    settings: &ChannelSettings,
    credential: Option<&str>,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), ChannelError> {
    let channel = settings.channel().as_str();
    let mut problems = settings.check();
    if problems.is_empty() {
        for (at, url) in settings.urls() {
            if let Err(message) = tabiji_connectors::http::check_url(url, reach) {
                problems.push(SettingsError {
                    at: at.into(),
                    message,
                });
            }
        }
    }
    if !problems.is_empty() {
        return Err(ChannelError::Settings {
            channel: channel.to_string(),
            problems,
        });
    }
    let vault = vault.ok_or(ChannelError::NoMasterKey)?;
    let context = context(settings);
    let sealed = match credential.map(str::trim).filter(|c| !c.is_empty()) {
        Some(credential) => {
            tabiji_connectors::http::check_credential(credential).map_err(|why| {
                ChannelError::Settings {
                    channel: channel.to_string(),
                    problems: vec![SettingsError {
                        at: settings.credential_name().into(),
                        message: why,
                    }],
                }
            })?;
            vault.seal(&context, credential)
        }
        None => {
            let no_credential = || ChannelError::NoCredential {
                channel: channel.to_string(),
                credential: settings.credential_name(),
            };
            let before = channels::get(store, channel)
                .await?
                .ok_or_else(no_credential)?;
            // A credential never follows a changed address or account: it is given again.
            if parsed(&before).map(|b| b.destination()) != Ok(settings.destination()) {
                return Err(no_credential());
            }
            // Kept only if this process can open it: otherwise the admin must type it again.
            vault.open(channel, &context, &before.credential)?;
            before.credential
        }
    };
    let json = serde_json::to_value(settings).expect("settings serialise");
    channels::save(store, channel, &json, &sealed, by, now).await?;
    Ok(())
}

pub async fn remove(
    store: &Store,
    channel: Channel,
    by: &str,
    now: DateTime<Utc>,
) -> Result<bool, ChannelError> {
    Ok(channels::remove(store, channel.as_str(), by, now).await?)
}

/// A configured channel's connector, or why it cannot send now.
pub type Built = Result<Arc<dyn Connector>, String>;

/// Each configured channel's connector, or why it cannot send.
pub type Connectors = Arc<HashMap<Channel, Built>>;

/// The connectors of the configured channels, rebuilt when any channel is saved or removed.
#[derive(Default)]
pub struct Configured {
    /// With the stamp they were built at.
    cached: Mutex<Option<(i64, Connectors)>>,
}

fn build(stored: channels::StoredChannel, vault: Option<&Vault>, reach: Reach) -> Built {
    let settings = parsed(&stored)?;
    let credential = open(&stored, vault)?;
    for (_, url) in settings.urls() {
        tabiji_connectors::http::check_url(url, reach)?;
    }
    Ok(match settings {
        ChannelSettings::Sms(s) => Arc::new(Sms::new(s, credential, reach)),
        ChannelSettings::Line(s) => Arc::new(Line::new(s, credential, reach)),
        ChannelSettings::Webhook(s) => Arc::new(Webhook::new(s, credential, reach)),
    })
}

impl Configured {
    pub async fn connectors(
        &self,
        store: &Store,
        vault: Option<&Vault>,
        reach: Reach,
    ) -> Result<Connectors, ChannelError> {
        let stamp = channels::stamp(store).await?;
        if let Some((at, built)) = &*self.cached.lock().expect("not poisoned")
            && *at == stamp
        {
            return Ok(built.clone());
        }
        let mut built = HashMap::new();
        for stored in channels::list(store).await? {
            let Some(channel) = Channel::parse(&stored.channel) else {
                continue;
            };
            let connector = build(stored, vault, reach);
            if let Err(why) = &connector {
                tracing::error!(
                    channel = channel.as_str(),
                    why,
                    "a configured channel cannot send"
                );
            }
            built.insert(channel, connector);
        }
        let built = Arc::new(built);
        *self.cached.lock().expect("not poisoned") = Some((stamp, built.clone()));
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_open_only_with_their_key_and_channel() {
        let vault = Vault::from_base64(&Vault::generate(), "test").unwrap();
        let here = "sms\nhttps://api.twilio.com AC1 ";
        let sealed = vault.seal(here, "twilio-token");
        assert!(!sealed.contains("twilio-token"));
        assert_ne!(
            sealed,
            vault.seal(here, "twilio-token"),
            "a fresh nonce each time"
        );
        assert_eq!(vault.open("sms", here, &sealed).unwrap(), "twilio-token");
        for elsewhere in [
            "line\nhttps://api.twilio.com AC1 ",
            "sms\nhttps://evil.example AC1 ",
        ] {
            assert!(matches!(
                vault.open("sms", elsewhere, &sealed),
                Err(ChannelError::Unsealable { .. })
            ));
        }
        let other = Vault::from_base64(&Vault::generate(), "other").unwrap();
        let err = other.open("sms", here, &sealed).unwrap_err();
        assert!(
            matches!(&err, ChannelError::OtherKey { sealed_with, .. } if sealed_with == vault.id()),
            "{err}"
        );
        let mut tampered = sealed.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(vault.open("sms", here, &tampered).is_err());
    }

    #[test]
    fn key_files_must_be_private_and_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tabiji-vault-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.key");
        std::fs::write(&path, Vault::generate()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            Vault::read(&path)
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Vault::read(&path).is_ok());
        std::fs::write(&path, "c2hvcnQ=").unwrap();
        assert!(
            Vault::read(&path)
                .unwrap_err()
                .to_string()
                .contains("32 bytes")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
