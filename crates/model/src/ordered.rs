//! Reading schema YAML: errors that name the file and line, and mappings deserialised
//! into a `Vec<(String, T)>` that keeps the file's order.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use crate::error::{Error, Result};

/// Parses YAML text; a syntax or shape error names `origin` and the line.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, origin: &str) -> Result<T> {
    serde_yaml::from_str(text).map_err(|e| Error::Schema {
        file: origin.to_string(),
        key: e
            .location()
            .map(|l| format!("line {}", l.line()))
            .unwrap_or_else(|| "document".into()),
        message: e.to_string(),
    })
}

/// Reads a schema file as text.
pub(crate) fn read_schema_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

pub(crate) fn ordered_map<'de, D, T>(deserializer: D) -> Result<Vec<(String, T)>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct OrderedVisitor<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for OrderedVisitor<T> {
        type Value = Vec<(String, T)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping of names to definitions")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, T>()? {
                if out.iter().any(|(name, _)| name == &k) {
                    return Err(serde::de::Error::custom(format!("`{k}` is defined twice")));
                }
                out.push((k, v));
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(OrderedVisitor(PhantomData))
}
