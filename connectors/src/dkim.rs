//! DKIM signatures (RFC 6376) with relaxed/relaxed canonicalisation, RSA-SHA256 through ring.
//! Signing is the costliest step of sending a mail; ring's RSA is several times faster than
//! the pure-Rust `rsa` crate lettre signs with, which is why tabiji signs itself.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use sha2::{Digest, Sha256};

/// The headers every signature covers. A header listed but absent is signed as empty, so a
/// relay cannot add it (`List-Unsubscribe` on a mail that had none).
pub const SIGNED_HEADERS: [&str; 10] = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

pub struct Signer {
    domain: String,
    selector: String,
    key: RsaKeyPair,
    random: SystemRandom,
}

impl Signer {
    /// Whether mail from `domain` aligns with this signature's `d=` for DMARC (relaxed: the
    /// same domain or one below it).
    pub fn aligns_with(&self, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        let signed = self.domain.to_ascii_lowercase();
        domain == signed || domain.ends_with(&format!(".{signed}"))
    }
}

/// `text` with runs of spaces and tabs made one space and trailing ones removed.
fn squeeze(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c == ' ' || c == '\t' {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// The relaxed canonical body (RFC 6376 §3.4.4).
pub fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut lines: Vec<String> = text
        .split("\r\n")
        .map(|line| {
            let trimmed = line.trim_end_matches([' ', '\t']);
            let leading = trimmed.len() - trimmed.trim_start_matches([' ', '\t']).len();
            let rest = squeeze(trimmed);
            if leading > 0 {
                format!(" {rest}")
            } else {
                rest
            }
        })
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = Vec::with_capacity(body.len());
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One header field in relaxed canonical form, with its CRLF (RFC 6376 §3.4.2).
pub fn relaxed_header(name: &str, value: &str) -> String {
    let unfolded = value.replace("\r\n", "");
    format!(
        "{}:{}\r\n",
        name.trim().to_ascii_lowercase(),
        squeeze(unfolded.trim_matches([' ', '\t']))
    )
}

/// The header fields of a message, in order, each as (name, raw value with folding).
fn header_fields(block: &str) -> Vec<(&str, &str)> {
    let mut fields = Vec::new();
    let mut start = 0;
    let bytes = block.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r'
            && bytes.get(i + 1) == Some(&b'\n')
            && !matches!(bytes.get(i + 2), Some(b' ' | b'\t'))
        {
            if let Some((name, value)) = block[start..i].split_once(':') {
                fields.push((name, value));
            }
            start = i + 2;
            i += 2;
            continue;
        }
        i += 1;
    }
    if start < block.len()
        && let Some((name, value)) = block[start..].split_once(':')
    {
        fields.push((name, value));
    }
    fields
}

impl Signer {
    /// From the DER of a PKCS#1 RSA private key.
    pub fn new(domain: &str, selector: &str, pkcs1_der: &[u8]) -> Result<Signer, String> {
        let key =
            RsaKeyPair::from_der(pkcs1_der).map_err(|e| format!("the key is refused: {e}"))?;
        Ok(Signer {
            domain: domain.to_string(),
            selector: selector.to_string(),
            key,
            random: SystemRandom::new(),
        })
    }

    /// `message` (headers, blank line, body, as on the wire) with a `DKIM-Signature` header
    /// in front, dated `now` (seconds since 1970).
    pub fn sign(&self, message: &[u8], now: u64) -> Vec<u8> {
        let split = message
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(message.len());
        let headers = String::from_utf8_lossy(&message[..split]);
        let body = message.get(split + 4..).unwrap_or_default();
        let body_hash =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(relaxed_body(body)));

        let fields = header_fields(&headers);
        let mut used = vec![false; fields.len()];
        let mut signed = String::new();
        for name in SIGNED_HEADERS {
            // The last instance not yet signed (§5.4.2).
            if let Some(i) = (0..fields.len())
                .rev()
                .find(|&i| !used[i] && fields[i].0.trim().eq_ignore_ascii_case(name))
            {
                used[i] = true;
                signed.push_str(&relaxed_header(fields[i].0, fields[i].1));
            }
        }
        let value = format!(
            "v=1; a=rsa-sha256; c=relaxed/relaxed; d={}; s={}; t={now}; h={}; bh={body_hash}; b=",
            self.domain,
            self.selector,
            SIGNED_HEADERS.join(":")
        );
        let own = relaxed_header("DKIM-Signature", &value);
        signed.push_str(own.trim_end_matches("\r\n"));
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.random,
                signed.as_bytes(),
                &mut signature,
            )
            .expect("signing with a checked key works");
        let b = base64::engine::general_purpose::STANDARD.encode(signature);
        let mut out = Vec::with_capacity(message.len() + 600);
        out.extend_from_slice(format!("DKIM-Signature: {value}{b}\r\n").as_bytes());
        out.extend_from_slice(message);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 6376 §3.4.5.
    #[test]
    fn relaxed_canonicalisation_follows_the_rfc_example() {
        let fields = header_fields("A: X\r\nB : Y\t\r\n\tZ  ");
        let canonical: String = fields.iter().map(|(n, v)| relaxed_header(n, v)).collect();
        assert_eq!(canonical, "a:X\r\nb:Y Z\r\n");
        assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
        assert_eq!(relaxed_body(b""), b"");
    }
}
