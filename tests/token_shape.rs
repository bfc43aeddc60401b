//! What a token is, before who it names: only access tokens typed as such (RFC 9068, RFC 8725), no critical
//! header toolgate does not understand, no ID token or security event, `act` a chain of objects at every level,
//! `may_act` honoured, and key-bound tokens never taken as plain bearer tokens. Each class is tried in many forms.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Map, Value, json};

/// The quickstart's upstreams and inventory; the development issuer, and `plain-idp` (same key) configured to
/// accept plain `JWT` access tokens.
fn gateway() -> Gateway {
    quickstart_identity_gateway(&format!(
        "    - issuer: plain-idp\n      audience: toolgate\n      jwks_file: \"{}\"\n      dev: true\n      accept_plain_jwt: true\n",
        dev_jwks()
    ))
}

/// Alice's assistant, from `issuer`.
fn alice(issuer: &str) -> Map<String, Value> {
    let mut claims = alice_claims();
    claims.insert("iss".into(), json!(issuer));
    claims
}

/// Signs with the development key, the header shaped by `shape`.
fn sign(claims: &Map<String, Value>, shape: impl FnOnce(&mut jsonwebtoken::Header)) -> String {
    let key = dev_signing_key();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("toolgate-dev-1".into());
    header.typ = Some("at+jwt".into());
    shape(&mut header);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Status and reason id of an `initialize` with `token`.
async fn answer(gateway: &Gateway, token: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(&gateway.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(token)
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let reason = body["error"]["data"]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string();
    (status, reason)
}

async fn expect(gateway: &Gateway, token: &str, want: (u16, &str), case: &str) {
    let (status, reason) = answer(gateway, token).await;
    assert_eq!((status, reason.as_str()), want, "{case}");
}

#[tokio::test]
async fn only_access_tokens_typed_as_such_are_accepted() {
    let gateway = gateway();
    let dev = alice("toolgate-dev");
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+Jwt",
    ] {
        let token = sign(&dev, |h| h.typ = Some(typ.into()));
        expect(&gateway, &token, (200, ""), typ).await;
    }
    let refused: Vec<Option<String>> = [
        "JWT",
        "jwt",
        "application/jwt",
        "dpop+jwt",
        "logout+jwt",
        "secevent+jwt",
        "application/secevent+jwt",
        "token-introspection+jwt",
        "JOSE",
        "JOSE+JSON",
        "at+jwt ",
        " at+jwt",
        "at+jwt2",
        "at-jwt",
        "at+jwt;charset=utf-8",
        "",
    ]
    .into_iter()
    .map(|t| Some(t.to_string()))
    .chain([None])
    .chain((0..8).map(|i| Some(format!("x{i}+jwt"))))
    .collect();
    for typ in &refused {
        let token = sign(&dev, |h| h.typ = typ.clone());
        expect(&gateway, &token, (401, "token_type"), &format!("{typ:?}")).await;
    }
    // An issuer configured for plain JWTs takes them (and untyped ones), never other typed JWTs.
    let plain = alice("plain-idp");
    for typ in [
        Some("JWT"),
        Some("jwt"),
        Some("application/jwt"),
        None,
        Some("at+jwt"),
    ] {
        let token = sign(&plain, |h| h.typ = typ.map(str::to_string));
        expect(&gateway, &token, (200, ""), &format!("plain {typ:?}")).await;
    }
    for typ in ["dpop+jwt", "logout+jwt", "secevent+jwt", "JOSE"] {
        let token = sign(&plain, |h| h.typ = Some(typ.into()));
        expect(&gateway, &token, (401, "token_type"), typ).await;
    }
}

#[tokio::test]
async fn id_tokens_and_security_events_are_not_access_tokens() {
    let gateway = gateway();
    for claim in ["nonce", "at_hash", "c_hash", "s_hash", "events", "sid_hash"] {
        for value in [
            json!("x"),
            json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
        ] {
            let mut plain = alice("plain-idp");
            plain.insert(claim.into(), value.clone());
            let token = sign(&plain, |h| h.typ = Some("JWT".into()));
            expect(
                &gateway,
                &token,
                (401, "token_not_access_token"),
                &format!("{claim} = {value}"),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn critical_headers_toolgate_does_not_understand_are_refused() {
    let gateway = gateway();
    let dev = alice("toolgate-dev");
    let cases: Vec<Vec<String>> = vec![
        vec!["b64".into()],
        vec!["exp".into()],
        vec!["http://example.com/ext".into(), "b64".into()],
        Vec::new(),
    ];
    for crit in cases
        .into_iter()
        .chain((0..6).map(|i| vec![format!("ext-{i}")]))
    {
        let token = sign(&dev, |h| h.crit = Some(crit.clone()));
        expect(&gateway, &token, (401, "token_crit"), &format!("{crit:?}")).await;
    }
}

/// Every JSON value that is not an object, and objects that are not actors.
fn not_actors() -> Vec<Value> {
    vec![
        json!(null),
        json!(true),
        json!(7),
        json!(-1.5),
        json!("assistant"),
        json!(""),
        json!(["assistant"]),
        json!([{"sub": "assistant"}]),
        json!({}),
        json!({"iss": "toolgate-dev"}),
        json!({"sub": 7}),
        json!({"sub": ["assistant"]}),
        json!({"sub": {"sub": "assistant"}}),
        json!({"sub": ""}),
        json!({"sub": null}),
        json!({"sub": "assistant", "iss": 7}),
        json!({"sub": "assistant", "iss": ["toolgate-dev"]}),
    ]
}

#[tokio::test]
async fn act_is_an_object_at_every_level() {
    let gateway = gateway();
    for bad in not_actors() {
        // As the claim itself, one level down and two levels down.
        let nested = [
            bad.clone(),
            json!({"sub": "summarizer", "act": bad.clone()}),
            json!({"sub": "summarizer", "act": {"sub": "assistant", "act": bad.clone()}}),
        ];
        for act in nested {
            let mut claims = alice("toolgate-dev");
            claims.insert("act".into(), act.clone());
            let token = sign(&claims, |_| {});
            expect(
                &gateway,
                &token,
                (401, "delegation_act_invalid"),
                &act.to_string(),
            )
            .await;
        }
    }
    // Nesting beyond any chain is refused without walking it all; past the JSON parser's own depth limit the
    // token does not even parse.
    for (levels, want) in [(100, "delegation_act_invalid"), (300, "token_malformed")] {
        let mut deep = json!({"sub": "assistant"});
        for _ in 0..levels {
            deep = json!({"sub": "assistant", "act": deep});
        }
        let mut claims = alice("toolgate-dev");
        claims.insert("act".into(), deep);
        expect(
            &gateway,
            &sign(&claims, |_| {}),
            (401, want),
            &format!("{levels} levels"),
        )
        .await;
    }
    // A well-formed chain still works: the summarizer acting for the assistant acting for alice.
    let mut claims = alice("toolgate-dev");
    claims.insert(
        "act".into(),
        json!({"sub": "summarizer", "act": {"sub": "assistant"}}),
    );
    expect(&gateway, &sign(&claims, |_| {}), (200, ""), "chain").await;
}

#[tokio::test]
async fn may_act_names_who_may_act_for_the_subject() {
    let gateway = gateway();
    let chain = json!({"sub": "summarizer", "act": {"sub": "assistant"}});
    let cases = [
        (
            json!({"sub": "assistant"}),
            json!({"sub": "assistant"}),
            (200, ""),
        ),
        (
            json!({"sub": "assistant", "iss": "toolgate-dev"}),
            json!({"sub": "assistant"}),
            (200, ""),
        ),
        // The actor acting for alice directly is the innermost one.
        (json!({"sub": "assistant"}), chain.clone(), (200, "")),
        (
            json!({"sub": "summarizer"}),
            json!({"sub": "assistant"}),
            (403, "delegation_may_act_refused"),
        ),
        (
            json!({"sub": "summarizer"}),
            chain.clone(),
            (403, "delegation_may_act_refused"),
        ),
        (
            json!({"sub": "assistant", "iss": "other-idp"}),
            json!({"sub": "assistant"}),
            (403, "delegation_may_act_refused"),
        ),
        (
            json!({"sub": "nightly-report"}),
            json!({"sub": "assistant"}),
            (403, "delegation_may_act_refused"),
        ),
    ];
    for (may_act, act, want) in cases {
        let mut claims = alice("toolgate-dev");
        claims.insert("may_act".into(), may_act.clone());
        claims.insert("act".into(), act);
        expect(&gateway, &sign(&claims, |_| {}), want, &may_act.to_string()).await;
    }
    for bad in [
        json!("assistant"),
        json!(["assistant"]),
        json!(null),
        json!(1),
        json!({}),
        json!({"sub": 1}),
        json!({"sub": "assistant", "iss": false}),
    ] {
        let mut claims = alice("toolgate-dev");
        claims.insert("may_act".into(), bad.clone());
        expect(
            &gateway,
            &sign(&claims, |_| {}),
            (401, "delegation_may_act_invalid"),
            &bad.to_string(),
        )
        .await;
    }
}

#[tokio::test]
async fn tokens_bound_to_a_key_toolgate_cannot_verify_are_refused() {
    let gateway = gateway();
    for cnf in [
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        json!({"jwk": {"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}}),
        json!({"jku": "https://idp.example/keys"}),
        json!({"kid": "key-1"}),
        json!({"osc": "x"}),
        json!("bound"),
        json!([]),
        json!(null),
    ] {
        let mut claims = alice("toolgate-dev");
        claims.insert("cnf".into(), cnf.clone());
        expect(
            &gateway,
            &sign(&claims, |_| {}),
            (401, "token_binding_unsupported"),
            &cnf.to_string(),
        )
        .await;
    }
}
