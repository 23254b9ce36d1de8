//! E-mail over SMTP (MA-2, MA-4): connections kept open to the operator's relay (plain,
//! STARTTLS or TLS, with or without login), each message multipart text/HTML in UTF-8 with its
//! subject MIME-encoded, signed with DKIM when a key is configured.
//!
//! The relay's answer decides the outcome: a 5xx refusal is permanent, anything else that
//! fails (4xx, timeouts, lost connections) is worth another attempt. Every attempt of one
//! delivery carries the same `Message-ID`, so receivers can tell a retry from a new mail.

use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::EncodePublicKey;
use rsa::{RsaPrivateKey, RsaPublicKey};
use tabiji_model::flow::Channel;

use crate::dkim::Signer;
use crate::{BoxFuture, Connector, Message, Outcome};

/// Why the e-mail channel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error(
        "the SMTP URL {url:?} is not usable: {why} (use smtp://host:25, smtp://user@host:587?tls=required or smtps://user@host:465)"
    )]
    Url { url: String, why: String },
    #[error("the sender {0:?} is not a mailbox such as \"観光協会 <news@example.jp>\"")]
    Sender(String),
    #[error("the sender {0}")]
    Unaligned(String),
    #[error("the DKIM key {path}: {why}")]
    DkimKey { path: String, why: String },
    #[error("{0}")]
    Keygen(String),
}

/// A DKIM signing identity: the domain, the DNS selector and the private key.
pub struct Dkim {
    pub domain: String,
    pub selector: String,
    key_pem: String,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dkim")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl Dkim {
    /// Reads a PKCS#1 PEM RSA key (as `tabiji dkim keygen` writes it).
    pub fn from_pem(
        domain: &str,
        selector: &str,
        pem: &str,
        path: &str,
    ) -> Result<Dkim, SmtpError> {
        let key = RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| SmtpError::DkimKey {
            path: path.to_string(),
            why: format!("not an RSA private key in PKCS#1 PEM form ({e})"),
        })?;
        // The signer's own check (ring refuses keys under 2048 bits), now rather than at the
        // first send.
        let der = key.to_pkcs1_der().map_err(|e| SmtpError::DkimKey {
            path: path.to_string(),
            why: e.to_string(),
        })?;
        Signer::new(domain, selector, der.as_bytes()).map_err(|why| SmtpError::DkimKey {
            path: path.to_string(),
            why: format!("{why} (DKIM keys must be RSA of at least 2048 bits)"),
        })?;
        Ok(Dkim {
            domain: domain.to_string(),
            selector: selector.to_string(),
            key_pem: pem.to_string(),
        })
    }

    /// Reads the key file at `path`, refusing one that others than its owner can read.
    pub fn read(domain: &str, selector: &str, path: &std::path::Path) -> Result<Dkim, SmtpError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display().to_string();
        let key_error = |why: String| SmtpError::DkimKey {
            path: shown.clone(),
            why,
        };
        let meta = std::fs::metadata(path).map_err(|e| key_error(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(key_error(
                "can be read by others than its owner: chmod 600 it".into(),
            ));
        }
        let pem = std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
        Dkim::from_pem(domain, selector, &pem, &shown)
    }

    /// A new 2048-bit RSA key as PKCS#1 PEM.
    pub fn generate_pem() -> Result<String, SmtpError> {
        let mut rng = rand_core::OsRng;
        let key = RsaPrivateKey::new(&mut rng, 2048)
            .map_err(|e| SmtpError::Keygen(format!("the key could not be made: {e}")))?;
        let pem = key
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|e| SmtpError::Keygen(format!("the key could not be written: {e}")))?;
        Ok(pem.to_string())
    }

    /// The TXT record to publish at `{selector}._domainkey.{domain}`.
    pub fn dns_record(&self) -> String {
        let key = RsaPrivateKey::from_pkcs1_pem(&self.key_pem).expect("checked when read");
        let public = RsaPublicKey::from(&key)
            .to_public_key_der()
            .expect("an RSA public key encodes");
        use base64::Engine as _;
        let p = base64::engine::general_purpose::STANDARD.encode(public.as_bytes());
        format!("v=DKIM1; k=rsa; p={p}")
    }

    fn signer(&self) -> Signer {
        let der = RsaPrivateKey::from_pkcs1_pem(&self.key_pem)
            .and_then(|k| k.to_pkcs1_der())
            .expect("checked when read");
        Signer::new(&self.domain, &self.selector, der.as_bytes()).expect("checked when read")
    }
}

/// How the e-mail channel reaches its relay and signs.
pub struct SmtpSettings {
    /// `smtp://host:port`, `smtp://user@host:587?tls=required`, `smtps://user@host:465`.
    pub url: String,
    /// From the environment, never from the command line.
    pub password: Option<String>,
    /// Used when a send node names no sender.
    pub default_sender: String,
    pub dkim: Option<Dkim>,
    /// Connections kept open to the relay, and messages sent at once.
    pub connections: u32,
    pub timeout: Duration,
}

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// `smtp://host` (a local relay only).
    Plain,
    /// `smtp://host:587?tls=required`: STARTTLS, or no mail.
    StartTls,
    /// `smtp://host?tls=opportunistic`: STARTTLS when the relay offers it.
    StartTlsIfOffered,
    /// `smtps://host:465`: TLS from the first byte.
    Tls,
}

/// Where the relay is and how to log in.
struct Relay {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
}

/// A connection kept open between messages, and since when.
struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
}

/// Messages composed (and signed) together on one core before they are sent.
const COMPOSE_SHARE: usize = 8;

/// Connections unused this long are checked with NOOP before reuse (relays drop idle
/// clients after a few minutes).
const CHECK_AFTER: Duration = Duration::from_secs(15);

impl Relay {
    /// A new logged-in connection. The socket sends each write at once (`TCP_NODELAY`):
    /// otherwise the message's last line waits for the relay's delayed acknowledgement of the
    /// body, some 40 ms per message.
    async fn connect(&self) -> Result<AsyncSmtpConnection, String> {
        let mut connection = if self.security == Security::Tls {
            let tls = TlsParameters::new(self.host.clone()).map_err(|e| e.to_string())?;
            AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &self.hello,
                Some(tls),
                None,
            )
            .await
            .map_err(|e| e.to_string())?
        } else {
            let socket = tokio::time::timeout(
                self.timeout,
                tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
            )
            .await
            .map_err(|_| format!("no connection within {} s", self.timeout.as_secs()))?
            .map_err(|e| e.to_string())?;
            socket.set_nodelay(true).map_err(|e| e.to_string())?;
            let mut connection =
                AsyncSmtpConnection::connect_with_transport(Box::new(socket), &self.hello)
                    .await
                    .map_err(|e| e.to_string())?;
            match self.security {
                Security::StartTls => {
                    if !connection.can_starttls() {
                        return Err(
                            "the relay does not offer STARTTLS, and the URL says tls=required"
                                .into(),
                        );
                    }
                    self.starttls(&mut connection).await?;
                }
                Security::StartTlsIfOffered if connection.can_starttls() => {
                    self.starttls(&mut connection).await?;
                }
                _ => {}
            }
            connection
        };
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| format!("logging in was refused: {e}"))?;
        }
        Ok(connection)
    }

    async fn starttls(&self, connection: &mut AsyncSmtpConnection) -> Result<(), String> {
        let tls = TlsParameters::new(self.host.clone()).map_err(|e| e.to_string())?;
        connection
            .starttls(tls, &self.hello)
            .await
            .map_err(|e| format!("STARTTLS failed: {e}"))
    }
}

/// E-mail through the operator's relay: at most `connections` open at once, each reused
/// for message after message.
pub struct Smtp {
    relay: Relay,
    idle: std::sync::Mutex<Vec<Idle>>,
    turns: tokio::sync::Semaphore,
    composer: std::sync::Arc<Composer>,
    /// Messages being composed at once: one per core. Composing (MIME, and above all the RSA
    /// signature) is CPU work, done on the blocking pool so every core signs while the
    /// connections wait on the relay.
    composing: std::sync::Arc<tokio::sync::Semaphore>,
    connections: usize,
}

/// Builds messages as they go on the wire.
struct Composer {
    default_sender: Mailbox,
    dkim: Option<Signer>,
}

impl Composer {
    fn compose(&self, m: &Message) -> Result<(Envelope, Vec<u8>), String> {
        let content = m.content.as_ref().ok_or("the message was not rendered")?;
        let from = match &m.sender {
            Some(sender) => mailbox(sender).map_err(|e| e.to_string())?,
            None => self.default_sender.clone(),
        };
        let address =
            m.to.get("email")
                .and_then(|v| v.as_str())
                .ok_or("the contact has no e-mail address")?;
        let to: Mailbox = address
            .parse()
            .map_err(|_| format!("{address:?} is not an e-mail address"))?;
        let domain = from.email.domain().to_string();
        if let Some(dkim) = &self.dkim
            && !dkim.aligns_with(&domain)
        {
            return Err(format!(
                "the sender {from} is not in the DKIM domain: receivers checking DMARC would refuse it; send from the signing domain or one below it"
            ));
        }
        let key: String = m
            .idempotency_key
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '.' })
            .collect();
        let mut builder = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(content.subject.clone())
            .message_id(Some(format!("<{}.{key}@{domain}>", m.delivery_id)));
        if let Some(url) = &m.unsubscribe_url {
            // RFC 8058: one click in the mail client unsubscribes, by a POST to this address.
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{url}>"),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".into(),
                ));
        }
        let body = match (content.text.is_empty(), content.html.is_empty()) {
            (false, false) => builder.multipart(MultiPart::alternative_plain_html(
                content.text.clone(),
                content.html.clone(),
            )),
            (true, false) => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(content.html.clone()),
            ),
            _ => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(content.text.clone()),
            ),
        };
        let message = body.map_err(|e| e.to_string())?;
        let mut wire = message.formatted();
        if let Some(dkim) = &self.dkim {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            wire = dkim.sign(&wire, now);
        }
        Ok((message.envelope().clone(), wire))
    }
}

fn mailbox(text: &str) -> Result<Mailbox, SmtpError> {
    text.parse()
        .map_err(|_| SmtpError::Sender(text.to_string()))
}

impl Smtp {
    pub fn new(settings: SmtpSettings) -> Result<Smtp, SmtpError> {
        let mut parsed = url::Url::parse(&settings.url).map_err(|e| SmtpError::Url {
            url: settings.url.clone(),
            why: e.to_string(),
        })?;
        let has_password = !parsed.password().unwrap_or("").is_empty();
        // Errors show the URL without its password: they reach logs and terminals.
        let _ = parsed.set_password(None);
        let shown = parsed.to_string();
        let url_error = |why: String| SmtpError::Url {
            url: shown.clone(),
            why,
        };
        if has_password {
            return Err(url_error(
                "it holds a password: give it in TABIJI_SMTP_PASSWORD instead, so it stays out of process lists and logs".into(),
            ));
        }
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let security = match (parsed.scheme(), tls.as_deref()) {
            ("smtps", None) => Security::Tls,
            ("smtp", None | Some("none")) => Security::Plain,
            ("smtp", Some("required")) => Security::StartTls,
            ("smtp", Some("opportunistic")) => Security::StartTlsIfOffered,
            (scheme, tls) => {
                return Err(url_error(format!(
                    "{scheme}:// with tls={} is not a way to reach a relay",
                    tls.unwrap_or("")
                )));
            }
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| url_error("it names no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = parsed
            .port()
            .unwrap_or(if security == Security::Tls { 465 } else { 25 });
        let user = percent_decode(parsed.username());
        let credentials = (!user.is_empty())
            .then(|| Credentials::new(user, settings.password.clone().unwrap_or_default()));
        if credentials.is_some() && !matches!(security, Security::StartTls | Security::Tls) {
            return Err(url_error(
                "a login needs an encrypted connection, or the password crosses the network in clear: use ?tls=required (STARTTLS) or smtps://".into(),
            ));
        }
        let connections = settings.connections.max(1) as usize;
        let default_sender = mailbox(&settings.default_sender)?;
        let dkim = settings.dkim.as_ref().map(Dkim::signer);
        if let Some(signer) = &dkim
            && !signer.aligns_with(default_sender.email.domain())
        {
            return Err(SmtpError::Unaligned(format!(
                "{} is not in the DKIM domain {}: mail from it would fail DMARC",
                settings.default_sender,
                settings.dkim.as_ref().map_or("", |d| d.domain.as_str())
            )));
        }
        Ok(Smtp {
            relay: Relay {
                host,
                port,
                security,
                credentials,
                timeout: settings.timeout,
                hello: ClientId::default(),
            },
            idle: std::sync::Mutex::new(Vec::new()),
            turns: tokio::sync::Semaphore::new(connections),
            composer: std::sync::Arc::new(Composer {
                default_sender,
                dkim,
            }),
            composing: std::sync::Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            connections,
        })
    }

    /// An open connection: one kept from an earlier message if it still answers, or a new one.
    async fn connection(&self) -> Result<AsyncSmtpConnection, String> {
        loop {
            let kept = self.idle.lock().expect("not poisoned").pop();
            let Some(mut kept) = kept else {
                return self.relay.connect().await;
            };
            if kept.since.elapsed() < CHECK_AFTER || kept.connection.test_connected().await {
                return Ok(kept.connection);
            }
            kept.connection.abort().await;
        }
    }

    /// Builds the message as it goes on the wire (signed when DKIM is set).
    pub fn compose(&self, m: &Message) -> Result<(Envelope, Vec<u8>), String> {
        self.composer.compose(m)
    }

    /// [`Smtp::compose`] for a few messages on the blocking pool, one share per core at a
    /// time: whole shares, so a core signs message after message without waiting for the
    /// async side between them.
    async fn compose_off_thread(
        &self,
        share: &[Message],
    ) -> Vec<Result<(Envelope, Vec<u8>), String>> {
        let _permit = self
            .composing
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let composer = self.composer.clone();
        let share = share.to_vec();
        let count = share.len();
        tokio::task::spawn_blocking(move || share.iter().map(|m| composer.compose(m)).collect())
            .await
            .unwrap_or_else(|e| vec![Err(format!("composing the message stopped: {e}")); count])
    }

    /// Composes a share of the batch, then sends each of its messages as a connection frees.
    async fn send_share(&self, share: &[Message], deadline: std::time::Instant) -> Vec<Outcome> {
        let composed = self.compose_off_thread(share).await;
        let sends = composed
            .into_iter()
            .map(|composed| self.send_one(composed, deadline));
        futures_util::future::join_all(sends).await
    }

    /// One message on a connection of its own; the connection is kept for the next one
    /// unless it failed.
    async fn send_one(
        &self,
        composed: Result<(Envelope, Vec<u8>), String>,
        deadline: std::time::Instant,
    ) -> Outcome {
        let (envelope, wire) = match composed {
            Ok(composed) => composed,
            Err(why) => return Outcome::Permanent(why),
        };
        let _turn = self.turns.acquire().await.expect("never closed");
        if Instant::now() >= deadline {
            return crate::http::not_started();
        }
        let mut connection = match self.connection().await {
            Ok(connection) => connection,
            Err(e) => return Outcome::Transient(format!("the relay cannot be reached: {e}")),
        };
        let limit = self
            .relay
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let sent = tokio::time::timeout(limit, connection.send(&envelope, &wire)).await;
        let outcome = match &sent {
            Ok(Ok(response)) => Outcome::Accepted {
                provider_ref: response
                    .message()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(200)
                    .collect(),
            },
            Ok(Err(e)) if e.is_permanent() => {
                let why = format!("the relay refused it: {e}");
                match e.status() {
                    Some(code) if refuses_address(&code.to_string(), &why) => Outcome::Bounced(why),
                    _ => Outcome::Permanent(why),
                }
            }
            Ok(Err(e)) if e.status().is_some() => {
                Outcome::Transient(format!("the relay did not take it: {e}"))
            }
            // No answer from the relay: it may have taken the message before the connection
            // failed, so sending again could deliver it twice.
            Ok(Err(e)) => Outcome::Unknown(format!(
                "the connection failed while sending ({e}); not resent"
            )),
            Err(_) => Outcome::Unknown(format!(
                "the relay did not answer within {} s; not resent",
                limit.as_secs()
            )),
        };
        // lettre closes the session on any error; only a connection that sent cleanly is kept.
        if matches!(sent, Ok(Ok(_))) && !connection.has_broken() {
            self.idle.lock().expect("not poisoned").push(Idle {
                connection,
                since: Instant::now(),
            });
        } else {
            connection.abort().await;
        }
        outcome
    }
}

/// Whether a permanent refusal is about the recipient's address (RFC 3463 status 5.1.x, or
/// 5.2.1 for a disabled mailbox; without a status, reply 550, 551 or 553) rather than about the
/// message, the sender or the relay's policy.
fn refuses_address(code: &str, text: &str) -> bool {
    let enhanced: Option<(&str, &str)> = text.split_whitespace().find_map(|word| {
        let mut parts = word.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("5"), Some(subject), Some(detail))
                if subject.chars().all(|c| c.is_ascii_digit())
                    && !detail.is_empty()
                    && detail.chars().all(|c| c.is_ascii_digit()) =>
            {
                Some((subject, detail))
            }
            _ => None,
        }
    });
    match enhanced {
        Some(("1", _)) | Some(("2", "1")) => true,
        Some(_) => false,
        None => matches!(code, "550" | "551" | "553"),
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

impl Connector for Smtp {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn required_fields(&self) -> Vec<String> {
        vec!["email".into()]
    }

    fn max_batch(&self) -> usize {
        self.connections * 64
    }

    fn send_batch<'a>(
        &'a self,
        batch: &'a [Message],
        deadline: std::time::Instant,
    ) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(async move {
            let shares = batch
                .chunks(COMPOSE_SHARE)
                .map(|share| self.send_share(share, deadline));
            futures_util::future::join_all(shares)
                .await
                .into_iter()
                .flatten()
                .collect()
        })
    }
}

/// The DNS records a sending domain publishes so receivers trust its mail (MA-4): DKIM (the
/// public half of the key), SPF (who may send for the domain) and DMARC (what to do with mail
/// that fails both, and where to send reports).
pub fn dns_records(
    dkim: &Dkim,
    spf_senders: &[String],
    dmarc_reports: Option<&str>,
) -> Vec<(String, String)> {
    let mut spf = String::from("v=spf1");
    for sender in spf_senders {
        let address = sender.split('/').next().unwrap_or_default();
        let mechanism = if address.parse::<std::net::Ipv4Addr>().is_ok() {
            "ip4"
        } else if address.parse::<std::net::Ipv6Addr>().is_ok() {
            "ip6"
        } else {
            "include"
        };
        spf.push_str(&format!(" {mechanism}:{sender}"));
    }
    spf.push_str(" ~all");
    let mut dmarc = String::from("v=DMARC1; p=none; adkim=r; aspf=r");
    if let Some(reports) = dmarc_reports {
        dmarc.push_str(&format!("; rua=mailto:{reports}"));
    }
    vec![
        (
            format!("{}._domainkey.{}", dkim.selector, dkim.domain),
            dkim.dns_record(),
        ),
        (dkim.domain.clone(), spf),
        (format!("_dmarc.{}", dkim.domain), dmarc),
    ]
}

#[cfg(test)]
mod tests {

    #[test]
    fn refusals_of_the_address_are_told_from_refusals_of_the_message() {
        assert!(refuses_address("550", "550 5.1.1 no such mailbox here"));
        assert!(refuses_address("550", "550 5.2.1 mailbox disabled"));
        assert!(refuses_address("553", "553 mailbox name not allowed"));
        assert!(!refuses_address(
            "550",
            "550 5.7.1 message rejected as spam"
        ));
        assert!(!refuses_address("554", "554 transaction failed"));
        assert!(!refuses_address("552", "552 5.3.4 message too big"));
    }

    use super::*;
    use serde_json::{Map, json};
    use tabiji_model::content::Rendered;

    fn message() -> Message {
        let mut to = Map::new();
        to.insert("email".into(), json!("hanako@example.jp"));
        Message {
            delivery_id: 7,
            idempotency_key: "3:mail1:0".into(),
            contact_id: 1,
            template: "autumn-1".into(),
            sender: Some("観光協会 <news@kanko.example.jp>".into()),
            to,
            content: Some(Rendered {
                channel: Channel::Email,
                subject: "秋の旅のご案内".into(),
                preheader: String::new(),
                html: "<p>花子様</p>".into(),
                text: "花子様".into(),
                flex: None,
            }),
            unsubscribe_url: Some("https://crm.kanko.example.jp/t/u/7/1/abc".into()),
            status_url: None,
        }
    }

    fn smtp(dkim: Option<Dkim>) -> Smtp {
        Smtp::new(SmtpSettings {
            url: "smtp://127.0.0.1:2525".into(),
            password: None,
            default_sender: "news@kanko.example.jp".into(),
            dkim,
            connections: 2,
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn messages_are_multipart_with_an_encoded_subject_and_a_stable_id() {
        let wire = String::from_utf8(smtp(None).compose(&message()).unwrap().1).unwrap();
        assert!(wire.contains("Subject: =?utf-8?b?"), "{wire}");
        assert!(
            wire.contains("Message-ID: <7.3.mail1.0@kanko.example.jp>"),
            "{wire}"
        );
        assert!(wire.contains("multipart/alternative"), "{wire}");
        assert!(wire.contains("From: =?utf-8?b?"), "{wire}");
        assert!(
            wire.contains("List-Unsubscribe: <https://crm.kanko.example.jp/t/u/7/1/abc>\r\n"),
            "{wire}"
        );
        assert!(
            wire.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
            "{wire}"
        );
    }

    #[test]
    fn a_password_in_the_url_is_refused() {
        let e = Smtp::new(SmtpSettings {
            url: "smtp://user:secret@relay.example:587".into(),
            password: None,
            default_sender: "a@b.example".into(),
            dkim: None,
            connections: 1,
            timeout: Duration::from_secs(1),
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("TABIJI_SMTP_PASSWORD"), "{e}");
        assert!(
            !e.to_string().contains("secret"),
            "the password is not repeated: {e}"
        );
    }

    #[tokio::test]
    async fn signed_messages_carry_a_dkim_signature_over_the_listed_headers() {
        let pem = Dkim::generate_pem().unwrap();
        let dkim = Dkim::from_pem("kanko.example.jp", "s2026", &pem, "test").unwrap();
        let record = dkim.dns_record();
        assert!(record.starts_with("v=DKIM1; k=rsa; p=MII"), "{record}");
        let wire = String::from_utf8(smtp(Some(dkim)).compose(&message()).unwrap().1).unwrap();
        assert!(
            wire.starts_with("DKIM-Signature: ") || wire.contains("\r\nDKIM-Signature: "),
            "{wire}"
        );
        assert!(
            wire.contains("d=kanko.example.jp") && wire.contains("s=s2026"),
            "{wire}"
        );
        // A sender below the signing domain aligns; one elsewhere is refused before sending.
        let signing = smtp(Some(
            Dkim::from_pem("kanko.example.jp", "s2026", &pem, "test").unwrap(),
        ));
        let mut below = message();
        below.sender = Some("news@mail.kanko.example.jp".into());
        assert!(signing.compose(&below).is_ok());
        let mut elsewhere = message();
        elsewhere.sender = Some("観光協会 <news@other.example>".into());
        let why = signing.compose(&elsewhere).unwrap_err();
        assert!(why.contains("DMARC"), "{why}");
        // So is a default sender elsewhere, when tabiji starts.
        let refused = Smtp::new(SmtpSettings {
            url: "smtp://127.0.0.1:2525".into(),
            password: None,
            default_sender: "news@other.example".into(),
            dkim: Some(Dkim::from_pem("kanko.example.jp", "s2026", &pem, "test").unwrap()),
            connections: 1,
            timeout: Duration::from_secs(5),
        });
        assert!(matches!(refused, Err(SmtpError::Unaligned(_))));
    }

    #[test]
    fn dns_records_cover_dkim_spf_and_dmarc() {
        let pem = Dkim::generate_pem().unwrap();
        let dkim = Dkim::from_pem("kanko.example.jp", "s2026", &pem, "test").unwrap();
        let records = dns_records(
            &dkim,
            &[
                "203.0.113.5".into(),
                "2001:db8::/32".into(),
                "_spf.mailer.example".into(),
            ],
            Some("dmarc@kanko.example.jp"),
        );
        assert_eq!(records[0].0, "s2026._domainkey.kanko.example.jp");
        assert_eq!(
            records[1],
            (
                "kanko.example.jp".into(),
                "v=spf1 ip4:203.0.113.5 ip6:2001:db8::/32 include:_spf.mailer.example ~all".into()
            )
        );
        assert_eq!(
            records[2].1,
            "v=DMARC1; p=none; adkim=r; aspf=r; rua=mailto:dmarc@kanko.example.jp"
        );
    }
}
