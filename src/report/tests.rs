use super::*;

fn hostile() -> AccessReport {
    AccessReport {
        records: 2,
        tools: vec![ToolReport {
            tool: "<script>alert(1)</script>".into(),
            calls: 2,
            denied: 2,
            top_denial_reasons: vec![("=HYPERLINK(\"http://evil\")".into(), 2)],
            column_reads: [(
                "<b>t</b>.=c".to_string(),
                ColumnReads {
                    class: "restricted".into(),
                    allowed: 0,
                    denied: 2,
                },
            )]
            .into(),
            ..ToolReport::default()
        }],
        agents: vec![AgentReport {
            agent: "@SUM(A1)".into(),
            owner: Some("\" onmouseover=\"x".into()),
            ..AgentReport::default()
        }],
        principals: vec![PrincipalReport {
            principal: "+cmd|' /C calc'!A0".into(),
            tools: vec![PrincipalTool {
                tool: "-2+3".into(),
                ..PrincipalTool::default()
            }],
        }],
        ..AccessReport::default()
    }
}

#[test]
fn html_escapes_what_callers_and_upstreams_wrote() {
    let html = hostile().to_html();
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("\" onmouseover"));
    assert!(!html.contains("<b>t</b>") && html.contains("&lt;b&gt;t&lt;/b&gt;"));
    assert!(html.contains("default-src 'none'"));
    assert!(html.contains("<svg"));
    assert!(!html.contains("http://evil\"") || html.contains("&quot;http://evil&quot;"));
}

#[test]
fn csv_cells_never_start_a_formula() {
    let csv = hostile().to_csv().unwrap();
    for cell in ["=HYPERLINK", "@SUM", "+cmd", "-2+3"] {
        assert!(
            !csv.split([',', '\n'])
                .any(|c| c.trim_start_matches('"').starts_with(cell)),
            "{cell} in {csv}"
        );
    }
    assert!(csv.contains("'=HYPERLINK") && csv.contains("'@SUM(A1)"));
    assert!(
        csv.contains("column,<script>alert(1)</script>,<b>t</b>.=c,restricted,0,2"),
        "{csv}"
    );
}
