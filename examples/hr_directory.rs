//! Example upstream: an HR directory. Its answers carry personal data on purpose (emails, phone numbers,
//! national ids, salaries), in structured content and in text, for the gateway to govern.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{schemars, tool, tool_router};
use serde::{Deserialize, Serialize};

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

#[tool_router(server_handler)]
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let employees = std::sync::Arc::new(directory());
    common::serve(move || HrDirectory {
        employees: employees.clone(),
    })
    .await
}
