//! What the console's pages share: the admin API's answers read back, times shown and read in UTC, and JSON
//! shown readably.

use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

/// The largest admin API answer the console reads back.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// The admin API's refusal: its status, reason id, message and the field it names.
#[derive(Debug)]
pub(super) struct Refused {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
}

/// Reads an answer of the admin API's handlers (which the console calls in-process, so that every check they make
/// is made for the console too): its JSON on success, its refusal otherwise.
pub(super) async fn api(response: Response) -> Result<Value, Refused> {
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
        .await
        .map_err(|e| Refused {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("the answer could not be read: {e}"),
            field: None,
        })?;
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(value);
    }
    Err(Refused {
        status,
        message: value["error"]
            .as_str()
            .map_or_else(|| format!("refused ({status})"), str::to_string),
        field: value["field"].as_str().map(str::to_string),
    })
}

/// Unix milliseconds as `2026-11-30 23:40:12 UTC`.
pub(super) fn time(ms: i64) -> String {
    let Some(text) = crate::report::rfc3339(ms) else {
        return ms.to_string();
    };
    format!("{} UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

/// Unix seconds, shown like [`time`].
pub(super) fn time_s(seconds: i64) -> String {
    time(seconds.saturating_mul(1000))
}

/// A `datetime-local` value (`2026-11-30T23:40`, read as UTC) as Unix milliseconds; empty is none.
pub(super) fn parse_time(value: Option<&str>) -> Result<Option<i64>, String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let full = if value.len() == 16 {
        format!("{value}:00Z")
    } else {
        format!("{}Z", value.trim_end_matches('Z'))
    };
    let at = humantime::parse_rfc3339_weak(&full)
        .map_err(|_| format!("`{value}` is not a date and time (YYYY-MM-DDTHH:MM, UTC)"))?;
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("`{value}` is before 1970"))?
        .as_millis();
    Ok(Some(i64::try_from(ms).unwrap_or(i64::MAX)))
}

/// Unix milliseconds as a `datetime-local` value (UTC), for a form field filled in again.
pub(super) fn field_time(ms: Option<i64>) -> String {
    ms.map(|ms| time(ms).trim_end_matches(" UTC").replacen(' ', "T", 1))
        .map(|t| t.get(..16).unwrap_or(&t).to_string())
        .unwrap_or_default()
}

/// JSON shown to a person: pretty, or empty for nothing.
pub(super) fn pretty(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
    }
}

/// An error text as the console shows it: any URL in it without its user part, query and fragment, where
/// credentials travel.
pub(super) fn scrubbed(text: &str) -> String {
    static URL: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"(?i)\b([a-z][a-z0-9+.-]*://)(?:[^/\s@]*@)?([^\s?#"'`]*)(?:[?#][^\s"'`]*)?"#,
        )
        .ok()
    });
    match URL.as_ref() {
        Some(url) => url.replace_all(text, "$1$2").into_owned(),
        // Unreachable with the pattern above; nothing is shown rather than something unscrubbed.
        None => String::from("(not shown)"),
    }
}

/// Each upstream's status as the console shows it.
pub(super) fn statuses(state: &crate::admin::AdminState) -> Vec<crate::catalog::UpstreamStatus> {
    let mut statuses = state.gateway.catalog.statuses();
    for status in &mut statuses {
        status.last_error = status.last_error.as_deref().map(scrubbed);
    }
    statuses.sort_by(|a, b| a.name.cmp(&b.name));
    statuses
}

/// A form's optional text field: trimmed, empty is none.
pub(super) fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_errors_lose_their_credentials() {
        assert_eq!(
            scrubbed("cannot reach https://user:secret@api.example/mcp?token=abc#x (refused)"),
            "cannot reach https://api.example/mcp (refused)"
        );
        assert_eq!(scrubbed("exit status 1"), "exit status 1");
    }

    #[test]
    fn times_read_back_as_written() {
        let ms = parse_time(Some("2026-11-30T23:40")).unwrap().unwrap();
        assert_eq!(time(ms), "2026-11-30 23:40:00 UTC");
        assert_eq!(field_time(Some(ms)), "2026-11-30T23:40");
        assert_eq!(parse_time(Some("  ")).unwrap(), None);
        assert!(parse_time(Some("yesterday")).is_err());
        assert_eq!(
            parse_time(Some("2026-11-30T23:40:05")).unwrap(),
            Some(ms + 5000)
        );
    }
}
