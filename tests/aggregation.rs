//! One endpoint over several upstreams: namespaced listing, pagination, forwarding unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

fn quickstart_like(extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\n{extra}upstreams:\n{}{}",
        quickstart_upstreams("hello.txt", "hello from the store"),
        stdio_upstream("testbed", "testbed", &[]),
    )
}

#[tokio::test]
async fn lists_namespaced_tools_with_definitions_intact() {
    let gateway = Gateway::start(&quickstart_like(""));
    let client = gateway.client().await;
    let tools = client.service.peer().list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in [
        "hr__lookup_employee",
        "hr__search_employees",
        "sql__query",
        "sql__list_tables",
        "files__read_file",
        "files__write_file",
        "testbed__echo",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    // Compare with the upstream's own definitions, fetched directly.
    let direct = ()
        .serve(
            TokioChildProcess::new(tokio::process::Command::new(example("hr_directory"))).unwrap(),
        )
        .await
        .unwrap();
    let upstream_tools = direct.peer().list_all_tools().await.unwrap();
    assert!(!upstream_tools.is_empty());
    for original in upstream_tools {
        let exposed = tools
            .iter()
            .find(|t| t.name == format!("hr__{}", original.name))
            .unwrap();
        let mut renamed = original.clone();
        renamed.name = exposed.name.clone();
        assert_eq!(
            &renamed, exposed,
            "definition of {} changed in transit",
            original.name
        );
        assert!(original.output_schema.is_some() || original.name == "employee_card");
    }
}

#[tokio::test]
async fn paginates_long_lists() {
    let gateway = Gateway::start(&quickstart_like("limits:\n  page_size: 3\n"));
    let client = gateway.client().await;
    let first = client.service.peer().list_tools(None).await.unwrap();
    assert_eq!(first.tools.len(), 3);
    let cursor = first.next_cursor.clone().expect("a next cursor");
    let second = client
        .service
        .peer()
        .list_tools(Some(
            rmcp::model::PaginatedRequestParams::default().with_cursor(Some(cursor)),
        ))
        .await
        .unwrap();
    assert_eq!(second.tools.len(), 3);
    assert!(second.tools.iter().all(|t| !first.tools.contains(t)));
    let all = client.tool_names().await;
    assert!(all.len() > 15, "{all:?}");
    let mut dedup = all.clone();
    dedup.dedup();
    assert_eq!(all, dedup, "pages overlap");
}

#[tokio::test]
async fn calls_reach_each_upstream_and_come_back_unchanged() {
    let gateway = Gateway::start(&quickstart_like(""));
    let client = gateway.client().await;

    let hr = client
        .call("hr__lookup_employee", json!({"id_or_email": "E1001"}))
        .await
        .unwrap();
    let record = hr.structured_content.clone().unwrap();
    assert_eq!(record["name"], "Ada Lovelace");
    assert_eq!(record["national_id"], "123-45-6789");

    let sql = client
        .call(
            "sql__query",
            json!({"sql": "SELECT name FROM customers ORDER BY id"}),
        )
        .await
        .unwrap();
    assert_eq!(sql.structured_content.unwrap()["rows"][0][0], "Acme Corp");

    let file = client
        .call("files__read_file", json!({"path": "hello.txt"}))
        .await
        .unwrap();
    assert_eq!(text(&file), "hello from the store");

    // Mixed content and isError results pass through exactly as the upstream sent them.
    let direct =
        ().serve(TokioChildProcess::new(tokio::process::Command::new(example("testbed"))).unwrap())
            .await
            .unwrap();
    for tool in ["mixed", "fail"] {
        let expected = direct
            .peer()
            .call_tool(rmcp::model::CallToolRequestParams::new(tool))
            .await
            .unwrap();
        let mut through = client
            .call(&format!("testbed__{tool}"), json!({}))
            .await
            .unwrap();
        through.result_type = expected.result_type.clone();
        assert_eq!(through, expected, "{tool} changed in transit");
    }
    let failed = client.call("testbed__fail", json!({})).await.unwrap();
    assert_eq!(failed.is_error, Some(true));
}

#[tokio::test]
async fn unknown_tool_is_a_json_rpc_error() {
    let gateway = Gateway::start(&quickstart_like(""));
    let client = gateway.client().await;
    let err = client.call("nope__nothing", json!({})).await.unwrap_err();
    match err {
        rmcp::ServiceError::McpError(e) => {
            assert_eq!(e.code.0, -32602);
            assert_eq!(e.message, "Unknown tool: nope__nothing");
        }
        other => panic!("unexpected {other:?}"),
    }
    // The un-namespaced upstream name is not reachable either.
    assert!(client.call("echo", json!({"text": "x"})).await.is_err());
}

/// One raw `tools/list` in `session`, with `cursor`; the JSON-RPC answer.
async fn list_page(url: &str, token: &str, session: &str, cursor: Option<&str>) -> Value {
    let params = match cursor {
        Some(cursor) => json!({"cursor": cursor}),
        None => json!({}),
    };
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("mcp-session-id", session)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": params}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn cursors_are_bound_to_the_caller_and_cannot_be_forged() {
    let agents =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests/agents.yaml");
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nlimits:\n  page_size: 2\nupstreams:\n{}{}",
        quickstart_upstreams("hello.txt", "hello"),
        test_auth(agents.to_str().unwrap()),
    ));
    let alice = user_token("alice", &["hr"], "assistant", &[]);
    let bob = user_token("bob", &["sales"], "assistant", &[]);
    let alice_session = raw_session(&gateway.url, &alice).await;
    let bob_session = raw_session(&gateway.url, &bob).await;
    let first = list_page(&gateway.url, &alice, &alice_session, None).await;
    let cursor = first["result"]["nextCursor"]
        .as_str()
        .expect("a next cursor")
        .to_string();
    let second = list_page(&gateway.url, &alice, &alice_session, Some(&cursor)).await;
    assert!(second["result"]["tools"].is_array(), "{second}");
    let refused = |answer: &Value, case: &str| {
        assert_eq!(answer["error"]["code"], -32602, "{case}: {answer}");
    };
    // Another caller, even in its own session, cannot continue alice's listing.
    refused(
        &list_page(&gateway.url, &bob, &bob_session, Some(&cursor)).await,
        "bob with alice's cursor",
    );
    // Forged cursors: a bare name (what a cursor once was), a name with a made-up tag, every one-character
    // change of a real cursor, truncations and extensions.
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let name = first["result"]["tools"][1]["name"].as_str().unwrap();
    let mut forged = vec![
        b64(name),
        format!("{}.{}", b64(name), b64("0123456789abcdef")),
        format!("{}.", b64(name)),
        format!(".{}", cursor.split_once('.').unwrap().1),
        format!("{cursor}."),
        format!("{cursor}A"),
        cursor[..cursor.len() - 1].to_string(),
        String::new(),
        "x".repeat(5000),
    ];
    let alphabet = ['A', 'b', '0', '-', '_', '.'];
    for (i, c) in cursor.char_indices() {
        let other = alphabet.iter().find(|&&a| a != c).unwrap();
        let mut mutated = cursor.clone();
        mutated.replace_range(i..i + c.len_utf8(), &other.to_string());
        forged.push(mutated);
    }
    for candidate in &forged {
        refused(
            &list_page(&gateway.url, &alice, &alice_session, Some(candidate)).await,
            candidate,
        );
    }
}

/// Names of an upstream's refused tools, from the admin readiness report.
async fn refused_tools(gateway: &Gateway, upstream: &str) -> Vec<String> {
    let ready: Value = gateway.admin_json("/readyz").await;
    ready["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["name"] == upstream)
        .flat_map(|u| u["refused_tools"].as_array().cloned().unwrap_or_default())
        .map(|r| r["tool"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn naming_modes_expose_tools_with_or_without_their_upstreams_name() {
    // `never` with one upstream: toolgate is transparent to the client.
    let single = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nnaming: never\nupstreams:\n{}",
        stdio_upstream("testbed", "testbed", &[])
    ));
    let client = single.client().await;
    let names = client.tool_names().await;
    assert!(names.contains(&"echo".to_string()), "{names:?}");
    assert!(names.iter().all(|n| !n.contains("__")), "{names:?}");
    let echoed = client.call("echo", json!({"text": "plain"})).await.unwrap();
    assert_eq!(text(&echoed), "plain");
    let prefixed = client
        .call("testbed__echo", json!({"text": "x"}))
        .await
        .unwrap_err();
    assert!(prefixed.to_string().contains("Unknown tool"), "{prefixed}");

    // `when_several`: one upstream in the config file, no prefix; an upstream registered at run time is prefixed,
    // so that registering it renames nothing.
    let one = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nnaming: when_several\nupstreams:\n{}",
        stdio_upstream("hr", "hr_directory", &[])
    ));
    let client = one.client().await;
    assert!(
        client
            .tool_names()
            .await
            .contains(&"lookup_employee".to_string())
    );
    let added = admin_cli(
        &one,
        &["upstreams", "add", "tb", "--command", &example("testbed")],
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let names = eventually(10, || async {
        let names = client.tool_names().await;
        names.contains(&"tb__echo".to_string()).then_some(names)
    })
    .await;
    assert!(names.contains(&"lookup_employee".to_string()), "{names:?}");
    // With two upstreams in the config file, both are prefixed.
    let two = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nnaming: when_several\nupstreams:\n{}{}",
        stdio_upstream("hr", "hr_directory", &[]),
        stdio_upstream("tb", "testbed", &[])
    ));
    let names = two.client().await.tool_names().await;
    assert!(
        names.contains(&"hr__lookup_employee".to_string())
            && names.contains(&"tb__echo".to_string()),
        "{names:?}"
    );

    // `never` with two upstreams listing the same tools: a colliding name stays with the upstream that listed it
    // first, and is refused (and reported) for the other; an upstream that keeps its prefix (`naming: always` on
    // it) does not collide.
    let clash = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nnaming: never\nupstreams:\n{}{}{}  - name: c\n    naming: always\n    stdio:\n      command: \"{}\"\n",
        stdio_upstream("a", "testbed", &[]),
        stdio_upstream("b", "testbed", &[]),
        stdio_upstream("hr", "hr_directory", &[]),
        example("testbed"),
    ));
    let client = clash.client().await;
    let names = eventually(10, || async {
        let names = client.tool_names().await;
        (names.contains(&"lookup_employee".to_string()) && names.contains(&"c__echo".to_string()))
            .then_some(names)
    })
    .await;
    assert_eq!(
        names.iter().filter(|n| *n == "echo").count(),
        1,
        "{names:?}"
    );
    let refused = eventually(10, || async {
        let a = refused_tools(&clash, "a").await;
        let b = refused_tools(&clash, "b").await;
        (a.contains(&"echo".to_string()) != b.contains(&"echo".to_string())).then_some((a, b))
    })
    .await;
    // The refused one is named in the readiness report; the other one's echo answers.
    assert!(refused.0.is_empty() || refused.1.is_empty(), "{refused:?}");
    // Registering another upstream whose tools would take an exposed name is refused.
    let taken = admin_cli(
        &single,
        &[
            "upstreams",
            "add",
            "again",
            "--command",
            &example("testbed"),
        ],
    );
    assert!(!taken.status.success());
    assert!(
        String::from_utf8_lossy(&taken.stderr).contains("upstream_refused"),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
}
