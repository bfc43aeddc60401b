use super::builtin::iban;
use super::*;

fn detectors() -> Detectors {
    Detectors::new(&[]).unwrap()
}

fn names(text: &str) -> Vec<String> {
    detectors()
        .find(text)
        .into_iter()
        .map(|f| f.detector)
        .collect()
}

#[test]
fn finds_each_kind() {
    assert_eq!(names("write to ada.lovelace@example.com"), vec!["email"]);
    assert_eq!(names("call +1-555-0101 now"), vec!["phone"]);
    assert_eq!(names("ssn 123-45-6789"), vec!["us_ssn"]);
    assert_eq!(names("card 4111 1111 1111 1111"), vec!["card_number"]);
    assert_eq!(names("card 4111-1111-1111-1111"), vec!["card_number"]);
    assert!(names("not a card 4111 1111 1111 1112").is_empty());
    assert_eq!(names("IBAN GB82 WEST 1234 5698 7654 32"), vec!["iban"]);
    assert!(names("GB00 WEST 1234 5698 7654 32").is_empty());
    assert_eq!(names("key AKIAIOSFODNN7EXAMPLE"), vec!["aws_access_key"]);
    assert_eq!(
        names("ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        vec!["github_token"]
    );
    assert_eq!(
        names("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"),
        vec!["jwt"]
    );
    assert_eq!(
        names("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"),
        vec!["private_key"]
    );
    assert_eq!(
        names("-----BEGIN PRIVATE KEY-----\nMIIE truncated"),
        vec!["private_key"]
    );
    assert!(names("order 12345, total 99.50, 2026-11-25").is_empty());
}

#[test]
fn sees_through_lookalikes_and_invisible_characters() {
    assert_eq!(names("１２３-４５-６７８９"), vec!["us_ssn"]);
    assert_eq!(names("123\u{200B}-45-67\u{2060}89"), vec!["us_ssn"]);
    assert_eq!(
        names("4111\u{00A0}1111\u{00A0}1111\u{00A0}1111"),
        vec!["card_number"]
    );
    assert_eq!(names("١٢٣-٤٥-٦٧٨٩"), vec!["us_ssn"]);
}

#[test]
fn masks_on_the_original_text() {
    let mut text = "id １２３-４５-６７８９ and mail a@b.example".to_string();
    let mut summary = RedactionSummary::default();
    detectors().mask(
        &mut text,
        &Rules::plain(Classification::Confidential),
        &mut summary,
        &|| "t".to_string(),
    );
    assert_eq!(text, "id [REDACTED:restricted] and mail a@b.example");
    assert_eq!(summary.by_class.get("restricted"), Some(&1));
}

#[test]
fn digits_of_other_scripts_never_break_a_check() {
    // Mongolian digits are not folded; the checks must not slice inside them.
    assert!(names("GB᥆᥆ABCDEFGHIJK and 4111 1111 1111 1111").contains(&"card_number".to_string()));
    assert!(!iban("GB᥆᥆ABCDEFGHIJK"));
}

#[test]
fn custom_detectors_join_the_set() {
    let d = Detectors::new(&[CustomDetector {
        name: "employee_id".into(),
        pattern: r"\bE\d{4}\b".into(),
        class: Classification::Internal,
    }])
    .unwrap();
    assert_eq!(d.find("see E1001")[0].detector, "employee_id");
    assert!(
        Detectors::new(&[CustomDetector {
            name: "bad".into(),
            pattern: "(".into(),
            class: Classification::Internal,
        }])
        .is_err()
    );
}
