//! Values hidden in base64 (standard or URL-safe, padded or not) or hex: a token of at least 12 such characters is
//! decoded (within bounds) and, when it decodes to text, that text is looked at by the detectors too. What they
//! find masks the whole token.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

/// Tokens that may be base64 or hex.
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

/// The text a token decodes to, when it is hex or base64 of UTF-8 text.
pub(super) fn decode(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN {
        return None;
    }
    let bytes = if token.len().is_multiple_of(2) && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(token).ok()?
    } else {
        STANDARD
            .decode(token)
            .or_else(|_| URL_SAFE.decode(token))
            .ok()?
    };
    let text = String::from_utf8(bytes).ok()?;
    // Text, not binary that happens to be valid UTF-8.
    let printable = text
        .chars()
        .filter(|c| !c.is_control() || c.is_whitespace())
        .count();
    (printable * 10 >= text.chars().count() * 9).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose;

    #[test]
    fn decodes_text_in_every_form_and_nothing_else() {
        let email = "ada.lovelace@example.com";
        for encoded in [
            general_purpose::STANDARD.encode(email),
            general_purpose::STANDARD_NO_PAD.encode(email),
            general_purpose::URL_SAFE.encode(email),
            general_purpose::URL_SAFE_NO_PAD.encode(email),
            hex::encode(email),
            hex::encode_upper(email),
        ] {
            assert_eq!(decode(&encoded).as_deref(), Some(email), "{encoded}");
        }
        // Random bytes are not text.
        assert_eq!(
            decode(&hex::encode([0u8, 159, 146, 150, 1, 2, 3, 4, 255, 254])),
            None
        );
        assert_eq!(decode(&"A".repeat(MAX_TOKEN + 4)), None);
    }
}
