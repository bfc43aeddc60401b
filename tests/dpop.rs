//! Tokens bound to a key by `cnf.jkt` (RFC 9449): accepted only as `Authorization: DPoP` with a proof made for
//! that very request by that key, on every request; each way a proof can be wrong is tried, replays included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

fn key_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dpop")
        .join(name)
}

/// A client's proof key: its private half, and the public JWK and thumbprint.
struct ProofKey {
    private: EncodingKey,
    jwk: Value,
    thumbprint: String,
}

impl ProofKey {
    fn load(name: &str) -> Self {
        let private =
            EncodingKey::from_ec_pem(&std::fs::read(key_file(&format!("{name}.pem"))).unwrap())
                .unwrap();
        let jwk: Value =
            serde_json::from_slice(&std::fs::read(key_file(&format!("{name}.jwk.json"))).unwrap())
                .unwrap();
        let thumbprint = serde_json::from_value::<Jwk>(jwk.clone())
            .unwrap()
            .thumbprint(ThumbprintHash::SHA256)
            .unwrap();
        Self {
            private,
            jwk,
            thumbprint,
        }
    }
}

/// Alice's assistant, with `cnf` when given.
fn token(cnf: Option<Value>) -> String {
    let mut claims = alice_claims();
    if let Some(cnf) = cnf {
        claims.insert("cnf".into(), cnf);
    }
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some("toolgate-dev-1".into());
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, &claims, &dev_signing_key()).unwrap()
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// A proof: `header` and `claims` as JSON, signed with `key` (ES256).
fn proof_with(header: &Value, claims: &Value, key: &ProofKey) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key.private, Algorithm::ES256).unwrap();
    format!("{message}.{signature}")
}

fn header_of(key: &ProofKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk})
}

fn claims_for(method: &str, url: &str, token: &str) -> Value {
    json!({"jti": uuid::Uuid::new_v4().to_string(), "htm": method, "htu": url, "iat": now(), "ath": ath(token)})
}

/// A good proof of `key` for `method` on `url` with `token`.
fn proof(key: &ProofKey, method: &str, url: &str, token: &str) -> String {
    proof_with(&header_of(key), &claims_for(method, url, token), key)
}

/// Status, reason id, `WWW-Authenticate` and session of a POST of `body` with `Authorization: <scheme> <token>`
/// and the given `DPoP` headers.
async fn post(
    url: &str,
    scheme: &str,
    token: &str,
    proofs: &[&str],
    session: Option<&str>,
    body: &str,
) -> (u16, String, String, Option<String>) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("{scheme} {token}"))
        .body(body.to_string());
    for p in proofs {
        request = request.header("dpop", *p);
    }
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let reason = body["error"]["data"]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string();
    (status, reason, challenge, session)
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

#[tokio::test]
async fn a_bound_token_is_used_with_a_fresh_proof_of_its_key_on_every_request() {
    let gateway = quickstart_identity_gateway("");
    let key = ProofKey::load("a");
    let bound = token(Some(json!({"jkt": key.thumbprint})));
    let url = gateway.url.clone();

    let (status, reason, _, session) = post(
        &url,
        "DPoP",
        &bound,
        &[&proof(&key, "POST", &url, &bound)],
        None,
        INITIALIZE,
    )
    .await;
    assert_eq!((status, reason.as_str()), (200, ""));
    let session = session.unwrap();
    // The scheme is case-insensitive; every request needs its own proof.
    for scheme in ["DPoP", "dpop"] {
        let (status, reason, _, _) = post(
            &url,
            scheme,
            &bound,
            &[&proof(&key, "POST", &url, &bound)],
            Some(&session),
            LIST,
        )
        .await;
        assert_eq!((status, reason.as_str()), (200, ""), "{scheme}");
    }
    // The proof's URL may differ in host case, default port, query or fragment (RFC 9449 §4.3).
    let host_case = url.replace("http://", "HTTP://");
    let (status, _, _, _) = post(
        &url,
        "DPoP",
        &bound,
        &[&proof(&key, "POST", &format!("{host_case}?q=1#f"), &bound)],
        Some(&session),
        LIST,
    )
    .await;
    assert_eq!(status, 200);

    // A replayed proof is refused, however soon.
    let once = proof(&key, "POST", &url, &bound);
    let first = post(&url, "DPoP", &bound, &[&once], Some(&session), LIST).await;
    assert_eq!(first.0, 200);
    let again = post(&url, "DPoP", &bound, &[&once], Some(&session), LIST).await;
    assert_eq!((again.0, again.1.as_str()), (401, "dpop_proof_replayed"));
    assert!(
        again.2.starts_with("DPoP error=\"invalid_dpop_proof\""),
        "{}",
        again.2
    );

    // Closing the session is a request too: DELETE, with a proof made for DELETE.
    let close = |method: &'static str| {
        reqwest::Client::new()
            .delete(&url)
            .header("authorization", format!("DPoP {bound}"))
            .header("dpop", proof(&key, method, &url, &bound))
            .header("mcp-session-id", &session)
            .send()
    };
    assert_eq!(close("POST").await.unwrap().status(), 401);
    assert!(close("DELETE").await.unwrap().status().is_success());
}

#[tokio::test]
async fn a_bound_token_without_a_valid_proof_is_refused_in_every_way_a_proof_can_be_wrong() {
    let gateway = quickstart_identity_gateway("");
    let key = ProofKey::load("a");
    let other = ProofKey::load("b");
    let bound = token(Some(json!({"jkt": key.thumbprint})));
    let url = gateway.url.clone();
    let good = || claims_for("POST", &url, &bound);
    let with = |change: &dyn Fn(&mut Map<String, Value>)| {
        let mut claims = good().as_object().unwrap().clone();
        change(&mut claims);
        proof_with(&header_of(&key), &Value::Object(claims), &key)
    };
    let header_with = |change: &dyn Fn(&mut Map<String, Value>)| {
        let mut header = header_of(&key).as_object().unwrap().clone();
        change(&mut header);
        proof_with(&Value::Object(header), &good(), &key)
    };
    let mut private_jwk = key.jwk.clone();
    private_jwk["d"] = json!("AAAA");
    let hmac = {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD
                .encode(json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk}).to_string()),
            URL_SAFE_NO_PAD.encode(good().to_string())
        );
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(b"secret"),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{message}.{signature}")
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "another method",
            with(&|c| drop(c.insert("htm".into(), json!("GET")))),
        ),
        (
            "lower-case method",
            with(&|c| drop(c.insert("htm".into(), json!("post")))),
        ),
        (
            "another path",
            with(&|c| drop(c.insert("htu".into(), json!(format!("{url}/x"))))),
        ),
        (
            "another port",
            with(&|c| drop(c.insert("htu".into(), json!("http://127.0.0.1:1/mcp")))),
        ),
        (
            "another scheme",
            with(&|c| drop(c.insert("htu".into(), json!(url.replace("http:", "https:"))))),
        ),
        ("no htu", with(&|c| drop(c.remove("htu")))),
        (
            "too old",
            with(&|c| drop(c.insert("iat".into(), json!(now() - 600)))),
        ),
        (
            "from the future",
            with(&|c| drop(c.insert("iat".into(), json!(now() + 600)))),
        ),
        (
            "iat as a string",
            with(&|c| drop(c.insert("iat".into(), json!(now().to_string())))),
        ),
        ("no ath", with(&|c| drop(c.remove("ath")))),
        (
            "ath of another token",
            with(&|c| drop(c.insert("ath".into(), json!(ath("another token"))))),
        ),
        ("no jti", with(&|c| drop(c.remove("jti")))),
        (
            "empty jti",
            with(&|c| drop(c.insert("jti".into(), json!("")))),
        ),
        (
            "huge jti",
            with(&|c| drop(c.insert("jti".into(), json!("j".repeat(4000))))),
        ),
        (
            "typed JWT",
            header_with(&|h| drop(h.insert("typ".into(), json!("JWT")))),
        ),
        ("untyped", header_with(&|h| drop(h.remove("typ")))),
        (
            "typed as an access token",
            header_with(&|h| drop(h.insert("typ".into(), json!("at+jwt")))),
        ),
        ("no jwk", header_with(&|h| drop(h.remove("jwk")))),
        (
            "private jwk",
            header_with(&|h| drop(h.insert("jwk".into(), private_jwk.clone()))),
        ),
        (
            "critical header",
            header_with(&|h| drop(h.insert("crit".into(), json!(["exp"])))),
        ),
        // Signed by the key it names, but not the key the token is bound to.
        ("another key", proof(&other, "POST", &url, &bound)),
        // Names the bound key, signed by another.
        (
            "signature by another key",
            proof_with(&header_of(&key), &good(), &other),
        ),
        ("HMAC", hmac),
        ("not a JWT", "not-a-jwt".to_string()),
        ("garbage header", "e30.e30.e30".to_string()),
    ];
    for (case, p) in &cases {
        let (status, reason, challenge, _) =
            post(&url, "DPoP", &bound, &[p.as_str()], None, INITIALIZE).await;
        assert_eq!(
            (status, reason.as_str()),
            (401, "dpop_proof_invalid"),
            "{case}"
        );
        assert!(
            challenge.starts_with("DPoP error=\"invalid_dpop_proof\""),
            "{case}: {challenge}"
        );
        assert!(
            challenge.contains("Bearer resource_metadata="),
            "{case}: {challenge}"
        );
    }
    // Two proofs at once.
    let two = [
        proof(&key, "POST", &url, &bound),
        proof(&key, "POST", &url, &bound),
    ];
    let (status, reason, _, _) =
        post(&url, "DPoP", &bound, &[&two[0], &two[1]], None, INITIALIZE).await;
    assert_eq!((status, reason.as_str()), (401, "dpop_proof_invalid"));
    // No proof, or the bound token presented as a bearer token (with or without a proof).
    for (scheme, proofs) in [
        ("DPoP", vec![]),
        ("Bearer", vec![]),
        ("Bearer", vec![proof(&key, "POST", &url, &bound)]),
    ] {
        let refs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let (status, reason, challenge, _) =
            post(&url, scheme, &bound, &refs, None, INITIALIZE).await;
        assert_eq!(
            (status, reason.as_str()),
            (401, "dpop_proof_missing"),
            "{scheme}"
        );
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
    // `DPoP` with a bearer token (bound to no key), even with a valid proof.
    let plain = token(None);
    let (status, reason, _, _) = post(
        &url,
        "DPoP",
        &plain,
        &[&proof(&key, "POST", &url, &plain)],
        None,
        INITIALIZE,
    )
    .await;
    assert_eq!((status, reason.as_str()), (401, "dpop_token_unbound"));
    // The plain token as a bearer token is still fine.
    let (status, _, _, _) = post(&url, "Bearer", &plain, &[], None, INITIALIZE).await;
    assert_eq!(status, 200);
    // `cnf` with `jkt` and a method toolgate cannot verify is refused as a binding it cannot check.
    let mixed = token(Some(json!({"jkt": key.thumbprint, "x5t#S256": "abc"})));
    let (status, reason, _, _) = post(
        &url,
        "DPoP",
        &mixed,
        &[&proof(&key, "POST", &url, &mixed)],
        None,
        INITIALIZE,
    )
    .await;
    assert_eq!(
        (status, reason.as_str()),
        (401, "token_binding_unsupported")
    );
}

#[test]
fn over_stdio_a_bound_token_cannot_be_used() {
    let dir = tempfile::tempdir().unwrap();
    let key = ProofKey::load("a");
    let bound = token(Some(json!({"jkt": key.thumbprint})));
    let config = stdio_mode_config(dir.path(), &stdio_upstream("testbed", "testbed", &[]), "");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["serve", "--dev", "--stdio", "--config"])
        .arg(&config)
        .env("TOOLGATE_TOKEN", &bound)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(format!("{INITIALIZE}\n").as_bytes())?;
            drop(stdin);
            child.wait_with_output()
        })
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answer: Value = serde_json::from_str(stdout.lines().next().unwrap_or("null")).unwrap();
    assert_eq!(
        answer["error"]["data"]["reason"], "dpop_proof_missing",
        "{stdout}"
    );
}
