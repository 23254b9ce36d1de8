//! What the HTTP channels (SMS, LINE, webhook) share: one request per message with a bounded
//! number in flight, and the reading of an HTTP answer as an [`Outcome`].

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;

use crate::Outcome;

/// How long one provider request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// An HTTP client for provider APIs: no redirects (a credential must not follow one
/// elsewhere), a timeout per request.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("tabiji/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend loads")
}

/// Runs one request per message, at most `concurrency` at once; outcomes in batch order.
pub async fn in_order<Fut>(requests: impl Iterator<Item = Fut>, concurrency: u32) -> Vec<Outcome>
where
    Fut: Future<Output = Outcome>,
{
    futures_util::stream::iter(requests)
        .buffered(concurrency.max(1) as usize)
        .collect()
        .await
}

/// What a request that got no answer means. One that never reached the provider can be tried
/// again; one that may have (a timeout after sending) is retried only where the provider
/// deduplicates (`idempotent`), otherwise it is `unknown` so nobody gets it twice.
pub fn unanswered(provider: &str, e: &reqwest::Error, idempotent: bool) -> Outcome {
    let why = format!("{provider} could not be reached: {}", without_url(e));
    if e.is_connect() || e.is_builder() || idempotent {
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
}
