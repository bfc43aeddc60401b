//! toolgate: an MCP gateway that enforces tool-level access for AI agents.
//!
//! One governed MCP endpoint aggregates the tools of many upstream MCP servers; every request walks the
//! pipeline in [`gateway`].

pub mod admin;
pub mod audit;
pub mod catalog;
pub mod classification;
pub mod cli;
pub mod clock;
pub mod config;
#[cfg(test)]
pub(crate) mod fuzzing;
pub mod gateway;
pub mod identity;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod policy;
pub mod reason;
pub mod redact;
pub mod report;
pub mod secret;
pub mod server;
pub mod sql;
pub mod store;
pub mod telemetry;
