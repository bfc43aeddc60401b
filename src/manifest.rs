//! Tool manifests (`tool-manifests/<upstream>.yaml`): per tool its data classification, risk, owning team and
//! how its arguments are to be understood. A tool without a manifest gets the safe default: `restricted`,
//! `destructive`, no argument facts.

use std::collections::BTreeMap;
use std::path::Path;

use std::sync::Arc;

mod field_path;
mod surface;

use crate::sql::{SchemaDeclaration, SqlDatabase};
pub use field_path::FieldPath;
use serde::{Deserialize, Serialize};
pub use surface::glob_matches;

use crate::classification::Classification;

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
    /// A SQL statement, analysed by SQLite itself against the named database's declared schema (none: a
    /// schema-less prepare, so that any table it names is unknown).
    Sql {
        #[serde(default)]
        database: Option<String>,
        /// The compiled schema, attached when the manifest loads.
        #[serde(skip)]
        compiled: CompiledSchema,
    },
    /// A path, normalised against `root` (the tool's own root when empty).
    Path {
        #[serde(default)]
        root: String,
    },
}

/// A declared database schema compiled for analysis; compared by what was declared.
#[derive(Debug, Clone, Default)]
pub struct CompiledSchema(Option<Arc<SqlDatabase>>);

impl CompiledSchema {
    /// The schema statements are prepared against: the declared one, else the schema-less one.
    pub fn database(&self) -> Arc<SqlDatabase> {
        match &self.0 {
            Some(db) => Arc::clone(db),
            None => crate::sql::schemaless(),
        }
    }
}

impl PartialEq for CompiledSchema {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => a == b,
            (None, None) => true,
            _ => false,
        }
    }
}

impl Eq for CompiledSchema {}

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
    /// The answer is a table (in `structuredContent`, and as JSON in text content): where its column names and
    /// rows are. Whole columns are masked by name here when policy grants a column masked.
    #[serde(default)]
    pub table: Option<TableShape>,
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

/// Where a tabular answer keeps its column names and its rows (members of the top-level object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableShape {
    pub columns: String,
    pub rows: String,
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

/// What describes anything no manifest describes.
fn safe_default() -> &'static ToolManifest {
    static SAFE_DEFAULT: std::sync::LazyLock<ToolManifest> =
        std::sync::LazyLock::new(ToolManifest::safe_default);
    &SAFE_DEFAULT
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    upstream: String,
    owner: String,
    /// The upstream's databases, by name, for arguments of kind `sql`.
    #[serde(default)]
    databases: BTreeMap<String, SchemaDeclaration>,
    #[serde(default)]
    tools: BTreeMap<String, ToolManifest>,
    /// The upstream's resources and resource templates by URI pattern (`*` stands for any run of characters),
    /// matched against the upstream's own URIs; the longest matching pattern describes a resource.
    #[serde(default)]
    resources: BTreeMap<String, ToolManifest>,
    /// The upstream's prompts, by the upstream's own name.
    #[serde(default)]
    prompts: BTreeMap<String, ToolManifest>,
}

/// Every manifest, by upstream and tool name.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// By upstream, then tool.
    tools: BTreeMap<String, BTreeMap<String, ToolManifest>>,
    /// By upstream: URI patterns, longest first, and what each describes.
    resources: BTreeMap<String, Vec<(String, ToolManifest)>>,
    /// By upstream, then prompt.
    prompts: BTreeMap<String, BTreeMap<String, ToolManifest>>,
    /// Every declared schema's DDL, by upstream and database: part of what the bundle version hashes.
    schemas: BTreeMap<(String, String), String>,
}

/// Why a tool manifest does not load.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error("tool manifest `{path}`: {source}")]
    In {
        path: String,
        #[source]
        source: Box<ManifestError>,
    },
    #[error("{0}")]
    Yaml(String),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    /// A declared database: its schema cannot be had or does not compile.
    #[error("{0}")]
    Database(String),
    /// The manifest breaks a rule (named in the text).
    #[error("{0}")]
    Invalid(String),
}

impl Manifests {
    /// Loads every `*.yaml` in `dir` except the agent inventory (`agents.yaml`).
    pub fn load_dir(dir: &Path) -> Result<Self, ManifestError> {
        let mut manifests = Self::default();
        let unreadable = |path: &Path, e: std::io::Error| ManifestError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let entries = std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))?;
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if !is_yaml || path.file_stem().is_some_and(|s| s == "agents") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| unreadable(&path, e))?;
            manifests
                .add_yaml_in(&text, path.parent())
                .map_err(|e| ManifestError::In {
                    path: path.display().to_string(),
                    source: Box::new(e),
                })?;
        }
        Ok(manifests)
    }

    /// Adds one manifest file's content (schema files, if any, are looked up in the current directory).
    pub fn add_yaml(&mut self, text: &str) -> Result<(), ManifestError> {
        self.add_yaml_in(text, None)
    }

    /// Adds one manifest file's content; `dir` is the manifest's directory, where schema files live.
    pub fn add_yaml_in(&mut self, text: &str, dir: Option<&Path>) -> Result<(), ManifestError> {
        let file: File =
            serde_yaml_ng::from_str(text).map_err(|e| ManifestError::Yaml(e.to_string()))?;
        crate::names::validate_upstream_name(&file.upstream)?;
        let mut databases = BTreeMap::new();
        for (name, declaration) in &file.databases {
            let ddl = schema_text(name, declaration, dir).map_err(ManifestError::Database)?;
            let compiled = SqlDatabase::compile(name, declaration, ddl.clone())
                .map_err(|e| ManifestError::Database(e.to_string()))?;
            self.schemas
                .insert((file.upstream.clone(), name.clone()), ddl);
            databases.insert(name.clone(), Arc::new(compiled));
        }
        self.add_surface(&file)?;
        for (tool, mut manifest) in file.tools {
            crate::names::validate_tool_name(&tool)?;
            for (argument, kind) in &mut manifest.arguments {
                if let ArgumentKind::Sql {
                    database: Some(name),
                    compiled,
                } = kind
                {
                    let Some(db) = databases.get(name) else {
                        return Err(ManifestError::Invalid(format!(
                            "tool `{tool}`: argument `{argument}` names database `{name}`, which the manifest does not declare"
                        )));
                    };
                    *compiled = CompiledSchema(Some(Arc::clone(db)));
                }
            }
            for path in manifest.output.fields.keys() {
                FieldPath::parse(path).map_err(|e| {
                    ManifestError::Invalid(format!("tool `{tool}`: output field `{path}`: {e}"))
                })?;
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
                return Err(ManifestError::Invalid(format!(
                    "tool `{}` of upstream `{}` is described twice",
                    tool, file.upstream
                )));
            }
        }
        Ok(())
    }

    /// The manifest of a tool, or the safe default.
    pub fn get(&self, upstream: &str, tool: &str) -> &ToolManifest {
        self.tools
            .get(upstream)
            .and_then(|tools| tools.get(tool))
            .unwrap_or_else(|| safe_default())
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

    /// Every declared schema's DDL as `(upstream, database, ddl)`.
    pub fn schemas(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.schemas
            .iter()
            .map(|((u, d), ddl)| (u.as_str(), d.as_str(), ddl.as_str()))
    }
}

/// A declaration's DDL: inline, or from a file beside the manifest (a relative path without `..`).
fn schema_text(
    name: &str,
    declaration: &SchemaDeclaration,
    dir: Option<&Path>,
) -> Result<String, String> {
    match (&declaration.schema, &declaration.schema_file) {
        (Some(ddl), None) => Ok(ddl.clone()),
        (None, Some(file)) => {
            let relative = Path::new(file);
            if relative.is_absolute()
                || relative
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(format!(
                    "database `{name}`: schema_file `{file}` must be a plain relative path beside the manifest"
                ));
            }
            let path = dir.unwrap_or(Path::new(".")).join(relative);
            std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "database `{name}`: cannot read schema file `{}`: {e}",
                    path.display()
                )
            })
        }
        (Some(_), Some(_)) => Err(format!(
            "database `{name}`: give `schema` or `schema_file`, not both"
        )),
        (None, None) => Err(format!("database `{name}`: no `schema` or `schema_file`")),
    }
}

#[cfg(test)]
mod tests;
