//! Data quality checks over a warehouse, declared in `schemas/checks.yaml` (dbt-style):
//! unique, not_null, accepted_values, relationships, row_count, freshness and custom SQL
//! expressions, each with a severity.
//!
//! Every check compiles to one SQL query returning the *failing* rows (one text column,
//! `value`, that identifies each of them); a check passes when that query returns nothing.
//! The query is part of the result, so a failure can be investigated with `crmcube sql`.

mod parse;

use crate::warehouse::Warehouse;
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use chrono::NaiveDateTime;
use crmcube_model::{Error, Result, WarehouseSchema};
use std::path::Path;

/// The checks shipped with crmcube (`schemas/checks.yaml`).
pub const BUILTIN_CHECKS_YAML: &str = include_str!("../../../schemas/checks.yaml");

/// How many distinct failing values a result shows.
pub const EXAMPLE_LIMIT: usize = 5;

/// What a failing check means for the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A failure makes `crmcube check` exit 1 and can block a publish.
    Error,
    /// A failure is reported but does not fail the run.
    Warn,
}

impl Severity {
    /// Lower-case name, as in the checks file.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
        }
    }
}

/// A literal an accepted_values check compares with, already rendered as SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlLiteral(pub String);

/// What one check tests.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// No two rows share the values of these columns (rows with a null in them are skipped).
    Unique {
        /// The columns that together must be unique.
        columns: Vec<String>,
    },
    /// The column holds no null.
    NotNull,
    /// Every non-null value of the column is one of these.
    AcceptedValues {
        /// The allowed values as SQL literals.
        values: Vec<SqlLiteral>,
    },
    /// Every non-null value of the column exists in `to.field` (a foreign key).
    Relationships {
        /// The referenced table.
        to: String,
        /// The referenced column.
        field: String,
        /// For key columns: whether key 0 (the Unknown member) passes even when the
        /// referenced table lacks it (`Some(true)`), or always fails (`Some(false)`).
        allow_unknown: Option<bool>,
    },
    /// The table's row count lies within bounds.
    RowCount {
        /// Fewest rows allowed.
        min: Option<u64>,
        /// Most rows allowed.
        max: Option<u64>,
    },
    /// The newest value of a date or timestamp column is at most `max_age_seconds` older
    /// than the reference time (now, or `--as-of`).
    Freshness {
        /// The date or timestamp column.
        column: String,
        /// Largest allowed age in seconds.
        max_age_seconds: i64,
        /// The age as written in the checks file, e.g. `36h`.
        max_age: String,
    },
    /// Rows matching a SQL condition are failures; there must be none.
    Expression {
        /// A SQL boolean expression over the table's columns.
        condition: String,
    },
}

impl CheckKind {
    /// The kind's name, as in the checks file.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Unique { .. } => "unique",
            CheckKind::NotNull => "not_null",
            CheckKind::AcceptedValues { .. } => "accepted_values",
            CheckKind::Relationships { .. } => "relationships",
            CheckKind::RowCount { .. } => "row_count",
            CheckKind::Freshness { .. } => "freshness",
            CheckKind::Expression { .. } => "expression",
        }
    }
}

/// One declared check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Unique name (given in the file, or `<kind>_<table>[_<column>]`).
    pub name: String,
    /// Where it is declared in the checks file, e.g. `tables.fact_sales.columns.customer_key[1]`.
    pub key: String,
    /// The warehouse table checked.
    pub table: String,
    /// The column checked, for column checks.
    pub column: Option<String>,
    /// What is tested.
    pub kind: CheckKind,
    /// What a failure means.
    pub severity: Severity,
    /// Optional SQL condition restricting the rows checked.
    pub filter: Option<String>,
    /// A SQL expression identifying a failing row (shown as an example value).
    row_label: String,
}

/// A parsed, validated checks file.
#[derive(Debug, Clone)]
pub struct CheckSuite {
    /// The file the checks come from (or `<built-in schemas/checks.yaml>`).
    pub origin: String,
    /// The checks in file order.
    pub checks: Vec<Check>,
    /// Reference time for freshness checks (UTC); `None` means the time of the run.
    pub as_of: Option<NaiveDateTime>,
}

/// The outcome of one check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckResult {
    /// Check name.
    pub name: String,
    /// Table checked.
    pub table: String,
    /// Column checked, for column checks.
    pub column: Option<String>,
    /// Check kind (`unique`, `not_null`, …).
    pub kind: &'static str,
    /// `error` or `warn`.
    pub severity: Severity,
    /// `pass`, `fail` (an error-level check failed) or `warn` (a warn-level check failed).
    pub status: Status,
    /// Failing rows (for row_count and freshness: 1 when the table fails, else 0).
    pub failing_rows: u64,
    /// Up to [`EXAMPLE_LIMIT`] distinct failing values, smallest first.
    pub examples: Vec<String>,
    /// The query returning the failing rows.
    pub sql: String,
}

/// Outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// No failing rows.
    Pass,
    /// Failing rows, severity error.
    Fail,
    /// Failing rows, severity warn.
    Warn,
}

impl Status {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Warn => "warn",
        }
    }
}

impl CheckSuite {
    /// The checks compiled into crmcube, validated against `schema`.
    pub fn builtin(schema: &WarehouseSchema) -> Result<Self> {
        Self::parse(
            BUILTIN_CHECKS_YAML,
            "<built-in schemas/checks.yaml>",
            schema,
        )
    }

    /// Reads and validates a checks file.
    pub fn from_file(path: &Path, schema: &WarehouseSchema) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &path.display().to_string(), schema)
    }

    /// Parses checks from YAML text; `origin` names the file in errors. Every table and
    /// column named must exist in `schema`.
    pub fn parse(text: &str, origin: &str, schema: &WarehouseSchema) -> Result<Self> {
        let checks = parse::parse(text, origin, schema)?;
        Ok(CheckSuite {
            origin: origin.to_string(),
            checks,
            as_of: None,
        })
    }

    /// Uses `as_of` (UTC) instead of the current time as the reference for freshness.
    pub fn with_as_of(mut self, as_of: Option<NaiveDateTime>) -> Self {
        self.as_of = as_of;
        self
    }
}

/// Quotes a SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a SQL string literal.
pub(crate) fn string_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn as_text(expr: &str) -> String {
    format!("CAST({expr} AS VARCHAR)")
}

impl Check {
    /// The query returning one row (a text `value` naming it) per failing row.
    pub fn failing_sql(&self, as_of: NaiveDateTime) -> String {
        let table = ident(&self.table);
        let col = self.column.as_deref().map(ident);
        let filter = |mut conds: Vec<String>| -> String {
            if let Some(f) = &self.filter {
                conds.push(format!("({f})"));
            }
            if conds.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conds.join(" AND "))
            }
        };
        match &self.kind {
            CheckKind::Unique { columns } => {
                let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
                let value = cols
                    .iter()
                    .map(|c| as_text(c))
                    .collect::<Vec<_>>()
                    .join(" || ', ' || ");
                let not_null = cols.iter().map(|c| format!("{c} IS NOT NULL")).collect();
                format!(
                    "SELECT value FROM (SELECT {value} AS value, COUNT(*) OVER (PARTITION BY {}) AS copies FROM {table}{}) AS counted WHERE copies > 1",
                    cols.join(", "),
                    filter(not_null)
                )
            }
            CheckKind::NotNull => format!(
                "SELECT {} AS value FROM {table}{}",
                self.row_label,
                filter(vec![format!("{} IS NULL", col.unwrap_or_default())])
            ),
            CheckKind::AcceptedValues { values } => {
                let c = col.unwrap_or_default();
                let list = values
                    .iter()
                    .map(|v| v.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "SELECT {} AS value FROM {table}{}",
                    as_text(&c),
                    filter(vec![
                        format!("{c} IS NOT NULL"),
                        format!("{c} NOT IN ({list})")
                    ])
                )
            }
            CheckKind::Relationships {
                to,
                field,
                allow_unknown,
            } => {
                let c = format!("src.{}", col.unwrap_or_default());
                let missing = match allow_unknown {
                    Some(true) => format!("parent.parent_key IS NULL AND {c} <> 0"),
                    Some(false) => format!("(parent.parent_key IS NULL OR {c} = 0)"),
                    None => "parent.parent_key IS NULL".to_string(),
                };
                format!(
                    "SELECT {} AS value FROM {table} AS src LEFT JOIN (SELECT DISTINCT {} AS parent_key FROM {}) AS parent ON {c} = parent.parent_key{}",
                    as_text(&c),
                    ident(field),
                    ident(to),
                    filter(vec![format!("{c} IS NOT NULL"), missing])
                )
            }
            CheckKind::RowCount { min, max } => {
                let mut out_of_bounds = Vec::new();
                if let Some(m) = min {
                    out_of_bounds.push(format!("row_count < {m}"));
                }
                if let Some(m) = max {
                    out_of_bounds.push(format!("row_count > {m}"));
                }
                format!(
                    "SELECT CAST(row_count AS VARCHAR) || ' rows' AS value FROM (SELECT COUNT(*) AS row_count FROM {table}{}) AS counted WHERE {}",
                    filter(vec![]),
                    out_of_bounds.join(" OR ")
                )
            }
            CheckKind::Freshness {
                column,
                max_age_seconds,
                ..
            } => {
                let oldest_allowed = as_of - chrono::Duration::seconds(*max_age_seconds);
                format!(
                    "SELECT COALESCE('newest ' || CAST(newest AS VARCHAR), 'no rows') AS value FROM (SELECT MAX(CAST({} AS TIMESTAMP)) AS newest FROM {table}{}) AS latest WHERE newest IS NULL OR newest < TIMESTAMP '{}'",
                    ident(column),
                    filter(vec![]),
                    oldest_allowed.format("%Y-%m-%dT%H:%M:%S")
                )
            }
            CheckKind::Expression { condition } => format!(
                "SELECT {} AS value FROM {table}{}",
                self.row_label,
                filter(vec![format!("({condition})")])
            ),
        }
    }
}

/// Runs every check of `checks` against the warehouse, in file order.
///
/// All queries are planned before any runs, so a condition that does not compile is a
/// [`Error::Schema`] naming the checks file and the check's key, and nothing is reported
/// half-done.
pub async fn run_checks(warehouse: &Warehouse, checks: &CheckSuite) -> Result<Vec<CheckResult>> {
    let as_of = checks
        .as_of
        .unwrap_or_else(|| chrono::Utc::now().naive_utc());
    let mut planned = Vec::with_capacity(checks.checks.len());
    for check in &checks.checks {
        let sql = check.failing_sql(as_of);
        if let Err(e) = warehouse.context().sql(&sql).await {
            return Err(Error::Schema {
                file: checks.origin.clone(),
                key: check.key.clone(),
                message: format!(
                    "check `{}` cannot run on this warehouse: {}",
                    check.name,
                    e.to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            });
        }
        planned.push((check, sql));
    }
    let mut results = Vec::with_capacity(planned.len());
    for (check, sql) in planned {
        let count = warehouse
            .sql(&format!(
                "SELECT COUNT(*) AS failing FROM ({sql}) AS failing_rows"
            ))
            .await?;
        let failing_rows = first_count(&count.batches);
        let examples = if failing_rows == 0 {
            Vec::new()
        } else {
            let ex = warehouse
                .sql(&format!(
                    "SELECT DISTINCT value FROM ({sql}) AS failing_rows ORDER BY value LIMIT {EXAMPLE_LIMIT}"
                ))
                .await?;
            texts(&ex.batches)
        };
        let status = match (failing_rows, check.severity) {
            (0, _) => Status::Pass,
            (_, Severity::Error) => Status::Fail,
            (_, Severity::Warn) => Status::Warn,
        };
        results.push(CheckResult {
            name: check.name.clone(),
            table: check.table.clone(),
            column: check.column.clone(),
            kind: check.kind.name(),
            severity: check.severity,
            status,
            failing_rows,
            examples,
            sql,
        });
    }
    Ok(results)
}

/// Whether any error-level check failed (the load must not be published).
pub fn has_errors(results: &[CheckResult]) -> bool {
    results.iter().any(|r| r.status == Status::Fail)
}

fn first_count(batches: &[arrow::record_batch::RecordBatch]) -> u64 {
    batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| {
            let col = b.column(0);
            match col.data_type() {
                DataType::Int64 => Some(col.as_primitive::<arrow::datatypes::Int64Type>().value(0)),
                _ => None,
            }
        })
        .map_or(0, |n| n.max(0) as u64)
}

fn texts(batches: &[arrow::record_batch::RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let Ok(col) = arrow::compute::cast(b.column(0), &DataType::Utf8) else {
            continue;
        };
        let col = col.as_string::<i32>();
        for i in 0..col.len() {
            out.push(if col.is_null(i) {
                "NULL".to_string()
            } else {
                col.value(i).to_string()
            });
        }
    }
    out
}

/// Parses an `--as-of` time: RFC 3339 (`2026-01-31T06:00:00Z`, with any offset), or
/// `YYYY-MM-DD[THH:MM[:SS]]` taken as UTC.
pub fn parse_as_of(s: &str) -> Result<NaiveDateTime> {
    let t = s.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(dt.naive_utc());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(dt);
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN));
    }
    Err(Error::Usage(format!(
        "--as-of `{s}`: expected a time like 2026-01-31, 2026-01-31T06:00:00 or 2026-01-31T06:00:00+01:00"
    )))
}

#[cfg(test)]
mod tests;
