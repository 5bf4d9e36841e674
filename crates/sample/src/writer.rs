//! One output file: rows are rendered by the format's sink, drained to a hidden partial
//! file, and the file is renamed into place only once complete.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::contract::{ColumnType, Entity};
use crate::emit::{emit_chunk, emit_static, Chunk, RowSink};
use crate::error::{io_at, SampleError, SampleResult};
use crate::format::{csv::CsvSink, jsonl::JsonlSink, parquet::ParquetSink};
use crate::world::World;
use crate::{ExportFormat, GeneratedFile};

/// zstd level of the Parquet files: the fastest; files are ~8% larger than at level 3.
const ZSTD_LEVEL: i32 = 1;

enum Output {
    Csv {
        file: File,
        sink: CsvSink,
    },
    Jsonl {
        file: File,
        sink: JsonlSink,
    },
    Parquet {
        writer: Box<ArrowWriter<File>>,
        sink: ParquetSink,
    },
}

/// An output file being written.
pub(crate) struct EntityFile {
    /// What the file holds.
    pub entity: Entity,
    path: PathBuf,
    partial: PathBuf,
    out: Option<Output>,
    rows: u64,
}

impl EntityFile {
    /// Creates `<dir>/<entity>.<ext>` (written as a hidden `.partial` file until finished).
    pub(crate) fn create(dir: &Path, entity: Entity, format: ExportFormat) -> SampleResult<Self> {
        let name = format!("{}.{}", entity.name(), format.extension());
        let path = dir.join(&name);
        let partial = dir.join(format!(".{name}.partial"));
        let file = File::create(&partial).map_err(io_at(&partial))?;
        let columns = entity.columns();
        let out = match format {
            ExportFormat::Csv => Output::Csv {
                file,
                sink: CsvSink::new(columns),
            },
            ExportFormat::Jsonl => Output::Jsonl {
                file,
                sink: JsonlSink::new(columns),
            },
            ExportFormat::Parquet => {
                let sink = ParquetSink::new(columns);
                let level =
                    ZstdLevel::try_new(ZSTD_LEVEL).map_err(|source| SampleError::Parquet {
                        path: path.clone(),
                        source,
                    })?;
                let mut props =
                    WriterProperties::builder().set_compression(Compression::ZSTD(level));
                // Keys and timestamps are (nearly) unique: a dictionary only costs time there.
                for (i, c) in columns.iter().enumerate() {
                    if i == 0 || c.ty == ColumnType::Timestamp {
                        props =
                            props.set_column_dictionary_enabled(ColumnPath::from(c.name), false);
                    }
                }
                let props = props.build();
                let writer =
                    ArrowWriter::try_new(file, sink.schema(), Some(props)).map_err(|source| {
                        SampleError::Parquet {
                            path: path.clone(),
                            source,
                        }
                    })?;
                Output::Parquet {
                    writer: Box::new(writer),
                    sink,
                }
            }
        };
        Ok(EntityFile {
            entity,
            path,
            partial,
            out: Some(out),
            rows: 0,
        })
    }

    /// Writes the rows of a static entity (regions, products, campaigns).
    pub(crate) fn write_static(&mut self, world: &World) -> SampleResult<()> {
        self.write(Job::Static(world))
    }

    /// Writes this entity's rows of a chunk of customers.
    pub(crate) fn write_chunk(&mut self, world: &World, chunk: &Chunk) -> SampleResult<()> {
        self.write(Job::Chunk(world, chunk, self.rows))
    }

    /// Renders a job with the format's sink, then drains the rendered rows to disk.
    fn write(&mut self, job: Job<'_>) -> SampleResult<()> {
        let entity = self.entity;
        let partial = &self.partial;
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        match out {
            Output::Csv { file, sink } => {
                self.rows += job.run(entity, sink);
                file.write_all(&sink.buf).map_err(io_at(partial))?;
                sink.buf.clear();
            }
            Output::Jsonl { file, sink } => {
                self.rows += job.run(entity, sink);
                file.write_all(&sink.buf).map_err(io_at(partial))?;
                sink.buf.clear();
            }
            Output::Parquet { writer, sink } => {
                self.rows += job.run(entity, sink);
                let batch = sink.take_batch().map_err(|source| SampleError::Arrow {
                    path: self.path.clone(),
                    source,
                })?;
                if let Some(batch) = batch {
                    writer
                        .write(&batch)
                        .map_err(|source| SampleError::Parquet {
                            path: self.path.clone(),
                            source,
                        })?;
                }
            }
        }
        Ok(())
    }

    /// Completes the file, moves it into place and reports it.
    pub(crate) fn finish(mut self) -> SampleResult<GeneratedFile> {
        match self.out.take() {
            Some(Output::Csv { mut file, sink }) => {
                file.write_all(&sink.buf).map_err(io_at(&self.partial))?;
                file.flush().map_err(io_at(&self.partial))?;
            }
            Some(Output::Jsonl { mut file, sink }) => {
                file.write_all(&sink.buf).map_err(io_at(&self.partial))?;
                file.flush().map_err(io_at(&self.partial))?;
            }
            Some(Output::Parquet { writer, .. }) => {
                writer.close().map_err(|source| SampleError::Parquet {
                    path: self.path.clone(),
                    source,
                })?;
            }
            None => {}
        }
        fs::rename(&self.partial, &self.path).map_err(io_at(&self.path))?;
        let bytes = fs::metadata(&self.path).map_err(io_at(&self.path))?.len();
        Ok(GeneratedFile {
            entity: self.entity.name().to_string(),
            path: self.path.clone(),
            rows: self.rows,
            bytes,
        })
    }
}

impl Drop for EntityFile {
    fn drop(&mut self) {
        // An unfinished file is incomplete: do not leave it behind.
        if self.out.is_some() {
            let _ = fs::remove_file(&self.partial);
        }
    }
}

/// What to render into a file.
#[derive(Clone, Copy)]
enum Job<'a> {
    /// The rows of a static entity.
    Static(&'a World),
    /// A chunk of customers; the entity's keys continue after the given row count.
    Chunk(&'a World, &'a Chunk, u64),
}

impl Job<'_> {
    /// Renders into `sink` (monomorphised per format); returns the rows written.
    fn run<S: RowSink>(self, entity: Entity, sink: &mut S) -> u64 {
        match self {
            Job::Static(world) => emit_static(entity, world, sink),
            Job::Chunk(world, chunk, next_id) => emit_chunk(entity, world, chunk, next_id, sink),
        }
    }
}
