use std::path::Path;
use std::time::Duration;

use super::*;

#[test]
fn defaults_are_loopback_and_safe() {
    let config = Config::from_yaml("{}", Path::new(".")).unwrap();
    assert!(config.listen.ip().is_loopback());
    assert_eq!(config.listen.port(), 8700);
    assert_eq!(config.namespace_separator, "__");
}

#[test]
fn tracing_exports_nothing_unless_asked_and_bad_settings_refuse_to_start() {
    let config = Config::from_yaml("{}", Path::new(".")).unwrap();
    assert!(config.tracing.otlp.is_none());
    let config = Config::from_yaml(
        "tracing:\n  otlp:\n    endpoint: http://collector:4318\n",
        Path::new("."),
    )
    .unwrap();
    let otlp = config.tracing.otlp.unwrap();
    assert_eq!(otlp.traces_url(), "http://collector:4318/v1/traces");
    assert_eq!(otlp.protocol, OtlpProtocol::HttpProtobuf);
    let config = Config::from_yaml(
        "tracing:\n  otlp:\n    endpoint: https://c.example/otlp/v1/traces/\n    protocol: http/json\n",
        Path::new("."),
    )
    .unwrap();
    let otlp = config.tracing.otlp.unwrap();
    assert_eq!(otlp.traces_url(), "https://c.example/otlp/v1/traces");
    assert_eq!(otlp.protocol, OtlpProtocol::HttpJson);
    for (bad, says) in [
        ("tracing:\n  sample_ratio: 1.5\n", "sample_ratio"),
        (
            "tracing:\n  otlp:\n    endpoint: collector:4317\n",
            "http://",
        ),
        (
            "tracing:\n  otlp:\n    endpoint: grpc://collector:4317\n",
            "http://",
        ),
        (
            "tracing:\n  otlp:\n    endpoint: http://c:4318\n    protocol: grpc\n",
            "unknown variant",
        ),
        (
            "tracing:\n  otlp:\n    endpoint: http://c:4318\n    headers:\n      \"bad name\": x\n",
            "header name",
        ),
        (
            "tracing:\n  otlp:\n    endpoint: http://c:4318\n    batch_delay: 0s\n",
            "batch_delay",
        ),
    ] {
        let err = Config::from_yaml(bad, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains(says), "{bad}: {err}");
    }
}

#[test]
fn non_loopback_listen_needs_opt_in() {
    let err = Config::from_yaml("listen: 0.0.0.0:8700", Path::new(".")).unwrap_err();
    assert!(err.to_string().contains("not loopback"), "{err}");
    Config::from_yaml(
        "listen: 0.0.0.0:8700\nallow_non_loopback: true",
        Path::new("."),
    )
    .unwrap();
}

#[test]
fn upstream_names_are_checked() {
    for bad in [
        "A",
        "a__b",
        "1a",
        "a_b",
        "",
        "abcdefghijklmnopqrstuvwxyzabcdefg",
    ] {
        let yaml = format!("upstreams:\n  - name: \"{bad}\"\n    stdio: {{command: x}}\n");
        assert!(
            Config::from_yaml(&yaml, Path::new(".")).is_err(),
            "{bad} accepted"
        );
    }
    let dup =
        "upstreams:\n  - name: a\n    stdio: {command: x}\n  - name: a\n    stdio: {command: y}\n";
    let err = Config::from_yaml(dup, Path::new(".")).unwrap_err();
    assert!(err.to_string().contains("used twice"), "{err}");
}

#[test]
fn relative_command_resolves_against_config_folder() {
    let yaml = "upstreams:\n  - name: a\n    stdio: {command: ./bin/server, cwd: data}\n  - name: b\n    stdio: {command: python3}\n";
    let config = Config::from_yaml(yaml, Path::new("/etc/tg")).unwrap();
    let UpstreamTransport::Stdio(a) = &config.upstreams[0].transport else {
        panic!("stdio expected")
    };
    assert_eq!(a.command, "/etc/tg/./bin/server");
    assert_eq!(a.cwd.as_deref(), Some(Path::new("/etc/tg/data")));
    let UpstreamTransport::Stdio(b) = &config.upstreams[1].transport else {
        panic!("stdio expected")
    };
    assert_eq!(b.command, "python3");
}

#[test]
fn policy_limits_must_allow_a_decision() {
    for bad in [
        "policy: {timeout: 0s}",
        "policy: {max_instructions: 0}",
        "policy: {approval_ttl: 0s}",
        "policy: {evaluator: fast}",
    ] {
        assert!(Config::from_yaml(bad, Path::new(".")).is_err(), "{bad}");
    }
    let config =
        Config::from_yaml("policy: {evaluator: interpreter}", Path::new("/etc/tg")).unwrap();
    assert_eq!(config.policy.evaluator, Evaluator::Interpreter);
    assert_eq!(config.policy.dir, Path::new("/etc/tg/policies"));
}

#[test]
fn env_expansion_refuses_unset_variables() {
    assert!(expand_env("Bearer ${TOOLGATE_SURELY_UNSET_VAR}").is_err());
    assert_eq!(expand_env("plain").unwrap(), "plain");
}

#[test]
fn quickstart_config_loads_with_absolute_paths() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/toolgate.yaml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.upstreams.len(), 3);
    for upstream in &config.upstreams {
        let UpstreamTransport::Stdio(stdio) = &upstream.transport else {
            panic!("stdio expected")
        };
        assert!(Path::new(&stdio.command).is_absolute(), "{}", stdio.command);
    }
}

#[test]
fn issuer_limits() {
    let issuer = |extra: &str| {
        format!(
            "auth:\n  issuers:\n    - issuer: i\n      audience: a\n      jwks_file: k.json\n{extra}  agents_file: a.yaml\n"
        )
    };
    Config::from_yaml(&issuer(""), Path::new(".")).unwrap();
    for (extra, message) in [
        ("      leeway: 1000years\n", "leeway"),
        ("      algorithms: [HS256]\n", "symmetric"),
        ("      audience: toolgate-admin\n", "admin"),
    ] {
        let yaml = issuer(extra).replace(
            "      audience: a\n",
            if extra.contains("audience") {
                ""
            } else {
                "      audience: a\n"
            },
        );
        let err = Config::from_yaml(&yaml, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains(message), "{extra}: {err}");
    }
    let url = |u: &str| {
        format!(
            "auth:\n  issuers:\n    - issuer: i\n      audience: a\n      jwks_url: \"{u}\"\n  agents_file: a.yaml\n"
        )
    };
    assert!(Config::from_yaml(&url("http://idp.example/jwks"), Path::new(".")).is_err());
    Config::from_yaml(&url("https://idp.example/jwks"), Path::new(".")).unwrap();
    Config::from_yaml(&url("http://127.0.0.1:9/jwks"), Path::new(".")).unwrap();
}

#[test]
fn zero_timeouts_are_refused() {
    for yaml in [
        "timeouts: {call: 0s}",
        "timeouts: {session_idle: 0s}",
        "timeouts: {reconnect_initial: 0s}",
    ] {
        assert!(Config::from_yaml(yaml, Path::new(".")).is_err(), "{yaml}");
    }
    let config =
        Config::from_yaml("timeouts: {call: 1500ms, session_idle: 2m}", Path::new(".")).unwrap();
    assert_eq!(config.timeouts.call, Duration::from_millis(1500));
}

#[test]
fn http_upstream_needs_http_scheme() {
    let yaml = "upstreams:\n  - name: a\n    http: {url: \"ftp://x\"}\n";
    assert!(Config::from_yaml(yaml, Path::new(".")).is_err());
}
