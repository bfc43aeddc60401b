//! Example upstream: an HR directory. Its answers carry personal data on purpose (emails, phone numbers,
//! national ids, salaries), in structured content and in text, for the gateway to govern. Beside its tools it
//! has resources (policy documents of several classifications, employee profiles by template), prompts and
//! completion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{
    CompleteRequestParams, CompleteResult, ErrorData, GetPromptRequestParams, GetPromptResponse,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
struct Employee {
    id: String,
    name: String,
    email: String,
    phone: String,
    national_id: String,
    salary: u32,
    department: String,
    title: String,
}

fn directory() -> Vec<Employee> {
    let rows = [
        (
            "E1001",
            "Ada Lovelace",
            "ada.lovelace@example.com",
            "+1-555-0101",
            "123-45-6789",
            185000,
            "engineering",
            "Principal Engineer",
        ),
        (
            "E1002",
            "Grace Hopper",
            "grace.hopper@example.com",
            "+1-555-0102",
            "234-56-7890",
            178000,
            "engineering",
            "Staff Engineer",
        ),
        (
            "E1003",
            "Katherine Johnson",
            "katherine.johnson@example.com",
            "+1-555-0103",
            "345-67-8901",
            142000,
            "finance",
            "Analyst",
        ),
        (
            "E1004",
            "Alan Turing",
            "alan.turing@example.com",
            "+1-555-0104",
            "456-78-9012",
            190000,
            "research",
            "Research Lead",
        ),
        (
            "E1005",
            "Mary Jackson",
            "mary.jackson@example.com",
            "+1-555-0105",
            "567-89-0123",
            121000,
            "hr",
            "HR Partner",
        ),
        (
            "E1006",
            "Dorothy Vaughan",
            "dorothy.vaughan@example.com",
            "+1-555-0106",
            "678-90-1234",
            133000,
            "hr",
            "HR Manager",
        ),
    ];
    rows.iter()
        .map(
            |(id, name, email, phone, nid, salary, dept, title)| Employee {
                id: id.to_string(),
                name: name.to_string(),
                email: email.to_string(),
                phone: phone.to_string(),
                national_id: nid.to_string(),
                salary: *salary,
                department: dept.to_string(),
                title: title.to_string(),
            },
        )
        .collect()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct LookupArgs {
    /// Employee id (`E1001`) or email address.
    id_or_email: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct SearchArgs {
    /// Text to find in names and titles (case-insensitive); empty matches everyone.
    #[serde(default)]
    query: String,
    /// Only this department.
    #[serde(default)]
    department: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct SearchResult {
    employees: Vec<Employee>,
}

#[derive(Clone)]
struct HrDirectory {
    employees: std::sync::Arc<Vec<Employee>>,
}

#[tool_router]
impl HrDirectory {
    #[tool(description = "Look up one employee by id or email; returns the full HR record.")]
    async fn lookup_employee(
        &self,
        Parameters(args): Parameters<LookupArgs>,
    ) -> Result<Json<Employee>, String> {
        let key = args.id_or_email.to_lowercase();
        self.employees
            .iter()
            .find(|e| e.id.to_lowercase() == key || e.email == key)
            .cloned()
            .map(Json)
            .ok_or_else(|| format!("no employee `{}`", args.id_or_email))
    }

    #[tool(description = "Search employees by name or title, optionally within a department.")]
    async fn search_employees(
        &self,
        Parameters(args): Parameters<SearchArgs>,
    ) -> Json<SearchResult> {
        let query = args.query.to_lowercase();
        let employees = self
            .employees
            .iter()
            .filter(|e| {
                e.name.to_lowercase().contains(&query) || e.title.to_lowercase().contains(&query)
            })
            .filter(|e| args.department.as_ref().is_none_or(|d| &e.department == d))
            .cloned()
            .collect();
        Json(SearchResult { employees })
    }

    #[tool(
        description = "Summarise an employee in one line of text (name, email, phone, national id, salary)."
    )]
    async fn employee_card(
        &self,
        Parameters(args): Parameters<LookupArgs>,
    ) -> Result<String, String> {
        let key = args.id_or_email.to_lowercase();
        let e = self
            .employees
            .iter()
            .find(|e| e.id.to_lowercase() == key || e.email == key)
            .ok_or_else(|| format!("no employee `{}`", args.id_or_email))?;
        Ok(format!(
            "{} ({}, {}): email {}, phone {}, national id {}, salary ${}",
            e.name, e.title, e.department, e.email, e.phone, e.national_id, e.salary
        ))
    }
}

/// The HR policy documents: URI, title, media type, text.
const DOCUMENTS: &[(&str, &str, &str, &str)] = &[
    (
        "policy://handbook",
        "Employee handbook",
        "text/markdown",
        "# Employee handbook\n\nWorking hours are flexible between 7:00 and 19:00. Questions go to your HR \
         partner, Mary Jackson (mary.jackson@example.com).\n",
    ),
    (
        "policy://salary-bands",
        "Salary bands 2026",
        "application/json",
        r#"{"year": 2026, "bands": [{"level": "L4", "min": 110000, "max": 140000}, {"level": "L5", "min": 140000, "max": 180000}, {"level": "L6", "min": 175000, "max": 230000}]}"#,
    ),
    (
        "policy://investigations/2026-q3",
        "Open investigations, Q3 2026",
        "text/plain",
        "Case 17: expense claims of employee 456-78-9012 under review; contact +1-555-0106.",
    ),
];

/// Where an employee's profile lives: `employee://{id}/profile`.
const PROFILE_TEMPLATE: &str = "employee://{id}/profile";

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a well-formed MCP value")
}

impl HrDirectory {
    fn employee(&self, id: &str) -> Option<&Employee> {
        self.employees
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(id))
    }

    fn profile_id(uri: &str) -> Option<&str> {
        uri.strip_prefix("employee://")?.strip_suffix("/profile")
    }
}

#[tool_handler(router = Self::tool_router())]
impl ServerHandler for HrDirectory {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .enable_completions()
                .build(),
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources: Vec<Value> = DOCUMENTS
            .iter()
            .map(|(uri, title, mime, _)| json!({"uri": uri, "name": title, "mimeType": mime}))
            .collect();
        Ok(from_json(json!({ "resources": resources })))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(from_json(json!({"resourceTemplates": [{
            "uriTemplate": PROFILE_TEMPLATE,
            "name": "Employee profile",
            "mimeType": "application/json",
        }]})))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let content = if let Some((_, _, mime, text)) = DOCUMENTS.iter().find(|d| d.0 == uri) {
            json!({"uri": uri, "mimeType": mime, "text": text})
        } else if let Some(employee) = Self::profile_id(uri).and_then(|id| self.employee(id)) {
            json!({"uri": uri, "mimeType": "application/json",
                   "text": serde_json::to_string(employee).expect("an employee is JSON")})
        } else {
            return Err(ErrorData::resource_not_found(
                format!("no resource `{uri}`"),
                Some(json!({"uri": uri})),
            ));
        };
        Ok(from_json::<rmcp::model::ReadResourceResult>(json!({"contents": [content]})).into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(from_json(json!({"prompts": [
            {"name": "policy_question", "description": "Answer a question from the employee handbook.",
             "arguments": [{"name": "question", "required": true}]},
            {"name": "performance_review", "description": "Draft a performance review of one employee.",
             "arguments": [{"name": "employee_id", "description": "Employee id (E1001)", "required": true}]},
        ]})))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let arguments = request.arguments.unwrap_or_default();
        let argument = |name: &str| {
            arguments
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ErrorData::invalid_params(format!("`{name}` is required"), None))
        };
        let messages = match request.name.as_str() {
            "policy_question" => {
                let (uri, _, mime, text) = DOCUMENTS[0];
                json!([
                    {"role": "user", "content": {"type": "resource",
                        "resource": {"uri": uri, "mimeType": mime, "text": text}}},
                    {"role": "user", "content": {"type": "text",
                        "text": format!("Using the handbook above, answer: {}", argument("question")?)}},
                ])
            }
            "performance_review" => {
                let id = argument("employee_id")?;
                let employee = self.employee(&id).ok_or_else(|| {
                    ErrorData::invalid_params(format!("no employee `{id}`"), None)
                })?;
                json!([
                    {"role": "user", "content": {"type": "resource", "resource": {
                        "uri": format!("employee://{}/profile", employee.id),
                        "mimeType": "application/json",
                        "text": serde_json::to_string(employee).expect("an employee is JSON")}}},
                    {"role": "user", "content": {"type": "text", "text": format!(
                        "Draft a fair performance review of {} ({}), from the profile above.",
                        employee.name, employee.title)}},
                ])
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("no prompt `{other}`"),
                    None,
                ));
            }
        };
        Ok(from_json::<rmcp::model::GetPromptResult>(json!({"messages": messages})).into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let request = serde_json::to_value(&request).unwrap_or_default();
        let typed = request["argument"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        let wants_id = match (
            request["ref"]["type"].as_str(),
            request["argument"]["name"].as_str(),
        ) {
            (Some("ref/resource"), Some("id")) => request["ref"]["uri"] == PROFILE_TEMPLATE,
            (Some("ref/prompt"), Some("employee_id")) => {
                request["ref"]["name"] == "performance_review"
            }
            _ => false,
        };
        let values: Vec<&str> = if wants_id {
            self.employees
                .iter()
                .map(|e| e.id.as_str())
                .filter(|id| id.to_lowercase().starts_with(&typed))
                .collect()
        } else {
            Vec::new()
        };
        Ok(from_json(
            json!({"completion": {"values": values, "total": values.len(), "hasMore": false}}),
        ))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let employees = std::sync::Arc::new(directory());
    common::serve(move || HrDirectory {
        employees: employees.clone(),
    })
    .await
}
