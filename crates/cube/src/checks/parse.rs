//! Reading a checks file: every table, column and parameter is validated against the
//! warehouse schema, and errors name the file and the key at fault.

use super::{ident, string_literal, Check, CheckKind, Severity, SqlLiteral};
use crmcube_model::{ColumnType, Error, Result, TableDef, WarehouseSchema};
use serde_yaml::{Mapping, Value};

const KINDS: &str =
    "unique, not_null, accepted_values, relationships, row_count, freshness, expression";

struct Reader<'a> {
    origin: &'a str,
    schema: &'a WarehouseSchema,
}

impl Reader<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Schema {
            file: self.origin.to_string(),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Parses the checks of a file, in file order.
pub(super) fn parse(text: &str, origin: &str, schema: &WarehouseSchema) -> Result<Vec<Check>> {
    let r = Reader { origin, schema };
    let doc: Value = serde_yaml::from_str(text).map_err(|e| {
        r.err(
            e.location()
                .map(|l| format!("line {}", l.line()))
                .unwrap_or_else(|| "document".into()),
            e.to_string(),
        )
    })?;
    let root = match doc {
        Value::Mapping(m) => m,
        Value::Null => return Ok(Vec::new()),
        _ => return Err(r.err("document", "expected a mapping with a `tables` key")),
    };
    let mut checks: Vec<Check> = Vec::new();
    for (k, v) in root {
        let k = name_of(&r, &k, "document")?;
        if k != "tables" {
            return Err(r.err(k, "unknown key; a checks file holds `tables`"));
        }
        let tables = match v {
            Value::Mapping(m) => m,
            Value::Null => Mapping::new(),
            _ => return Err(r.err("tables", "expected a mapping of table names")),
        };
        for (tk, tv) in tables {
            let table = name_of(&r, &tk, "tables")?;
            let key = format!("tables.{table}");
            let def = schema.table(&table).ok_or_else(|| {
                r.err(
                    &key,
                    format!(
                        "no table `{table}` in the warehouse schema; tables are: {}",
                        schema
                            .tables
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            parse_table(&r, &key, &table, def, tv, &mut checks)?;
        }
    }
    for (i, c) in checks.iter().enumerate() {
        if let Some(first) = checks[..i].iter().find(|o| o.name == c.name) {
            return Err(r.err(
                &c.key,
                format!(
                    "check name `{}` is already used at {}; give one of them a `name:`",
                    c.name, first.key
                ),
            ));
        }
    }
    Ok(checks)
}

fn name_of(r: &Reader, v: &Value, parent: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(r.err(
            parent,
            format!("expected a name, found {}", describe(other)),
        )),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("`{s}`"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

fn parse_table(
    r: &Reader,
    key: &str,
    table: &str,
    def: &TableDef,
    v: Value,
    out: &mut Vec<Check>,
) -> Result<()> {
    let m = match v {
        Value::Mapping(m) => m,
        Value::Null => return Ok(()),
        other => {
            return Err(r.err(
                key,
                format!(
                    "expected a mapping with `checks` and/or `columns`, found {}",
                    describe(&other)
                ),
            ))
        }
    };
    for (k, v) in m {
        let k = name_of(r, &k, key)?;
        match k.as_str() {
            "checks" => {
                let list = sequence(r, &format!("{key}.checks"), v)?;
                for (i, entry) in list.into_iter().enumerate() {
                    out.push(parse_check(
                        r,
                        &format!("{key}.checks[{i}]"),
                        table,
                        def,
                        None,
                        entry,
                    )?);
                }
            }
            "columns" => {
                let cols = match v {
                    Value::Mapping(m) => m,
                    Value::Null => Mapping::new(),
                    other => {
                        return Err(r.err(
                            format!("{key}.columns"),
                            format!(
                                "expected a mapping of column names, found {}",
                                describe(&other)
                            ),
                        ))
                    }
                };
                for (ck, cv) in cols {
                    let col = name_of(r, &ck, &format!("{key}.columns"))?;
                    let ckey = format!("{key}.columns.{col}");
                    require_column(r, &ckey, table, def, &col)?;
                    for (i, entry) in sequence(r, &ckey, cv)?.into_iter().enumerate() {
                        out.push(parse_check(
                            r,
                            &format!("{ckey}[{i}]"),
                            table,
                            def,
                            Some(&col),
                            entry,
                        )?);
                    }
                }
            }
            "description" => {}
            other => {
                return Err(r.err(
                    format!("{key}.{other}"),
                    "unknown key; a table holds `checks`, `columns` and `description`",
                ))
            }
        }
    }
    Ok(())
}

fn sequence(r: &Reader, key: &str, v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Sequence(s) => Ok(s),
        Value::Null => Ok(Vec::new()),
        other => Err(r.err(
            key,
            format!("expected a list of checks, found {}", describe(&other)),
        )),
    }
}

fn require_column<'d>(
    r: &Reader,
    key: &str,
    table: &str,
    def: &'d TableDef,
    col: &str,
) -> Result<&'d crmcube_model::WarehouseColumn> {
    def.column(col).ok_or_else(|| {
        r.err(
            key,
            format!(
                "no column `{col}` in table {table}; its columns are: {}",
                def.columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// The parameters of one check, consumed one by one so leftovers can be reported.
struct Params {
    key: String,
    map: Mapping,
}

impl Params {
    fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }

    fn string(&mut self, r: &Reader, name: &str) -> Result<Option<String>> {
        match self.take(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s)),
            Some(other) => Err(r.err(
                format!("{}.{name}", self.key),
                format!("expected a non-empty text, found {}", describe(&other)),
            )),
        }
    }

    fn required_string(&mut self, r: &Reader, name: &str) -> Result<String> {
        self.string(r, name)?
            .ok_or_else(|| r.err(format!("{}.{name}", self.key), "this parameter is required"))
    }

    fn count(&mut self, r: &Reader, name: &str) -> Result<Option<u64>> {
        match self.take(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(other) => Err(r.err(
                format!("{}.{name}", self.key),
                format!("expected a whole number ≥ 0, found {}", describe(&other)),
            )),
        }
    }

    fn finish(self, r: &Reader, kind: &str, allowed: &str) -> Result<()> {
        if let Some((k, _)) = self.map.into_iter().next() {
            let k = match k {
                Value::String(s) => s,
                other => describe(&other),
            };
            return Err(r.err(
                format!("{}.{k}", self.key),
                format!("unknown parameter of {kind}; expected {allowed}"),
            ));
        }
        Ok(())
    }
}

fn parse_check(
    r: &Reader,
    key: &str,
    table: &str,
    def: &TableDef,
    column: Option<&str>,
    entry: Value,
) -> Result<Check> {
    let (kind, params) = match entry {
        Value::String(s) => (s, Mapping::new()),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.into_iter().next().unwrap_or((Value::Null, Value::Null));
            let k = name_of(r, &k, key)?;
            let params = match v {
                Value::Mapping(p) => p,
                Value::Null => Mapping::new(),
                other => {
                    return Err(r.err(
                        format!("{key}.{k}"),
                        format!(
                            "expected a mapping of parameters, found {}",
                            describe(&other)
                        ),
                    ))
                }
            };
            (k, params)
        }
        other => {
            return Err(r.err(
                key,
                format!(
                    "expected a check kind (e.g. `not_null`) or `kind: {{parameters}}`, found {}",
                    describe(&other)
                ),
            ))
        }
    };
    let pkey = format!("{key}.{kind}");
    let mut p = Params {
        key: pkey.clone(),
        map: params,
    };
    let name = p.string(r, "name")?;
    let severity = match p.string(r, "severity")?.as_deref() {
        None | Some("error") => Severity::Error,
        Some("warn") | Some("warning") => Severity::Warn,
        Some(other) => {
            return Err(r.err(
                format!("{pkey}.severity"),
                format!("`{other}` is not a severity; expected error or warn"),
            ))
        }
    };
    let filter = p.string(r, "where")?;
    const COMMON: &str = "name, severity, where";
    let column_only = |what: &str| -> Result<&str> {
        column.ok_or_else(|| {
            r.err(
                key,
                format!(
                    "{what} is a column check; declare it under tables.{table}.columns.<column>"
                ),
            )
        })
    };
    let mut column = column.map(str::to_string);
    let (kind, auto_suffix) = match kind.as_str() {
        "unique" => {
            let columns = match (&column, p.take("columns")) {
                (Some(c), None) => vec![c.clone()],
                (None, Some(Value::Sequence(list))) if !list.is_empty() => {
                    let mut cols = Vec::new();
                    for v in list {
                        let c = name_of(r, &v, &format!("{pkey}.columns"))?;
                        require_column(r, &format!("{pkey}.columns"), table, def, &c)?;
                        cols.push(c);
                    }
                    cols
                }
                (Some(_), Some(_)) => {
                    return Err(r.err(
                        format!("{pkey}.columns"),
                        "a column check is about its own column; declare several columns at table level under `checks`",
                    ))
                }
                (None, _) => {
                    return Err(r.err(
                        format!("{pkey}.columns"),
                        "a table-level unique check needs `columns: [a, b, …]`",
                    ))
                }
            };
            p.finish(r, "unique", &format!("columns, {COMMON}"))?;
            let suffix = columns.join("_");
            (CheckKind::Unique { columns }, suffix)
        }
        "not_null" => {
            let c = column_only("not_null")?.to_string();
            p.finish(r, "not_null", COMMON)?;
            (CheckKind::NotNull, c)
        }
        "accepted_values" => {
            let c = column_only("accepted_values")?.to_string();
            let ty = require_column(r, key, table, def, &c)?.ty;
            let values = match p.take("values") {
                Some(Value::Sequence(list)) if !list.is_empty() => list
                    .iter()
                    .enumerate()
                    .map(|(i, v)| literal(r, &format!("{pkey}.values[{i}]"), ty, v))
                    .collect::<Result<Vec<_>>>()?,
                _ => {
                    return Err(r.err(
                        format!("{pkey}.values"),
                        "accepted_values needs `values: [a, b, …]` (a non-empty list)",
                    ))
                }
            };
            p.finish(r, "accepted_values", &format!("values, {COMMON}"))?;
            (CheckKind::AcceptedValues { values }, c)
        }
        "relationships" => {
            let c = column_only("relationships")?.to_string();
            let to = p.required_string(r, "to")?;
            let target = r.schema.table(&to).ok_or_else(|| {
                r.err(
                    format!("{pkey}.to"),
                    format!("no table `{to}` in the warehouse schema"),
                )
            })?;
            let field = p.string(r, "field")?.unwrap_or_else(|| c.clone());
            require_column(r, &format!("{pkey}.field"), &to, target, &field)?;
            let numeric = matches!(
                require_column(r, key, table, def, &c)?.ty,
                ColumnType::Key | ColumnType::Int
            );
            let allow_unknown = match p.take("allow_unknown") {
                None | Some(Value::Null) => numeric.then_some(true),
                Some(Value::Bool(b)) if numeric => Some(b),
                Some(Value::Bool(_)) => {
                    return Err(r.err(
                        format!("{pkey}.allow_unknown"),
                        format!(
                        "`{c}` is not a key column; the Unknown key 0 applies to key columns only"
                    ),
                    ))
                }
                Some(other) => {
                    return Err(r.err(
                        format!("{pkey}.allow_unknown"),
                        format!("expected true or false, found {}", describe(&other)),
                    ))
                }
            };
            p.finish(
                r,
                "relationships",
                &format!("to, field, allow_unknown, {COMMON}"),
            )?;
            let suffix = format!("{c}__{to}");
            (
                CheckKind::Relationships {
                    to,
                    field,
                    allow_unknown,
                },
                suffix,
            )
        }
        "row_count" => {
            if column.is_some() {
                return Err(r.err(
                    key,
                    format!("row_count is a table check; declare it under tables.{table}.checks"),
                ));
            }
            let min = p.count(r, "min")?;
            let max = p.count(r, "max")?;
            p.finish(r, "row_count", &format!("min, max, {COMMON}"))?;
            if min.is_none() && max.is_none() {
                return Err(r.err(&pkey, "row_count needs `min`, `max` or both"));
            }
            if let (Some(lo), Some(hi)) = (min, max) {
                if lo > hi {
                    return Err(r.err(&pkey, format!("min ({lo}) is larger than max ({hi})")));
                }
            }
            (CheckKind::RowCount { min, max }, String::new())
        }
        "freshness" => {
            let c = match (&column, p.string(r, "column")?) {
                (Some(c), None) => c.clone(),
                (None, Some(c)) => {
                    require_column(r, &format!("{pkey}.column"), table, def, &c)?;
                    c
                }
                (Some(_), Some(_)) => {
                    return Err(r.err(
                        format!("{pkey}.column"),
                        "a column check is about its own column; leave out `column`",
                    ))
                }
                (None, None) => {
                    return Err(r.err(
                        format!("{pkey}.column"),
                        "a table-level freshness check needs `column`",
                    ))
                }
            };
            let ty = require_column(r, key, table, def, &c)?.ty;
            if !matches!(ty, ColumnType::Date | ColumnType::Timestamp) {
                return Err(r.err(
                    &pkey,
                    format!(
                        "`{c}` is a {} column; freshness needs a date or timestamp column",
                        ty.name()
                    ),
                ));
            }
            let max_age = p.required_string(r, "max_age")?;
            let max_age_seconds = duration_seconds(&max_age).ok_or_else(|| {
                r.err(
                    format!("{pkey}.max_age"),
                    format!("`{max_age}` is not an age; expected a number and a unit s, m, h, d or w, e.g. 36h or 2d"),
                )
            })?;
            p.finish(r, "freshness", &format!("column, max_age, {COMMON}"))?;
            if column.is_none() {
                column = Some(c.clone());
            }
            (
                CheckKind::Freshness {
                    column: c.clone(),
                    max_age_seconds,
                    max_age,
                },
                c,
            )
        }
        "expression" => {
            let condition = p.required_string(r, "condition")?;
            p.finish(r, "expression", &format!("condition, {COMMON}"))?;
            (
                CheckKind::Expression { condition },
                column.clone().unwrap_or_default(),
            )
        }
        other => {
            return Err(r.err(
                key,
                format!("`{other}` is not a check kind; expected one of: {KINDS}"),
            ))
        }
    };
    let name = name.unwrap_or_else(|| {
        let mut n = format!("{}_{table}", kind.name());
        if !auto_suffix.is_empty() {
            n.push('_');
            n.push_str(&auto_suffix);
        }
        n
    });
    let row_label = row_label(def, column.as_deref());
    Ok(Check {
        name,
        key: key.to_string(),
        table: table.to_string(),
        column,
        kind,
        severity,
        filter,
        row_label,
    })
}

/// A SQL expression naming a row: the table's first column (usually its key), and the
/// checked column when it is another.
fn row_label(def: &TableDef, column: Option<&str>) -> String {
    let part = |c: &str| {
        format!(
            "{} || COALESCE(CAST({} AS VARCHAR), 'NULL')",
            string_literal(&format!("{c}=")),
            ident(c)
        )
    };
    let first = def.columns.first().map_or("", |c| c.name.as_str());
    match column {
        Some(c) if c != first && !first.is_empty() => {
            format!("{} || ', ' || {}", part(first), part(c))
        }
        Some(c) => part(c),
        None if !first.is_empty() => part(first),
        None => "'row'".to_string(),
    }
}

/// Renders an accepted value as a SQL literal of the column's type.
fn literal(r: &Reader, key: &str, ty: ColumnType, v: &Value) -> Result<SqlLiteral> {
    let bad = |what: &str| {
        r.err(
            key,
            format!(
                "expected {what} for a {} column, found {}",
                ty.name(),
                describe(v)
            ),
        )
    };
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return Err(bad("a single value")),
    };
    Ok(SqlLiteral(match ty {
        ColumnType::String => string_literal(&text),
        ColumnType::Int | ColumnType::Key => text
            .trim()
            .parse::<i64>()
            .map_err(|_| bad("a whole number"))?
            .to_string(),
        ColumnType::Float | ColumnType::Decimal => {
            let f: f64 = text.trim().parse().map_err(|_| bad("a number"))?;
            if !f.is_finite() {
                return Err(bad("a finite number"));
            }
            text.trim().to_string()
        }
        ColumnType::Bool => match text.as_str() {
            "true" => "TRUE".into(),
            "false" => "FALSE".into(),
            _ => return Err(bad("true or false")),
        },
        ColumnType::Date => {
            chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map_err(|_| bad("a date YYYY-MM-DD"))?;
            format!("DATE '{}'", text.trim())
        }
        ColumnType::Timestamp => {
            let t = super::parse_as_of(&text).map_err(|_| bad("a timestamp"))?;
            format!("TIMESTAMP '{}'", t.format("%Y-%m-%dT%H:%M:%S%.f"))
        }
    }))
}

/// Parses an age like `90m`, `36h`, `2d` or `1w` into seconds.
fn duration_seconds(s: &str) -> Option<i64> {
    let t = s.trim();
    let unit_at = t.find(|c: char| !c.is_ascii_digit())?;
    let n: i64 = t[..unit_at].parse().ok()?;
    let unit = match t[unit_at..].trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(unit)
}
