//! One compiled policy bundle: Rego policies and data from the policy folder, the tool manifests and the agent
//! inventory, with a version that is a content hash of all of them. Compiled once; evaluated from pools of
//! prepared evaluators so that concurrent requests never parse or prepare anything.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use regorus::Value;
use regorus::rvm::program::Program;
use regorus::rvm::vm::RegoVM;
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{CompiledPolicy, Engine};
use serde_json::json;
use sha2::Digest;

mod decision;
mod rego_tests;

use super::cache::DecisionCache;
use super::{DECISION_RULE, Decision, LoadError, PolicyError, PolicyInput, Sources};
use crate::config::Evaluator;
use crate::identity::Inventory;
use crate::manifest::Manifests;
use decision::parse_decision;
pub use rego_tests::TestOutcome;
use rego_tests::{RegoTest, discover_tests};

/// Longest policy file accepted (bytes).
const MAX_POLICY_FILE: usize = 4 << 20;

/// The compiled VM program and what every VM instance needs.
struct Vm {
    program: Arc<Program>,
    compiled: CompiledPolicy,
    data: Value,
    pool: Mutex<Vec<RegoVM>>,
}

/// A compiled bundle.
pub struct Bundle {
    /// `sha256:` and the first 16 hex digits of the hash of every policy, data and manifest file and the inventory.
    pub version: String,
    pub manifests: Manifests,
    /// The agent inventory this bundle was loaded with.
    pub inventory: Arc<Inventory>,
    template: Engine,
    engines: Mutex<Vec<Engine>>,
    vm: Option<Vm>,
    tests: Vec<RegoTest>,
    timer: ExecutionTimerConfig,
    max_instructions: usize,
    /// Why the VM is not used, when it was asked for.
    pub vm_fallback: Option<String>,
    /// Decisions already made with this bundle; None when they cannot be remembered.
    cache: Option<DecisionCache>,
}

struct SourceFile {
    path: PathBuf,
    text: String,
}

/// Every file under `dir` with one of `extensions`, sorted by path; hidden entries are skipped.
fn collect(dir: &Path, extensions: &[&str]) -> Result<Vec<SourceFile>, String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .map_err(|e| format!("cannot read `{}`: {e}", current.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read `{}`: {e}", current.display()))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            if text.len() > MAX_POLICY_FILE {
                return Err(format!(
                    "`{}` is larger than {MAX_POLICY_FILE} bytes",
                    path.display()
                ));
            }
            Ok(SourceFile { path, text })
        })
        .collect()
}

fn is_test(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("_test.rego"))
}

/// Parses one data file (YAML or JSON) into a JSON object.
fn data_document(file: &SourceFile) -> Result<serde_json::Value, String> {
    let value: serde_json::Value = if file.path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&file.text).map_err(|e| e.to_string())?
    } else {
        serde_yaml_ng::from_str(&file.text).map_err(|e| e.to_string())?
    };
    if !value.is_object() {
        return Err("a data file must hold an object".into());
    }
    Ok(value)
}

/// An evaluation error; running out of time or instructions is told apart.
fn eval_error<E: std::fmt::Display>(error: E) -> PolicyError {
    let text = format!("{error:#}");
    let lower = text.to_ascii_lowercase();
    if lower.contains("exceeded time limit") || lower.contains("maximum instruction limit") {
        PolicyError::Limit
    } else {
        PolicyError::Eval(text)
    }
}

impl Bundle {
    /// Reads, compiles and prepares the bundle. Errors name the file (and line, for Rego).
    pub fn load(sources: &Sources) -> Result<Self, LoadError> {
        let rego = collect(&sources.dir, &["rego"]).map_err(LoadError::Source)?;
        let data = collect(&sources.dir, &["yaml", "yml", "json"]).map_err(LoadError::Source)?;
        let manifest_files: Vec<SourceFile> = collect(&sources.manifests, &["yaml", "yml"])
            .map_err(LoadError::Source)?
            .into_iter()
            .filter(|f| f.path.file_stem().is_none_or(|s| s != "agents"))
            .collect();
        if !rego.iter().any(|f| !is_test(&f.path)) {
            return Err(LoadError::Compile(format!(
                "no Rego policy in `{}`: every call would be refused",
                sources.dir.display()
            )));
        }
        // Parsed from the very files that are hashed into the version.
        let mut manifests = Manifests::default();
        for file in &manifest_files {
            manifests
                .add_yaml_in(&file.text, file.path.parent())
                .map_err(|e| {
                    LoadError::Source(format!("tool manifest `{}`: {e}", file.path.display()))
                })?;
        }
        let inventory_text = std::fs::read_to_string(&sources.agents_file).map_err(|e| {
            LoadError::Source(format!(
                "cannot read agent inventory `{}`: {e}",
                sources.agents_file.display()
            ))
        })?;
        let registered = sources
            .registered_agents
            .read()
            .map(|a| a.clone())
            .unwrap_or_default();
        let inventory = Inventory::merged(&inventory_text, &registered).map_err(|e| {
            LoadError::Source(format!(
                "agent inventory `{}`: {e}",
                sources.agents_file.display()
            ))
        })?;

        let mut hasher = sha2::Sha256::new();
        for (base, files) in [
            (&sources.dir, &rego),
            (&sources.dir, &data),
            (&sources.manifests, &manifest_files),
        ] {
            for file in files {
                let relative = file.path.strip_prefix(base).unwrap_or(&file.path);
                hasher.update(relative.to_string_lossy().as_bytes());
                hasher.update([0]);
                hasher.update((file.text.len() as u64).to_le_bytes());
                hasher.update(file.text.as_bytes());
            }
        }
        // Schema files beside the manifests are part of what the bundle decides with.
        for (upstream, database, ddl) in manifests.schemas() {
            hasher.update(format!("schema\0{upstream}\0{database}\0").as_bytes());
            hasher.update((ddl.len() as u64).to_le_bytes());
            hasher.update(ddl.as_bytes());
        }
        hasher.update(b"agents\0");
        hasher.update(inventory_text.as_bytes());
        hasher.update(serde_json::to_vec(&registered).unwrap_or_default());
        let digest = hasher.finalize();
        let hex = hex::encode(&digest[..8]);
        let version = format!("sha256:{hex}");

        let timer = ExecutionTimerConfig {
            limit: sources.config.timeout,
            check_interval: NonZeroU32::MIN.saturating_add(31),
        };
        let mut engine = Engine::new();
        engine.set_execution_timer_config(timer);
        for file in &rego {
            engine
                .add_policy(file.path.display().to_string(), file.text.clone())
                .map_err(|e| LoadError::Compile(format!("policy does not compile: {e}")))?;
        }
        for file in &data {
            let data_error = |e: &dyn std::fmt::Display| {
                LoadError::Source(format!("policy data `{}`: {e}", file.path.display()))
            };
            let document = data_document(file).map_err(|e| data_error(&e))?;
            for reserved in ["manifests", "agents"] {
                if document.pointer(&format!("/toolgate/{reserved}")).is_some() {
                    return Err(LoadError::Source(format!(
                        "policy data `{}` sets `toolgate.{reserved}`, which toolgate fills itself",
                        file.path.display()
                    )));
                }
            }
            engine
                .add_data(Value::from(document))
                .map_err(|e| data_error(&e))?;
        }
        engine
            .add_data(Value::from(json!({"toolgate": {
                "manifests": manifests.to_policy_data(),
                "agents": inventory.to_policy_data(),
            }})))
            .map_err(|e| {
                LoadError::Source(format!(
                    "policy data conflicts with `data.toolgate.manifests` or `data.toolgate.agents`: {e}"
                ))
            })?;

        // Prepare now (this is where unknown references and type errors surface) and check the decision rule.
        engine.set_input(Value::new_object());
        engine.eval_rule(DECISION_RULE.to_string()).map_err(|e| {
            let text = e.to_string();
            LoadError::Compile(if text.contains("not a valid rule path") {
                format!(
                    "the bundle in `{}` defines no `{DECISION_RULE}`",
                    sources.dir.display()
                )
            } else {
                format!("policy does not compile: {text}")
            })
        })?;

        let tests = discover_tests(&mut engine).map_err(LoadError::Compile)?;
        let mut bundle = Self {
            version,
            manifests,
            inventory: Arc::new(inventory),
            engines: Mutex::new(Vec::new()),
            vm: None,
            tests,
            timer,
            max_instructions: sources.config.max_instructions,
            vm_fallback: None,
            template: engine,
            cache: sources
                .config
                .decision_cache
                .then(|| DecisionCache::for_sources(rego.iter().map(|f| f.text.as_str())))
                .flatten(),
        };
        if sources.config.evaluator == Evaluator::Vm {
            match bundle.compile_vm() {
                Ok(vm) => bundle.vm = Some(vm),
                Err(e) => {
                    tracing::warn!(
                        "policy VM unavailable for this bundle, using the interpreter: {e}"
                    );
                    bundle.vm_fallback = Some(e);
                }
            }
        }
        Ok(bundle)
    }

    fn compile_vm(&mut self) -> Result<Vm, String> {
        let rule: regorus::Rc<str> = regorus::Rc::from(DECISION_RULE);
        let mut engine = self.template.clone();
        let compiled = engine
            .compile_with_entrypoint(&rule)
            .map_err(|e| e.to_string())?;
        let program = regorus::languages::rego::compiler::Compiler::compile_from_policy(
            &compiled,
            &[DECISION_RULE],
        )
        .map_err(|e| e.to_string())?;
        Ok(Vm {
            program,
            compiled,
            data: self.template.get_data(),
            pool: Mutex::new(Vec::new()),
        })
    }

    pub fn evaluator_name(&self) -> &'static str {
        if self.vm.is_some() {
            "vm"
        } else {
            "interpreter"
        }
    }

    pub fn test_count(&self) -> usize {
        self.tests.len()
    }

    /// Decides one input with the bundle's evaluator.
    pub fn decide(&self, input: &PolicyInput) -> Decision {
        let key = self.cache.as_ref().and_then(|c| c.key(&input.value));
        if let (Some(cache), Some(key)) = (&self.cache, &key)
            && let Some(decision) = cache.get(key)
        {
            return decision;
        }
        match self.evaluate(input) {
            Ok(decision) => {
                if let (Some(cache), Some(key)) = (&self.cache, key) {
                    cache.put(key, &decision);
                }
                decision
            }
            // Errors are never remembered.
            Err(error) => Decision::failed(error),
        }
    }

    /// Decides one input by evaluating the policy, never from the cache.
    pub fn evaluate(&self, input: &PolicyInput) -> Result<Decision, PolicyError> {
        let value = match &self.vm {
            Some(vm) => self.eval_vm(vm, input)?,
            None => self.eval_interpreter(input)?,
        };
        parse_decision(&value)
    }

    /// Whether this bundle remembers decisions (see [`super::cache`]).
    pub fn caches_decisions(&self) -> bool {
        self.cache.is_some()
    }

    /// Decides with the interpreter, whatever the configured evaluator.
    pub fn decide_interpreted(&self, input: &PolicyInput) -> Decision {
        self.eval_interpreter(input)
            .and_then(|value| parse_decision(&value))
            .unwrap_or_else(Decision::failed)
    }

    fn eval_interpreter(&self, input: &PolicyInput) -> Result<Value, PolicyError> {
        let mut engine = self
            .engines
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| self.template.clone());
        engine.set_input(input.value.clone());
        let result = engine.eval_rule(DECISION_RULE.to_string());
        if let Ok(mut pool) = self.engines.lock() {
            pool.push(engine);
        }
        result.map_err(eval_error)
    }

    fn eval_vm(&self, vm: &Vm, input: &PolicyInput) -> Result<Value, PolicyError> {
        let pooled = vm.pool.lock().ok().and_then(|mut p| p.pop());
        let mut machine = match pooled {
            Some(m) => m,
            None => {
                let mut m = RegoVM::new_with_policy(vm.compiled.clone());
                m.load_program(Arc::clone(&vm.program));
                m.set_data(vm.data.clone())
                    .map_err(|e| PolicyError::Eval(e.to_string()))?;
                m.set_execution_timer_config(Some(self.timer));
                m.set_max_instructions(self.max_instructions);
                m
            }
        };
        machine.set_input(input.value.clone());
        let result = machine.execute();
        if let Ok(mut pool) = vm.pool.lock() {
            pool.push(machine);
        }
        result.map_err(eval_error)
    }

    /// The rules of the decision's package that this input produced: every rule whose value differs from its
    /// value for an empty input (constants and data are left out). Evaluated with the interpreter.
    pub fn explain(&self, input: &PolicyInput) -> serde_json::Value {
        let package = |input: Value| -> Result<serde_json::Value, String> {
            let mut engine = self.template.clone();
            engine.set_input(input);
            let results = engine
                .eval_query("data.toolgate.authz".to_string(), false)
                .map_err(|e| format!("{e:#}"))?;
            let value = results
                .result
                .first()
                .and_then(|r| r.expressions.first())
                .map(|e| e.value.clone())
                .unwrap_or(Value::Undefined);
            Ok(serde_json::to_value(&value).unwrap_or(serde_json::Value::Null))
        };
        let (with_input, baseline) =
            match (package(input.value.clone()), package(Value::new_object())) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return json!({"error": e}),
            };
        let mut produced = serde_json::Map::new();
        if let serde_json::Value::Object(rules) = with_input {
            for (name, value) in rules {
                if baseline.get(&name) != Some(&value) || name == "decision" {
                    produced.insert(name, value);
                }
            }
        }
        serde_json::Value::Object(produced)
    }
}
