//! The crate's error type.

use std::path::PathBuf;

/// Why a sample could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// Reading or writing a file or directory failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration cannot be generated; the message says what to change.
    #[error("invalid sample configuration: {0}")]
    Invalid(String),
    /// Encoding a Parquet file failed.
    #[error("cannot write Parquet file {}: {source}", path.display())]
    Parquet {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Building an Arrow record batch failed (a bug in the generator's schema).
    #[error("cannot build Arrow data for {}: {source}", path.display())]
    Arrow {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// Serialising the settings file failed.
    #[error("cannot write settings {}: {source}", path.display())]
    Settings {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

/// Result alias of this crate.
pub type SampleResult<T> = Result<T, SampleError>;

/// Attaches a path to an I/O error.
pub(crate) fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SampleError {
    let path = path.into();
    move |source| SampleError::Io { path, source }
}
