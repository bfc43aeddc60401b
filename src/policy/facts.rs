//! Argument facts: what a tool's arguments mean, worked out by real parsers.

pub mod path;
pub mod sql;
