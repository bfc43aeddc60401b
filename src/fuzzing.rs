//! What the fuzz targets share: a generator of JSON values shaped by the words of the format under test.

use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value, nested up to `depth` levels, whose strings are often one of `words` (else any short text) and
/// whose object keys are drawn from `keys`.
pub fn json_value(
    words: Vec<&'static str>,
    keys: Vec<&'static str>,
    depth: u32,
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(words).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(depth, 96, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(keys.clone()).prop_map(String::from),
                    inner
                ),
                0..8,
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}
