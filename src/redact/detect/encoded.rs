//! Values hidden in base64 (standard or URL-safe, padded or not) or hex: a token of at least 12 such characters is
//! decoded (within bounds) and, when it decodes to text, that text is looked at by the detectors too. What they
//! find masks the whole token.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

/// Tokens that may be base64.
pub(super) const PATTERN: &str = r"[A-Za-z0-9+/_-]{12,}={0,2}";

/// Longest token decoded; a longer one (an image, say) is not looked into.
pub(super) const MAX_TOKEN: usize = 64 * 1024;
/// Most bytes decoded for one text, across its tokens.
pub(super) const MAX_DECODED: usize = 256 * 1024;
/// Encodings looked through inside one another (base64 of hex of a value, say).
pub(super) const MAX_LAYERS: usize = 2;

const INDIFFERENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, INDIFFERENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, INDIFFERENT);

/// Whether a token may be base64 of something: words (lowercase letters, a capital first) and bare numbers are
/// not decoded — base64 of text mixes cases and digits.
pub(super) fn worth_decoding(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    let rest = body.get(1..).unwrap_or_default();
    let word = rest
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_');
    let number = body.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    !(word || number)
}

/// Runs of hex digits that may be hex.
pub(super) const HEX: &str = r"[0-9A-Fa-f]{16,}";

/// The texts a run of hex digits may decode to, read in pairs from its first digit and from its second (a glued-on
/// digit shifts the pairs), each kept when it is mostly text.
pub(super) fn decode_hex(run: &str) -> Vec<String> {
    if run.len() > MAX_TOKEN {
        return Vec::new();
    }
    [0, 1]
        .into_iter()
        .filter_map(|skip| {
            let end = skip + (run.len() - skip) / 2 * 2;
            let bytes = hex::decode(run.get(skip..end)?).ok()?;
            as_text(&bytes)
        })
        .collect()
}

/// The texts a base64 token may decode to, read from each of its first four characters (so that characters glued
/// to either end of the encoded value cannot hide it), each kept when it is mostly text. Bytes that are not UTF-8
/// (glued-on characters decode to some) are read as replacement characters.
pub(super) fn decode_base64(token: &str) -> Vec<String> {
    if token.len() > MAX_TOKEN {
        return Vec::new();
    }
    let mut texts = Vec::new();
    let body = token.trim_end_matches('=');
    for start in 0..4 {
        let Some(rest) = body.get(start..) else {
            break;
        };
        let whole = rest.len() / 4 * 4;
        for candidate in [rest, &rest[..whole]] {
            if candidate.len() < 12 {
                continue;
            }
            if let Ok(bytes) = STANDARD
                .decode(candidate)
                .or_else(|_| URL_SAFE.decode(candidate))
            {
                texts.extend(as_text(&bytes));
                break;
            }
        }
    }
    texts
}

/// Decoded bytes as text: what is not UTF-8 (random bytes, or characters glued to the encoded value, which decode to
/// some) is read as replacement characters, so that the text inside still reaches the detectors. Bytes that are
/// mostly not text (random bytes: an image, a key, a digest) are not looked at.
fn as_text(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let total = text.chars().count();
    let printable = text
        .chars()
        .filter(|c| *c != char::REPLACEMENT_CHARACTER && (!c.is_control() || c.is_whitespace()))
        .count();
    (printable >= MIN_TEXT && printable * 2 >= total).then(|| text.into_owned())
}

/// Fewest printable characters a decoded value must hold to be looked at (the shortest values the detectors find
/// are about this long).
const MIN_TEXT: usize = 6;

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose;

    #[test]
    fn decodes_text_in_every_form_and_nothing_else() {
        let email = "ada.lovelace@example.com";
        let hex = regex::Regex::new(HEX).unwrap();
        let base64 = regex::Regex::new(PATTERN).unwrap();
        for encoded in [
            general_purpose::STANDARD.encode(email),
            general_purpose::STANDARD_NO_PAD.encode(email),
            general_purpose::URL_SAFE.encode(email),
            general_purpose::URL_SAFE_NO_PAD.encode(email),
            hex::encode(email),
            hex::encode_upper(email),
        ] {
            // As the detectors read text: hex runs and base64 tokens found by their patterns.
            let decode = |t: &str| {
                hex.find_iter(t)
                    .flat_map(|m| decode_hex(m.as_str()))
                    .chain(base64.find_iter(t).flat_map(|m| decode_base64(m.as_str())))
                    .collect::<Vec<_>>()
            };
            assert!(decode(&encoded).iter().any(|t| t == email), "{encoded}");
            // Characters glued to either end do not hide it.
            for glued in [
                format!("{encoded}4111"),
                format!("x{encoded}"),
                format!("ab{encoded}Z9"),
            ] {
                assert!(decode(&glued).iter().any(|t| t.contains(email)), "{glued}");
            }
        }
        // Random bytes decode to nothing the detectors find.
        let random = hex::encode([0u8, 159, 146, 150, 1, 2, 3, 4, 255, 254, 0, 1, 2, 3, 4, 5]);
        assert!(
            crate::redact::Detectors::new(&[])
                .unwrap()
                .find(&random)
                .is_empty()
        );
        assert!(decode_base64(&"A".repeat(MAX_TOKEN + 4)).is_empty());
    }
}
