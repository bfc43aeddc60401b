//! Redaction against the ways an upstream (or a caller, in arguments) can hide a value: every sensitive sample is
//! tried through every evasion — base64 and hex encodings, card numbers with other separators or neighbouring
//! digits, values split across fields or items, JSON carried in strings at any depth (where the tool's field
//! classes apply too), embedded resource text — and must never come out, nor pass the exfiltration rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use common::*;
use serde_json::{Value, json};

/// Values the detectors know, each with its detector.
const SAMPLES: &[(&str, &str)] = &[
    ("123-45-6789", "us_ssn"),
    ("ada.lovelace@example.com", "email"),
    ("4111 1111 1111 1111", "card_number"),
    ("AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
    ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl", "jwt"),
];

/// The encoded forms of `value` an upstream or a caller might send instead of the value.
fn encodings(value: &str) -> Vec<(String, String)> {
    vec![
        ("base64".into(), STANDARD.encode(value)),
        (
            "base64 without padding".into(),
            STANDARD_NO_PAD.encode(value),
        ),
        ("base64url".into(), URL_SAFE_NO_PAD.encode(value)),
        ("hex".into(), hex::encode(value)),
        ("HEX".into(), hex::encode_upper(value)),
        ("base64 of hex".into(), STANDARD.encode(hex::encode(value))),
        (
            "base64 in a sentence".into(),
            format!("see attachment:{} (encoded)", STANDARD.encode(value)),
        ),
    ]
}

/// A card number written in the ways people and programs write them.
fn card_forms() -> Vec<String> {
    let card = "4111111111111111";
    let groups = ["4111", "1111", "1111", "1111"];
    let mut forms: Vec<String> = [" ", "-", ".", "/", "_", "  ", " - "]
        .iter()
        .map(|sep| groups.join(sep))
        .collect();
    forms.push(format!("9{card}"));
    forms.push(format!("{card}7"));
    forms.push(format!("ref:0{card}0"));
    forms.push(format!("x{card}y"));
    // Other networks.
    forms.extend(
        [
            "5555 5555 5555 4444",
            "3782 822463 10005",
            "6011 1111 1111 1117",
            "3530 1113 3330 0000",
        ]
        .map(String::from),
    );
    forms
}

/// The testbed (whose `reply` answers with any result it is given) behind a policy that redacts to `internal`;
/// its manifest classifies the output field `secret` restricted.
fn testbed_gateway() -> Gateway {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}policy:\n  dir: \"{}\"\n  manifests: \"{}\"\n",
        stdio_upstream("tb", "testbed", &[]),
        root.join("tests/fixtures/policy-internal").display(),
        root.join("tests/fixtures/manifests-testbed").display(),
    ))
}

async fn reply(client: &Client, result: Value) -> String {
    let answer = client
        .call("tb__reply", json!({"result": result.to_string()}))
        .await
        .unwrap();
    serde_json::to_string(&answer).unwrap()
}

/// Every place of a result a string can be put.
fn planes(value: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "text block",
            json!({"content": [{"type": "text", "text": value}]}),
        ),
        (
            "structuredContent",
            json!({"content": [], "structuredContent": {"note": value, "n": 1}}),
        ),
        (
            "embedded resource text",
            json!({"content": [{"type": "resource", "resource": {"uri": "file:///r", "mimeType": "text/plain", "text": value}}]}),
        ),
        (
            "JSON in a structuredContent string",
            json!({"content": [], "structuredContent": {"payload": json!({"deep": [value]}).to_string()}}),
        ),
    ]
}

#[tokio::test]
async fn encoded_values_are_masked_in_every_plane() {
    let gateway = testbed_gateway();
    let client = gateway.client().await;
    for (value, detector) in SAMPLES {
        for (how, encoded) in encodings(value) {
            for (plane, result) in planes(&encoded) {
                let all = reply(&client, result).await;
                let token = encoded
                    .split([' ', ':', '('])
                    .max_by_key(|t| t.len())
                    .unwrap_or_default();
                assert!(
                    !all.contains(token) && all.contains("[REDACTED:"),
                    "{detector} as {how} in {plane} leaked: {all}"
                );
            }
        }
    }
    // Encoded text that holds nothing sensitive is left alone.
    let harmless = STANDARD.encode("just an ordinary sentence here");
    let all = reply(
        &client,
        json!({"content": [{"type": "text", "text": harmless}]}),
    )
    .await;
    assert!(all.contains(&harmless), "{all}");
}

#[tokio::test]
async fn card_numbers_are_masked_whatever_separates_their_digits() {
    let gateway = testbed_gateway();
    let client = gateway.client().await;
    for form in card_forms() {
        for (plane, result) in planes(&format!("pay with {form} today")) {
            let all = reply(&client, result).await;
            let digits: String = form.chars().filter(char::is_ascii_digit).collect();
            assert!(
                !all.contains(&form) && !all.contains(&digits[..12]),
                "{form} in {plane} leaked: {all}"
            );
        }
    }
}

#[tokio::test]
async fn values_split_across_fields_or_items_are_masked() {
    let gateway = testbed_gateway();
    let client = gateway.client().await;
    for (value, detector) in SAMPLES {
        let cut = value.len() / 2;
        let (head, tail) = value.split_at(cut);
        for (shape, result) in [
            (
                "fields",
                json!({"content": [], "structuredContent": {"first": head, "second": tail}}),
            ),
            (
                "items",
                json!({"content": [], "structuredContent": {"parts": [head, tail]}}),
            ),
            (
                "fields of JSON in a text block",
                json!({"content": [{"type": "text", "text": json!({"a": head, "b": tail}).to_string()}]}),
            ),
        ] {
            let all = reply(&client, result).await;
            assert!(
                !all.contains(&format!("\"{head}\"")) && !all.contains(&format!("\"{tail}\"")),
                "{detector} split across {shape} leaked: {all}"
            );
        }
    }
}

#[tokio::test]
async fn a_value_one_field_holds_alone_never_stretches_into_its_neighbours() {
    let gateway = testbed_gateway();
    let client = gateway.client().await;
    for neighbours in [
        json!({"name": "Ada Lovelace", "email": "ada.lovelace@example.com"}),
        json!({"a_name": "Ada Lovelace", "b_email": "ada.lovelace@example.com", "c_note": "team lead"}),
        json!({"ref": "order 4711", "card": "4111 1111 1111 1111", "zip": "10115"}),
    ] {
        let all = reply(
            &client,
            json!({"content": [], "structuredContent": {"person": neighbours.clone()}}),
        )
        .await;
        for (key, value) in neighbours.as_object().unwrap() {
            let value = value.as_str().unwrap();
            let sensitive = key.contains("email") || key == "card";
            assert_eq!(
                all.contains(&format!("\"{value}\"")),
                !sensitive,
                "`{key}` in {neighbours}: {all}"
            );
        }
    }
}

#[tokio::test]
async fn field_classes_apply_inside_json_carried_in_strings_at_any_depth() {
    let gateway = testbed_gateway();
    let client = gateway.client().await;
    // No detector knows this value: only the field class (`$.secret`: restricted) hides it.
    let secret = "plain-words-nobody-could-detect";
    let doc = json!({"secret": secret, "public": "fine"});
    let mut nested = doc.to_string();
    for depth in 1..=4 {
        nested = json!({"secret": secret, "wrapped": nested}).to_string();
        for (plane, result) in [
            (
                "structuredContent string",
                json!({"content": [], "structuredContent": {"payload": nested}}),
            ),
            (
                "embedded resource text",
                json!({"content": [{"type": "resource", "resource": {"uri": "file:///r", "mimeType": "application/json", "text": nested}}]}),
            ),
            (
                "text block",
                json!({"content": [{"type": "text", "text": nested}]}),
            ),
            (
                "array item in structuredContent",
                json!({"content": [], "structuredContent": {"items": [nested]}}),
            ),
        ] {
            let all = reply(&client, result).await;
            assert!(
                !all.contains(secret),
                "depth {depth}, {plane}: leaked: {all}"
            );
            assert!(all.contains("fine"), "depth {depth}, {plane}: {all}");
        }
    }
}

/// Alice (hr) writing a file: the quickstart's exfiltration rule refuses arguments carrying a value above the
/// tool's class (`files__write_file` is `internal`).
#[tokio::test]
async fn arguments_carrying_hidden_values_are_refused_as_exfiltration() {
    let sandbox = tempfile::tempdir().unwrap().keep();
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}{}",
        quickstart_upstreams_in(&sandbox),
        test_auth(&quickstart_agents()),
        quickstart_policy()
    ));
    let alice = Client::connect(
        &gateway.url,
        &user_token("alice", &["hr"], "assistant", &[]),
    )
    .await;
    let mut cases: Vec<(String, Value)> = Vec::new();
    for (value, detector) in SAMPLES {
        for (how, encoded) in encodings(value) {
            cases.push((
                format!("{detector} as {how}"),
                json!({"path": "out.txt", "content": encoded}),
            ));
        }
        let (head, tail) = value.split_at(value.len() / 2);
        cases.push((
            format!("{detector} split across arguments"),
            json!({"path": head, "content": tail}),
        ));
        cases.push((
            format!("{detector} in JSON in an argument"),
            json!({"path": "out.txt", "content": json!({"note": [value]}).to_string()}),
        ));
    }
    for form in card_forms() {
        cases.push((
            format!("card as `{form}`"),
            json!({"path": "out.txt", "content": format!("pay {form}")}),
        ));
    }
    for (case, arguments) in cases {
        let refused = alice.call("files__write_file", arguments).await.unwrap();
        let said = text(&refused);
        assert_eq!(refused.is_error, Some(true), "{case}: {said}");
        assert!(
            said.contains("policy_denied") && said.contains("more sensitive"),
            "{case}: {said}"
        );
    }
    assert!(!sandbox.join("out.txt").exists());
}

/// A small deterministic generator (xorshift), so that the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "report",
    "quarterly",
    "internationalization",
    "deployment",
    "configuration",
    "customer",
    "invoice",
    "shipment",
    "the",
    "of",
    "and",
    "pending",
    "approved",
    "engineering",
    "responsibilities",
    "characteristics",
    "acknowledgement",
    "infrastructure",
    "authentication",
    "notwithstanding",
    "recommendation",
    "availability",
    "meeting",
    "tomorrow",
    "budget",
    "forecast",
    "team",
    "release",
    "notes",
    "version",
    "build",
    "passed",
];

/// Benign strings of the kinds tools return and callers send, by category.
fn benign_corpus() -> Vec<(&'static str, Vec<String>)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let n = 2_000;
    let mut corpus: Vec<(&'static str, Vec<String>)> = Vec::new();
    let mut category = |name: &'static str, f: &mut dyn FnMut(&mut Rng) -> String| {
        corpus.push((name, (0..n).map(|_| f(&mut rng)).collect()));
    };
    category("uuid", &mut |r| {
        format!(
            "{}-{}-4{}-a{}-{}",
            r.hex(8),
            r.hex(4),
            r.hex(3),
            r.hex(3),
            r.hex(12)
        )
    });
    category("sha256 / sha1 digest", &mut |r| {
        if r.below(2) == 0 {
            r.hex(64)
        } else {
            r.hex(40)
        }
    });
    category("timestamps and dates", &mut |r| match r.below(4) {
        0 => format!(
            "2026-{:02}-{:02}T{:02}:{:02}:{:02}.{}Z",
            1 + r.below(12),
            1 + r.below(28),
            r.below(24),
            r.below(60),
            r.below(60),
            r.digits(6)
        ),
        1 => format!("{}", 1_700_000_000 + r.below(100_000_000)),
        2 => format!("{}", 1_700_000_000_000u64 + r.below(100_000_000_000)),
        _ => format!(
            "{:02}/{:02}/2026 {:02}:{:02}",
            1 + r.below(12),
            1 + r.below(28),
            r.below(24),
            r.below(60)
        ),
    });
    category("order and invoice numbers", &mut |r| {
        format!(
            "{}-{}-{}",
            r.pick(&["INV", "PO", "ORD", "TKT"]),
            2020 + r.below(7),
            r.digits(6)
        )
    });
    category("addresses and versions", &mut |r| match r.below(3) {
        0 => format!(
            "{}.{}.{}.{}",
            r.below(256),
            r.below(256),
            r.below(256),
            r.below(256)
        ),
        1 => format!("2001:db8:{}::{}", r.hex(4), r.hex(4)),
        _ => format!(
            "v{}.{}.{}-rc.{}",
            r.below(20),
            r.below(50),
            r.below(100),
            r.below(10)
        ),
    });
    category("amounts and quantities", &mut |r| {
        format!(
            "total {},{:03}.{:02} USD for {} units",
            r.below(1000),
            r.below(1000),
            r.below(100),
            r.below(10_000)
        )
    });
    category("sentences", &mut |r| {
        (0..12).map(|_| r.pick(WORDS)).collect::<Vec<_>>().join(" ")
    });
    category("paths and URLs", &mut |r| match r.below(2) {
        0 => format!(
            "/var/log/{}/{}-{}.log",
            r.pick(WORDS),
            r.pick(WORDS),
            r.digits(8)
        ),
        _ => format!(
            "https://example.org/{}/{}?page={}&sort={}",
            r.pick(WORDS),
            r.hex(12),
            r.below(100),
            r.pick(WORDS)
        ),
    });
    category("base64 of random bytes (tokens, images)", &mut |r| {
        let bytes: Vec<u8> = (0..(16 + r.below(48))).map(|_| r.next() as u8).collect();
        STANDARD.encode(bytes)
    });
    category("base64 of benign text", &mut |r| {
        STANDARD.encode((0..6).map(|_| r.pick(WORDS)).collect::<Vec<_>>().join(" "))
    });
    category("JSON with numbers", &mut |r| {
        json!({"id": r.below(1_000_000), "count": r.below(5000), "ratio": 0.5, "tags": [r.pick(WORDS), r.pick(WORDS)], "updated": 1_700_000_000 + r.below(1_000_000)}).to_string()
    });
    category("numeric ids of 13-19 digits", &mut |r| {
        let len = 13 + r.below(7) as usize;
        r.digits(len)
    });
    corpus
}

#[test]
fn benign_strings_are_rarely_taken_for_sensitive_values() {
    let detectors = toolgate::redact::Detectors::new(&[]).unwrap();
    let mut total = 0usize;
    let mut flagged = 0usize;
    let mut table = Vec::new();
    for (category, strings) in benign_corpus() {
        let hits: Vec<&String> = strings
            .iter()
            .filter(|s| !detectors.find(s).is_empty())
            .collect();
        // Pairs of neighbouring strings as the fields of one object: the split detection must not make up values.
        let split: Vec<String> = strings
            .windows(2)
            .filter_map(|w| {
                let found = detectors.find_across(&[&w[0], &w[1]]);
                found
                    .first()
                    .map(|(f, _)| format!("{} in {:?} + {:?}", f.detector, w[0], w[1]))
            })
            .collect();
        let pairs = split.len();
        let rate = hits.len() as f64 / strings.len() as f64;
        let pair_rate = pairs as f64 / (strings.len() - 1) as f64;
        table.push(format!(
            "{category:<42} {:>5} strings  {:>6.3}% flagged  {:>6.3}% of pairs  e.g. {:?} {:?}",
            strings.len(),
            rate * 100.0,
            pair_rate * 100.0,
            hits.first(),
            split.first()
        ));
        // Random digit strings of card length hold a plausible, Luhn-valid card number by chance (as they would
        // for any card detector); every other category stays far below that.
        let bound = if category.starts_with("numeric ids") {
            0.10
        } else {
            0.005
        };
        assert!(
            rate <= bound && pair_rate <= bound,
            "{category}: {}",
            table.join("\n")
        );
        total += strings.len();
        flagged += hits.len();
    }
    let overall = flagged as f64 / total as f64;
    eprintln!(
        "{}\noverall: {:.3}% of {total} benign strings flagged",
        table.join("\n"),
        overall * 100.0
    );
    assert!(overall <= 0.01, "{overall}");
}

/// An embedded resource's blob in a tool result, declared as text (or declaring nothing) and holding a value, is
/// read as text, redacted and given back as a blob; a binary blob is left as it is; one declared as text that is
/// not base64 of text is withheld.
#[tokio::test]
async fn blobs_declared_as_text_in_tool_results_are_read_and_redacted() {
    let gateway = testbed_gateway();
    let client = gateway.client().await;
    let blob_of = |mime: Option<&str>, blob: String| {
        let mut resource = json!({"uri": "file:///r", "blob": blob});
        if let Some(mime) = mime {
            resource["mimeType"] = json!(mime);
        }
        json!({"content": [{"type": "resource", "resource": resource}]})
    };
    let answered_blob = |answer: &str| -> Value {
        let answer: Value = serde_json::from_str(answer).unwrap();
        answer["content"][0]["resource"].clone()
    };
    for (value, detector) in SAMPLES {
        for mime in [
            Some("text/plain"),
            Some("application/json; charset=utf-8"),
            None,
        ] {
            let text = format!("note: {value} end");
            let answer = reply(&client, blob_of(mime, STANDARD.encode(&text))).await;
            let resource = answered_blob(&answer);
            let decoded = STANDARD
                .decode(resource["blob"].as_str().unwrap_or_default())
                .unwrap();
            let decoded = String::from_utf8(decoded).unwrap();
            assert!(
                !decoded.contains(value)
                    && decoded.contains("[REDACTED:")
                    && decoded.starts_with("note: "),
                "{detector} in a {mime:?} blob leaked: {decoded}"
            );
        }
    }
    // A binary payload is MCP's opaque blob: untouched.
    let png = STANDARD.encode([0x89, b'P', b'N', b'G', 0xff, 0x00, 0x12]);
    let answer = reply(&client, blob_of(Some("image/png"), png.clone())).await;
    assert_eq!(answered_blob(&answer)["blob"], json!(png));
    // Declared as text, not readable as text: withheld, never passed on unread.
    let answer = reply(
        &client,
        blob_of(Some("text/plain"), "%%% not base64".into()),
    )
    .await;
    let resource = answered_blob(&answer);
    assert!(resource.get("blob").is_none(), "{answer}");
    assert!(
        resource["text"].as_str().unwrap().contains("withheld"),
        "{answer}"
    );
}
