//! Card numbers inside digit runs: digits with any common separator between them (space, `-`, `.`, `/`, `_`, up
//! to three), and neighbouring digits allowed. A run holds a card when one of its windows of 13–19 digits has a
//! card issuer's prefix and length and its Luhn checksum holds. The issuer check keeps false positives down:
//! about one random digit string in ten passes Luhn alone.

/// Digit runs a card may hide in (at least 13 digits).
pub(super) const PATTERN: &str = r"\d(?:[ ./_-]{0,3}\d){12,}";

/// Most digits of one run looked at: a longer run is judged on its first this many.
const MAX_RUN_DIGITS: usize = 512;

/// Whether a digit run holds a card number.
pub(super) fn holds_card(run: &str) -> bool {
    let digits: Vec<u8> = run
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .take(MAX_RUN_DIGITS)
        .collect();
    (13..=19).any(|len| digits.windows(len).any(|w| plausible(w) && luhn(w)))
}

/// Whether a digit run is exactly one card number (no neighbouring digits): how a value made by joining the
/// strings of several fields is judged, so that two adjacent numbers (timestamps, ids) never make up a card.
pub(super) fn is_card(run: &str) -> bool {
    let digits: Vec<u8> = run
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    (13..=19).contains(&digits.len()) && plausible(&digits) && luhn(&digits)
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether `digits` has the prefix and length of a card of a major network (Visa, Mastercard, American
/// Express, Discover, JCB, Diners Club, UnionPay, Maestro).
fn plausible(digits: &[u8]) -> bool {
    let n = digits.len();
    let prefix = |k: usize| {
        digits[..k.min(n)]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(*d))
    };
    let maestro = [5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763].contains(&prefix(4));
    if maestro {
        return (13..=19).contains(&n);
    }
    match digits.first() {
        Some(4) => matches!(n, 13 | 16 | 19),
        Some(5) => (51..=55).contains(&prefix(2)) && n == 16,
        Some(2) => (2221..=2720).contains(&prefix(4)) && n == 16,
        Some(3) => {
            (matches!(prefix(2), 34 | 37) && n == 15)
                || ((3528..=3589).contains(&prefix(4)) && (16..=19).contains(&n))
                || (((300..=305).contains(&prefix(3)) || matches!(prefix(2), 36 | 38 | 39))
                    && (14..=19).contains(&n))
        }
        Some(6) => {
            (prefix(4) == 6011 || (644..=649).contains(&prefix(3)) || matches!(prefix(2), 62 | 65))
                && (16..=19).contains(&n)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_of_runs_with_any_separator() {
        for run in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111.1111.1111.1111",
            "4111/1111/1111/1111",
            "4111_1111_1111_1111",
            "4111 - 1111 - 1111 - 1111",
            "94111111111111111",
            "41111111111111117",
            "378282246310005",
            "5555555555554444",
            "2223003122003222",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
            "6200000000000005",
        ] {
            assert!(holds_card(run), "{run}");
        }
        for run in [
            "4111111111111112",
            "1234567890123456",
            "0000000000000000",
            "9999999999999999",
            "5555555555554445",
        ] {
            assert!(!holds_card(run), "{run}");
        }
    }
}
