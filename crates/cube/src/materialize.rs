//! `crmcube cube materialize`: builds the pre-aggregation tables of a model in a
//! warehouse and publishes them, with their lineage in `_preagg_state`, as one new
//! warehouse version.
//!
//! A pre-aggregation is rebuilt
//! - **not at all** when every table it reads is at the version it was built from;
//! - **incrementally** when it is partitioned (e.g. by month): a partition's aggregates
//!   can only change through fact rows added or removed — the fact table's Delta log
//!   says which data files were added and removed since the version it was built from —
//!   or through fact rows whose dimension rows changed in a column the pre-aggregation
//!   reads — found by comparing those columns in the two versions of each changed
//!   dimension table (a nightly load adds days to `dim_date` and customers to
//!   `dim_customer`, and closes old customer versions, without changing what existing
//!   fact rows aggregate to). The partitions those rows were in and are in now are
//!   recomputed from the whole current fact table and replaced; the others are kept;
//! - **fully** on its first build, with `--full`, when its definition changed, when it is
//!   not partitioned, when a lookup table it reads changed, or when the changes cannot be
//!   analysed (e.g. files of the version it was built from were vacuumed).

use crate::engine::run_sql;
use crate::model::CubeModel;
use crate::plan::ident;
use crate::preagg::{self, BuildRecord, Layout, STATE_TABLE};
use crate::warehouse::{register_files, Warehouse};
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use crmcube_model::{Error, Result};
use crmcube_store::{delta, DataFile, HashingWriter, Mode, Snapshot, Writer};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::prelude::SessionContext;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct MaterializeOptions {
    /// Only these pre-aggregations (default: all the model declares).
    pub names: Vec<String>,
    /// Rebuild everything from the base facts, even what is up to date.
    pub full: bool,
}

/// What happened to one pre-aggregation.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// Name in the model.
    pub name: String,
    /// Its warehouse table.
    pub table: String,
    /// `full`, `incremental`, `up to date` or `skipped`.
    pub build: String,
    /// Why.
    pub reason: String,
    /// Rows in the table afterwards.
    pub rows: u64,
    /// The partition level, if partitioned (e.g. `time.month`).
    pub partition_by: Option<String>,
    /// Partition members recomputed (every member for a full build).
    pub partitions_rebuilt: Vec<String>,
    /// Seconds spent.
    pub seconds: f64,
}

/// The result of `materialize`.
#[derive(Debug, Clone, Serialize)]
pub struct MaterializeReport {
    /// Warehouse folder.
    pub warehouse: String,
    /// The warehouse version the pre-aggregations were built from.
    pub built_from_version: u64,
    /// The new warehouse version, or None when nothing changed.
    pub version: Option<u64>,
    /// One entry per pre-aggregation considered.
    pub pre_aggregations: Vec<BuildReport>,
    /// Seconds spent in total.
    pub seconds: f64,
}

/// How one pre-aggregation is to be built.
enum Plan {
    Skip(String),
    UpToDate,
    Full(String),
    Incremental {
        members: Vec<String>,
        reason: String,
    },
}

/// Builds the pre-aggregations of `model` in the warehouse `dir` (all, or those named)
/// and publishes them as one new warehouse version.
pub async fn materialize(
    dir: &Path,
    model: &CubeModel,
    opts: &MaterializeOptions,
) -> Result<MaterializeReport> {
    let started = Instant::now();
    if model.pre_aggregations.is_empty() {
        return Err(Error::Usage(format!(
            "{}: the model declares no pre-aggregations (add a `pre_aggregations:` section, see docs/cube.md)",
            model.origin
        )));
    }
    for n in &opts.names {
        if model.pre_aggregation(n).is_none() {
            return Err(Error::Usage(format!(
                "unknown pre-aggregation `{n}`; the model declares {}",
                crate::model::names(&model.pre_aggregations)
            )));
        }
    }
    if !crmcube_store::is_warehouse(dir) {
        return Err(Error::Usage(format!(
            "{}: not a crmcube warehouse; build one with `crmcube ingest` first",
            dir.display()
        )));
    }
    let mut writer = Writer::begin(dir, "cube materialize")?;
    let base = writer
        .base()
        .cloned()
        .ok_or_else(|| Error::Usage(format!("{}: no warehouse version", dir.display())))?;
    let wh = Warehouse::from_snapshot(&base).await?;
    let ctx = wh.context();
    let state = preagg::read_state(ctx).await?;
    let mut new_state: Vec<BuildRecord> = state.clone();
    let mut reports = Vec::new();
    let mut changed = false;
    for (name, _) in &model.pre_aggregations {
        if !opts.names.is_empty() && !opts.names.contains(name) {
            continue;
        }
        let t0 = Instant::now();
        let layout = Layout::new(model, name)?;
        let record = state.iter().find(|r| &r.name == name);
        let plan = plan(ctx, model, &layout, &base, record, opts.full).await?;
        let partition_by = layout.partition_level().map(|p| p.level.to_string());
        let old_rows = base.tables.get(&layout.table).map_or(0, |t| t.rows());
        let mut report = BuildReport {
            name: name.clone(),
            table: layout.table.clone(),
            build: String::new(),
            reason: String::new(),
            rows: old_rows,
            partition_by,
            partitions_rebuilt: vec![],
            seconds: 0.0,
        };
        let (build, reason, members) = match plan {
            Plan::Skip(why) => {
                report.build = "skipped".into();
                report.reason = why;
                reports.push(report);
                continue;
            }
            Plan::UpToDate => {
                report.build = "up to date".into();
                report.reason = "every table it reads is at the version it was built from".into();
                report.seconds = t0.elapsed().as_secs_f64();
                reports.push(report);
                continue;
            }
            Plan::Full(why) => ("full", why, None),
            Plan::Incremental { members, reason } => ("incremental", reason, Some(members)),
        };
        let rebuilt = build_table(ctx, model, &layout, &mut writer, members.as_deref()).await?;
        changed = true;
        report.build = build.into();
        report.reason = reason;
        report.partitions_rebuilt = rebuilt;
        let record = BuildRecord {
            name: name.clone(),
            fingerprint: layout.fingerprint(model)?,
            sources: layout
                .source_tables(model)
                .into_iter()
                .filter_map(|t| base.tables.get(&t).map(|s| (t, s.version)))
                .collect(),
            fact: layout.fact.clone(),
            built_from_version: base.commit.version as i64,
            built_at: chrono::Utc::now().to_rfc3339(),
            build: build.into(),
        };
        match new_state.iter_mut().find(|r| &r.name == name) {
            Some(r) => *r = record,
            None => new_state.push(record),
        }
        report.seconds = t0.elapsed().as_secs_f64();
        reports.push(report);
    }
    let mut version = None;
    if changed {
        new_state.sort_by(|a, b| a.name.cmp(&b.name));
        let batch = state_batch(&new_state)?;
        let path = writer.new_file_path(None, 0);
        let file = write_file(&dir.join(STATE_TABLE), &path, batch.schema(), &[batch])?;
        writer.stage(STATE_TABLE, state_schema(), vec![file], Mode::Replace);
        let pending = writer.pending()?;
        for r in &mut reports {
            if r.build == "full" || r.build == "incremental" {
                r.rows = pending.tables.get(&r.table).map_or(0, |t| t.rows());
            }
        }
        let info = commit_info(&reports)?;
        version = writer.commit(info)?.map(|c| c.version);
    }
    Ok(MaterializeReport {
        warehouse: dir.display().to_string(),
        built_from_version: base.commit.version,
        version,
        pre_aggregations: reports,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The warehouse commit's `info`: what was built. (Converted through serde's data model
/// into whatever value type the store's commit takes.)
fn commit_info<T: serde::de::DeserializeOwned>(reports: &[BuildReport]) -> Result<T> {
    #[derive(Serialize)]
    struct Info<'a> {
        pre_aggregations: Vec<&'a BuildReport>,
    }
    let built: Vec<&BuildReport> = reports
        .iter()
        .filter(|r| r.build == "full" || r.build == "incremental")
        .collect();
    let v = serde_yaml::to_value(Info {
        pre_aggregations: built,
    })
    .map_err(|e| Error::format("commit info", e))?;
    T::deserialize(v).map_err(|e| Error::format("commit info", e))
}

/// Decides how to bring one pre-aggregation up to date with the version `base`.
async fn plan(
    ctx: &SessionContext,
    model: &CubeModel,
    layout: &Layout,
    base: &Snapshot,
    record: Option<&BuildRecord>,
    full: bool,
) -> Result<Plan> {
    let sources = layout.source_tables(model);
    if let Some(t) = sources.iter().find(|t| !base.tables.contains_key(*t)) {
        return Ok(Plan::Skip(format!("table {t} is not in this warehouse")));
    }
    if full {
        return Ok(Plan::Full("--full".into()));
    }
    let Some(record) = record else {
        return Ok(Plan::Full("first build".into()));
    };
    if !base.tables.contains_key(&layout.table) {
        return Ok(Plan::Full(format!("table {} is missing", layout.table)));
    }
    if record.fingerprint != layout.fingerprint(model)? {
        return Ok(Plan::Full("its definition in the model changed".into()));
    }
    let version = |t: &str| base.tables.get(t).map(|s| s.version);
    let changed: Vec<String> = sources
        .iter()
        .filter(|t| record.sources.get(*t).copied() != version(t))
        .cloned()
        .collect();
    if changed.is_empty() {
        return Ok(Plan::UpToDate);
    }
    let what = changed
        .iter()
        .map(|t| {
            format!(
                "{t} changed (version {} -> {})",
                record
                    .sources
                    .get(t)
                    .map_or("none".to_string(), |v| v.to_string()),
                version(t).map_or("none".to_string(), |v| v.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    if layout.partition.is_none() {
        return Ok(Plan::Full(format!("{what}; not partitioned")));
    }
    let mut temp = Vec::new();
    let found = affected_members(ctx, model, layout, base, record, &changed, &mut temp).await;
    for t in temp {
        ctx.deregister_table(t.as_str())
            .map_err(|e| Error::Query(e.to_string()))?;
    }
    Ok(match found {
        Ok(Ok((members, detail))) => Plan::Incremental {
            members,
            reason: format!("{what}: {detail}"),
        },
        Ok(Err(why)) => Plan::Full(format!("{what}; {why}")),
        // The analysis is an optimisation: when it fails, rebuild everything.
        Err(e) => Plan::Full(format!("{what}; the changes could not be analysed ({e})")),
    })
}

/// The partition members whose aggregates may differ between the versions the
/// pre-aggregation was built from and `base`, with a summary of the changes; or why
/// only a full rebuild is safe.
///
/// A partition's aggregates change only through fact rows added or removed (the fact
/// table's data files added and removed since, per its Delta log) or fact rows whose
/// dimension rows changed in a column the pre-aggregation reads (found by comparing
/// those columns of the two versions of each changed dimension table). For each such
/// row, the partition it belonged to and the one it belongs to now are rebuilt.
async fn affected_members(
    ctx: &SessionContext,
    model: &CubeModel,
    layout: &Layout,
    base: &Snapshot,
    record: &BuildRecord,
    changed: &[String],
    temp: &mut Vec<String>,
) -> Result<std::result::Result<(Vec<String>, String), String>> {
    let fact_table = model
        .fact(&layout.fact)
        .map(|f| f.table.clone())
        .unwrap_or_default();
    let dims = layout.dimensions(model);
    let mut old_tables: BTreeMap<String, String> = BTreeMap::new();
    let mut affected: Vec<(String, String)> = Vec::new();
    // Fact files (added, removed, all of the old version) when the fact changed.
    let mut fact_files: Option<[Vec<PathBuf>; 3]> = None;
    let mut details = Vec::new();
    for (i, t) in changed.iter().enumerate() {
        let Some(was) = record.sources.get(t).copied() else {
            return Ok(Err(format!("it was not built from {t}")));
        };
        let Some(new) = base.tables.get(t) else {
            return Ok(Err(format!("{t} is missing")));
        };
        let dir = base.dir.join(t);
        let old = match delta::snapshot(&dir, was) {
            Ok(o) => o,
            Err(e) => return Ok(Err(format!("version {was} of {t} cannot be read ({e})"))),
        };
        if let Some(gone) = old.files.keys().find(|p| !dir.join(p).exists()) {
            return Ok(Err(format!(
                "{t}/{gone} of version {was} was vacuumed, so what changed is unknown"
            )));
        }
        if *t == fact_table {
            if old.schema != new.schema {
                return Ok(Err(format!("the columns of {t} changed")));
            }
            let removed: Vec<&String> = old
                .files
                .keys()
                .filter(|p| !new.files.contains_key(*p))
                .collect();
            let added: Vec<&String> = new
                .files
                .keys()
                .filter(|p| !old.files.contains_key(*p))
                .collect();
            details.push(format!(
                "{} file(s) of {t} added, {} removed",
                added.len(),
                removed.len()
            ));
            let paths = |v: &[&String]| v.iter().map(|p| dir.join(p)).collect::<Vec<_>>();
            let all: Vec<&String> = old.files.keys().collect();
            fact_files = Some([paths(&added), paths(&removed), paths(&all)]);
            continue;
        }
        let users: Vec<&String> = dims
            .iter()
            .filter(|d| model.dimension(d).is_some_and(|x| &x.table == t))
            .collect();
        if users.is_empty() {
            return Ok(Err(format!("lookup table {t} changed")));
        }
        let old_name = format!("__preagg_old_{i}");
        let old_paths: Vec<PathBuf> = old.files.keys().map(|p| dir.join(p)).collect();
        register_files(ctx, &old_name, &old_paths, old.schema.clone()).await?;
        temp.push(old_name.clone());
        old_tables.insert(t.clone(), old_name.clone());
        for d in users {
            let key = model
                .dimension(d)
                .map(|x| x.key.clone())
                .unwrap_or_default();
            let cols = layout.dimension_columns(model, d);
            for c in &cols {
                if old.schema.index_of(c).is_err() || new.schema.index_of(c).is_err() {
                    return Ok(Err(format!("column {c} of {t} is new or gone")));
                }
            }
            let list = cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
            let (tn, to) = (ident(t), ident(&old_name));
            let sql = format!(
                "SELECT {k} AS k FROM (SELECT {list} FROM {tn} EXCEPT SELECT {list} FROM {to}) AS a\n\
                 UNION\n\
                 SELECT {k} AS k FROM (SELECT {list} FROM {to} EXCEPT SELECT {list} FROM {tn}) AS b",
                k = ident(&key)
            );
            let keys = run_sql(ctx, &sql).await?;
            let n = keys.num_rows();
            details.push(format!("{n} key(s) of {t} changed"));
            if n == 0 {
                continue;
            }
            let keys_name = format!("__preagg_keys_{i}_{}", affected.len());
            let table = datafusion::datasource::MemTable::try_new(keys.schema, vec![keys.batches])
                .map_err(|e| Error::Query(e.to_string()))?;
            ctx.register_table(keys_name.as_str(), Arc::new(table))
                .map_err(|e| Error::Query(e.to_string()))?;
            temp.push(keys_name.clone());
            affected.push((d.clone(), keys_name));
        }
    }
    // The members rows were in (old fact and dimension tables) and are in now (current
    // ones): of the fact rows added and removed, and of the rows whose dimension rows
    // changed.
    let current: BTreeMap<String, String> = BTreeMap::new();
    let old_dims = old_tables.clone();
    let mut sqls = Vec::new();
    if let Some([added, removed, all]) = &fact_files {
        let schema = base
            .tables
            .get(&fact_table)
            .map(|t| t.schema.clone())
            .ok_or_else(|| Error::Usage(format!("{fact_table} is missing")))?;
        for (name, files, side) in [
            ("__preagg_added", added, &current),
            ("__preagg_removed", removed, &old_dims),
        ] {
            if files.is_empty() {
                continue;
            }
            register_files(ctx, name, files, schema.clone()).await?;
            temp.push(name.to_string());
            let mut tables = side.clone();
            tables.insert(fact_table.clone(), name.to_string());
            sqls.extend(layout.members_sql(model, &tables, &[])?);
        }
        if !affected.is_empty() {
            let name = "__preagg_old_fact";
            register_files(ctx, name, all, schema).await?;
            temp.push(name.to_string());
            old_tables.insert(fact_table.clone(), name.to_string());
        }
    }
    if !affected.is_empty() {
        sqls.extend(layout.members_sql(model, &current, &affected)?);
        sqls.extend(layout.members_sql(model, &old_tables, &affected)?);
    }
    let mut members = Vec::new();
    for sql in sqls {
        members.extend(strings(&run_sql(ctx, &sql).await?.batches, 0)?);
    }
    members.sort();
    members.dedup();
    Ok(Ok((members, details.join(", "))))
}

/// Column `i` of the batches as text.
fn strings(batches: &[RecordBatch], i: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        let a = arrow::compute::cast(b.column(i), &DataType::Utf8)
            .map_err(|e| Error::Query(e.to_string()))?;
        let s = a
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::Query("expected text".into()))?;
        out.extend(s.iter().map(|v| v.unwrap_or_default().to_string()));
    }
    Ok(out)
}

/// Computes the table (or, with `members`, those partitions), writes its files and
/// stages them. Returns the partition members written.
async fn build_table(
    ctx: &SessionContext,
    model: &CubeModel,
    layout: &Layout,
    writer: &mut Writer,
    members: Option<&[String]>,
) -> Result<Vec<String>> {
    let sql = layout.build_sql(model, members, None)?;
    let result = run_sql(ctx, &sql).await?;
    let schema = storable_schema(&result.schema)?;
    let batches: Vec<RecordBatch> = result
        .batches
        .iter()
        .map(|b| conform(b, &schema))
        .collect::<Result<_>>()?;
    let all = arrow::compute::concat_batches(&schema, &batches)
        .map_err(|e| Error::format(&layout.table, e))?;
    let table_dir = writer.dir().join(&layout.table);
    let Some(p) = layout.partition_level() else {
        let path = writer.new_file_path(None, 0);
        let file = write_file(&table_dir, &path, schema.clone(), &[all])?;
        writer.stage(&layout.table, schema, vec![file], Mode::Replace);
        return Ok(vec![]);
    };
    let col = schema
        .index_of(&p.column)
        .map_err(|e| Error::format(&layout.table, e))?;
    let labels = strings(std::slice::from_ref(&all), col)?;
    let incremental = members.is_some();
    let members: Vec<String> = match members {
        Some(m) => m.to_vec(),
        None => {
            let mut m = labels.clone();
            m.sort();
            m.dedup();
            m
        }
    };
    let mut files = Vec::new();
    for (n, member) in members.iter().enumerate() {
        // A member whose rows are all gone gets an empty file, which replaces its
        // partition.
        let mask: arrow::array::BooleanArray = labels.iter().map(|l| Some(l == member)).collect();
        let part = arrow::compute::filter_record_batch(&all, &mask)
            .map_err(|e| Error::format(&layout.table, e))?;
        let folder = format!("{}={}", p.level.level, folder_name(member));
        let path = writer.new_file_path(Some(&folder), n);
        files.push(write_file(&table_dir, &path, schema.clone(), &[part])?);
    }
    let mode = if incremental {
        Mode::ReplacePartitions
    } else {
        Mode::Replace
    };
    writer.stage(&layout.table, schema, files, mode);
    Ok(members)
}

/// A partition member as a folder name: characters other than letters, digits, `.`,
/// `_` and `-` are percent-encoded.
fn folder_name(member: &str) -> String {
    let mut out = String::new();
    for b in member.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() || out.starts_with('.') {
        out.insert_str(0, "%00");
    }
    out
}

/// The stored type of a result column: text as Utf8, integers as Int64, floats as
/// Float64; decimals, booleans, dates and timestamps as they are. Every column nullable.
fn storable_schema(schema: &Schema) -> Result<SchemaRef> {
    let mut fields = Vec::new();
    for f in schema.fields() {
        let t = match f.data_type() {
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => DataType::Int64,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => DataType::Float64,
            t @ (DataType::Decimal128(_, _)
            | DataType::Boolean
            | DataType::Date32
            | DataType::Timestamp(_, _)) => t.clone(),
            DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::Utf8View) => {
                DataType::Utf8
            }
            other => {
                return Err(Error::format(
                    f.name(),
                    format!("a pre-aggregation cannot store values of type {other}"),
                ))
            }
        };
        fields.push(Field::new(f.name(), t, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// A result batch in the stored types.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let cols: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            arrow::compute::cast(c, f.data_type()).map_err(|e| Error::format(f.name(), e))
        })
        .collect::<Result<_>>()?;
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::format("pre-aggregation", e))
}

/// Writes one Parquet file (zstd) at `rel` under `table_dir`; returns it as a data file.
fn write_file(
    table_dir: &Path,
    rel: &str,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<DataFile> {
    let path = table_dir.join(rel);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("crmcube {}", env!("CARGO_PKG_VERSION")))
        .build();
    let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    let out = HashingWriter::new(std::io::BufWriter::new(file));
    let mut w = ArrowWriter::try_new(out, schema, Some(props))
        .map_err(|e| Error::format(path.display(), e))?;
    let mut rows = 0u64;
    for b in batches {
        rows += b.num_rows() as u64;
        w.write(b).map_err(|e| Error::format(path.display(), e))?;
    }
    let out = w
        .into_inner()
        .map_err(|e| Error::format(path.display(), e))?;
    let (buf, sha256, size) = out.finish();
    let f = buf
        .into_inner()
        .map_err(|e| Error::io(&path, e.into_error()))?;
    f.sync_all().map_err(|e| Error::io(&path, e))?;
    Ok(DataFile {
        path: rel.to_string(),
        size,
        rows,
        sha256,
        modified_ms: chrono::Utc::now().timestamp_millis(),
    })
}

/// Columns of `_preagg_state`.
fn state_schema() -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        text("name"),
        text("fact"),
        text("fingerprint"),
        text("sources"),
        Field::new("built_from_version", DataType::Int64, true),
        text("built_at"),
        text("build"),
    ]))
}

/// `_preagg_state` rows.
fn state_batch(records: &[BuildRecord]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&BuildRecord) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(records.iter().map(f)))
    };
    let cols: Vec<ArrayRef> = vec![
        text(&|r| r.name.clone()),
        text(&|r| r.fact.clone()),
        text(&|r| r.fingerprint.clone()),
        text(&|r| preagg::sources_text(&r.sources)),
        Arc::new(Int64Array::from_iter_values(
            records.iter().map(|r| r.built_from_version),
        )),
        text(&|r| r.built_at.clone()),
        text(&|r| r.build.clone()),
    ];
    RecordBatch::try_new(state_schema(), cols).map_err(|e| Error::format(STATE_TABLE, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_are_safe() {
        assert_eq!(folder_name("2025-03"), "2025-03");
        assert_eq!(folder_name("Unknown"), "Unknown");
        assert_eq!(folder_name("a/b c=d"), "a%2Fb%20c%3Dd");
        assert_eq!(folder_name(""), "%00");
        assert_eq!(folder_name(".."), "%00..");
    }

    #[test]
    fn stored_types_are_plain() {
        let s = Schema::new(vec![
            Field::new("a", DataType::Utf8View, false),
            Field::new("b", DataType::Int32, false),
            Field::new("c", DataType::Decimal128(28, 2), true),
        ]);
        let t = storable_schema(&s).unwrap();
        assert_eq!(t.field(0).data_type(), &DataType::Utf8);
        assert_eq!(t.field(1).data_type(), &DataType::Int64);
        assert_eq!(t.field(2).data_type(), &DataType::Decimal128(28, 2));
        assert!(t.fields().iter().all(|f| f.is_nullable()));
    }
}
