//! Tool manifests (`tool-manifests/<upstream>.yaml`): per tool its data classification, risk, owning team and
//! how its arguments are to be understood. A tool without a manifest gets the safe default: `restricted`,
//! `destructive`, no argument facts.

use std::collections::BTreeMap;
use std::path::Path;

use crate::redact::FieldPath;
use serde::{Deserialize, Serialize};

use crate::identity::Classification;

/// What calling a tool can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Read,
    Write,
    Destructive,
}

/// How one argument is to be understood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ArgumentKind {
    /// A SQL statement (analysed with a real parser).
    Sql,
    /// A path, normalised against `root` (the tool's own root when empty).
    Path {
        #[serde(default)]
        root: String,
    },
}

/// One tool's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolManifest {
    pub classification: Classification,
    pub risk: Risk,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub arguments: BTreeMap<String, ArgumentKind>,
    /// How the tool's output is classified.
    #[serde(default)]
    pub output: OutputClasses,
}

/// Classification of a tool's output: as a whole, and per field (paths such as `$.employees[*].national_id` or
/// `$..national_id` into `structuredContent` and into JSON carried in text content).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputClasses {
    #[serde(default)]
    pub classification: Option<Classification>,
    #[serde(default)]
    pub fields: BTreeMap<String, Classification>,
    /// `fields` parsed, once per manifest.
    #[serde(skip)]
    parsed: ParsedFields,
}

impl OutputClasses {
    /// The classified field paths, parsed on first use (paths that do not parse were refused at load).
    pub fn parsed_fields(&self) -> std::sync::Arc<Vec<(FieldPath, Classification)>> {
        std::sync::Arc::clone(self.parsed.0.get_or_init(|| {
            std::sync::Arc::new(
                self.fields
                    .iter()
                    .filter_map(|(p, c)| FieldPath::parse(p).ok().map(|p| (p, *c)))
                    .collect(),
            )
        }))
    }
}

/// A cache derived from `fields`: never part of a manifest's identity.
#[derive(Debug, Clone, Default)]
struct ParsedFields(std::sync::OnceLock<std::sync::Arc<Vec<(FieldPath, Classification)>>>);

impl PartialEq for ParsedFields {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for ParsedFields {}

impl ToolManifest {
    /// The manifest of a tool nobody described: treated as the most sensitive and most dangerous.
    pub fn safe_default() -> Self {
        Self {
            classification: Classification::Restricted,
            risk: Risk::Destructive,
            owner: None,
            arguments: BTreeMap::new(),
            output: OutputClasses::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    upstream: String,
    owner: String,
    tools: BTreeMap<String, ToolManifest>,
}

/// Every manifest, by upstream and tool name.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// By upstream, then tool.
    tools: BTreeMap<String, BTreeMap<String, ToolManifest>>,
}

impl Manifests {
    /// Loads every `*.yaml` in `dir` except the agent inventory (`agents.yaml`).
    pub fn load_dir(dir: &Path) -> Result<Self, String> {
        let mut manifests = Self::default();
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if !is_yaml || path.file_stem().is_some_and(|s| s == "agents") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            manifests
                .add_yaml(&text)
                .map_err(|e| format!("tool manifest `{}`: {e}", path.display()))?;
        }
        Ok(manifests)
    }

    /// Adds one manifest file's content.
    pub fn add_yaml(&mut self, text: &str) -> Result<(), String> {
        let file: File = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        super::names::validate_upstream_name(&file.upstream)?;
        for (tool, mut manifest) in file.tools {
            super::names::validate_tool_name(&tool)?;
            for path in manifest.output.fields.keys() {
                crate::redact::FieldPath::parse(path)
                    .map_err(|e| format!("tool `{tool}`: output field `{path}`: {e}"))?;
            }
            if manifest.owner.is_none() {
                manifest.owner = Some(file.owner.clone());
            }
            if self
                .tools
                .entry(file.upstream.clone())
                .or_default()
                .insert(tool.clone(), manifest)
                .is_some()
            {
                return Err(format!(
                    "tool `{}` of upstream `{}` is described twice",
                    tool, file.upstream
                ));
            }
        }
        Ok(())
    }

    /// The manifest of a tool, or the safe default.
    pub fn get(&self, upstream: &str, tool: &str) -> &ToolManifest {
        static SAFE_DEFAULT: std::sync::LazyLock<ToolManifest> =
            std::sync::LazyLock::new(ToolManifest::safe_default);
        self.tools
            .get(upstream)
            .and_then(|tools| tools.get(tool))
            .unwrap_or(&SAFE_DEFAULT)
    }

    /// Every manifest as policy data: `{upstream: {tool: manifest}}`.
    pub fn to_policy_data(&self) -> serde_json::Value {
        let mut data = serde_json::Map::new();
        for (upstream, tool, manifest) in self.entries() {
            let entry = data
                .entry(upstream.clone())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let serde_json::Value::Object(tools) = entry {
                tools.insert(
                    tool.clone(),
                    serde_json::to_value(manifest).unwrap_or(serde_json::Value::Null),
                );
            }
        }
        serde_json::Value::Object(data)
    }

    fn entries(&self) -> impl Iterator<Item = (&String, &String, &ToolManifest)> {
        self.tools
            .iter()
            .flat_map(|(u, tools)| tools.iter().map(move |(t, m)| (u, t, m)))
    }

    pub fn len(&self) -> usize {
        self.tools.values().map(BTreeMap::len).sum()
    }

    /// Every described tool as `(upstream, tool)`.
    pub fn tools(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries().map(|(u, t, _)| (u.as_str(), t.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quickstart_manifests_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests");
        let manifests = Manifests::load_dir(&dir).unwrap();
        let query = manifests.get("sql", "query");
        assert_eq!(query.risk, Risk::Read);
        assert_eq!(query.arguments.get("sql"), Some(&ArgumentKind::Sql));
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
        assert!(m.add_yaml("upstream: sql\nowner: x\ntools:\n  q:\n    classification: secret\n    risk: read\n").is_err());
        assert!(m.add_yaml("upstream: sql\nowner: x\ntools:\n  q:\n    classification: public\n    risk: read\n    arguments:\n      s: {kind: regex}\n").is_err());
        assert!(m.add_yaml("upstream: Bad\nowner: x\ntools: {}\n").is_err());
        m.add_yaml(
            "upstream: sql\nowner: x\ntools:\n  q:\n    classification: public\n    risk: read\n",
        )
        .unwrap();
        assert!(m.add_yaml("upstream: sql\nowner: x\ntools:\n  q:\n    classification: public\n    risk: read\n").is_err());
    }
}
