//! Fuzzing token parsing: `act` and `may_act` of any shape, and tokens whose header and claims are any JSON (with
//! random signatures, and signed by the issuer's real key) never panic; a token with a made-up signature is never
//! accepted.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(128)
}

fn value() -> impl Strategy<Value = Value> {
    crate::fuzzing::json_value(
        vec![
            "RS256",
            "HS256",
            "none",
            "ES256",
            "at+jwt",
            "JWT",
            "dpop+jwt",
            "toolgate-dev",
            "toolgate-dev-1",
            "toolgate",
            "assistant",
            "alice",
            "",
        ],
        vec![
            "alg",
            "typ",
            "kid",
            "crit",
            "jwk",
            "jku",
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "act",
            "may_act",
            "scope",
            "cnf",
            "jkt",
            "roles",
            "client_id",
            "nonce",
        ],
        6,
    )
}

fn issuer() -> Issuer {
    let config: crate::config::IssuerConfig = serde_yaml_ng::from_str(
        "issuer: toolgate-dev\naudience: toolgate\njwks_file: examples/quickstart/dev-keys/dev.jwks.json\ndev: true\naccept_plain_jwt: true\n",
    )
    .unwrap();
    Issuer::load(&config, std::path::Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn act_and_may_act_of_any_shape(value in value()) {
        let _ = Act::parse(&value);
        let _ = MayAct::parse(&value);
    }

    #[test]
    fn tokens_with_made_up_signatures_are_refused(
        header in value(),
        claims in value(),
        signature in prop::collection::vec(any::<u8>(), 0..300),
        raw in ".{0,200}",
    ) {
        let issuer = issuer();
        let token = format!("{}.{}.{}", encode(&header), encode(&claims), URL_SAFE_NO_PAD.encode(signature));
        prop_assert!(issuer.verify(&token, &["toolgate".to_string()]).is_err());
        prop_assert!(issuer.verify(&raw, &["toolgate".to_string()]).is_err());
        let _ = peek_issuer(&token);
        let _ = peek_issuer(&raw);
    }

    #[test]
    fn tokens_signed_by_the_issuer_with_any_claims(claims in value(), typ in prop::sample::select(vec!["at+jwt", "JWT", "dpop+jwt"])) {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(
            &std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/dev-keys/dev-signing-key.pem")).unwrap(),
        ).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("toolgate-dev-1".into());
        header.typ = Some(typ.into());
        let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        if let Ok(claims) = issuer().verify(&token, &["toolgate".to_string()]) {
            // Accepted only with the claims an access token must have.
            prop_assert_eq!(claims.iss, "toolgate-dev");
            prop_assert!(claims.exp + 60 >= jsonwebtoken::get_current_timestamp() as i64);
            if let Some(act) = claims.other.get("act") {
                let _ = Act::parse(act);
            }
        }
    }
}
