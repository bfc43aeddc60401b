//! Policy decisions. Today: the argument facts computed in Rust before policy runs, so that policies decide
//! on parsed facts (statement kinds, tables touched, normalised paths), never on regexes over raw strings.

pub mod facts;
