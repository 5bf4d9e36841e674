//! The OLTP export contract (`schemas/oltp.yaml`): which entities an export holds and
//! what every row of each must look like.

use crate::error::{Error, Result};
use crate::ordered::ordered_map;
use crate::types::ColumnType;
use arrow::datatypes::{Field, Schema, SchemaRef};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// All entities of an export, in the order the contract lists them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportContract {
    /// Entities by name.
    #[serde(deserialize_with = "ordered_map")]
    pub entities: Vec<(String, EntitySpec)>,
}

/// One exported entity (one file per export).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitySpec {
    /// What the entity holds.
    #[serde(default)]
    pub description: String,
    /// Columns making up the entity's key.
    pub primary_key: Vec<String>,
    /// References to other entities.
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKey>,
    /// Columns in export order.
    pub columns: Vec<ColumnSpec>,
}

/// One column of an exported entity, with its checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Column name as it appears in the header / JSON key / Parquet field.
    pub name: String,
    /// Logical type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Digits after the decimal point for decimals.
    #[serde(default = "default_scale")]
    pub scale: i8,
    /// Whether an empty value is allowed.
    #[serde(default)]
    pub nullable: bool,
    /// Closed set of allowed values.
    #[serde(default)]
    pub accepted: Option<Vec<String>>,
    /// Inclusive lower bound for numbers.
    #[serde(default)]
    pub min: Option<f64>,
    /// Inclusive upper bound for numbers.
    #[serde(default)]
    pub max: Option<f64>,
    /// Longest allowed string, in characters.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// What the column means.
    #[serde(default)]
    pub description: String,
}

fn default_scale() -> i8 {
    2
}

/// What to do with a row whose foreign key refers to nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOrphan {
    /// Load the row against the dimension's Unknown member and count it.
    Unknown,
    /// Reject the row to quarantine.
    Quarantine,
}

/// A reference from one column to another entity's single-column primary key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignKey {
    /// The referencing column.
    pub column: String,
    /// `entity.column` referenced.
    pub references: String,
    /// Behaviour for orphans.
    pub on_orphan: OnOrphan,
}

/// References from line items to their header: a line without its header has no date
/// or customer, so it cannot be loaded against an Unknown member. Building the facts
/// quarantines such lines itself (telling a missing header from a quarantined one).
pub const LINE_ITEMS: [(&str, &str); 1] = [("order_lines", "order_id")];

impl ForeignKey {
    /// The referenced entity name.
    pub fn target_entity(&self) -> &str {
        self.references.split('.').next().unwrap_or_default()
    }

    /// The referenced column name.
    pub fn target_column(&self) -> &str {
        self.references.split_once('.').map_or("", |(_, c)| c)
    }
}

impl ExportContract {
    /// The contract compiled into crmcube.
    pub fn builtin() -> Result<Self> {
        Self::parse(crate::BUILTIN_OLTP_YAML, "<built-in schemas/oltp.yaml>")
    }

    /// Reads a contract file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::ordered::read_schema_file(path)?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a contract; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let contract: ExportContract = crate::ordered::parse_yaml(text, origin)?;
        contract.check(origin)?;
        Ok(contract)
    }

    /// The entity called `name`.
    pub fn entity(&self, name: &str) -> Option<&EntitySpec> {
        self.entities
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e)
    }

    fn check(&self, origin: &str) -> Result<()> {
        let err = |key: String, message: String| Error::Schema {
            file: origin.to_string(),
            key,
            message,
        };
        for (name, entity) in &self.entities {
            let base = format!("entities.{name}");
            if entity.columns.is_empty() {
                return Err(err(base, "an entity needs at least one column".into()));
            }
            for (i, c) in entity.columns.iter().enumerate() {
                if entity.columns[..i].iter().any(|o| o.name == c.name) {
                    return Err(err(
                        format!("{base}.columns.{}", c.name),
                        "column defined twice".into(),
                    ));
                }
                if c.accepted.is_some() && c.ty != ColumnType::String {
                    return Err(err(
                        format!("{base}.columns.{}.accepted", c.name),
                        "accepted values are only allowed on string columns".into(),
                    ));
                }
                if c.ty == ColumnType::Key {
                    return Err(err(
                        format!("{base}.columns.{}.type", c.name),
                        "`key` is a warehouse type; exports use string or int".into(),
                    ));
                }
                if !(0..=9).contains(&c.scale) {
                    return Err(err(
                        format!("{base}.columns.{}.scale", c.name),
                        "scale must be between 0 and 9".into(),
                    ));
                }
            }
            for k in &entity.primary_key {
                if entity.column(k).is_none() {
                    return Err(err(
                        format!("{base}.primary_key"),
                        format!("`{k}` is not a column of {name}"),
                    ));
                }
            }
            for fk in &entity.foreign_keys {
                let key = format!("{base}.foreign_keys.{}", fk.column);
                if entity.column(&fk.column).is_none() {
                    return Err(err(
                        key,
                        format!("`{}` is not a column of {name}", fk.column),
                    ));
                }
                let Some((target, col)) = fk.references.split_once('.') else {
                    return Err(err(key, "references must be `entity.column`".into()));
                };
                let Some(t) = self.entity(target) else {
                    return Err(err(key, format!("entity `{target}` is not defined")));
                };
                if t.primary_key.len() != 1 || t.primary_key[0] != col {
                    // Versioned entities (customers) are referenced by the first key part.
                    if t.primary_key.first().map(String::as_str) != Some(col) {
                        return Err(err(
                            key,
                            format!("`{col}` is not the primary key of `{target}`"),
                        ));
                    }
                }
                if fk.on_orphan == OnOrphan::Unknown
                    && LINE_ITEMS.contains(&(name.as_str(), fk.column.as_str()))
                {
                    return Err(err(
                        format!("{key}.on_orphan"),
                        format!(
                            "{name} rows cannot load without their {target} row (it holds their \
                             date and customer); on_orphan must be `quarantine`"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl EntitySpec {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Index of the column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Arrow schema of the validated (staged) rows of this entity.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.ty.arrow_type(c.scale), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_contract_parses_and_is_consistent() {
        let c = ExportContract::builtin().unwrap();
        let names: Vec<&str> = c.entities.iter().map(|(n, _)| n.as_str()).collect();
        for expected in [
            "regions",
            "customers",
            "products",
            "campaigns",
            "orders",
            "order_lines",
            "campaign_contacts",
            "web_sessions",
            "cart_events",
            "email_events",
            "tickets",
        ] {
            assert!(names.contains(&expected), "missing entity {expected}");
        }
        let orders = c.entity("orders").unwrap();
        assert_eq!(orders.primary_key, vec!["order_id"]);
        assert_eq!(orders.column("order_ts").unwrap().ty, ColumnType::Timestamp);
    }

    #[test]
    fn bad_contracts_name_the_key() {
        let bad_pk = "entities:\n  a:\n    primary_key: [nope]\n    columns:\n      - { name: x, type: string }\n";
        let e = ExportContract::parse(bad_pk, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.yaml") && e.contains("entities.a.primary_key") && e.contains("nope"),
            "{e}"
        );

        let line_unknown = "entities:\n  orders:\n    primary_key: [order_id]\n    columns:\n      - { name: order_id, type: string }\n  order_lines:\n    primary_key: [order_id]\n    foreign_keys: [{ column: order_id, references: orders.order_id, on_orphan: unknown }]\n    columns:\n      - { name: order_id, type: string }\n";
        let e = ExportContract::parse(line_unknown, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("on_orphan must be `quarantine`"), "{e}");
        let bad_fk = "entities:\n  a:\n    primary_key: [x]\n    foreign_keys: [{ column: x, references: b.y, on_orphan: unknown }]\n    columns:\n      - { name: x, type: string }\n";
        let e = ExportContract::parse(bad_fk, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("entity `b` is not defined"), "{e}");

        let bad_type = "entities:\n  a:\n    primary_key: [x]\n    columns:\n      - { name: x, type: text }\n";
        let e = ExportContract::parse(bad_type, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.yaml") && e.contains("text"), "{e}");
    }
}
