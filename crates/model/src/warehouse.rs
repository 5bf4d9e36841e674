//! The warehouse star schema (`schemas/warehouse.yaml`): every table crmcube writes.

use crate::error::{Error, Result};
use crate::ordered::ordered_map;
use crate::types::{ColumnType, MONEY_SCALE};
use arrow::datatypes::{Field, Schema, SchemaRef};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// All warehouse tables, in file order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseSchema {
    /// Tables by name.
    #[serde(deserialize_with = "ordered_map")]
    pub tables: Vec<(String, TableDef)>,
}

/// Dimension or fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// A dimension table (one file, with an Unknown member).
    Dimension,
    /// A fact table (partitioned by month).
    Fact,
}

/// Export entities a table is built from.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Sources {
    /// Built from one entity.
    One(String),
    /// Built from several entities.
    Many(Vec<String>),
}

/// Slowly-changing-dimension (type 2) settings of a dimension.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scd2 {
    /// Column holding the natural key that versions share.
    pub natural_key: String,
    /// Source column ordering the versions.
    pub version_column: String,
    /// Attributes whose change opens a new version.
    pub tracked: Vec<String>,
}

/// One warehouse table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    /// Dimension or fact.
    pub kind: TableKind,
    /// Export entities the table is built from.
    #[serde(default)]
    pub source: Option<Sources>,
    /// What the table holds.
    #[serde(default)]
    pub description: String,
    /// SCD2 settings (dimensions with history).
    #[serde(default)]
    pub scd2: Option<Scd2>,
    /// Fixed members (dimensions not fed by an export).
    #[serde(default)]
    pub members: Vec<BTreeMap<String, String>>,
    /// Timestamp column whose month partitions the table.
    #[serde(default)]
    pub partition_by: Option<String>,
    /// Sort order inside each file.
    #[serde(default)]
    pub sort_by: Vec<String>,
    /// Columns identifying a fact row across loads: a row that arrives again with the
    /// same natural key replaces the earlier one.
    #[serde(default)]
    pub natural_key: Vec<String>,
    /// Columns in file order.
    pub columns: Vec<WarehouseColumn>,
}

/// One column of a warehouse table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseColumn {
    /// Column name.
    pub name: String,
    /// Logical type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Whether the column may hold nulls.
    #[serde(default)]
    pub nullable: bool,
    /// What the column means.
    #[serde(default)]
    pub description: String,
}

impl WarehouseSchema {
    /// The schema compiled into crmcube.
    pub fn builtin() -> Result<Self> {
        Self::parse(
            crate::BUILTIN_WAREHOUSE_YAML,
            "<built-in schemas/warehouse.yaml>",
        )
    }

    /// Reads a schema file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::ordered::read_schema_file(path)?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a schema; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let schema: WarehouseSchema = crate::ordered::parse_yaml(text, origin)?;
        schema.check(origin)?;
        Ok(schema)
    }

    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&TableDef> {
        self.tables.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The table called `name`, or a schema error naming it.
    pub fn require(&self, name: &str) -> Result<&TableDef> {
        self.table(name).ok_or_else(|| Error::Schema {
            file: "warehouse schema".into(),
            key: format!("tables.{name}"),
            message: "table is required by crmcube ingest but not defined".into(),
        })
    }

    fn check(&self, origin: &str) -> Result<()> {
        let err = |key: String, message: String| Error::Schema {
            file: origin.to_string(),
            key,
            message,
        };
        for (name, t) in &self.tables {
            let base = format!("tables.{name}");
            if t.columns.is_empty() {
                return Err(err(base, "a table needs at least one column".into()));
            }
            for (i, c) in t.columns.iter().enumerate() {
                if t.columns[..i].iter().any(|o| o.name == c.name) {
                    return Err(err(
                        format!("{base}.columns.{}", c.name),
                        "column defined twice".into(),
                    ));
                }
            }
            if let Some(p) = &t.partition_by {
                match t.column(p) {
                    Some(c) if matches!(c.ty, ColumnType::Timestamp | ColumnType::Date) => {}
                    Some(_) => {
                        return Err(err(
                            format!("{base}.partition_by"),
                            format!("`{p}` must be a date or timestamp column"),
                        ))
                    }
                    None => {
                        return Err(err(
                            format!("{base}.partition_by"),
                            format!("`{p}` is not a column of {name}"),
                        ))
                    }
                }
            }
            for k in &t.natural_key {
                if t.column(k).is_none() {
                    return Err(err(
                        format!("{base}.natural_key"),
                        format!("`{k}` is not a column of {name}"),
                    ));
                }
            }
            for s in &t.sort_by {
                if t.column(s).is_none() {
                    return Err(err(
                        format!("{base}.sort_by"),
                        format!("`{s}` is not a column of {name}"),
                    ));
                }
            }
            for (i, m) in t.members.iter().enumerate() {
                for k in m.keys() {
                    if t.column(k).is_none() {
                        return Err(err(
                            format!("{base}.members[{i}].{k}"),
                            format!("`{k}` is not a column of {name}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl TableDef {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&WarehouseColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The export entities this table is built from.
    pub fn source_entities(&self) -> Vec<&str> {
        match &self.source {
            None => vec![],
            Some(Sources::One(s)) => vec![s.as_str()],
            Some(Sources::Many(v)) => v.iter().map(String::as_str).collect(),
        }
    }

    /// Arrow schema of the table's files.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.ty.arrow_type(MONEY_SCALE), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schema_has_the_star() {
        let w = WarehouseSchema::builtin().unwrap();
        for t in [
            "dim_customer",
            "dim_product",
            "dim_region",
            "dim_date",
            "dim_channel",
            "dim_campaign",
            "fact_sales",
            "fact_interaction",
            "fact_ticket",
            "fact_campaign_response",
        ] {
            assert!(w.table(t).is_some(), "missing table {t}");
        }
        let sales = w.table("fact_sales").unwrap();
        assert_eq!(sales.kind, TableKind::Fact);
        assert_eq!(sales.partition_by.as_deref(), Some("order_ts"));
        assert!(sales.column("gross_profit").is_some());
        assert_eq!(w.table("dim_channel").unwrap().members.len(), 11);
    }

    #[test]
    fn bad_schema_names_file_and_key() {
        let bad = "tables:\n  f:\n    kind: fact\n    partition_by: ts\n    columns:\n      - { name: x, type: int }\n";
        let e = WarehouseSchema::parse(bad, "w.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("w.yaml") && e.contains("tables.f.partition_by") && e.contains("ts"),
            "{e}"
        );
    }
}
