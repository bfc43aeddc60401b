//! Data classifications, the one scale every step measures data on: `public < internal < confidential <
//! restricted`.

use serde::{Deserialize, Serialize};

/// Data classifications, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    Public,
    Internal,
    Confidential,
    Restricted,
}
