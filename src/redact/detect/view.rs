//! Text as the detectors see it: full-width forms and other decimal digits folded to ASCII, invisible format
//! characters removed, with where each byte came from so that masks are put back on the original text.

/// Text as detectors see it, with where each of its bytes came from in the original.
pub(super) struct View<'a> {
    pub(super) text: std::borrow::Cow<'a, str>,
    /// Original byte offset of each byte of `text`; one more entry for the end. `None`: the text is the original
    /// (plain ASCII, which normalising never changes).
    origin: Option<Vec<usize>>,
}

impl View<'_> {
    /// The original byte offset of byte `at` of the text.
    pub(super) fn at(&self, at: usize) -> usize {
        self.origin.as_ref().map_or(at, |origin| origin[at])
    }
}

fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}')
}

fn fold(c: char) -> char {
    match c {
        // Full-width ASCII variants.
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' | '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' => ' ',
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}' => '-',
        _ => match c.to_digit(10) {
            Some(_) => c,
            // Other decimal digits (Arabic-Indic, Devanagari, mathematical …) fold to ASCII.
            None if c.is_numeric() => unicode_digit(c).unwrap_or(c),
            None => c,
        },
    }
}

/// The value of a non-ASCII decimal digit, for the common blocks whose digits are contiguous from a zero.
fn unicode_digit(c: char) -> Option<char> {
    const ZEROS: &[u32] = &[
        0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6,
        0x0D66, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x17E0, 0x1810, 0xFF10, 0x1D7CE, 0x1D7D8, 0x1D7E2,
        0x1D7EC, 0x1D7F6,
    ];
    let code = c as u32;
    ZEROS
        .iter()
        .find(|z| code >= **z && code < **z + 10)
        .and_then(|z| char::from_digit(code - z, 10))
}

/// The normalised text of `original` alone.
pub(super) fn view_text(original: &str) -> String {
    view(original).text.into_owned()
}

pub(super) fn view(original: &str) -> View<'_> {
    // Folding and invisible characters are all outside ASCII.
    if original.is_ascii() {
        return View {
            text: std::borrow::Cow::Borrowed(original),
            origin: None,
        };
    }
    let mut text = String::with_capacity(original.len());
    let mut origin = Vec::with_capacity(original.len() + 1);
    for (at, c) in original.char_indices() {
        if invisible(c) {
            continue;
        }
        let folded = fold(c);
        let before = text.len();
        text.push(folded);
        origin.extend(std::iter::repeat_n(at, text.len() - before));
    }
    origin.push(original.len());
    View {
        text: std::borrow::Cow::Owned(text),
        origin: Some(origin),
    }
}
