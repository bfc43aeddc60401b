use super::*;

#[test]
fn quickstart_manifests_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests");
    let manifests = Manifests::load_dir(&dir).unwrap();
    let query = manifests.get("sql", "query");
    assert_eq!(query.risk, Risk::Read);
    assert!(matches!(
        query.arguments.get("sql"),
        Some(ArgumentKind::Sql { database: Some(db), .. }) if db == "company"
    ));
    assert_eq!(
        manifests.get("hr", "lookup_employee").classification,
        Classification::Restricted
    );
    assert_eq!(manifests.get("files", "write_file").risk, Risk::Write);
    assert_eq!(
        manifests.get("sql", "query").owner.as_deref(),
        Some("data-platform")
    );
}

#[test]
fn declared_schemas_must_compile() {
    let manifest = |databases: &str, argument: &str| {
        format!(
            "upstream: db\nowner: x\ndatabases:\n{databases}tools:\n  q:\n    classification: internal\n    risk: read\n    arguments:\n      sql: {argument}\n"
        )
    };
    let good = "  main:\n    schema: 'CREATE TABLE t (a, b);'\n    columns: {t.a: confidential}\n";
    let mut m = Manifests::default();
    m.add_yaml(&manifest(good, "{kind: sql, database: main}"))
        .unwrap();
    assert_eq!(m.schemas().count(), 1);
    for (databases, argument, error) in [
        (
            "  main:\n    schema: 'CREATE TABLE t (a,'\n",
            "{kind: sql, database: main}",
            "does not compile",
        ),
        (
            "  main:\n    schema: 'CREATE TABLE t (a); ATTACH ''x'' AS y;'\n",
            "{kind: sql, database: main}",
            "does not compile",
        ),
        (
            "  main:\n    schema: 'CREATE TABLE t (a);'\n    columns: {t.z: restricted}\n",
            "{kind: sql, database: main}",
            "names no column",
        ),
        (
            "  main:\n    schema: 'CREATE TABLE t (a);'\n    columns: {a: restricted}\n",
            "{kind: sql, database: main}",
            "not `table.column`",
        ),
        (
            "  main:\n    schema_file: ../etc/schema.sql\n",
            "{kind: sql, database: main}",
            "plain relative path",
        ),
        (
            "  main:\n    dialect: postgres\n    schema: 'CREATE TABLE t (a);'\n",
            "{kind: sql, database: main}",
            "not supported",
        ),
        (
            "  main:\n    schema: 'CREATE TABLE t (a);'\n",
            "{kind: sql, database: other}",
            "does not declare",
        ),
        ("  main: {}\n", "{kind: sql, database: main}", "no `schema`"),
    ] {
        let error_text = Manifests::default()
            .add_yaml(&manifest(databases, argument))
            .unwrap_err()
            .to_string();
        assert!(error_text.contains(error), "{databases}: {error_text}");
    }
}

#[test]
fn undescribed_tools_get_the_safe_default() {
    let manifests = Manifests::default();
    assert_eq!(manifests.get("x", "y"), &ToolManifest::safe_default());
    assert_eq!(
        ToolManifest::safe_default().classification,
        Classification::Restricted
    );
    assert_eq!(ToolManifest::safe_default().risk, Risk::Destructive);
}

#[test]
fn bad_manifests_are_refused() {
    let mut m = Manifests::default();
    assert!(
        m.add_yaml(
            "upstream: sql\nowner: x\ntools:\n  q:\n    classification: secret\n    risk: read\n"
        )
        .is_err()
    );
    assert!(m.add_yaml("upstream: sql\nowner: x\ntools:\n  q:\n    classification: public\n    risk: read\n    arguments:\n      s: {kind: regex}\n").is_err());
    assert!(m.add_yaml("upstream: Bad\nowner: x\ntools: {}\n").is_err());
    m.add_yaml(
        "upstream: sql\nowner: x\ntools:\n  q:\n    classification: public\n    risk: read\n",
    )
    .unwrap();
    assert!(
        m.add_yaml(
            "upstream: sql\nowner: x\ntools:\n  q:\n    classification: public\n    risk: read\n"
        )
        .is_err()
    );
}

#[test]
fn resources_are_described_by_their_longest_matching_pattern_and_prompts_by_name() {
    let mut m = Manifests::default();
    m.add_yaml(
        "upstream: docs\nowner: team\nresources:\n  \"doc://*\":\n    classification: internal\n    risk: read\n  \"doc://secret/*\":\n    classification: restricted\n    risk: read\n    owner: security\nprompts:\n  brief:\n    classification: confidential\n    risk: read\n",
    )
    .unwrap();
    assert_eq!(
        m.resource("docs", "doc://a").classification,
        Classification::Internal
    );
    let secret = m.resource("docs", "doc://secret/x");
    assert_eq!(secret.classification, Classification::Restricted);
    assert_eq!(secret.owner.as_deref(), Some("security"));
    assert_eq!(m.resource("docs", "doc://a").owner.as_deref(), Some("team"));
    assert_eq!(
        m.resource("docs", "other://a"),
        &ToolManifest::safe_default()
    );
    assert_eq!(m.resource("else", "doc://a"), &ToolManifest::safe_default());
    assert_eq!(
        m.prompt("docs", "brief").classification,
        Classification::Confidential
    );
    assert_eq!(m.prompt("docs", "other"), &ToolManifest::safe_default());
    // Resources and prompts take no argument kinds, and tool-only output shapes.
    for bad in [
        "upstream: d\nowner: t\nprompts:\n  p:\n    classification: public\n    risk: read\n    arguments:\n      q: {kind: sql}\n",
        "upstream: d\nowner: t\nresources:\n  \"x\":\n    classification: public\n    risk: read\n    output: {table: {columns: c, rows: r}}\n",
        "upstream: d\nowner: t\nprompts:\n  \"bad name\":\n    classification: public\n    risk: read\n",
    ] {
        assert!(Manifests::default().add_yaml(bad).is_err(), "{bad}");
    }
}

#[test]
fn globs() {
    for (pattern, text, matches) in [
        ("a", "a", true),
        ("a", "ab", false),
        ("*", "", true),
        ("a*", "abc", true),
        ("*c", "abc", true),
        ("a*c", "ac", true),
        ("a*c", "abxc", true),
        ("a*b*c", "abc", true),
        ("a*b*c", "acb", false),
        ("doc://*/x", "doc://a/b/x", true),
        ("ab*ba", "aba", false),
    ] {
        assert_eq!(glob_matches(pattern, text), matches, "{pattern} {text}");
    }
}
