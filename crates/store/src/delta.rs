//! The Delta Lake transaction log of one table (`<table>/_delta_log/NNNNNNNNNNNNNNNNNNNN.json`).
//!
//! crmcube writes the subset of the Delta protocol a plain Parquet table needs: `protocol`,
//! `metaData` (schema, no partition columns), `add` / `remove` of data files and
//! `commitInfo`. Any Delta reader (Spark, DuckDB's `delta_scan`, `polars.read_delta`,
//! `deltalake` for Python) can read the tables. Timestamps without a zone are
//! `timestamp_ntz`, which needs reader version 3 / writer version 7 with that feature.
//!
//! A commit file is created with "put if absent" semantics (a hard link of a finished
//! temporary file), so two writers can never both write version N and a reader never
//! sees a half-written commit.

use crate::{io_err, DataFile};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use crmcube_model::{Error, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Folder of a table's log.
pub const DELTA_LOG: &str = "_delta_log";

/// Path of commit `version` of the table in `table_dir`.
pub fn commit_path(table_dir: &Path, version: u64) -> PathBuf {
    table_dir
        .join(DELTA_LOG)
        .join(format!("{version:020}.json"))
}

/// Versions present in a table's log, ascending.
pub fn versions(table_dir: &Path) -> Result<Vec<u64>> {
    crate::numbered_json_files(&table_dir.join(DELTA_LOG))
}

/// A table as of one version: its schema and live data files.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    /// Delta version.
    pub version: u64,
    /// Arrow schema of the data files.
    pub schema: Arc<Schema>,
    /// Live files, by path relative to the table folder.
    pub files: BTreeMap<String, DataFile>,
}

use std::sync::Arc;

impl TableSnapshot {
    /// Rows over all live files.
    pub fn rows(&self) -> u64 {
        self.files.values().map(|f| f.rows).sum()
    }
}

/// Replays the log of `table_dir` up to and including `version`.
pub fn snapshot(table_dir: &Path, version: u64) -> Result<TableSnapshot> {
    let mut schema: Option<Arc<Schema>> = None;
    let mut files = BTreeMap::new();
    for v in 0..=version {
        let path = commit_path(table_dir, v);
        let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let action: Value = serde_json::from_str(line)
                .map_err(|e| Error::format(format!("{}:{}", path.display(), i + 1), e))?;
            if let Some(m) = action.get("metaData") {
                let s = m
                    .get("schemaString")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        Error::format(path.display(), "metaData without schemaString")
                    })?;
                schema = Some(Arc::new(
                    schema_from_delta(s).map_err(|e| Error::format(path.display(), e))?,
                ));
            } else if let Some(a) = action.get("add") {
                let f = DataFile::from_add(a)
                    .ok_or_else(|| Error::format(path.display(), "malformed add action"))?;
                files.insert(f.path.clone(), f);
            } else if let Some(r) = action.get("remove") {
                if let Some(p) = r.get("path").and_then(Value::as_str) {
                    files.remove(&unescape_path(p));
                }
            }
        }
    }
    let schema = schema
        .ok_or_else(|| Error::format(table_dir.display(), "table log has no metaData (schema)"))?;
    Ok(TableSnapshot {
        version,
        schema,
        files,
    })
}

/// Actions of one new commit of a table.
pub struct TableCommit<'a> {
    /// The table's schema; a metaData action is written when it is new or changed.
    pub schema: &'a Schema,
    /// Whether the schema differs from the previous version's (or there is none).
    pub new_schema: bool,
    /// Files added.
    pub add: Vec<&'a DataFile>,
    /// Files removed.
    pub remove: Vec<&'a DataFile>,
    /// Operation name for commitInfo.
    pub operation: &'a str,
    /// Load id for commitInfo.
    pub load_id: &'a str,
}

/// Writes commit `version` of a table; fails if that version exists already.
pub fn write_commit(table_dir: &Path, version: u64, c: &TableCommit) -> Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut lines: Vec<Value> = vec![json!({"commitInfo": {
        "timestamp": now,
        "operation": c.operation,
        "operationParameters": {},
        "engineInfo": format!("crmcube {}", env!("CARGO_PKG_VERSION")),
        "crmcube.loadId": c.load_id,
        "isBlindAppend": c.remove.is_empty(),
    }})];
    if version == 0 {
        lines.push(json!({"protocol": {
            "minReaderVersion": 3, "minWriterVersion": 7,
            "readerFeatures": ["timestampNtz"], "writerFeatures": ["timestampNtz"],
        }}));
    }
    if c.new_schema || version == 0 {
        lines.push(json!({"metaData": {
            "id": table_id(table_dir),
            "format": {"provider": "parquet", "options": {}},
            "schemaString": schema_to_delta(c.schema)?,
            "partitionColumns": [],
            "configuration": {},
            "createdTime": now,
        }}));
    }
    for f in &c.remove {
        lines.push(json!({"remove": {
            "path": escape_path(&f.path), "deletionTimestamp": now, "dataChange": true,
            "extendedFileMetadata": true, "partitionValues": {}, "size": f.size,
        }}));
    }
    for f in &c.add {
        lines.push(json!({"add": f.to_add()}));
    }
    let mut text = String::new();
    for l in lines {
        text.push_str(&l.to_string());
        text.push('\n');
    }
    crate::put_if_absent(&commit_path(table_dir, version), text.as_bytes())
}

/// A stable id for the table's metaData (derived from its folder name).
fn table_id(table_dir: &Path) -> String {
    let name = table_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let h = crmcube_model::keys::key_of(&name) as u64;
    let h2 = crmcube_model::keys::key_of(&format!("{name}#crmcube")) as u64;
    let hex = format!("{h:016x}{h2:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Delta paths are URL-encoded; ours only need `=` kept and spaces escaped.
fn escape_path(p: &str) -> String {
    p.replace('%', "%25").replace(' ', "%20")
}

fn unescape_path(p: &str) -> String {
    p.replace("%20", " ")
        .replace("%3D", "=")
        .replace("%25", "%")
}

impl DataFile {
    fn to_add(&self) -> Value {
        json!({
            "path": escape_path(&self.path),
            "partitionValues": {},
            "size": self.size,
            "modificationTime": self.modified_ms,
            "dataChange": true,
            "stats": json!({"numRecords": self.rows}).to_string(),
            "tags": {"crmcube.sha256": self.sha256},
        })
    }

    fn from_add(a: &Value) -> Option<DataFile> {
        let stats: Option<Value> = a
            .get("stats")
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str(s).ok());
        Some(DataFile {
            path: unescape_path(a.get("path")?.as_str()?),
            size: a.get("size")?.as_u64()?,
            rows: stats
                .as_ref()
                .and_then(|s| s.get("numRecords"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
            sha256: a
                .get("tags")
                .and_then(|t| t.get("crmcube.sha256"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            modified_ms: a
                .get("modificationTime")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        })
    }
}

/// The Delta (Spark JSON) schema of an Arrow schema.
pub fn schema_to_delta(schema: &Schema) -> Result<String> {
    let mut fields = Vec::new();
    for f in schema.fields() {
        let t = match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".to_string(),
            DataType::Int64 | DataType::UInt32 => "long".into(),
            DataType::Int32 | DataType::UInt16 => "integer".into(),
            DataType::Int16 | DataType::UInt8 => "short".into(),
            DataType::Int8 => "byte".into(),
            DataType::Float64 => "double".into(),
            DataType::Float32 => "float".into(),
            DataType::Boolean => "boolean".into(),
            DataType::Date32 => "date".into(),
            DataType::Timestamp(TimeUnit::Microsecond, None) => "timestamp_ntz".into(),
            DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamp".into(),
            DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
            other => {
                return Err(Error::format(
                    f.name(),
                    format!("type {other} has no Delta equivalent"),
                ))
            }
        };
        fields.push(
            json!({"name": f.name(), "type": t, "nullable": f.is_nullable(), "metadata": {}}),
        );
    }
    Ok(json!({"type": "struct", "fields": fields}).to_string())
}

/// The Arrow schema of a Delta schema string.
pub fn schema_from_delta(s: &str) -> std::result::Result<Schema, String> {
    let v: Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
    let fields = v
        .get("fields")
        .and_then(Value::as_array)
        .ok_or("schema without fields")?;
    let mut out = Vec::new();
    for f in fields {
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or("field without name")?;
        let t = f
            .get("type")
            .and_then(Value::as_str)
            .ok_or("nested types are not supported")?;
        let dt = match t {
            "string" => DataType::Utf8,
            "long" => DataType::Int64,
            "integer" => DataType::Int32,
            "short" => DataType::Int16,
            "byte" => DataType::Int8,
            "double" => DataType::Float64,
            "float" => DataType::Float32,
            "boolean" => DataType::Boolean,
            "date" => DataType::Date32,
            "timestamp_ntz" => DataType::Timestamp(TimeUnit::Microsecond, None),
            "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            d if d.starts_with("decimal(") => {
                let inner = d.trim_start_matches("decimal(").trim_end_matches(')');
                let (p, s) = inner.split_once(',').ok_or("bad decimal type")?;
                DataType::Decimal128(
                    p.trim().parse().map_err(|_| "bad decimal precision")?,
                    s.trim().parse().map_err(|_| "bad decimal scale")?,
                )
            }
            other => return Err(format!("unsupported Delta type {other}")),
        };
        let nullable = f.get("nullable").and_then(Value::as_bool).unwrap_or(true);
        out.push(Field::new(name, dt, nullable));
    }
    Ok(Schema::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_round_trips() {
        let s = Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Decimal128(18, 2), true),
            Field::new("d", DataType::Timestamp(TimeUnit::Microsecond, None), false),
            Field::new("e", DataType::Date32, true),
            Field::new("f", DataType::Boolean, true),
            Field::new("g", DataType::Float64, true),
            Field::new("h", DataType::Int32, true),
        ]);
        let text = schema_to_delta(&s).unwrap();
        assert!(text.contains("\"decimal(18,2)\"") && text.contains("timestamp_ntz"));
        assert_eq!(schema_from_delta(&text).unwrap(), s);
    }

    #[test]
    fn table_ids_are_uuid_shaped_and_stable() {
        let a = table_id(Path::new("/x/fact_sales"));
        assert_eq!(a.len(), 36);
        assert_eq!(a, table_id(Path::new("/y/fact_sales")));
        assert_ne!(a, table_id(Path::new("/x/dim_date")));
    }
}
