//! `cube describe`: every dimension, level, hierarchy and measure of the model, what it
//! is computed from, and whether this warehouse can answer it.

use crate::engine::Cube;
use crate::model::{Agg, LevelRef, Link, Period};
use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use crmcube_model::{Error, Result};
use std::sync::Arc;

struct Row {
    element: &'static str,
    name: String,
    kind: String,
    definition: String,
    facts: String,
    status: String,
}

fn status(checked: bool, missing: Option<String>) -> String {
    match missing {
        None if !checked => "not checked (no --warehouse)".into(),
        None => "available".into(),
        Some(t) => format!("unavailable: no table {t}"),
    }
}

impl Cube {
    /// The model as a table: element, name, kind, definition, facts, status.
    pub fn describe(&self) -> Result<(SchemaRef, RecordBatch)> {
        let m = &self.model;
        let mut rows = Vec::new();
        let missing = |tables: &[String]| tables.iter().find(|t| self.table_missing(t)).cloned();
        for (d, dim) in &m.dimensions {
            let facts: Vec<String> = m
                .facts
                .iter()
                .filter_map(|(f, fact)| {
                    fact.dimensions
                        .iter()
                        .find(|(n, _)| n == d)
                        .map(|(_, l)| match l {
                            Link::Column(c) => format!("{f} ({}.{c})", fact.table),
                            Link::Through { through, column } => {
                                format!("{f} (through {through}.{column})")
                            }
                        })
                })
                .collect();
            rows.push(Row {
                element: "dimension",
                name: d.clone(),
                kind: String::new(),
                definition: format!("{} on {}", dim.table, dim.key),
                facts: facts.join(", "),
                status: status(self.is_checked(), missing(std::slice::from_ref(&dim.table))),
            });
            for (h, levels) in &dim.hierarchies {
                let tables: Vec<String> = levels
                    .iter()
                    .flat_map(|l| {
                        m.level_tables(&LevelRef {
                            dimension: d.clone(),
                            level: l.clone(),
                        })
                    })
                    .collect();
                rows.push(Row {
                    element: "hierarchy",
                    name: format!("{d}.{h}"),
                    kind: String::new(),
                    definition: levels.join(" > "),
                    facts: String::new(),
                    status: status(self.is_checked(), missing(&tables)),
                });
            }
            for (l, level) in &dim.levels {
                let r = LevelRef {
                    dimension: d.clone(),
                    level: l.clone(),
                };
                let table = match &level.lookup {
                    Some(lk) => dim
                        .lookups
                        .iter()
                        .find(|(n, _)| n == lk)
                        .map(|(_, x)| x.table.clone())
                        .unwrap_or_default(),
                    None => dim.table.clone(),
                };
                let mut definition = match &level.expr {
                    Some(e) => format!("{table}: {e}"),
                    None => format!("{table}.{}", level.column),
                };
                if let Some(c) = &level.code {
                    definition.push_str(&format!(" (or {c})"));
                }
                let kind = match level.period {
                    Some(Period::Year) => "year",
                    Some(Period::Quarter) => "quarter",
                    Some(Period::Month) => "month",
                    Some(Period::Day) => "day",
                    Some(Period::IsoWeek) => "iso_week",
                    None => "",
                }
                .to_string();
                rows.push(Row {
                    element: "level",
                    name: r.to_string(),
                    kind,
                    definition,
                    facts: String::new(),
                    status: status(self.is_checked(), missing(&m.level_tables(&r))),
                });
            }
        }
        for (name, measure) in &m.measures {
            let bases = m.base_measures(name);
            let mut facts: Vec<String> = Vec::new();
            let mut tables = Vec::new();
            for b in &bases {
                if let Some(f) = m.measure(b).and_then(|x| x.fact.clone()) {
                    if let Some(fact) = m.fact(&f) {
                        let t = format!("{f} ({})", fact.table);
                        if !facts.contains(&t) {
                            facts.push(t);
                        }
                        tables.push(fact.table.clone());
                    }
                }
            }
            let formula = match (&measure.ratio, measure.agg) {
                (Some(p), _) => {
                    let scale = measure
                        .scale
                        .filter(|s| *s != 1.0)
                        .map(|s| format!(" * {s}"))
                        .unwrap_or_default();
                    format!("{} / {}{scale}", p[0], p[1])
                }
                (None, Some(agg)) => {
                    let col = measure.column.clone().unwrap_or_else(|| "*".into());
                    let w = measure
                        .filter
                        .as_ref()
                        .map(|w| format!(" WHERE {w}"))
                        .unwrap_or_default();
                    match agg {
                        Agg::Sum => format!("SUM({col}){w}"),
                        Agg::Count => format!("COUNT({col}){w}"),
                        Agg::CountDistinct => format!("COUNT(DISTINCT {col}){w}"),
                        Agg::CountDistinctHaving => format!(
                            "COUNT({col} HAVING COUNT(DISTINCT {}) >= {}){w}",
                            measure.per.clone().unwrap_or_default(),
                            measure.min.unwrap_or(2)
                        ),
                    }
                }
                (None, None) => String::new(),
            };
            let definition = if measure.description.is_empty() {
                formula
            } else {
                format!("{formula} -- {}", measure.description)
            };
            rows.push(Row {
                element: "measure",
                name: name.clone(),
                kind: measure.kind().name().into(),
                definition,
                facts: facts.join(", "),
                status: status(self.is_checked(), missing(&tables)),
            });
        }
        for [name, kind, definition, facts, status] in self.describe_pre_aggregations() {
            rows.push(Row {
                element: "pre_aggregation",
                name,
                kind,
                definition,
                facts,
                status,
            });
        }
        for (name, saved) in &m.queries {
            let q = saved.to_query(m)?;
            let levels = |v: &[LevelRef]| {
                v.iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut parts = vec![format!("{} by {}", q.measures.join(", "), levels(&q.rows))];
            if !q.columns.is_empty() {
                parts.push(format!("across {}", levels(&q.columns)));
            }
            if !q.filters.is_empty() {
                let f: Vec<String> = q.filters.iter().map(|f| f.describe()).collect();
                parts.push(format!("where {}", f.join(" and ")));
            }
            if !saved.description.is_empty() {
                parts.push(format!("-- {}", saved.description));
            }
            let mut tables = Vec::new();
            let mut facts = Vec::new();
            for measure in &q.measures {
                for b in m.base_measures(measure) {
                    if let Some(f) = m.measure(&b).and_then(|x| x.fact.clone()) {
                        if !facts.contains(&f) {
                            if let Some(t) = m.fact(&f) {
                                tables.push(t.table.clone());
                            }
                            facts.push(f);
                        }
                    }
                }
            }
            for l in q.rows.iter().chain(&q.columns) {
                tables.extend(m.level_tables(l));
            }
            rows.push(Row {
                element: "saved_query",
                name: name.clone(),
                kind: "view".into(),
                definition: parts.join(" "),
                facts: facts.join(", "),
                status: status(self.is_checked(), missing(&tables)),
            });
        }
        let fields = ["element", "name", "kind", "definition", "facts", "status"];
        let schema: SchemaRef = Arc::new(Schema::new(
            fields
                .iter()
                .map(|f| Field::new(*f, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        ));
        let col = |f: &dyn Fn(&Row) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
        };
        let arrays = vec![
            col(&|r| r.element),
            col(&|r| &r.name),
            col(&|r| &r.kind),
            col(&|r| &r.definition),
            col(&|r| &r.facts),
            col(&|r| &r.status),
        ];
        let batch = RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| Error::Query(e.to_string()))?;
        Ok((schema, batch))
    }
}
