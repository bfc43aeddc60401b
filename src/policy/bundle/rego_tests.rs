//! The bundle's own Rego unit tests (`test_*` rules in `*_test.rego`): found at load, run before a bundle is
//! put in force.

use regorus::{Engine, Value};

use super::Bundle;
use crate::policy::LoadError;

/// The result of one Rego unit test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestOutcome {
    /// `data.<package>.<rule>`
    pub name: String,
    pub file: String,
    pub passed: bool,
    pub error: Option<String>,
}

pub(super) struct RegoTest {
    rule: String,
    file: String,
}

/// The `test_*` rules of every `*_test.rego` module.
pub(super) fn discover_tests(engine: &mut Engine) -> Result<Vec<RegoTest>, String> {
    use regorus::unstable::{Rule, RuleHead};
    let packages = engine
        .get_policy_package_components()
        .map_err(|e| e.to_string())?;
    let modules = engine.get_modules().clone();
    let mut tests: Vec<RegoTest> = Vec::new();
    for (module, package) in modules.iter().zip(packages) {
        if !package.source_file.ends_with("_test.rego") {
            continue;
        }
        for rule in &module.policy {
            let Rule::Spec { head, .. } = rule.as_ref() else {
                continue;
            };
            let refr = match head {
                RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => refr,
                RuleHead::Func { .. } => continue,
            };
            let name = refr.span().text();
            let valid = name.starts_with("test_")
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                continue;
            }
            let full = format!("data.{}.{name}", package.components.join("."));
            if !tests.iter().any(|t| t.rule == full) {
                tests.push(RegoTest {
                    rule: full,
                    file: package.source_file.clone(),
                });
            }
        }
    }
    Ok(tests)
}

/// Longest one Rego test of the bundle may run.
const TEST_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Bundle {
    /// Runs every `test_*` rule of the `*_test.rego` files; a test passes when its rule is `true`.
    pub fn run_tests(&self) -> Vec<TestOutcome> {
        let mut engine = self.template.clone();
        // A test is a check of the bundle, not a decision on a request's path: its time limit only stops one that
        // never ends, and a busy host (replicas starting together, a loaded CI machine) must not fail it.
        engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit: TEST_TIME_LIMIT.max(self.timer.limit),
            ..self.timer
        });
        engine.set_input(Value::new_object());
        self.tests
            .iter()
            .map(|test| {
                let (passed, error) = match engine.eval_rule(test.rule.clone()) {
                    Ok(Value::Bool(true)) => (true, None),
                    Ok(Value::Undefined) => (false, Some("undefined".to_string())),
                    Ok(other) => (false, Some(format!("evaluated to {other}"))),
                    Err(e) => (false, Some(format!("{e:#}"))),
                };
                TestOutcome {
                    name: test.rule.clone(),
                    file: test.file.clone(),
                    passed,
                    error,
                }
            })
            .collect()
    }

    /// Runs the tests and turns failures into one error naming them.
    pub fn check_tests(&self) -> Result<(), LoadError> {
        let failed: Vec<String> = self
            .run_tests()
            .into_iter()
            .filter(|t| !t.passed)
            .map(|t| format!("{} ({}): {}", t.name, t.file, t.error.unwrap_or_default()))
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(LoadError::Tests(failed))
        }
    }
}
