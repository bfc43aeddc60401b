//! Detectors of sensitive values in free text, compiled once into a `RegexSet` (which tells in one pass whether
//! anything may match) and individual regexes for the spans. Text is looked at in a normalised view — full-width
//! forms folded to ASCII, zero-width and other invisible format characters removed — and masks are put back on the
//! original text.

use regex::{Regex, RegexSet};
use serde::Serialize;

use super::{RedactionSummary, Rules, mask};
use crate::classification::Classification;
use crate::config::CustomDetector;

/// A value a detector found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub detector: String,
    pub class: Classification,
}

struct Detector {
    name: String,
    class: Classification,
    regex: Regex,
    check: Option<fn(&str) -> bool>,
    /// A stricter check for matches made by joining several strings (values split across fields).
    joined: Option<fn(&str) -> bool>,
}

mod builtin;
mod card;
mod encoded;
mod view;

use builtin::builtin;
use view::{view, view_text};

/// Most rounds of masking one text.
const MASK_ROUNDS: usize = 4;

/// The compiled detectors.
pub struct Detectors {
    /// Every detector's pattern, then the pattern of encoded tokens (index `list.len()`).
    set: RegexSet,
    list: Vec<Detector>,
    encoded: Regex,
    hex: Regex,
}

/// A detector whose pattern does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("redaction detector `{name}`: {reason}")]
pub struct DetectorError {
    pub name: String,
    pub reason: String,
}

impl Detectors {
    pub fn new(custom: &[CustomDetector]) -> Result<Self, DetectorError> {
        let refused = |name: &str, e: regex::Error| DetectorError {
            name: name.to_string(),
            reason: e.to_string(),
        };
        let mut list: Vec<Detector> = Vec::new();
        for (name, pattern, class, check, joined) in builtin() {
            list.push(Detector {
                name: name.to_string(),
                class,
                regex: Regex::new(pattern).map_err(|e| refused(name, e))?,
                check,
                joined,
            });
        }
        for d in custom {
            list.push(Detector {
                name: d.name.clone(),
                class: d.class,
                regex: Regex::new(&d.pattern).map_err(|e| refused(&d.name, e))?,
                check: None,
                joined: None,
            });
        }
        let set = RegexSet::new(
            list.iter()
                .map(|d| d.regex.as_str())
                .chain([encoded::PATTERN]),
        )
        .map_err(|e| refused("(all)", e))?;
        let encoded = Regex::new(encoded::PATTERN).map_err(|e| refused("(encoded)", e))?;
        let hex = Regex::new(encoded::HEX).map_err(|e| refused("(hex)", e))?;
        Ok(Self {
            set,
            list,
            encoded,
            hex,
        })
    }

    /// Spans of `view` (byte ranges of its text) with the detector that found each, overlaps merged (the higher
    /// class wins).
    fn spans(&self, view: &str) -> Vec<(usize, usize, usize)> {
        let mut budget = encoded::MAX_DECODED;
        self.spans_within(view, 0, &mut budget)
    }

    /// [`Self::spans`], `layer` encodings deep, decoding at most `budget` more bytes.
    fn spans_within(
        &self,
        view: &str,
        layer: usize,
        budget: &mut usize,
    ) -> Vec<(usize, usize, usize)> {
        let matched = self.set.matches(view);
        if !matched.matched_any() {
            return Vec::new();
        }
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        for index in matched.iter() {
            let Some(detector) = self.list.get(index) else {
                continue;
            };
            for m in detector.regex.find_iter(view) {
                if detector.check.is_none_or(|check| check(m.as_str())) {
                    spans.push((m.start(), m.end(), index));
                }
            }
        }
        // Tokens that decode to text: what is found in the text masks the whole token.
        if matched.matched(self.list.len()) && layer < encoded::MAX_LAYERS {
            let tokens = self
                .hex
                .find_iter(view)
                .map(|m| (m, encoded::decode_hex as fn(&str) -> Vec<String>))
                .chain(
                    self.encoded
                        .find_iter(view)
                        .filter(|m| encoded::worth_decoding(m.as_str()))
                        .map(|m| (m, encoded::decode_base64 as fn(&str) -> Vec<String>)),
                );
            for (token, decode) in tokens {
                if token.len() > *budget {
                    break;
                }
                *budget -= token.len();
                let best = decode(token.as_str())
                    .iter()
                    .flat_map(|decoded| self.spans_within(&view_text(decoded), layer + 1, budget))
                    .max_by_key(|(_, _, i)| self.list[*i].class);
                if let Some((_, _, index)) = best {
                    spans.push((token.start(), token.end(), index));
                }
            }
        }
        spans.sort();
        let mut merged: Vec<(usize, usize, usize)> = Vec::new();
        for (start, end, index) in spans {
            match merged.last_mut() {
                Some(last) if start < last.1 => {
                    last.1 = last.1.max(end);
                    if self.list[index].class > self.list[last.2].class {
                        last.2 = index;
                    }
                }
                _ => merged.push((start, end, index)),
            }
        }
        merged
    }

    /// Whether the digits of a JSON number are exactly a card number (a number has no separators to hide one
    /// behind, so no windows are looked at).
    pub fn is_card_number(&self, digits: &str) -> bool {
        card::is_card(digits)
    }

    /// What the detectors find in `text`.
    pub fn find(&self, text: &str) -> Vec<Found> {
        let view = view(text);
        self.spans(&view.text)
            .into_iter()
            .map(|(_, _, i)| Found {
                detector: self.list[i].name.clone(),
                class: self.list[i].class,
            })
            .collect()
    }

    /// Masks what the rules hide in `text`.
    pub(super) fn mask(
        &self,
        text: &mut String,
        rules: &Rules,
        summary: &mut RedactionSummary,
        place: &dyn Fn() -> String,
    ) {
        // A mask changes its neighbours' context (a value glued to another may match once the other is masked):
        // masked again until nothing more is found, a few rounds at most.
        for _ in 0..MASK_ROUNDS {
            if !self.mask_once(text, rules, summary, place) {
                return;
            }
        }
    }

    /// One round of [`Self::mask`]; whether anything was masked.
    fn mask_once(
        &self,
        text: &mut String,
        rules: &Rules,
        summary: &mut RedactionSummary,
        place: &dyn Fn() -> String,
    ) -> bool {
        // Plain ASCII needs no normalised view: most strings are, and most match nothing.
        if text.is_ascii() && !self.set.is_match(text) {
            return false;
        }
        let view = view(text);
        let spans: Vec<(usize, usize, usize)> = self
            .spans(&view.text)
            .into_iter()
            .filter(|(_, _, i)| rules.hides(self.list[*i].class))
            .collect();
        if spans.is_empty() {
            return false;
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end, index) in spans {
            let (from, to) = (view.at(start), view.at(end));
            out.push_str(&text[at..from]);
            let detector = &self.list[index];
            out.push_str(mask(detector.class));
            summary.add(detector.class, || format!("{}:{}", place(), detector.name));
            at = to;
        }
        out.push_str(&text[at..]);
        *text = out;
        true
    }

    /// Spans of the texts joined (byte ranges of the joined original) that cross from one text into another, with
    /// the detector that found each, and where each text lies in the joined text.
    #[allow(clippy::type_complexity)]
    fn crossing(&self, texts: &[&str]) -> (Vec<(usize, usize, usize)>, Vec<(usize, usize)>) {
        let joined: String = texts.concat();
        // Most joined texts match nothing at all. Encoded values are not looked for across texts (their parts are
        // decoded in each text alone).
        if joined.is_ascii() && !self.set.is_match(&joined) {
            return (Vec::new(), Vec::new());
        }
        let view = view(&joined);
        let mut bounds = Vec::with_capacity(texts.len());
        let mut offset = 0;
        for t in texts {
            bounds.push((offset, offset + t.len()));
            offset += t.len();
        }
        let mut no_decoding = 0;
        let spans = self
            .spans_within(&view.text, encoded::MAX_LAYERS, &mut no_decoding)
            .into_iter()
            // A value made by joining must stand alone in the joined text (not run on into neighbouring letters,
            // digits or dots, as two adjacent numbers or addresses would), and pass the detector's stricter check.
            .filter(|(start, end, index)| {
                let joins_on = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '.');
                !joins_on(view.text[..*start].chars().next_back())
                    && !joins_on(view.text[*end..].chars().next())
                    && self.list[*index]
                        .joined
                        .is_none_or(|check| check(&view.text[*start..*end]))
            })
            .map(|(start, end, index)| (view.at(start), view.at(end), index))
            .filter(|(from, to, _)| bounds.iter().filter(|(s, e)| from < e && to > s).count() > 1)
            .collect::<Vec<_>>();
        if spans.is_empty() {
            return (spans, bounds);
        }
        // Found only across the texts: a value one text holds on its own (an email field next to a name field) is
        // masked there, and must not stretch into its neighbour.
        let spans = spans
            .into_iter()
            .filter(|&(from, to, index)| {
                !texts.iter().zip(&bounds).any(|(text, &(s, e))| {
                    from < e && to > s && self.holds_alone(text, s, index, from, to)
                })
            })
            .collect();
        (spans, bounds)
    }

    /// Whether `text` (at `offset` in a joined text) holds on its own a value of detector `index` overlapping
    /// `from..to` of the joined text.
    fn holds_alone(&self, text: &str, offset: usize, index: usize, from: usize, to: usize) -> bool {
        let detector = &self.list[index];
        let part = view(text);
        detector
            .regex
            .find_iter(&part.text)
            .filter(|m| detector.check.is_none_or(|check| check(m.as_str())))
            .any(|m| {
                let (a, b) = (offset + part.at(m.start()), offset + part.at(m.end()));
                a < to && b > from
            })
    }

    /// What the detectors find only in the texts joined (values split across several texts: fields of one
    /// object, items of one array), in their order and in reverse (keys are kept sorted, and a reader may join the
    /// parts either way), each with the indices of the texts it spans.
    pub fn find_across(&self, texts: &[&str]) -> Vec<(Found, Vec<usize>)> {
        let mut found = self.find_across_in_order(texts);
        let reversed: Vec<&str> = texts.iter().rev().copied().collect();
        let last = texts.len().saturating_sub(1);
        found.extend(
            self.find_across_in_order(&reversed)
                .into_iter()
                .map(|(hit, parts)| (hit, parts.into_iter().map(|i| last - i).collect())),
        );
        found
    }

    fn find_across_in_order(&self, texts: &[&str]) -> Vec<(Found, Vec<usize>)> {
        let (spans, bounds) = self.crossing(texts);
        spans
            .into_iter()
            .map(|(from, to, i)| {
                let parts = bounds
                    .iter()
                    .enumerate()
                    .filter(|(_, (s, e))| from < *e && to > *s)
                    .map(|(k, _)| k)
                    .collect();
                let found = Found {
                    detector: self.list[i].name.clone(),
                    class: self.list[i].class,
                };
                (found, parts)
            })
            .collect()
    }

    /// Masks values split across several texts (content blocks, fields of one object, items of one array):
    /// detected over the texts joined, each part masked in its own text.
    pub(super) fn mask_across(
        &self,
        texts: &mut [&mut String],
        rules: &Rules,
        summary: &mut RedactionSummary,
        place: &dyn Fn() -> String,
    ) {
        let (spans, bounds) = {
            let plain: Vec<&str> = texts.iter().map(|t| t.as_str()).collect();
            self.crossing(&plain)
        };
        // Only spans that cross a boundary: the others are masked text by text.
        let mut cuts: Vec<Vec<(usize, usize, Classification, String)>> =
            vec![Vec::new(); texts.len()];
        for (from, to, index) in spans {
            let detector = &self.list[index];
            if !rules.hides(detector.class) {
                continue;
            }
            for (i, (s, e)) in bounds.iter().enumerate() {
                if from < *e && to > *s {
                    cuts[i].push((
                        from.max(*s) - s,
                        to.min(*e) - s,
                        detector.class,
                        detector.name.clone(),
                    ));
                }
            }
        }
        for (text, mut cuts) in texts.iter_mut().zip(cuts) {
            if cuts.is_empty() {
                continue;
            }
            cuts.sort_by_key(|c| c.0);
            let mut out = String::with_capacity(text.len());
            let mut at = 0;
            for (from, to, class, name) in cuts {
                if from < at {
                    continue;
                }
                out.push_str(&text[at..from]);
                out.push_str(mask(class));
                summary.add(class, || format!("{}:{name} (split)", place()));
                at = to;
            }
            out.push_str(&text[at..]);
            **text = out;
        }
    }
}

#[cfg(test)]
mod tests;
