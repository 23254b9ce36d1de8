//! Normalisation of what people type, the way Japanese data arrives: full-width digits and
//! letters, half-width katakana, many kinds of hyphen.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// NFKC folds full-width ASCII to half-width and half-width katakana to full-width,
/// which is what matching on names, kana and codes needs.
pub fn nfkc(input: &str) -> String {
    nfkc_cow(input).into_owned()
}

/// [`nfkc`] without a copy when the input is already normalised, as most values (e-mail
/// addresses, dates, codes, choices, plain ASCII) are; the quick check finds them.
pub fn nfkc_cow(input: &str) -> Cow<'_, str> {
    if unicode_normalization::is_nfkc_quick(input.chars())
        == unicode_normalization::IsNormalized::Yes
    {
        return Cow::Borrowed(input);
    }
    Cow::Owned(input.nfkc().collect())
}

/// Characters people use as a dash in phone numbers and postal codes.
fn is_dash(c: char) -> bool {
    matches!(
        c,
        '-' | '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' | 'ー' | 'ｰ' | '－' | '﹣'
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("is not a valid e-mail address: {0}")]
    Email(&'static str),
    #[error("is not a valid phone number: {0}")]
    Phone(&'static str),
    #[error("is not a valid postal code: expected 7 digits such as 100-0001")]
    PostalCode,
}

/// E-mail addresses are the merge key for partner data, so two spellings of one address must
/// become one string: full-width folded, trimmed, lower-cased.
pub fn email(input: &str) -> Result<String, NormalizeError> {
    let folded = nfkc_cow(input.trim()).to_lowercase();
    let (local, domain) = folded
        .rsplit_once('@')
        .ok_or(NormalizeError::Email("it has no @"))?;
    if local.is_empty() || local.len() > 64 {
        return Err(NormalizeError::Email(
            "the part before @ must be 1 to 64 characters",
        ));
    }
    if folded.len() > 254 {
        return Err(NormalizeError::Email("it is longer than 254 characters"));
    }
    let local_ok = local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.');
    if !local_ok {
        return Err(NormalizeError::Email(
            "the part before @ contains a character that is not allowed",
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !domain_ok {
        return Err(NormalizeError::Email(
            "the domain after @ must look like example.jp",
        ));
    }
    Ok(folded)
}

/// Phone numbers are stored as digits only (with a leading + for international form) so that
/// 03-1234-5678, ０３（１２３４）５６７８ and 0312345678 are the same number.
pub fn phone(input: &str) -> Result<String, NormalizeError> {
    let folded = nfkc_cow(input.trim());
    let mut out = String::with_capacity(folded.len());
    for (i, c) in folded.chars().enumerate() {
        match c {
            '0'..='9' => out.push(c),
            '+' if i == 0 => out.push(c),
            ' ' | '(' | ')' | '.' => {}
            c if is_dash(c) => {}
            _ => {
                return Err(NormalizeError::Phone(
                    "only digits, spaces, brackets, hyphens and a leading + are allowed",
                ));
            }
        }
    }
    let digits = out.trim_start_matches('+').len();
    if !(7..=15).contains(&digits) {
        return Err(NormalizeError::Phone("it must have 7 to 15 digits"));
    }
    Ok(out)
}

/// A phone number in the international E.164 form SMS providers take (+819012345678): a
/// number stored in national form (090-1234-5678) belongs to `country_code` and loses its
/// leading 0; 00 is the international prefix.
pub fn e164(input: &str, country_code: &str) -> Result<String, NormalizeError> {
    let stored = phone(input)?;
    let international = if let Some(rest) = stored.strip_prefix('+') {
        rest.to_string()
    } else if let Some(rest) = stored.strip_prefix("00") {
        rest.to_string()
    } else if let Some(rest) = stored.strip_prefix('0') {
        format!("{country_code}{rest}")
    } else {
        return Err(NormalizeError::Phone(
            "a national number starts with 0 (090…) and an international one with + or 00",
        ));
    };
    if !(8..=15).contains(&international.len()) {
        return Err(NormalizeError::Phone(
            "in international form it must have 8 to 15 digits",
        ));
    }
    Ok(format!("+{international}"))
}

/// Japanese postal codes, stored in the written form 123-4567.
pub fn postal_code(input: &str) -> Result<String, NormalizeError> {
    let folded = nfkc(input.trim());
    let folded = folded.trim_start_matches('〒').trim();
    let digits: String = folded.chars().filter(|c| !is_dash(*c)).collect();
    if digits.len() != 7 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(NormalizeError::PostalCode);
    }
    Ok(format!("{}-{}", &digits[..3], &digits[3..]))
}

#[cfg(test)]
mod tests {

    #[test]
    fn phones_become_e164_for_sms_providers() {
        assert_eq!(e164("090-1234-5678", "81").unwrap(), "+819012345678");
        assert_eq!(
            e164("０９０（１２３４）５６７８", "81").unwrap(),
            "+819012345678"
        );
        assert_eq!(e164("+1 415 555 2671", "81").unwrap(), "+14155552671");
        assert_eq!(e164("0081 90 1234 5678", "81").unwrap(), "+819012345678");
        assert!(e164("9012345678", "81").is_err());
        assert!(e164("+81 12", "81").is_err());
    }

    use super::*;

    #[test]
    fn email_folds_full_width_and_case() {
        assert_eq!(
            email("　Ｔａｒｏ＠Ｅｘａｍｐｌｅ．ＪＰ ").unwrap(),
            "taro@example.jp"
        );
        assert_eq!(
            email("Hanako.Yamada+tag@mail.example.co.jp").unwrap(),
            "hanako.yamada+tag@mail.example.co.jp"
        );
    }

    #[test]
    fn email_rejects_what_cannot_be_delivered() {
        for bad in [
            "",
            "taro",
            "@example.jp",
            "taro@",
            "taro@localhost",
            "ta ro@example.jp",
            "taro@-x.jp",
            ".taro@example.jp",
            "taro@exa_mple.jp",
        ] {
            assert!(email(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn phone_keeps_digits_only() {
        assert_eq!(phone("03-1234-5678").unwrap(), "0312345678");
        assert_eq!(phone("０３（１２３４）５６７８").unwrap(), "0312345678");
        assert_eq!(phone("090ー1234ー5678").unwrap(), "09012345678");
        assert_eq!(phone("+81 90 1234 5678").unwrap(), "+819012345678");
        assert!(phone("12-34").is_err());
        assert!(phone("03-1234-567x").is_err());
        assert!(phone("03+1234").is_err());
    }

    #[test]
    fn postal_code_is_written_with_a_hyphen() {
        assert_eq!(postal_code("〒１００－０００１").unwrap(), "100-0001");
        assert_eq!(postal_code("1000001").unwrap(), "100-0001");
        assert!(postal_code("100-001").is_err());
    }

    #[test]
    fn nfkc_widens_half_width_kana() {
        assert_eq!(nfkc("ﾔﾏﾀﾞ ﾀﾛｳ"), "ヤマダ タロウ");
    }
}
