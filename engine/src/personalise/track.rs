//! Tracking links (MA-6): the open pixel, click redirects and the unsubscribe link of each
//! delivery, signed so that none can be forged or pointed elsewhere. A click link carries its
//! destination and the signature covers it: a link whose address was changed is refused, so
//! the redirect can never be used to send people to another site.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Open,
    Click,
    Unsubscribe,
    /// A provider's delivery report (SMS status callbacks).
    Status,
}

impl LinkKind {
    fn letter(self) -> &'static str {
        match self {
            LinkKind::Open => "o",
            LinkKind::Click => "c",
            LinkKind::Unsubscribe => "u",
            LinkKind::Status => "s",
        }
    }
}

/// Makes and checks the links of one installation.
#[derive(Clone)]
pub struct Tracker {
    /// Where people reach this installation, without a trailing slash
    /// (`https://crm.kanko.example.jp`).
    base: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Tracker {
    pub fn new(public_url: &str, key: Vec<u8>) -> Tracker {
        Tracker {
            base: public_url.trim_end_matches('/').to_string(),
            key,
        }
    }

    fn signature(&self, kind: LinkKind, delivery: i64, contact: i64, url: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(format!("{}|{delivery}|{contact}|{url}", kind.letter()).as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Whether `signature` is the one this installation made for the link.
    pub fn verify(
        &self,
        kind: LinkKind,
        delivery: i64,
        contact: i64,
        url: &str,
        signature: &str,
    ) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(format!("{}|{delivery}|{contact}|{url}", kind.letter()).as_bytes());
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        given.len() == 16 && mac.verify_truncated_left(&given).is_ok()
    }

    pub fn open_url(&self, delivery: i64, contact: i64) -> String {
        let sig = self.signature(LinkKind::Open, delivery, contact, "");
        format!("{}/t/o/{delivery}/{contact}/{sig}.gif", self.base)
    }

    pub fn click_url(&self, delivery: i64, contact: i64, url: &str) -> String {
        let sig = self.signature(LinkKind::Click, delivery, contact, url);
        format!(
            "{}/t/c/{delivery}/{contact}/{sig}?u={}",
            self.base,
            encode(url)
        )
    }

    pub fn unsubscribe_url(&self, delivery: i64, contact: i64) -> String {
        let sig = self.signature(LinkKind::Unsubscribe, delivery, contact, "");
        format!("{}/t/u/{delivery}/{contact}/{sig}", self.base)
    }

    /// Where a provider reports what became of the delivery (an SMS delivered or not).
    pub fn status_url(&self, delivery: i64, contact: i64) -> String {
        let sig = self.signature(LinkKind::Status, delivery, contact, "");
        format!("{}/t/s/{delivery}/{contact}/{sig}", self.base)
    }

    /// The HTML with every web link sent through the click redirect, the unsubscribe link in
    /// place of [`UNSUBSCRIBE_PLACEHOLDER`], and the open pixel at the end of the body.
    pub fn instrument(&self, html: &str, delivery: i64, contact: i64) -> String {
        let mut out = String::with_capacity(html.len() + 512);
        // Lowercased once: the search resumes where the last link ended.
        let lower = html.to_ascii_lowercase();
        let mut done = 0;
        while let Some(at) = find_href(&lower, done) {
            out.push_str(&html[done..at.value_start]);
            let value = &html[at.value_start..at.value_start + at.value_len];
            let url = html_unescape(value);
            if url == UNSUBSCRIBE_PLACEHOLDER {
                out.push_str(&html_escape(&self.unsubscribe_url(delivery, contact)));
            } else if url.starts_with("http://") || url.starts_with("https://") {
                out.push_str(&html_escape(&self.click_url(delivery, contact, &url)));
            } else {
                out.push_str(value);
            }
            done = at.value_start + at.value_len;
        }
        out.push_str(&html[done..]);
        let pixel = format!(
            "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;border:0\">",
            html_escape(&self.open_url(delivery, contact))
        );
        match out.to_ascii_lowercase().rfind("</body>") {
            Some(end) => format!("{}{pixel}{}", &out[..end], &out[end..]),
            None => format!("{out}{pixel}"),
        }
    }
}

/// Where templates put the unsubscribe link: `<a href="{{unsubscribe_url}}">`; rendering
/// leaves this marker, which each delivery's own signed link replaces.
pub const UNSUBSCRIBE_PLACEHOLDER: &str = "https://unsubscribe.tabiji.invalid/";

struct Href {
    value_start: usize,
    value_len: usize,
}

/// The next `href="…"` (or `'…'`) attribute value in the lowercased HTML at or after `from`
/// (byte offsets into the HTML, which lowercasing ASCII does not move).
fn find_href(lower: &str, from: usize) -> Option<Href> {
    let mut from = from;
    while let Some(found) = lower[from..].find("href") {
        let mut i = from + found + 4;
        let bytes = lower.as_bytes();
        let preceded = from + found == 0 || bytes[from + found - 1].is_ascii_whitespace();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if preceded && i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let quote = bytes[i];
                let start = i + 1;
                if let Some(len) = bytes[start..].iter().position(|&b| b == quote) {
                    return Some(Href {
                        value_start: start,
                        value_len: len,
                    });
                }
            }
        }
        from = from + found + 4;
    }
    None
}

fn html_unescape(text: &str) -> String {
    text.replace("&amp;", "&")
        .replace("&#x3D;", "=")
        .replace("&#61;", "=")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> Tracker {
        Tracker::new(
            "https://crm.kanko.example.jp/",
            b"0123456789abcdef0123456789abcdef".to_vec(),
        )
    }

    fn parts(link: &str) -> (i64, i64, String, Option<String>) {
        let path = link
            .strip_prefix("https://crm.kanko.example.jp/t/")
            .unwrap();
        let (path, query) = match path.split_once("?u=") {
            Some((p, q)) => (
                p,
                Some(
                    percent_encoding::percent_decode_str(q)
                        .decode_utf8()
                        .unwrap()
                        .into_owned(),
                ),
            ),
            None => (path, None),
        };
        let bits: Vec<&str> = path.trim_end_matches(".gif").split('/').collect();
        (
            bits[1].parse().unwrap(),
            bits[2].parse().unwrap(),
            bits[3].to_string(),
            query,
        )
    }

    #[test]
    fn links_verify_and_tampered_ones_do_not() {
        let t = tracker();
        let (d, c, sig, url) =
            parts(&t.click_url(7, 42, "https://kanko.example.jp/autumn?utm=mail&x=1"));
        let url = url.unwrap();
        assert_eq!(url, "https://kanko.example.jp/autumn?utm=mail&x=1");
        assert!(t.verify(LinkKind::Click, d, c, &url, &sig));
        assert!(
            !t.verify(LinkKind::Click, d, c, "https://evil.example/", &sig),
            "another address"
        );
        assert!(
            !t.verify(LinkKind::Click, d, 43, &url, &sig),
            "another contact"
        );
        assert!(
            !t.verify(LinkKind::Open, d, c, &url, &sig),
            "another kind of link"
        );
        assert!(
            !t.verify(LinkKind::Click, d, c, &url, "00"),
            "a short signature"
        );
        let other = Tracker::new("https://crm.kanko.example.jp", b"another key".to_vec());
        assert!(
            !other.verify(LinkKind::Click, d, c, &url, &sig),
            "another installation's key"
        );
        let (d, c, sig, _) = parts(&t.open_url(7, 42));
        assert!(t.verify(LinkKind::Open, d, c, "", &sig));
    }

    #[test]
    fn web_links_are_redirected_and_the_pixel_is_added() {
        let html = "<html><body><a href=\"https://kanko.example.jp/a?x=1&amp;y=2\">秋</a> <a class=\"b\" href='mailto:info@kanko.example.jp'>mail</a><a href=\"https://unsubscribe.tabiji.invalid/\">配信停止</a></body></html>";
        let out = tracker().instrument(html, 7, 42);
        assert!(
            out.contains("href=\"https://crm.kanko.example.jp/t/c/7/42/"),
            "{out}"
        );
        assert!(
            out.contains("?u=https%3A%2F%2Fkanko%2Eexample%2Ejp%2Fa%3Fx%3D1%26y%3D2"),
            "{out}"
        );
        assert!(out.contains("href='mailto:info@kanko.example.jp'"), "{out}");
        assert!(
            out.contains("href=\"https://crm.kanko.example.jp/t/u/7/42/"),
            "{out}"
        );
        assert!(out.ends_with(".gif\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;border:0\"></body></html>"), "{out}");
    }
}
