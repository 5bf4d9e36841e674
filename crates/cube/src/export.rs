//! Snapshot exports: the tables of one warehouse version as plain files for other tools
//! (BI tools reading Parquet, notebooks with polars / duckdb / pyarrow, Spark).
//!
//! Layout of an export folder:
//!
//! ```text
//! OUT/_manifest.json                                tables, schemas, rows, totals, source version
//! OUT/dim_customer/part-0.parquet                   unpartitioned tables
//! OUT/fact_sales/year=2025/month=03/part-0.parquet  facts, Hive-partitioned by calendar month
//! OUT/_SUCCESS                                      written last: the export is complete
//! ```
//!
//! Views of the cube model can be exported too (`--tables cube_sales,NAME` or `--views`):
//! the wide `cube_<fact>` views and the saved queries, each computed from the tables of the
//! exported version and written unpartitioned as `OUT/NAME/part-0.EXT`, marked `"view":
//! true` in the manifest.
//!
//! The partition columns (`year`, `month` of the facts, `as_of` of `customer_scores`)
//! are in the folder names only, as Hive partitioning has it; readers add them as
//! columns. (The warehouse keeps `as_of` inside its files too; the export leaves it out
//! of them, so readers do not see two `as_of` of different types.) Every table is read at the
//! table version the chosen warehouse version names, so the export is one consistent
//! snapshot even while loads commit. The export is built in a staging folder next to OUT
//! and renamed into place, so OUT never holds a partial export; a folder that is not
//! empty and not an earlier export is never overwritten.

use crate::model::CubeModel;
use crate::warehouse::Warehouse;
use crate::Cube;
use arrow::array::Array;
use arrow::datatypes::{DataType, Schema};
use crmcube_model::{Error, Result};
use crmcube_store::{AsOf, Snapshot};
use futures::StreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The warehouse's own Parquet files (zstd), copied.
    Parquet,
    /// CSV with a header line (RFC 4180 quoting, ISO dates and timestamps).
    Csv,
    /// Arrow IPC files (Feather v2), uncompressed.
    Arrow,
}

impl ExportFormat {
    /// File name extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
            ExportFormat::Arrow => "arrow",
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Tables to export (empty: every table whose name does not start with `_`).
    pub tables: Vec<String>,
    /// File format.
    pub format: ExportFormat,
    /// Warehouse version to export.
    pub as_of: AsOf,
    /// The cube model whose views may be exported: the wide `cube_<fact>` views and the
    /// saved queries, named in `tables` like tables.
    pub model: Option<CubeModel>,
    /// Export every view of `model` as well.
    pub all_views: bool,
}

/// One column of an exported table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportedColumn {
    /// Column name.
    pub name: String,
    /// Arrow data type, as Arrow prints it (`Int64`, `Decimal128(18, 2)`, `Utf8`, …).
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether the column may hold nulls.
    pub nullable: bool,
}

/// One exported file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportedFile {
    /// Path relative to the export folder, `/`-separated.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// One exported table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportedTable {
    /// Table name (also its folder).
    pub name: String,
    /// Hive partition columns, in folder order (`year`, `month`), or none.
    pub partitioning: Vec<String>,
    /// Columns stored in the files (without the partition columns).
    pub schema: Vec<ExportedColumn>,
    /// Rows over all files.
    pub rows: u64,
    /// Sum of every numeric column over all rows, as text (exact for integers and
    /// decimals; floating-point sums may differ in the last digits between engines).
    /// Surrogate keys (`*_key`, hashes) are left out: their sums mean nothing. For a
    /// view with subtotal rows (see `subtotals`), the sums are over the detail rows
    /// only, as the subtotals would count every value again.
    pub totals: BTreeMap<String, Option<String>>,
    /// For a saved query with `totals: rollup | cube`: how its subtotal rows are marked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtotals: Option<Subtotals>,
    /// The table's own version in the warehouse (0 for a view).
    pub table_version: u64,
    /// A view of the cube model (a wide `cube_<fact>` view or a saved query), computed
    /// from the tables of the exported version.
    pub view: bool,
    /// The files.
    pub files: Vec<ExportedFile>,
}

/// The subtotal rows of an exported view: a row is a subtotal (or the grand total) when
/// one of `levels` holds `all_member`; the detail rows are the others.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Subtotals {
    /// The view's level columns.
    pub levels: Vec<String>,
    /// The member standing for "all members" in subtotal rows (`All`).
    pub all_member: String,
    /// How many rows are subtotals.
    pub rows: u64,
}

/// `_manifest.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Manifest {
    /// Version of this manifest layout.
    pub manifest_version: u32,
    /// The crmcube version that wrote it.
    pub crmcube_version: String,
    /// When the export was written (UTC, RFC 3339).
    pub created_at: String,
    /// The warehouse folder exported.
    pub warehouse: String,
    /// The warehouse version exported.
    pub source_version: u64,
    /// When that version was committed.
    pub source_committed_at: String,
    /// File format: parquet, csv or arrow.
    pub format: String,
    /// The tables.
    pub tables: Vec<ExportedTable>,
    /// Views of the model that `--views` could not make from this warehouse, each with
    /// the reason (e.g. a table written by `crmcube mine` is missing).
    pub views_left_out: Vec<String>,
}

/// Name of the marker written last.
pub const SUCCESS: &str = "_SUCCESS";
/// Name of the manifest.
pub const MANIFEST: &str = "_manifest.json";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Writes an export of `warehouse` into `out` and returns its manifest.
pub async fn export(warehouse: &Path, out: &Path, opts: &ExportOptions) -> Result<Manifest> {
    if !crmcube_store::is_warehouse(warehouse) {
        return Err(Error::Usage(format!(
            "{}: not a crmcube warehouse (no _crmcube_log with a version)",
            warehouse.display()
        )));
    }
    let snap = Snapshot::open(warehouse, opts.as_of)?;
    let views = model_views(opts.model.as_ref());
    let (names, view_names) = chosen_tables(&snap, &views, opts)?;
    check_target(out)?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let leaf = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Usage(format!("{}: not a folder name", out.display())))?;
    let staging = parent.join(format!(".{leaf}.export-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    let result = write_export(&snap, &names, &view_names, &staging, opts).await;
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    publish(&staging, out, &parent, &leaf)?;
    Ok(manifest)
}

/// The views a model offers: `cube_<fact>` for each fact, then the saved queries.
fn model_views(model: Option<&CubeModel>) -> Vec<String> {
    let Some(m) = model else { return Vec::new() };
    m.facts
        .iter()
        .map(|(f, _)| format!("cube_{f}"))
        .chain(m.queries.iter().map(|(q, _)| q.clone()))
        .collect()
}

/// The tables and views asked for; by default every public table (and every view with
/// `all_views`).
fn chosen_tables(
    snap: &Snapshot,
    views: &[String],
    opts: &ExportOptions,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut names = Vec::new();
    let mut view_names = Vec::new();
    if opts.tables.is_empty() {
        names = snap
            .tables
            .keys()
            .filter(|n| !n.starts_with('_'))
            .cloned()
            .collect();
    }
    for t in &opts.tables {
        if snap.tables.contains_key(t) {
            if !names.contains(t) {
                names.push(t.clone());
            }
        } else if views.contains(t) {
            if !view_names.contains(t) {
                view_names.push(t.clone());
            }
        } else {
            let mut known: Vec<String> = snap.tables.keys().cloned().collect();
            known.extend(views.iter().cloned());
            return Err(Error::Usage(format!(
                "--tables: warehouse version {} has no table `{t}` and the cube model no \
                 such view; there are {}",
                snap.commit.version,
                known.join(", ")
            )));
        }
    }
    if opts.all_views {
        for v in views {
            if !view_names.contains(v) {
                view_names.push(v.clone());
            }
        }
    }
    Ok((names, view_names))
}

/// OUT must be absent, an empty folder, or an earlier export (which is replaced).
fn check_target(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(Error::Usage(format!(
            "{}: exists and is not a folder",
            out.display()
        )));
    }
    let empty = std::fs::read_dir(out).map_err(io(out))?.next().is_none();
    if empty || out.join(MANIFEST).is_file() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{}: exists, is not empty and holds no earlier export ({MANIFEST}); \
         choose a new folder (an earlier export is replaced, anything else is left alone)",
        out.display()
    )))
}

/// Moves the finished staging folder to OUT (replacing an earlier export).
fn publish(staging: &Path, out: &Path, parent: &Path, leaf: &str) -> Result<()> {
    let old = parent.join(format!(".{leaf}.replaced-{}", std::process::id()));
    let had_old = out.exists();
    if had_old {
        std::fs::rename(out, &old).map_err(io(out))?;
    }
    if let Err(e) = std::fs::rename(staging, out) {
        if had_old {
            let _ = std::fs::rename(&old, out);
        }
        return Err(Error::io(out, e));
    }
    if had_old {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

async fn write_export(
    snap: &Snapshot,
    names: &[String],
    view_names: &[String],
    staging: &Path,
    opts: &ExportOptions,
) -> Result<Manifest> {
    let mut tables = Vec::new();
    let wh = Warehouse::from_snapshot(snap).await?;
    let mut view_names = view_names.to_vec();
    let mut views_left_out = Vec::new();
    if let (Some(model), false) = (&opts.model, view_names.is_empty()) {
        let mut cube = Cube::open(model.clone(), wh.context()).await?;
        cube.use_pre_aggregations(&wh).await?;
        let (_, skipped_views) = cube.register_views(wh.context()).await?;
        let (_, skipped_queries) = cube.register_saved_queries(wh.context()).await?;
        let mut kept = Vec::new();
        for v in view_names {
            let prefix = format!("{v}: ");
            match skipped_views
                .iter()
                .chain(&skipped_queries)
                .find(|s| s.starts_with(&prefix))
            {
                None => kept.push(v),
                Some(why) if opts.tables.contains(&v) => {
                    return Err(Error::Usage(format!(
                        "--tables: view `{v}` cannot be made from this warehouse ({})",
                        &why[prefix.len()..]
                    )));
                }
                Some(why) => views_left_out.push(why.clone()),
            }
        }
        view_names = kept;
    }
    for name in names {
        let t = &snap.tables[name];
        let mut by_partition: BTreeMap<String, Vec<&String>> = BTreeMap::new();
        for rel in t.files.keys() {
            let partition = rel.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            by_partition
                .entry(partition.to_string())
                .or_default()
                .push(rel);
        }
        let mut partitioning = Vec::new();
        let mut files = Vec::new();
        for (partition, rels) in &by_partition {
            let columns: Vec<String> = partition
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| s.split_once('=').map_or(s, |(k, _)| k).to_string())
                .collect();
            if partitioning.is_empty() {
                partitioning = columns;
            } else if partitioning != columns {
                return Err(Error::Data(format!(
                    "table `{name}`: files in folders partitioned by {} and by {}",
                    partitioning.join("/"),
                    columns.join("/")
                )));
            }
            let dir = staging.join(name).join(partition);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            for (i, rel) in rels.iter().enumerate() {
                let source = snap.dir.join(name).join(rel);
                let file_name = format!("part-{i}.{}", opts.format.extension());
                let target = dir.join(&file_name);
                let drop: Vec<String> = partitioning
                    .iter()
                    .filter(|c| t.schema.field_with_name(c).is_ok())
                    .cloned()
                    .collect();
                let rows = match write_file(&source, &target, opts.format, &t.schema, &drop)? {
                    Some(n) => n,
                    None => t.files[*rel].rows,
                };
                let bytes = std::fs::metadata(&target).map_err(io(&target))?.len();
                let mut path = format!("{name}/");
                if !partition.is_empty() {
                    path.push_str(partition);
                    path.push('/');
                }
                path.push_str(&file_name);
                files.push(ExportedFile { path, rows, bytes });
            }
        }
        if t.files.is_empty() {
            // An empty table still gets its folder and one empty file with the schema,
            // so readers find the table and its columns.
            let dir = staging.join(name);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let file_name = format!("part-0.{}", opts.format.extension());
            let target = dir.join(&file_name);
            write_empty(&target, opts.format, &t.schema)?;
            let bytes = std::fs::metadata(&target).map_err(io(&target))?.len();
            files.push(ExportedFile {
                path: format!("{name}/{file_name}"),
                rows: 0,
                bytes,
            });
        }
        let rows: u64 = files.iter().map(|f| f.rows).sum();
        if rows != t.rows() {
            return Err(Error::Data(format!(
                "table `{name}`: wrote {rows} rows but the warehouse log lists {}",
                t.rows()
            )));
        }
        let stored = Schema::new(
            t.schema
                .fields()
                .iter()
                .filter(|f| !partitioning.contains(f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        );
        tables.push(ExportedTable {
            name: name.clone(),
            partitioning,
            schema: columns(&stored),
            rows,
            totals: totals(&wh, name, &t.schema, None).await?,
            subtotals: None,
            table_version: t.version,
            view: false,
            files,
        });
    }
    for name in &view_names {
        let levels = subtotal_levels(opts.model.as_ref(), name)?;
        tables.push(write_view(&wh, name, staging, opts.format, levels).await?);
    }
    let manifest = Manifest {
        manifest_version: 1,
        crmcube_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        warehouse: snap.dir.display().to_string(),
        source_version: snap.commit.version,
        source_committed_at: snap.commit.committed_at.clone(),
        format: opts.format.extension().to_string(),
        tables,
        views_left_out,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::format(MANIFEST, e))?;
    write_synced(&staging.join(MANIFEST), &json)?;
    write_synced(&staging.join(SUCCESS), b"")?;
    Ok(manifest)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn is_numeric(t: &DataType) -> bool {
    t.is_integer()
        || t.is_floating()
        || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
}

/// The level columns of a saved query with subtotals (in its view's column names), or
/// None when the view has no subtotal rows.
fn subtotal_levels(model: Option<&CubeModel>, view: &str) -> Result<Option<Vec<String>>> {
    let Some(model) = model else { return Ok(None) };
    let Some((_, saved)) = model.queries.iter().find(|(q, _)| q == view) else {
        return Ok(None);
    };
    let q = saved.to_query(model)?;
    if q.totals == crate::query::Totals::None && q.grouping_sets.is_none() {
        return Ok(None);
    }
    Ok(Some(
        q.axis_levels()
            .iter()
            .map(|l| crate::saved::view_column(&l.to_string()))
            .collect(),
    ))
}

/// The SQL condition selecting the detail rows of a view with subtotals: no level column
/// holds the `All` member.
fn detail_rows(levels: &[String], schema: &Schema) -> String {
    let conds: Vec<String> = levels
        .iter()
        .filter(|l| schema.field_with_name(l).is_ok())
        .map(|l| {
            format!(
                "(CAST({} AS VARCHAR) IS DISTINCT FROM '{}')",
                crate::plan::ident(l),
                crate::plan::ALL
            )
        })
        .collect();
    if conds.is_empty() {
        "TRUE".to_string()
    } else {
        conds.join(" AND ")
    }
}

/// SUM of every numeric column except surrogate keys, as text; over the rows `filter`
/// selects, or all.
async fn totals(
    wh: &Warehouse,
    table: &str,
    schema: &Schema,
    filter: Option<&str>,
) -> Result<BTreeMap<String, Option<String>>> {
    let numeric: Vec<&String> = schema
        .fields()
        .iter()
        .filter(|f| is_numeric(f.data_type()) && !f.name().ends_with("_key"))
        .map(|f| f.name())
        .collect();
    let mut out = BTreeMap::new();
    if numeric.is_empty() {
        return Ok(out);
    }
    let sums: Vec<String> = numeric
        .iter()
        .map(|c| format!("SUM({})", crate::plan::ident(c)))
        .collect();
    let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
    let r = wh
        .sql(&format!(
            "SELECT {} FROM {}{filter}",
            sums.join(", "),
            crate::plan::ident(table)
        ))
        .await?;
    let batch =
        r.batches.iter().find(|b| b.num_rows() > 0).ok_or_else(|| {
            Error::Query(format!("table `{table}`: no row from the totals query"))
        })?;
    for (i, c) in numeric.iter().enumerate() {
        let col = batch.column(i);
        let value = if col.is_null(0) {
            None
        } else {
            let text =
                arrow::compute::cast(col, &DataType::Utf8).map_err(|e| Error::format(table, e))?;
            let text = text
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .map(|a| a.value(0).to_string());
            text
        };
        out.insert((*c).clone(), value);
    }
    Ok(out)
}

/// Writes a view of the cube model as one unpartitioned file, `NAME/part-0.EXT`.
async fn write_view(
    wh: &Warehouse,
    name: &str,
    staging: &Path,
    format: ExportFormat,
    subtotal_levels: Option<Vec<String>>,
) -> Result<ExportedTable> {
    let quoted = crate::plan::ident(name);
    let fail = |e: datafusion::error::DataFusionError| Error::Query(format!("view `{name}`: {e}"));
    let df = wh
        .context()
        .sql(&format!("SELECT * FROM {quoted}"))
        .await
        .map_err(fail)?;
    // View types (Utf8View, BinaryView) become the plain ones every reader knows.
    let plain = |t: &DataType| match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        other => other.clone(),
    };
    let schema = Schema::new(
        df.schema()
            .as_arrow()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_data_type(plain(f.data_type())))
            .collect::<Vec<_>>(),
    );
    let schema_ref = std::sync::Arc::new(schema.clone());
    let mut stream = df.execute_stream().await.map_err(fail)?;
    let dir = staging.join(name);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let file_name = format!("part-0.{}", format.extension());
    let target = dir.join(&file_name);
    let mut w = BatchWriter::new(&target, format, &schema)?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(fail)?;
        let columns = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Query(format!("view `{name}`: {e}")))?;
        let batch = arrow::record_batch::RecordBatch::try_new(schema_ref.clone(), columns)
            .map_err(|e| Error::Query(format!("view `{name}`: {e}")))?;
        rows += batch.num_rows() as u64;
        w.write(&batch)?;
    }
    w.finish()?;
    let bytes = std::fs::metadata(&target).map_err(io(&target))?.len();
    let (filter, subtotals) = match subtotal_levels {
        None => (None, None),
        Some(levels) => {
            let filter = detail_rows(&levels, &schema);
            let r = wh
                .sql(&format!(
                    "SELECT COUNT(*) FROM {quoted} WHERE NOT ({filter})"
                ))
                .await?;
            let subtotal_rows = r
                .batches
                .iter()
                .find(|b| b.num_rows() > 0)
                .and_then(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .map(|a| a.value(0) as u64)
                })
                .unwrap_or(0);
            let levels = levels
                .into_iter()
                .filter(|l| schema.field_with_name(l).is_ok())
                .collect();
            (
                Some(filter),
                Some(Subtotals {
                    levels,
                    all_member: crate::plan::ALL.to_string(),
                    rows: subtotal_rows,
                }),
            )
        }
    };
    Ok(ExportedTable {
        name: name.to_string(),
        partitioning: Vec::new(),
        schema: columns(&schema),
        rows,
        totals: totals(wh, name, &schema, filter.as_deref()).await?,
        subtotals,
        table_version: 0,
        view: true,
        files: vec![ExportedFile {
            path: format!("{name}/{file_name}"),
            rows,
            bytes,
        }],
    })
}

/// Writes record batches to one file of an export format.
struct BatchWriter {
    target: PathBuf,
    inner: FormatWriter,
}

enum FormatWriter {
    Parquet(parquet::arrow::ArrowWriter<std::fs::File>),
    Csv(arrow::csv::Writer<std::io::BufWriter<std::fs::File>>),
    Arrow(arrow::ipc::writer::FileWriter<std::io::BufWriter<std::fs::File>>),
}

impl BatchWriter {
    fn new(target: &Path, format: ExportFormat, schema: &Schema) -> Result<BatchWriter> {
        let out = std::fs::File::create(target).map_err(io(target))?;
        let fail = |e: String| Error::format(target.display(), e);
        let inner = match format {
            ExportFormat::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                    .build();
                FormatWriter::Parquet(
                    parquet::arrow::ArrowWriter::try_new(
                        out,
                        std::sync::Arc::new(schema.clone()),
                        Some(props),
                    )
                    .map_err(|e| fail(e.to_string()))?,
                )
            }
            ExportFormat::Csv => FormatWriter::Csv(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .with_timestamp_format("%Y-%m-%dT%H:%M:%S%.6f".to_string())
                    .build(std::io::BufWriter::with_capacity(1 << 20, out)),
            ),
            ExportFormat::Arrow => FormatWriter::Arrow(
                arrow::ipc::writer::FileWriter::try_new(
                    std::io::BufWriter::with_capacity(1 << 20, out),
                    schema,
                )
                .map_err(|e| fail(e.to_string()))?,
            ),
        };
        Ok(BatchWriter {
            target: target.to_path_buf(),
            inner,
        })
    }

    fn write(&mut self, batch: &arrow::record_batch::RecordBatch) -> Result<()> {
        let r = match &mut self.inner {
            FormatWriter::Parquet(w) => w.write(batch).map_err(|e| e.to_string()),
            FormatWriter::Csv(w) => w.write(batch).map_err(|e| e.to_string()),
            FormatWriter::Arrow(w) => w.write(batch).map_err(|e| e.to_string()),
        };
        r.map_err(|e| Error::format(self.target.display(), e))
    }

    fn finish(self) -> Result<()> {
        let r = match self.inner {
            FormatWriter::Parquet(w) => w.close().map(|_| ()).map_err(|e| e.to_string()),
            FormatWriter::Csv(w) => {
                let mut inner = w.into_inner();
                std::io::Write::flush(&mut inner).map_err(|e| e.to_string())
            }
            FormatWriter::Arrow(mut w) => w
                .finish()
                .and_then(|_| w.into_inner())
                .map_err(|e| e.to_string())
                .and_then(|mut inner| std::io::Write::flush(&mut inner).map_err(|e| e.to_string())),
        };
        r.map_err(|e| Error::format(self.target.display(), e))
    }
}

/// Writes one exported file from one warehouse file; returns the rows it converted
/// (None for a Parquet file copied as it is). Columns named in `drop` (partition
/// columns the warehouse also keeps inside its files) are left out, so each partition
/// column is in the folder names only, as Hive partitioning has it.
fn write_file(
    source: &Path,
    target: &Path,
    format: ExportFormat,
    schema: &Schema,
    drop: &[String],
) -> Result<Option<u64>> {
    if format == ExportFormat::Parquet && drop.is_empty() {
        std::fs::copy(source, target).map_err(io(source))?;
        return Ok(None);
    }
    let f = std::fs::File::open(source).map_err(io(source))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.with_batch_size(64 * 1024).build())
        .map_err(|e| Error::format(source.display(), e))?;
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| !drop.contains(schema.field(i).name()))
        .collect();
    let kept = schema
        .project(&keep)
        .map_err(|e| Error::format(source.display(), e))?;
    let mut w = BatchWriter::new(target, format, &kept)?;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| Error::format(source.display(), e))?;
        let batch = batch
            .project(&keep)
            .map_err(|e| Error::format(source.display(), e))?;
        rows += batch.num_rows() as u64;
        w.write(&batch)?;
    }
    w.finish()?;
    Ok(Some(rows))
}

/// An empty file carrying only the schema.
fn write_empty(target: &Path, format: ExportFormat, schema: &Schema) -> Result<()> {
    BatchWriter::new(target, format, schema)?.finish()
}

/// The manifest's description of a schema's columns.
fn columns(schema: &arrow::datatypes::Schema) -> Vec<ExportedColumn> {
    schema
        .fields()
        .iter()
        .map(|f| ExportedColumn {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect()
}
