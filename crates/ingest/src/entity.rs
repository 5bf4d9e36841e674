//! Staging one entity: reading all its files and enforcing its primary key.

use crate::quarantine::QuarantineRow;
use crate::read::{read_file, stream_file, CsvOptions, FileFormat};
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use crmcube_model::keys::FxHasher;
use crmcube_model::{EntitySpec, Error, Result};
use rayon::prelude::*;
use std::hash::Hasher;
use std::path::PathBuf;

/// The accepted rows of one entity, from all its files.
pub struct StagedEntity {
    /// Accepted rows, typed as the contract says.
    pub batch: RecordBatch,
    /// The file and line of each row.
    pub origins: Origins,
    /// The files read.
    pub files: Vec<PathBuf>,
    /// Formats of the files read.
    pub formats: Vec<FileFormat>,
    /// Rows read from all files.
    pub read: u64,
    /// Refused rows so far.
    pub rejects: Vec<QuarantineRow>,
    /// Columns present in a file but not in the contract.
    pub ignored_columns: Vec<String>,
}

impl StagedEntity {
    /// An entity with no file in the export.
    pub fn empty(spec: &EntitySpec) -> Self {
        StagedEntity {
            batch: RecordBatch::new_empty(spec.arrow_schema()),
            origins: Origins::default(),
            files: vec![],
            formats: vec![],
            read: 0,
            rejects: vec![],
            ignored_columns: vec![],
        }
    }

    /// Frees the accepted rows (once a fact has taken what it needs of them). Counts
    /// and rejects stay for the load report; no row can be rejected afterwards.
    pub fn drop_rows(&mut self) {
        self.batch = RecordBatch::new_empty(self.batch.schema());
        self.origins = Origins::default();
    }

    /// Quarantines row `row` of the staged batch (the caller drops it from its output).
    pub fn reject(
        &mut self,
        entity: &str,
        row: usize,
        column: Option<&str>,
        value: Option<String>,
        reason: String,
    ) {
        // A streamed entity keeps no origins (see `stream_entity`).
        let (f, line) = if row < self.origins.len() {
            self.origins.get(row)
        } else {
            (0, 0)
        };
        self.rejects.push(QuarantineRow {
            entity: entity.to_string(),
            source_file: self.files[f as usize].display().to_string(),
            line,
            column: column.map(str::to_string),
            value,
            reason,
            record: None,
        });
    }

    /// Keeps only the rows where `keep` is true.
    pub fn retain(&mut self, keep: &[bool]) -> Result<()> {
        if keep.iter().all(|k| *k) {
            return Ok(());
        }
        let mask = BooleanArray::from(keep.to_vec());
        self.batch = arrow::compute::filter_record_batch(&self.batch, &mask)
            .map_err(|e| Error::format("staging", e))?;
        self.origins.retain(keep);
        Ok(())
    }
}

/// The file and line of each row of a staged entity: the line numbers, and runs of
/// consecutive rows that come from one file.
///
/// A file's line numbers are taken over as its reader made them, not copied row by
/// row with the file index beside them (16 bytes a row, touched by one thread).
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Origins {
    lines: Vec<u64>,
    /// (first row, file index) of each run, rows ascending.
    runs: Vec<(usize, u32)>,
}

impl Origins {
    /// Adds the rows of file `file`, given their lines.
    pub fn push_file(&mut self, file: u32, lines: Vec<u64>) {
        if lines.is_empty() {
            return;
        }
        self.runs.push((self.lines.len(), file));
        if self.lines.is_empty() {
            self.lines = lines;
        } else {
            self.lines.extend_from_slice(&lines);
        }
    }

    /// Adds one row: line `line` of file `file`.
    pub fn push(&mut self, file: u32, line: u64) {
        if self.runs.last().is_none_or(|&(_, f)| f != file) {
            self.runs.push((self.lines.len(), file));
        }
        self.lines.push(line);
    }

    /// (file index, line) of row `row`.
    pub fn get(&self, row: usize) -> (u32, u64) {
        let run = self.runs.partition_point(|&(start, _)| start <= row);
        let file = run.checked_sub(1).map_or(0, |r| self.runs[r].1);
        (file, self.lines[row])
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The rows of each run and the run's file index, in order.
    fn run_rows(&self) -> impl Iterator<Item = (std::ops::Range<usize>, u32)> + '_ {
        self.runs.iter().enumerate().map(|(r, &(start, file))| {
            let end = self.runs.get(r + 1).map_or(self.lines.len(), |&(s, _)| s);
            (start..end, file)
        })
    }

    /// (file index, line) of every row, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.run_rows()
            .flat_map(|(rows, file)| self.lines[rows].iter().map(move |&line| (file, line)))
    }

    /// Keeps only the rows where `keep` is true.
    pub fn retain(&mut self, keep: &[bool]) {
        let mut out = Origins::default();
        for (rows, file) in self.run_rows() {
            for (&line, _) in self.lines[rows.clone()]
                .iter()
                .zip(&keep[rows])
                .filter(|(_, k)| **k)
            {
                out.push(file, line);
            }
        }
        *self = out;
    }

    /// Adds the rows of `other` after these.
    pub fn append(&mut self, other: &Origins) {
        for (file, line) in other.iter() {
            self.push(file, line);
        }
    }
}

/// Reads every file of an entity and enforces its primary key (first row wins).
pub fn stage_entity(
    entity: &str,
    spec: &EntitySpec,
    files: &[(PathBuf, FileFormat)],
    csv: &CsvOptions,
) -> Result<StagedEntity> {
    let mut staged = StagedEntity::empty(spec);
    let mut batches = Vec::new();
    for (i, (path, fmt)) in files.iter().enumerate() {
        let fs = read_file(path, *fmt, entity, spec, csv)?;
        staged.read += fs.read;
        staged.origins.push_file(i as u32, fs.lines);
        staged.rejects.extend(fs.rejects);
        for c in fs.ignored_columns {
            if !staged.ignored_columns.contains(&c) {
                staged.ignored_columns.push(c);
            }
        }
        staged.files.push(path.clone());
        staged.formats.push(*fmt);
        batches.push(fs.batch);
    }
    staged.batch = crate::read::concat_columns(&spec.arrow_schema(), &batches)
        .map_err(|e| Error::format(entity, e))?;
    enforce_primary_key(entity, spec, &mut staged)?;
    Ok(staged)
}

/// Reads every file of an entity and hands its accepted rows to `sink` in file order,
/// a few batches at a time (a CSV file's chunks as they are parsed), with a bound on
/// the rows the file still holds (to size what the sink keeps), instead of
/// staging them all: the rows of an export larger than memory need never be in memory
/// together. Returns the entity without rows: what was read, and the refused rows.
///
/// Only an entity whose primary key strictly ascends through its files can be
/// streamed, as exports that number their rows with sequential ids do: then no two
/// rows share a key, and the first-row-wins check of [`stage_entity`] has nothing to
/// refuse. At the first batch where the key does not ascend, the stream stops before
/// that batch reaches `sink` and `None` is returned; the caller then undoes what the
/// sink did and stages the entity whole. The rows of a streamed entity are gone once
/// the sink has them, so nothing can refuse them later (the caller checks that no
/// foreign key of the entity would).
pub fn stream_entity(
    entity: &str,
    spec: &EntitySpec,
    files: &[(PathBuf, FileFormat)],
    csv: &CsvOptions,
    sink: &mut (dyn FnMut(&[RecordBatch], usize) -> Result<()> + Send),
) -> Result<Option<StagedEntity>> {
    let mut staged = StagedEntity::empty(spec);
    let key: Vec<usize> = spec
        .primary_key
        .iter()
        .filter_map(|k| spec.column_index(k))
        .collect();
    // The key of the last row handed over (one-row slices).
    let mut last: Option<Vec<arrow::array::ArrayRef>> = None;
    for (path, fmt) in files {
        // Rows of this file handed over so far, against the bound the reader gives.
        let mut handed = 0;
        let ignored = stream_file(path, *fmt, entity, spec, csv, &mut |wave, bound| {
            let batches: Vec<RecordBatch> = wave
                .iter()
                .map(|p| p.batch.clone())
                .filter(|b| b.num_rows() > 0)
                .collect();
            for b in &batches {
                if !key_ascends(&key, last.as_deref(), b)? {
                    return Ok(false);
                }
                let end = b.num_rows() - 1;
                last = Some(key.iter().map(|&c| b.column(c).slice(end, 1)).collect());
            }
            for p in wave {
                staged.read += p.read;
                staged.rejects.extend(p.rejects);
            }
            handed += batches.iter().map(|b| b.num_rows()).sum::<usize>();
            sink(&batches, bound.saturating_sub(handed))?;
            Ok(true)
        })?;
        let Some(ignored) = ignored else {
            return Ok(None);
        };
        for c in ignored {
            if !staged.ignored_columns.contains(&c) {
                staged.ignored_columns.push(c);
            }
        }
        staged.files.push(path.clone());
        staged.formats.push(*fmt);
    }
    Ok(Some(staged))
}

/// Whether the key (columns `key`) of `batch`'s rows strictly ascends, from the key
/// `last` of the row before them (if any).
fn key_ascends(
    key: &[usize],
    last: Option<&[arrow::array::ArrayRef]>,
    batch: &RecordBatch,
) -> Result<bool> {
    if key.is_empty() {
        return Ok(true);
    }
    let arrays: Vec<&dyn Array> = key.iter().map(|&c| batch.column(c).as_ref()).collect();
    if !strictly_ascending(&arrays) {
        return Ok(false);
    }
    let Some(last) = last else {
        return Ok(true);
    };
    let seam = last
        .iter()
        .zip(&arrays)
        .map(|(l, a)| arrow::compute::concat(&[l.as_ref(), &a.slice(0, 1)]))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::format("staging", e))?;
    let seam: Vec<&dyn Array> = seam.iter().map(|a| a.as_ref()).collect();
    Ok(strictly_ascending(&seam))
}

fn enforce_primary_key(entity: &str, spec: &EntitySpec, staged: &mut StagedEntity) -> Result<()> {
    let n = staged.batch.num_rows();
    let cols: Vec<usize> = spec
        .primary_key
        .iter()
        .filter_map(|k| spec.column_index(k))
        .collect();
    let arrays: Vec<&dyn Array> = cols
        .iter()
        .map(|&c| staged.batch.column(c).as_ref())
        .collect();
    if strictly_ascending(&arrays) {
        // Exports often list rows by their (sequential) key: then no two are equal.
        return Ok(());
    }
    let mut keep = vec![true; n];
    // (duplicate row, first row)
    let mut dups: Vec<(usize, usize)> = Vec::new();
    // Hash every key in parallel, sort (hash, row), and compare keys only within runs of
    // equal hashes: rows of a run are in file order, so the first row of a key wins.
    let mut hashed: Vec<(u64, u32)> = (0..n)
        .into_par_iter()
        .map_init(Vec::new, |buf, row| {
            buf.clear();
            for a in &arrays {
                key_bytes(*a, row, buf);
            }
            let mut h = FxHasher::default();
            h.write(buf);
            (h.finish(), row as u32)
        })
        .collect();
    hashed.par_sort_unstable();
    let same_key = |x: usize, y: usize| {
        let (mut kx, mut ky) = (Vec::new(), Vec::new());
        for a in &arrays {
            key_bytes(*a, x, &mut kx);
            key_bytes(*a, y, &mut ky);
        }
        kx == ky
    };
    let mut i = 0;
    while i < hashed.len() {
        let mut j = i + 1;
        while j < hashed.len() && hashed[j].0 == hashed[i].0 {
            j += 1;
        }
        for k in i + 1..j {
            let row = hashed[k].1 as usize;
            if let Some(first) = hashed[i..k]
                .iter()
                .map(|h| h.1 as usize)
                .find(|&f| keep[f] && same_key(f, row))
            {
                keep[row] = false;
                dups.push((row, first));
            }
        }
        i = j;
    }
    dups.sort_unstable();
    let dups: Vec<(usize, usize, String)> = dups
        .into_iter()
        .map(|(row, first)| {
            let key = arrays
                .iter()
                .map(|a| value_text(*a, row))
                .collect::<Vec<_>>()
                .join(", ");
            (row, first, key)
        })
        .collect();
    let key_name = spec.primary_key.join(", ");
    for (row, first, key) in dups {
        let (f, line) = staged.origins.get(first);
        let where_first = if staged.files.len() > 1 {
            format!("{} line {line}", staged.files[f as usize].display())
        } else {
            format!("line {line}")
        };
        staged.reject(
            entity,
            row,
            Some(&key_name),
            Some(key),
            format!("duplicate key ({key_name}); first seen at {where_first}"),
        );
    }
    staged.retain(&keep)
}

/// Whether the keys formed by `arrays` (all non-null strings, integers or timestamps)
/// strictly ascend from row to row, so that no two rows share a key. One parallel pass
/// of comparisons, instead of hashing and sorting every key.
pub(crate) fn strictly_ascending(arrays: &[&dyn Array]) -> bool {
    use std::cmp::Ordering;
    enum Part<'a> {
        Str(&'a arrow::array::StringArray),
        Int(&'a [i64]),
    }
    let mut parts = Vec::with_capacity(arrays.len());
    for a in arrays {
        if a.null_count() > 0 {
            return false;
        }
        parts.push(match a.data_type() {
            DataType::Utf8 => Part::Str(a.as_string::<i32>()),
            DataType::Int64 => Part::Int(
                a.as_primitive::<arrow::datatypes::Int64Type>()
                    .values()
                    .as_ref(),
            ),
            DataType::Timestamp(TimeUnit::Microsecond, None) => Part::Int(
                a.as_primitive::<TimestampMicrosecondType>()
                    .values()
                    .as_ref(),
            ),
            _ => return false,
        });
    }
    let n = arrays.first().map_or(0, |a| a.len());
    if parts.is_empty() {
        return false;
    }
    (1..n).into_par_iter().all(|row| {
        for p in &parts {
            let o = match p {
                Part::Str(s) => s.value(row - 1).cmp(s.value(row)),
                Part::Int(v) => v[row - 1].cmp(&v[row]),
            };
            match o {
                Ordering::Equal => continue,
                o => return o == Ordering::Less,
            }
        }
        false
    })
}

/// Appends an unambiguous byte encoding of one key part.
fn key_bytes(array: &dyn Array, row: usize, out: &mut Vec<u8>) {
    if array.is_null(row) {
        out.push(0);
        return;
    }
    out.push(1);
    match array.data_type() {
        DataType::Utf8 => {
            let v = array.as_string::<i32>().value(row).as_bytes();
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            out.extend_from_slice(v);
        }
        DataType::Int64 => out.extend_from_slice(
            &array
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(row)
                .to_le_bytes(),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, None) => out.extend_from_slice(
            &array
                .as_primitive::<TimestampMicrosecondType>()
                .value(row)
                .to_le_bytes(),
        ),
        _ => {
            let v = value_text(array, row);
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        }
    }
}

/// A staged value as text, for keys and messages.
pub fn value_text(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return String::new();
    }
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row).to_string(),
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            let v = array.as_primitive::<TimestampMicrosecondType>().value(row);
            chrono::DateTime::from_timestamp_micros(v)
                .map(|d| d.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string())
                .unwrap_or_else(|| v.to_string())
        }
        _ => arrow::util::display::array_value_to_string(array, row).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::{key_ascends, strictly_ascending, Origins};
    use arrow::array::{Array, Int64Array, StringArray};

    #[test]
    fn only_strictly_ascending_keys_skip_the_duplicate_check() {
        let ids = StringArray::from(vec!["A1", "A2", "B1"]);
        let same = StringArray::from(vec!["A1", "A1", "B1"]);
        let down = StringArray::from(vec!["A1", "B1", "A2"]);
        let with_null = StringArray::from(vec![Some("A1"), None, Some("B1")]);
        let lines = Int64Array::from(vec![1, 2, 1]);
        let asc = |a: &[&dyn Array]| strictly_ascending(a);
        assert!(asc(&[&ids]));
        assert!(!asc(&[&same]));
        assert!(!asc(&[&down]));
        assert!(!asc(&[&with_null]));
        // (order, line) keys: equal first parts are ordered by the second.
        assert!(asc(&[&same, &lines]));
        assert!(!asc(&[]));
        assert!(!asc(&[
            &StringArray::from(vec!["A1", "A1"]),
            &Int64Array::from(vec![2, 2])
        ]));
    }

    #[test]
    fn a_streamed_key_must_ascend_across_batches_too() {
        use arrow::array::{ArrayRef, RecordBatch};
        use std::sync::Arc;
        let batch = |ids: &[&str], n: &[i64]| {
            let ids: ArrayRef = Arc::new(StringArray::from(ids.to_vec()));
            let n: ArrayRef = Arc::new(Int64Array::from(n.to_vec()));
            RecordBatch::try_from_iter([("id", ids), ("n", n)]).unwrap()
        };
        let next = batch(&["B1", "B2"], &[1, 1]);
        let last = |b: &RecordBatch, key: &[usize]| -> Vec<ArrayRef> {
            key.iter()
                .map(|&c| b.column(c).slice(b.num_rows() - 1, 1))
                .collect()
        };
        let key = [0];
        assert!(key_ascends(&key, None, &next).unwrap());
        let before = batch(&["A1", "A9"], &[5, 5]);
        assert!(key_ascends(&key, Some(&last(&before, &key)), &next).unwrap());
        // The seam: the next batch starts at or below the last key.
        let same = batch(&["A1", "B1"], &[0, 0]);
        assert!(!key_ascends(&key, Some(&last(&same, &key)), &next).unwrap());
        let above = batch(&["C1"], &[0]);
        assert!(!key_ascends(&key, Some(&last(&above, &key)), &next).unwrap());
        // Inside a batch.
        assert!(!key_ascends(&key, None, &batch(&["B2", "B1"], &[0, 0])).unwrap());
        // Two key columns: the second orders rows whose first is equal.
        let key = [0, 1];
        let tail = batch(&["A1", "B1"], &[0, 0]);
        assert!(key_ascends(&key, Some(&last(&tail, &key)), &batch(&["B1"], &[1])).unwrap());
        assert!(!key_ascends(&key, Some(&last(&tail, &key)), &batch(&["B1"], &[0])).unwrap());
        // No key: nothing to check.
        assert!(key_ascends(&[], Some(&[]), &batch(&["A1", "A1"], &[0, 0])).unwrap());
    }

    #[test]
    fn origins_follow_rows_through_files_filters_and_unions() {
        // Rows as (file, line), built the three ways a load builds them.
        let rows = [(0, 2), (0, 3), (0, 5), (1, 2), (2, 7), (2, 8), (0, 9)];
        let mut by_file = Origins::default();
        by_file.push_file(0, vec![2, 3, 5]);
        by_file.push_file(1, vec![2]);
        by_file.push_file(3, vec![]);
        by_file.push_file(2, vec![7, 8]);
        by_file.push_file(0, vec![9]);
        let mut by_row = Origins::default();
        for &(f, l) in &rows {
            by_row.push(f, l);
        }
        let mut appended = Origins::default();
        appended.push(0, 2);
        let mut rest = Origins::default();
        rest.push_file(0, vec![3, 5]);
        rest.push_file(1, vec![2]);
        rest.push_file(2, vec![7, 8]);
        rest.push_file(0, vec![9]);
        appended.append(&rest);
        for o in [&by_file, &by_row, &appended] {
            assert_eq!(o.len(), rows.len());
            assert_eq!(o.iter().collect::<Vec<_>>(), rows);
            let got: Vec<(u32, u64)> = (0..rows.len()).map(|r| o.get(r)).collect();
            assert_eq!(got, rows);
        }
        // Keeping rows 1, 3 and 6 (a whole file's rows dropped between them).
        let keep = [false, true, false, true, false, false, true];
        by_file.retain(&keep);
        assert_eq!(by_file.iter().collect::<Vec<_>>(), [(0, 3), (1, 2), (0, 9)]);
        assert_eq!(by_file.get(2), (0, 9));
        by_file.retain(&[false, false, false]);
        assert!(by_file.is_empty());
        assert_eq!(by_file.iter().count(), 0);
    }
}
