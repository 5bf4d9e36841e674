//! The one error type of the library crates.

use std::path::PathBuf;

/// Result alias used by all crmcube library crates.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in crmcube, grouped by what the user has to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    // The OS error is part of the message, not a separate cause, so that error chains
    // print it once.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating-system error.
        error: std::io::Error,
    },
    /// A schema or model file is malformed or inconsistent.
    #[error("{file}: {key}: {message}")]
    Schema {
        /// The schema file (or `<built-in …>`).
        file: String,
        /// The entry inside the file, e.g. `entities.orders.columns.order_ts`.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The command was called in a way that cannot work (bad flag value, missing input).
    #[error("{0}")]
    Usage(String),
    /// Input data is unusable as a whole (missing column, unreadable file, too many rejects).
    #[error("{0}")]
    Data(String),
    /// A query failed (syntax, unknown table or column).
    #[error("{0}")]
    Query(String),
    /// Arrow / Parquet failure while reading or writing a table.
    #[error("{context}: {message}")]
    Format {
        /// The file or table involved.
        context: String,
        /// The underlying error text.
        message: String,
    },
}

impl Error {
    /// Process exit code for this error: 1 for data problems, 2 for usage and I/O errors.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Data(_) => 1,
            _ => 2,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }

    /// Wraps an Arrow / Parquet error with the file or table it concerns.
    pub fn format(context: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        Error::Format {
            context: context.to_string(),
            message: err.to_string(),
        }
    }
}
