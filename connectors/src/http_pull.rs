//! Pulling a partner's file over HTTP(S) for import flows: one GET, only to hosts the operator
//! allowed (redirects included, so a partner's server cannot send tabiji to an internal
//! address), with secret headers kept out of logs, time limits, and a size limit checked while
//! the body arrives.

use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_REDIRECTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum HttpPullError {
    #[error(
        "{host} is not among the hosts HTTP sources may reach: the operator lists them with --http-hosts (TABIJI_HTTP_HOSTS)"
    )]
    HostNotAllowed { host: String },
    #[error("{url} is not an http(s) address")]
    BadUrl { url: String },
    #[error("the header {name} cannot be sent: {message}")]
    BadHeader { name: String, message: String },
    #[error("{url}: {message}")]
    Request { url: String, message: String },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
}

/// A downloaded file and the name the history shows for it.
pub struct Download {
    pub bytes: Vec<u8>,
    pub file_name: String,
}

/// Whether the operator's list names `host` (any port) or `host:port`.
pub fn host_listed(host: &str, port: Option<u16>, hosts: &[String]) -> bool {
    let with_port = port.map(|port| format!("{host}:{port}"));
    hosts.iter().any(|allowed| {
        allowed.eq_ignore_ascii_case(host)
            || with_port
                .as_deref()
                .is_some_and(|h| allowed.eq_ignore_ascii_case(h))
    })
}

fn allowed(url: &Url, hosts: &[String]) -> bool {
    url.host_str()
        .is_some_and(|host| host_listed(host, url.port_or_known_default(), hosts))
}

/// The last segment of the URL's path, or its host.
fn name_of(url: &Url) -> String {
    url.path_segments()
        .and_then(|mut segments| segments.next_back())
        .filter(|last| !last.is_empty())
        .map_or_else(
            || url.host_str().unwrap_or("download").to_string(),
            str::to_string,
        )
}

/// An error and what caused it (reqwest's own message leaves the cause out: "error following
/// redirect" without why).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = inner.source();
    }
    message
}

/// GETs `url` with `headers` (their values never logged), refusing hosts not in `hosts` and
/// bodies over `limit` bytes.
pub async fn download(
    url: &str,
    headers: &[(String, String)],
    hosts: &[String],
    limit: u64,
) -> Result<Download, HttpPullError> {
    let parsed = Url::parse(url).map_err(|_| HttpPullError::BadUrl { url: url.into() })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(HttpPullError::BadUrl { url: url.into() });
    }
    if !allowed(&parsed, hosts) {
        return Err(HttpPullError::HostNotAllowed {
            host: parsed.host_str().unwrap_or_default().into(),
        });
    }
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let bad = |message: String| HttpPullError::BadHeader {
            name: name.clone(),
            message,
        };
        let key = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| bad("its value holds characters a header cannot".into()))?;
        value.set_sensitive(true);
        map.insert(key, value);
    }
    let hosts = hosts.to_vec();
    // Secret headers go only where they were meant to: with them, a redirect must stay on
    // the same scheme, host and port (reqwest drops only the standard credential headers).
    let origin = |u: &Url| {
        (
            u.scheme().to_string(),
            u.host_str().map(str::to_ascii_lowercase),
            u.port_or_known_default(),
        )
    };
    let home = origin(&parsed);
    let secret = !headers.is_empty();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if secret && origin(attempt.url()) != home {
            let to = attempt.url().to_string();
            attempt.error(format!(
                "redirected to {to}: a request with secret headers follows redirects only on the same scheme, host and port"
            ))
        } else if allowed(attempt.url(), &hosts) {
            attempt.follow()
        } else {
            let to = attempt.url().host_str().unwrap_or_default().to_string();
            attempt.error(format!(
                "redirected to {to}, which is not among the hosts HTTP sources may reach"
            ))
        }
    });
    let request_error = |e: reqwest::Error| HttpPullError::Request {
        url: url.into(),
        message: with_causes(&e),
    };
    let client = reqwest::Client::builder()
        .redirect(policy)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .build()
        .map_err(request_error)?;
    let mut response = client
        .get(parsed.clone())
        .headers(map)
        .send()
        .await
        .map_err(request_error)?;
    let status = response.status();
    if !status.is_success() {
        return Err(HttpPullError::Status {
            url: url.into(),
            status: status.as_u16(),
        });
    }
    let too_large = || HttpPullError::TooLarge {
        url: url.into(),
        limit,
    };
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(request_error)? {
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Download {
        bytes,
        file_name: name_of(&parsed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_matched_with_or_without_their_port() {
        let hosts = vec!["partner.example".to_string(), "127.0.0.1:8443".to_string()];
        for (url, ok) in [
            ("https://partner.example/x.csv", true),
            ("https://PARTNER.example:9999/x.csv", true),
            ("https://127.0.0.1:8443/x.csv", true),
            ("https://127.0.0.1/x.csv", false),
            ("http://169.254.169.254/latest/meta-data", false),
            ("https://partner.example.evil.test/x.csv", false),
        ] {
            assert_eq!(allowed(&Url::parse(url).unwrap(), &hosts), ok, "{url}");
        }
        assert_eq!(
            name_of(&Url::parse("https://p.example/out/users_20261129.csv?x=1").unwrap()),
            "users_20261129.csv"
        );
        assert_eq!(
            name_of(&Url::parse("https://p.example/").unwrap()),
            "p.example"
        );
    }
}
