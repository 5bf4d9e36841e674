//! What an incremental load takes from the warehouse it adds to.
//!
//! - Dimension entities (regions, products, campaigns, customers) are kept as validated
//!   source rows in internal tables `_src_<entity>` (the contract's columns plus
//!   `_file` and `_line`, where each row came from). A load unions them with its new
//!   rows — a new row replaces an old one with the same primary key — and rebuilds the
//!   dimensions from the union, so customer history (SCD2) is the same whether versions
//!   arrived in one load or in many.
//! - Facts are built from the new rows only and merged into the month partitions they
//!   touch: an existing row whose natural key arrives again is replaced; partitions no
//!   new row falls into are not read or rewritten.

use crate::entity::StagedEntity;
use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::compute::{concat_batches, filter_record_batch};
use crmcube_model::keys::FastSet;
use crmcube_model::{EntitySpec, Error, Result};
use crmcube_store::Snapshot;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::PathBuf;
use std::sync::Arc;

/// Name of the source-state table of an entity.
pub fn source_table(entity: &str) -> String {
    format!("_src_{entity}")
}

/// Reads Parquet files into one batch of `schema`.
pub fn read_files(paths: &[PathBuf], schema: &arrow::datatypes::SchemaRef) -> Result<RecordBatch> {
    let mut batches = Vec::new();
    for p in paths {
        let f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.with_batch_size(64 * 1024).build())
            .map_err(|e| Error::format(p.display(), e))?;
        for b in reader {
            let b = b.map_err(|e| Error::format(p.display(), e))?;
            batches.push(
                RecordBatch::try_new(schema.clone(), b.columns().to_vec())
                    .map_err(|e| Error::format(p.display(), e))?,
            );
        }
    }
    concat_batches(schema, &batches).map_err(|e| Error::format("warehouse state", e))
}

/// The rows of a source-state table, if the warehouse has it.
pub fn previous_source(
    base: Option<&Snapshot>,
    entity: &str,
    spec: &EntitySpec,
) -> Result<Option<RecordBatch>> {
    let Some(base) = base else { return Ok(None) };
    let name = source_table(entity);
    if !base.tables.contains_key(&name) {
        return Ok(None);
    }
    let schema = Arc::new(source_schema(spec));
    Ok(Some(read_files(&base.file_paths(&name), &schema)?))
}

fn source_schema(spec: &EntitySpec) -> arrow::datatypes::Schema {
    use arrow::datatypes::{DataType, Field};
    let mut fields: Vec<Field> = spec
        .arrow_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("_file", DataType::Utf8, false));
    fields.push(Field::new("_line", DataType::Int64, false));
    arrow::datatypes::Schema::new(fields)
}

/// The source-state rows of a staged entity (its batch plus `_file` and `_line`).
pub fn source_batch(spec: &EntitySpec, st: &StagedEntity) -> Result<RecordBatch> {
    let files: Vec<String> = st.files.iter().map(|p| p.display().to_string()).collect();
    let file: StringArray = st
        .origins
        .iter()
        .map(|(f, _)| Some(files.get(f as usize).map_or("", String::as_str)))
        .collect();
    let line = Int64Array::from_iter_values(st.origins.iter().map(|(_, l)| l as i64));
    let mut cols: Vec<ArrayRef> = st.batch.columns().to_vec();
    cols.push(Arc::new(file));
    cols.push(Arc::new(line));
    RecordBatch::try_new(Arc::new(source_schema(spec)), cols)
        .map_err(|e| Error::format("source state", e))
}

/// Text key of each row over `cols` (values joined by a separator no value contains).
fn row_keys(batch: &RecordBatch, cols: &[String], what: &str) -> Result<Vec<String>> {
    let arrays: Vec<&ArrayRef> = cols
        .iter()
        .map(|c| {
            batch
                .column_by_name(c)
                .ok_or_else(|| Error::format(what, format!("no column {c}")))
        })
        .collect::<Result<_>>()?;
    Ok((0..batch.num_rows())
        .map(|i| {
            let mut k = String::new();
            for (j, a) in arrays.iter().enumerate() {
                if j > 0 {
                    k.push('\u{1f}');
                }
                k.push_str(&crate::entity::value_text(a.as_ref(), i));
            }
            k
        })
        .collect())
}

/// Adds the previous source rows of an entity to a staged entity: a previous row whose
/// primary key arrives again is dropped (the new row replaces it).
pub fn union_previous(
    spec: &EntitySpec,
    mut st: StagedEntity,
    previous: Option<RecordBatch>,
) -> Result<StagedEntity> {
    let Some(prev) = previous.filter(|p| p.num_rows() > 0) else {
        return Ok(st);
    };
    let what = "source state";
    let keep: Vec<bool> = if spec.primary_key.is_empty() || st.batch.num_rows() == 0 {
        vec![true; prev.num_rows()]
    } else {
        let new_keys: FastSet<String> = row_keys(&st.batch, &spec.primary_key, what)?
            .into_iter()
            .collect();
        row_keys(&prev, &spec.primary_key, what)?
            .iter()
            .map(|k| !new_keys.contains(k))
            .collect()
    };
    let prev = filter_record_batch(&prev, &keep.into()).map_err(|e| Error::format(what, e))?;
    let n = spec.columns.len();
    let files = prev.column(n).as_string::<i32>();
    let lines = prev
        .column(n + 1)
        .as_primitive::<arrow::datatypes::Int64Type>();
    let mut index: std::collections::HashMap<String, u32> = st
        .files
        .iter()
        .enumerate()
        .map(|(i, p)| (p.display().to_string(), i as u32))
        .collect();
    let mut origins = crate::entity::Origins::default();
    for i in 0..prev.num_rows() {
        let f = files.value(i);
        let idx = match index.get(f) {
            Some(&i) => i,
            None => {
                let i = st.files.len() as u32;
                st.files.push(PathBuf::from(f));
                index.insert(f.to_string(), i);
                i
            }
        };
        origins.push(idx, lines.value(i) as u64);
    }
    origins.append(&st.origins);
    let old = prev
        .project(&(0..n).collect::<Vec<_>>())
        .map_err(|e| Error::format(what, e))?;
    let old = RecordBatch::try_new(st.batch.schema(), old.columns().to_vec())
        .map_err(|e| Error::format(what, e))?;
    st.batch = concat_batches(&st.batch.schema(), &[old, st.batch.clone()])
        .map_err(|e| Error::format(what, e))?;
    st.origins = origins;
    Ok(st)
}

/// Most files a fact partition may hold after a load; beyond it the partition is
/// rewritten as one file (compaction), so daily appends do not pile up small files.
pub const MAX_FILES_PER_PARTITION: usize = 16;

/// New fact rows merged into the live table: the rows to write and the live files
/// (relative to the table folder) they replace.
pub struct FactMerge {
    /// Rows to write, in parts of one schema: the new rows, then the surviving rows of
    /// the replaced files.
    pub batches: Vec<RecordBatch>,
    /// Live files the commit removes.
    pub replaced: Vec<String>,
}

/// Merges new fact rows into the live table, copy-on-write by file: in the partitions
/// the new rows touch, only the live files holding a natural key that arrives again
/// are rewritten (without those rows); the other files stay as they are, and the new
/// rows go to new files. Reading a file's natural-key columns decides whether it is
/// touched. A partition that would hold more than `MAX_FILES_PER_PARTITION` files is
/// rewritten whole.
pub fn merge_fact(
    base: Option<&Snapshot>,
    table: &str,
    def: &crmcube_model::TableDef,
    new: Vec<RecordBatch>,
) -> Result<FactMerge> {
    let unchanged = |batches| FactMerge {
        batches,
        replaced: Vec::new(),
    };
    let Some(snap) = base.and_then(|b| b.tables.get(table)) else {
        return Ok(unchanged(new));
    };
    let Some(part_col) = def.partition_by.as_deref() else {
        return Ok(unchanged(new));
    };
    let mut touched: FastSet<String> = FastSet::default();
    for part in &new {
        touched.extend(
            crate::write::row_partitions(part, part_col)?
                .into_iter()
                .flatten()
                .map(crate::write::partition_folder),
        );
    }
    let dir = base.map(|b| b.dir.join(table)).unwrap_or_default();
    let folder = |p: &str| p.rsplit_once('/').map_or("", |(f, _)| f).to_string();
    let candidates: Vec<&String> = snap
        .files
        .keys()
        .filter(|p| touched.contains(&folder(p)))
        .collect();
    if candidates.is_empty() {
        return Ok(unchanged(new));
    }
    let mut replaced: Vec<String> = Vec::new();
    let mut new_keys: FastSet<String> = FastSet::default();
    if !def.natural_key.is_empty() {
        for part in &new {
            new_keys.extend(row_keys(part, &def.natural_key, table)?);
        }
    }
    let schema = new
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| def.arrow_schema());
    if !new_keys.is_empty() {
        let idx: Vec<usize> = def
            .natural_key
            .iter()
            .map(|c| schema.index_of(c).map_err(|e| Error::format(table, e)))
            .collect::<Result<_>>()?;
        for rel in &candidates {
            let keys = read_projected(&dir.join(rel), &idx)?;
            if row_keys(&keys, &def.natural_key, table)?
                .iter()
                .any(|k| new_keys.contains(k))
            {
                replaced.push((*rel).clone());
            }
        }
    }
    // Compaction: a partition that would exceed the file limit is rewritten whole.
    for part in &touched {
        let in_part: Vec<&String> = candidates
            .iter()
            .copied()
            .filter(|p| folder(p) == *part)
            .collect();
        let staying = in_part.iter().filter(|p| !replaced.contains(p)).count();
        if staying + 1 > MAX_FILES_PER_PARTITION {
            for p in in_part {
                if !replaced.contains(p) {
                    replaced.push(p.clone());
                }
            }
        }
    }
    if replaced.is_empty() {
        return Ok(unchanged(new));
    }
    replaced.sort();
    let paths: Vec<PathBuf> = replaced.iter().map(|p| dir.join(p)).collect();
    let old = read_files(&paths, &schema)?;
    let keep: Vec<bool> = if new_keys.is_empty() {
        vec![true; old.num_rows()]
    } else {
        row_keys(&old, &def.natural_key, table)?
            .iter()
            .map(|k| !new_keys.contains(k))
            .collect()
    };
    let old = filter_record_batch(&old, &keep.into()).map_err(|e| Error::format(table, e))?;
    let mut batches = new;
    batches.push(old);
    Ok(FactMerge { batches, replaced })
}

/// The columns `indices` of one Parquet file.
fn read_projected(path: &std::path::Path, indices: &[usize]) -> Result<RecordBatch> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| Error::format(path.display(), e))?;
    let mask =
        parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), indices.iter().copied());
    let schema = Arc::new(
        builder
            .schema()
            .project(indices)
            .map_err(|e| Error::format(path.display(), e))?,
    );
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| Error::format(path.display(), e))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::format(path.display(), e))?;
    concat_batches(&schema, &batches).map_err(|e| Error::format(path.display(), e))
}

/// Day range of the dates in the live dim_date, if any.
pub fn previous_day_range(base: Option<&Snapshot>) -> Result<Option<(i32, i32)>> {
    let Some(b) = base else { return Ok(None) };
    let Some(t) = b.tables.get("dim_date") else {
        return Ok(None);
    };
    let batch = read_files(&b.file_paths("dim_date"), &t.schema)?;
    let Some(d) = batch
        .column_by_name("date")
        .and_then(|a| a.as_primitive_opt::<arrow::datatypes::Date32Type>())
    else {
        return Ok(None);
    };
    if d.is_empty() {
        return Ok(None);
    }
    Ok(arrow::compute::min(d).zip(arrow::compute::max(d)))
}

/// Order ids already in fact_sales (tickets may refer to orders of earlier loads).
pub fn previous_order_ids(base: Option<&Snapshot>) -> Result<FastSet<String>> {
    let Some(b) = base else {
        return Ok(FastSet::default());
    };
    let Some(t) = b.tables.get("fact_sales") else {
        return Ok(FastSet::default());
    };
    let Ok(i) = t.schema.index_of("order_id") else {
        return Ok(FastSet::default());
    };
    let mut out = FastSet::default();
    for p in b.file_paths("fact_sales") {
        let f = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(|e| Error::format(p.display(), e))?;
        let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), [i]);
        let reader = builder
            .with_projection(mask)
            .build()
            .map_err(|e| Error::format(p.display(), e))?;
        for b in reader {
            let b = b.map_err(|e| Error::format(p.display(), e))?;
            if let Some(ids) = b.column(0).as_string_opt::<i32>() {
                out.extend(ids.iter().flatten().map(str::to_string));
            }
        }
    }
    Ok(out)
}
