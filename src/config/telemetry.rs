//! Log lines and traces.

use std::time::Duration;

use serde::Deserialize;

/// How log lines are written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    pub format: LogFormat,
}

/// `pretty`: one human-readable line per event; `json`: one JSON object per line, fields flattened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// Traces: spans of each request and pipeline step, exported over OTLP when `otlp` is set (never written to the
/// log lines).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// Where to export spans; none by default.
    pub otlp: Option<OtlpConfig>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Share of the traces that start here (no sampled parent from the client) that are exported, 0.0 to 1.0.
    /// A client's own sampling decision (the `sampled` flag of its `traceparent`) is always followed.
    pub sample_ratio: f64,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            otlp: None,
            service_name: "toolgate".into(),
            sample_ratio: 1.0,
        }
    }
}

/// An OTLP/HTTP trace exporter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's base URL (`http://collector:4318`); `/v1/traces` is appended unless the path already
    /// ends with it.
    pub endpoint: String,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// Headers sent with every export (a collector's API key, say); `${VAR}` is read from the environment.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Longest one export may take.
    #[serde(default = "default_otlp_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Spans are sent in batches, at least this often.
    #[serde(default = "default_otlp_batch_delay", with = "humantime_serde")]
    pub batch_delay: Duration,
}

/// OTLP over HTTP: binary protobuf (the default every collector takes) or JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
}

impl TracingConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(format!(
                "tracing.sample_ratio `{}` must lie between 0.0 and 1.0",
                self.sample_ratio
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err("tracing.service_name is empty".into());
        }
        let Some(otlp) = &self.otlp else {
            return Ok(());
        };
        let url = url::Url::parse(&otlp.endpoint)
            .map_err(|e| format!("tracing.otlp.endpoint `{}`: {e}", otlp.endpoint))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "tracing.otlp.endpoint `{}` must be an http:// or https:// URL (OTLP over HTTP)",
                otlp.endpoint
            ));
        }
        for (key, value) in &otlp.headers {
            http::HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| format!("tracing.otlp header name `{key}` is not valid"))?;
            http::HeaderValue::from_str(value).map_err(|_| {
                format!("tracing.otlp header `{key}` has a value that is not valid")
            })?;
        }
        if otlp.timeout.is_zero() || otlp.batch_delay.is_zero() {
            return Err(
                "tracing.otlp.timeout and tracing.otlp.batch_delay must be positive".into(),
            );
        }
        Ok(())
    }
}

impl OtlpConfig {
    /// The URL spans are posted to.
    pub fn traces_url(&self) -> String {
        let base = self.endpoint.trim_end_matches('/');
        if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        }
    }
}

fn default_otlp_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_otlp_batch_delay() -> Duration {
    Duration::from_secs(5)
}
