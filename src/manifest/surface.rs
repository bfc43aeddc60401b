//! What the manifests say of an upstream's resources (by URI pattern) and prompts (by name).

use super::{FieldPath, File, ManifestError, Manifests, ToolManifest, safe_default};

impl Manifests {
    /// Adds a file's resources and prompts: no argument kinds (they take no SQL or paths), field paths checked.
    pub(super) fn add_surface(&mut self, file: &File) -> Result<(), ManifestError> {
        let entries = file
            .resources
            .iter()
            .map(|(p, m)| ("resource pattern", p, m))
            .chain(file.prompts.iter().map(|(n, m)| ("prompt", n, m)));
        for (what, name, manifest) in entries {
            if !manifest.arguments.is_empty() {
                return Err(ManifestError::Invalid(format!(
                    "{what} `{name}`: `arguments` describe tool arguments only"
                )));
            }
            if manifest.output.table.is_some() {
                return Err(ManifestError::Invalid(format!(
                    "{what} `{name}`: `output.table` describes tool results only"
                )));
            }
            for path in manifest.output.fields.keys() {
                FieldPath::parse(path).map_err(|e| {
                    ManifestError::Invalid(format!("{what} `{name}`: output field `{path}`: {e}"))
                })?;
            }
        }
        let with_owner = |m: &ToolManifest| {
            let mut m = m.clone();
            if m.owner.is_none() {
                m.owner = Some(file.owner.clone());
            }
            m
        };
        for (name, manifest) in &file.prompts {
            crate::names::validate_tool_name(name)?;
            let prompts = self.prompts.entry(file.upstream.clone()).or_default();
            if prompts.insert(name.clone(), with_owner(manifest)).is_some() {
                return Err(ManifestError::Invalid(format!(
                    "prompt `{name}` of upstream `{}` is described twice",
                    file.upstream
                )));
            }
        }
        let patterns = self.resources.entry(file.upstream.clone()).or_default();
        for (pattern, manifest) in &file.resources {
            if pattern.is_empty() || patterns.iter().any(|(p, _)| p == pattern) {
                return Err(ManifestError::Invalid(format!(
                    "resource pattern `{pattern}` of upstream `{}` is empty or described twice",
                    file.upstream
                )));
            }
            patterns.push((pattern.clone(), with_owner(manifest)));
        }
        // The most specific (longest) pattern first; equal lengths in name order.
        patterns.sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        Ok(())
    }

    /// The manifest of a resource or resource template (by the upstream's own URI), or the safe default.
    pub fn resource(&self, upstream: &str, uri: &str) -> &ToolManifest {
        self.resources
            .get(upstream)
            .and_then(|patterns| {
                patterns
                    .iter()
                    .find(|(pattern, _)| glob_matches(pattern, uri))
                    .map(|(_, m)| m)
            })
            .unwrap_or_else(|| safe_default())
    }

    /// The manifest of a prompt (by the upstream's own name), or the safe default.
    pub fn prompt(&self, upstream: &str, name: &str) -> &ToolManifest {
        self.prompts
            .get(upstream)
            .and_then(|prompts| prompts.get(name))
            .unwrap_or_else(|| safe_default())
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters (none included).
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return pattern == text;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole text.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}
