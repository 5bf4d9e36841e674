//! The run report of a load.

use crate::entity::StagedEntity;
use crate::write::WrittenTable;

/// What happened to one entity.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EntityReport {
    /// Entity name.
    pub entity: String,
    /// Files read.
    pub files: Vec<String>,
    /// Rows read.
    pub read: u64,
    /// Rows that reached the warehouse.
    pub loaded: u64,
    /// Rows quarantined.
    pub quarantined: u64,
    /// Loaded rows that referred to a missing member and point to Unknown.
    pub orphaned: u64,
    /// Seconds spent reading and checking (for an entity resolved as it is read, such
    /// as cart events, resolving included).
    pub seconds: f64,
    /// Rows read per second.
    pub rows_per_second: f64,
    /// Columns present in the files but not in the contract.
    pub ignored_columns: Vec<String>,
}

impl EntityReport {
    pub(crate) fn new(entity: &str, st: &StagedEntity, seconds: f64) -> Self {
        EntityReport {
            entity: entity.to_string(),
            files: st.files.iter().map(|p| p.display().to_string()).collect(),
            read: st.read,
            loaded: 0,
            quarantined: 0,
            orphaned: 0,
            seconds,
            rows_per_second: if seconds > 0.0 {
                st.read as f64 / seconds
            } else {
                0.0
            },
            ignored_columns: st.ignored_columns.clone(),
        }
    }

    pub(crate) fn finish(&mut self, st: &StagedEntity, orphaned: u64) {
        self.quarantined = st.rejects.len() as u64;
        self.loaded = st.read.saturating_sub(self.quarantined);
        self.orphaned = orphaned;
    }
}

/// What a load did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestReport {
    /// Identifier of this load.
    pub load_id: String,
    /// Export directory.
    pub source: String,
    /// Warehouse directory.
    pub warehouse: String,
    /// Warehouse version this load published (none when nothing changed).
    pub version: Option<u64>,
    /// Per entity, in contract order.
    pub entities: Vec<EntityReport>,
    /// Per table written.
    pub tables: Vec<WrittenTable>,
    /// Rows quarantined in total.
    pub quarantined: u64,
    /// Input files skipped because an earlier load read the same bytes.
    pub skipped_files: Vec<String>,
    /// Contract entities with no file in the export.
    pub missing_entities: Vec<String>,
    /// Files in the export that belong to no entity.
    pub unmatched_files: Vec<String>,
    /// Seconds spent building dimensions and facts.
    pub conform_seconds: f64,
    /// Seconds spent writing Parquet.
    pub write_seconds: f64,
    /// Total seconds.
    pub seconds: f64,
}
