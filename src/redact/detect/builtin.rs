//! The built-in detectors: each one's name, pattern and class, and the checks of its matches that keep false
//! positives down (IBAN mod-97, US SSN rules; card numbers are checked in `card`).

use super::card;
use crate::classification::Classification;

/// IBAN mod-97 check.
pub(super) fn iban(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !compact.is_ascii() {
        return false;
    }
    if compact.len() < 15 || compact.len() > 34 {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        for digit in value.to_string().chars() {
            remainder = (remainder * 10 + digit.to_digit(10).unwrap_or(0)) % 97;
        }
    }
    remainder == 1
}

/// US SSN rules: no area 000, 666 or 9xx, no group 00, no serial 0000.
fn ssn(text: &str) -> bool {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.len() == 9
        && !digits.starts_with("000")
        && !digits.starts_with("666")
        && !digits.starts_with('9')
        && &digits[3..5] != "00"
        && &digits[5..] != "0000"
}

/// A built-in detector: name, pattern, class, an extra check of each match, and the stricter check of a match
/// made by joining several strings.
type Builtin = (
    &'static str,
    &'static str,
    Classification,
    Option<fn(&str) -> bool>,
    Option<fn(&str) -> bool>,
);

pub(super) fn builtin() -> Vec<Builtin> {
    use Classification::{Confidential, Restricted};
    vec![
        (
            "private_key",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?s:.*?)(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\z)",
            Restricted,
            None,
            None,
        ),
        (
            "jwt",
            r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
            Restricted,
            None,
            None,
        ),
        (
            "aws_access_key",
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b",
            Restricted,
            None,
            None,
        ),
        (
            "github_token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
            Restricted,
            None,
            None,
        ),
        (
            "gitlab_token",
            r"\bglpat-[A-Za-z0-9_-]{20,}\b",
            Restricted,
            None,
            None,
        ),
        (
            "slack_token",
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",
            Restricted,
            None,
            None,
        ),
        (
            "google_api_key",
            r"\bAIza[0-9A-Za-z_-]{35}\b",
            Restricted,
            None,
            None,
        ),
        (
            "card_number",
            card::PATTERN,
            Restricted,
            Some(card::holds_card),
            Some(card::is_card),
        ),
        (
            "iban",
            r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
            Restricted,
            Some(iban),
            None,
        ),
        (
            "us_ssn",
            r"\b\d{3}[- ]\d{2}[- ]\d{4}\b",
            Restricted,
            Some(ssn),
            None,
        ),
        (
            "email",
            r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            Confidential,
            None,
            None,
        ),
        (
            "phone",
            r"(?:\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,4}\b|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b)",
            Confidential,
            None,
            None,
        ),
    ]
}
