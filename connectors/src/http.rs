//! What the HTTP channels (SMS, LINE, webhook) share: one request per message with a bounded
//! number in flight and a deadline for the round, answers read (up to a size) as an
//! [`Outcome`], and where requests may go.
//!
//! Channel URLs are set by administrators, but a stolen session must not turn them into a way
//! to reach this machine or the private network behind it (and read the answers back in
//! delivery errors): unless the operator allows it ([`Reach::Anywhere`]), names are resolved
//! to public addresses only, and private or local address literals are refused.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::Outcome;

/// How long one provider request may take (less when the round's deadline is nearer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// The most of an answer that is read: providers' answers are small.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where channel requests may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Public addresses only.
    Public,
    /// Also this machine and private networks (a local relay, test doubles).
    Anywhere,
}

/// Whether `ip` is on the public internet (not this machine, a private or link-local network,
/// shared address space, multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Resolves names to their public addresses only.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} has no public address (channel URLs may not point at this machine or a private network)"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An HTTP client for provider APIs: no redirects (a credential must not follow one
/// elsewhere), a timeout per request, names resolved as `reach` allows.
pub fn client(reach: Reach) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("tabiji/", env!("CARGO_PKG_VERSION")));
    if reach == Reach::Public {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    builder.build().expect("the TLS backend loads")
}

/// Whether a channel URL can be used: it parses, names a host, and (for [`Reach::Public`]) is
/// not a private or local address literal.
pub fn check_url(url: &str, reach: Reach) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = parsed
        .host()
        .ok_or_else(|| format!("{url:?} names no host"))?;
    let literal = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(name) if name.eq_ignore_ascii_case("localhost") => {
            Some(IpAddr::from([127, 0, 0, 1]))
        }
        url::Host::Domain(_) => None,
    };
    if reach == Reach::Public
        && let Some(ip) = literal
        && !is_public(ip)
    {
        return Err(format!(
            "{url:?} points at this machine or a private network; the operator allows that only with --allow-local-channel-urls"
        ));
    }
    Ok(())
}

/// Whether a credential can travel in an HTTP header.
pub fn check_credential(credential: &str) -> Result<(), String> {
    if credential.len() > 4096 {
        return Err("is longer than 4,096 characters".into());
    }
    if credential.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err("may hold only printable ASCII (no line breaks)".into());
    }
    Ok(())
}

/// Runs one request per message, at most `concurrency` at once; outcomes in batch order. A
/// message not yet started when `deadline` comes is not sent this round (retried later).
pub async fn in_order<'a, F, Fut>(
    requests: impl Iterator<Item = F> + 'a,
    concurrency: u32,
    deadline: Instant,
) -> Vec<Outcome>
where
    F: FnOnce() -> Fut + 'a,
    Fut: Future<Output = Outcome> + 'a,
{
    futures_util::stream::iter(requests)
        .map(|start| async move {
            if Instant::now() >= deadline {
                return not_started();
            }
            start().await
        })
        .buffered(concurrency.max(1) as usize)
        .collect()
        .await
}

/// A message the round had no time left for.
pub fn not_started() -> Outcome {
    Outcome::Transient("not sent: this round's time ran out before its turn".into())
}

/// The time a request may take: [`REQUEST_TIMEOUT`], or less to end by `deadline`.
pub fn time_left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .min(REQUEST_TIMEOUT)
}

/// The answer's body, at most [`MAX_ANSWER_BYTES`] of it.
pub async fn read_limited(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ANSWER_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    body
}

/// What a request that got no answer means. One that never reached the provider can be tried
/// again; one that may have (a timeout after sending) is retried only where the provider
/// deduplicates (`idempotent`), otherwise it is `unknown` so nobody gets it twice.
pub fn unanswered(provider: &str, e: &reqwest::Error, idempotent: bool) -> Outcome {
    let why = format!("{provider} could not be reached: {}", without_url(e));
    if e.is_connect() || idempotent {
        Outcome::Transient(why)
    } else {
        Outcome::Unknown(why)
    }
}

/// reqwest's message without the URL (which may carry an account identifier).
fn without_url(e: &reqwest::Error) -> String {
    let mut shown = e.to_string();
    if let Some(url) = e.url() {
        shown = shown.replace(&format!(" for url ({url})"), "");
        shown = shown.replace(url.as_str(), "(the provider)");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        shown.push_str(": ");
        shown.push_str(&inner.to_string());
        source = inner.source();
    }
    shown
}

/// The class of a refusal by status: rate limits, timeouts and server errors pass, and so do
/// refused credentials (an administrator fixes the settings; the delivery should then go);
/// anything else about the message will not change by trying again.
pub fn refused(provider: &str, status: reqwest::StatusCode, detail: &str) -> Outcome {
    let detail = detail.chars().take(300).collect::<String>();
    let code = status.as_u16();
    match code {
        401 | 403 => Outcome::Transient(format!(
            "{provider} refused the credential ({code}): check the channel's settings ({detail})"
        )),
        408 | 425 | 429 | 500..=599 => {
            Outcome::Transient(format!("{provider} answered {code}: {detail}"))
        }
        _ => Outcome::Permanent(format!("{provider} refused the message ({code}): {detail}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn refusals_are_classed_by_status() {
        assert!(matches!(
            refused("LINE", StatusCode::BAD_REQUEST, "bad"),
            Outcome::Permanent(_)
        ));
        for status in [429, 500, 503, 401] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(refused("LINE", status, ""), Outcome::Transient(_)),
                "{status}"
            );
        }
    }

    #[test]
    fn only_public_addresses_are_reached_unless_the_operator_allows_more() {
        for private in [
            "http://127.0.0.1:2375/containers",
            "https://10.1.2.3/",
            "https://[::1]/",
            "https://[::ffff:192.168.1.1]/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://[fd00::1]/",
            "https://localhost:8443/",
        ] {
            assert!(check_url(private, Reach::Public).is_err(), "{private}");
            assert!(check_url(private, Reach::Anywhere).is_ok(), "{private}");
        }
        assert!(check_url("https://api.line.me", Reach::Public).is_ok());
        assert!(check_url("https://203.0.113.9/hook", Reach::Public).is_ok());
        assert!(check_url("https://exa mple.com", Reach::Anywhere).is_err());
        assert!(check_url("https://example.com:99999", Reach::Anywhere).is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_not_reached() {
        let client = client(Reach::Public);
        let err = client.get("http://localhost:1/").send().await.unwrap_err();
        assert!(
            without_url(&err).contains("no public address"),
            "{}",
            without_url(&err)
        );
    }

    #[test]
    fn credentials_must_fit_a_header() {
        assert!(check_credential("abc.DEF-123_=").is_ok());
        assert!(check_credential("abc\r\nX-Evil: 1").is_err());
        assert!(check_credential("トークン").is_err());
    }
}
