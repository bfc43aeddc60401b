//! Path facts: a path argument normalised lexically against the tool's root — percent-encoding decoded, `.` and
//! `..` resolved, backslashes treated as separators, NUL refused — and whether it escapes the root.

use serde::Serialize;

/// What a path argument points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathFacts {
    /// The path relative to the root after normalisation (`""` is the root itself); empty when invalid.
    pub normalized: String,
    /// Whether the path leaves the root (through `..`, or an absolute path elsewhere).
    pub escapes_root: bool,
    /// Whether the argument was an absolute path.
    pub absolute: bool,
    /// Whether the argument cannot be taken as one path: a NUL byte, invalid encoding, or a spelling whose meaning
    /// depends on who reads it (percent-encoding or backslashes, which the tool may read literally while the
    /// normalised path says otherwise). Policies refuse it.
    pub invalid: bool,
}

/// Decodes percent-encoding until it is stable (so `%252e%252e` cannot hide `..`), at most a few rounds.
fn decode(raw: &str) -> Option<String> {
    let mut current = raw.to_string();
    for _ in 0..4 {
        let decoded = percent_encoding::percent_decode_str(&current)
            .decode_utf8()
            .ok()?
            .into_owned();
        if decoded == current {
            return Some(decoded);
        }
        current = decoded;
    }
    None
}

/// Normalises `raw` against `root` (an absolute path such as `/srv/files`; `/` separators).
pub fn analyse(raw: &str, root: &str) -> PathFacts {
    let invalid = PathFacts {
        normalized: String::new(),
        escapes_root: true,
        absolute: false,
        invalid: true,
    };
    let Some(decoded) = decode(raw) else {
        return invalid;
    };
    if decoded.contains('\0') {
        return invalid;
    }
    // toolgate forwards the argument as sent: if decoding or separator handling changes it, the tool may read it
    // another way than the facts say, so it is invalid (the facts still tell where it would lead).
    let ambiguous = decoded != raw || raw.contains('\\');
    let unified = decoded.replace('\\', "/");
    let absolute = unified.starts_with('/') || unified.as_bytes().get(1) == Some(&b':');
    let root_parts: Vec<&str> = root
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    // An absolute path must lie under the root; its remainder is then taken relative to the root.
    let relative: Vec<&str> = if absolute {
        let parts: Vec<&str> = unified.split('/').filter(|p| !p.is_empty()).collect();
        // Against a relative root (the tool's own, wherever it is), no absolute path can be shown to be inside.
        let root_known = root.starts_with('/');
        if !root_known
            || parts.len() < root_parts.len()
            || parts[..root_parts.len()] != root_parts[..]
        {
            return PathFacts {
                normalized: String::new(),
                escapes_root: true,
                absolute: true,
                invalid: ambiguous,
            };
        }
        parts[root_parts.len()..].to_vec()
    } else {
        unified.split('/').collect()
    };
    let mut stack: Vec<&str> = Vec::new();
    let mut escapes = false;
    for part in relative {
        match part {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    escapes = true;
                }
            }
            other => stack.push(other),
        }
    }
    PathFacts {
        normalized: if escapes {
            String::new()
        } else {
            stack.join("/")
        },
        escapes_root: escapes,
        absolute,
        invalid: ambiguous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "/srv/files";

    #[test]
    fn plain_paths_stay_inside() {
        let facts = analyse("reports/q3.md", ROOT);
        assert_eq!(facts.normalized, "reports/q3.md");
        assert!(!facts.escapes_root && !facts.invalid && !facts.absolute);
        assert_eq!(
            analyse("./reports/../README.txt", ROOT).normalized,
            "README.txt"
        );
        assert_eq!(analyse("", ROOT).normalized, "");
    }

    #[test]
    fn dot_dot_escapes_are_found_however_encoded() {
        for raw in [
            "../etc/passwd",
            "reports/../../etc",
            "%2e%2e/etc/passwd",
            "%252e%252e%252fetc",
            "..\\..\\windows",
            "a/%2E%2E/%2E%2E/b",
        ] {
            assert!(analyse(raw, ROOT).escapes_root, "{raw}");
        }
    }

    #[test]
    fn absolute_paths_must_be_under_the_root() {
        let inside = analyse("/srv/files/reports/q3.md", ROOT);
        assert!(inside.absolute && !inside.escapes_root);
        assert_eq!(inside.normalized, "reports/q3.md");
        assert!(analyse("/etc/passwd", ROOT).escapes_root);
        assert!(analyse("/srv/filesystem/x", ROOT).escapes_root);
        assert!(analyse("C:\\Windows\\system32", ROOT).escapes_root);
        // The tool's own root (relative, location unknown): every absolute path escapes.
        assert!(analyse("/etc/passwd", "").escapes_root);
        assert!(analyse("/reports/q3.md", "").escapes_root);
        assert!(!analyse("reports/q3.md", "").escapes_root);
    }

    #[test]
    fn spellings_the_tool_may_read_otherwise_are_invalid() {
        // Normalised under `reports/`, but a tool that takes the argument literally opens something else.
        let encoded = analyse("%72eports/x.md", ROOT);
        assert_eq!(encoded.normalized, "reports/x.md");
        assert!(encoded.invalid);
        assert!(analyse("a\\..\\reports/x", ROOT).invalid);
        assert!(!analyse("reports/q3 final.md", ROOT).invalid);
    }

    #[test]
    fn nul_and_bad_encoding_are_invalid() {
        assert!(analyse("notes.txt\0.png", ROOT).invalid);
        assert!(analyse("notes%00.txt", ROOT).invalid);
        assert!(analyse("%ff%fe", ROOT).invalid);
    }
}

/// Fuzzing: paths generated from segments that matter (names, `.`, `..`, empty, encoded dots and slashes,
/// backslashes, NUL) never panic, and for every path toolgate calls valid, the facts agree with the file system
/// itself: a real tree is built, and where the path really leads is asked of the kernel (`canonicalize`).
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const NAMES: &[&str] = &["a", "b"];
    /// The root lies three levels below the test's folder, so that three `..` stay inside it.
    const MAX_UP: usize = 3;

    /// Segments whose meaning does not depend on the reader.
    fn plain() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", ".", "..", ""])
    }

    /// Segments that are spelled so that a tool may read them otherwise than a normaliser.
    fn ambiguous() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "%2e%2e",
            "%2E",
            "%2f",
            "..\\",
            "a\\..",
            "%252e%252e",
            "%00",
            "a%2fb",
            "%2e",
        ])
    }

    /// The tree every case resolves paths in, built once: the root three levels below a temporary folder, and the
    /// same directories (every name of `NAMES`, six deep) at every level a path may climb to.
    static TREE: std::sync::LazyLock<(tempfile::TempDir, std::path::PathBuf)> =
        std::sync::LazyLock::new(|| {
            let base = tempfile::tempdir().unwrap();
            let root = base.path().join("x/y/root");
            for level in [
                base.path().to_path_buf(),
                base.path().join("x"),
                base.path().join("x/y"),
                root.clone(),
            ] {
                std::fs::create_dir_all(&level).unwrap();
                tree(&level, 6);
            }
            (base, root)
        });

    /// Every directory named from `NAMES`, up to `depth` deep, under `at`.
    fn tree(at: &std::path::Path, depth: usize) {
        if depth == 0 {
            return;
        }
        for name in NAMES {
            let dir = at.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            tree(&dir, depth - 1);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)))]

        #[test]
        fn path_facts_never_panic(raw in ".{0,64}", root in "(/[a-z]{1,4}){0,3}") {
            let facts = analyse(&raw, &root);
            prop_assert!(facts.normalized.len() <= raw.len() * 4 + 8);
        }

        #[test]
        fn ambiguous_spellings_are_never_valid(
            before in prop::collection::vec(plain(), 0..4),
            odd in ambiguous(),
            after in prop::collection::vec(plain(), 0..4),
        ) {
            let raw = [before.join("/"), odd.to_string(), after.join("/")].join("/");
            prop_assert!(analyse(&raw, "/srv/files").invalid, "{:?}", raw);
        }

        #[test]
        fn valid_path_facts_agree_with_the_file_system(parts in prop::collection::vec(plain(), 0..7)) {
            let raw = parts.join("/");
            let facts = analyse(&raw, "/srv/files");
            prop_assert!(!facts.invalid, "{:?}", raw);
            let ups = parts.iter().filter(|p| **p == "..").count();
            prop_assume!(ups <= MAX_UP);
            let root = TREE.1.clone();
            let real_root = std::fs::canonicalize(&root).unwrap();
            let Ok(real) = std::fs::canonicalize(root.join(&raw)) else {
                return Ok(());
            };
            let inside = real.strip_prefix(&real_root).ok();
            prop_assert_eq!(facts.escapes_root, inside.is_none(), "{:?} -> {:?}", raw, real);
            if let Some(inside) = inside {
                prop_assert_eq!(facts.normalized, inside.to_string_lossy().into_owned(), "{:?}", raw);
            }
        }
    }
}
