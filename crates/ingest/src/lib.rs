//! crmcube ingest: reads OLTP exports (CSV, JSON Lines, Parquet), checks every row
//! against the export contract, quarantines what fails with its file, line, column,
//! value and reason, conforms the rest to the warehouse star schema and publishes the
//! tables as Parquet.

pub mod conform;
pub mod entity;
pub mod quarantine;
pub mod read;
mod report;
pub mod source;
pub mod stage;
pub mod state;
pub mod value;
pub mod write;

pub use read::{CsvOptions, FileFormat};
pub use report::{EntityReport, IngestReport};

use conform::Resolver;
use crmcube_model::keys::key_of;
use crmcube_model::keys::{FastMap as HashMap, FastSet as HashSet};
use crmcube_model::{Error, ExportContract, Result, WarehouseSchema};
use entity::{stage_entity, StagedEntity};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Name of the quarantine table in the warehouse.
pub const QUARANTINE_TABLE: &str = "_quarantine";

/// Receives progress messages (the CLI shows them on a terminal).
pub trait Progress: Sync {
    /// A new step started.
    fn step(&self, message: &str);
}

/// Progress sink that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {
    fn step(&self, _: &str) {}
}

/// Everything a load needs.
pub struct IngestOptions<'a> {
    /// Export directory.
    pub source: PathBuf,
    /// Warehouse directory (created if needed).
    pub warehouse: PathBuf,
    /// The export contract.
    pub contract: &'a ExportContract,
    /// The warehouse schema.
    pub schema: &'a WarehouseSchema,
    /// CSV parsing options.
    pub csv: CsvOptions,
    /// Refuse to publish when more than this fraction of all rows read is quarantined.
    pub max_reject_rate: Option<f64>,
    /// Only load files whose name matches this pattern (`*` and `?` wildcards).
    pub pattern: Option<String>,
}

/// Loads an export into the warehouse; returns the run report.
///
/// Input files whose content an earlier version loaded (same XXH3-128 hash) are
/// skipped. The new files are staged group by group (dimensions, then each fact with
/// its sources); dimensions are rebuilt from their source state plus the new rows,
/// facts are merged into the month partitions the new rows touch. Every table is
/// written as new files under fresh names and published as one new warehouse version
/// (see `crmcube_store`), so readers see the previous version until the commit and the
/// new one after it.
pub fn ingest(opts: &IngestOptions, progress: &dyn Progress) -> Result<IngestReport> {
    prepare(opts, progress)?.commit()
}

/// A load whose tables are written but not yet published. Dropping it publishes
/// nothing (its files stay unused until `vacuum`).
pub struct PreparedLoad {
    writer: crmcube_store::Writer,
    report: IngestReport,
    info: serde_json::Value,
    started: Instant,
}

impl PreparedLoad {
    /// The report so far (no version yet).
    pub fn report(&self) -> &IngestReport {
        &self.report
    }

    /// Whether the load found no new input file.
    pub fn is_empty(&self) -> bool {
        self.report.entities.is_empty()
    }

    /// The warehouse as it will be after the commit.
    pub fn pending(&self) -> Result<crmcube_store::Snapshot> {
        self.writer.pending()
    }

    /// Adds one more table change to the same commit (e.g. a run log row).
    pub fn add_table(
        &mut self,
        table: &str,
        batch: &arrow::record_batch::RecordBatch,
        mode: crmcube_store::Mode,
    ) -> Result<()> {
        stage_batch(&mut self.writer, table, None, batch, mode)
    }

    /// Publishes the load as one new warehouse version.
    pub fn commit(mut self) -> Result<IngestReport> {
        let commit = if self.is_empty() && self.writer_staged_nothing() {
            None
        } else {
            self.writer.commit(self.info)?
        };
        self.report.version = commit.map(|c| c.version);
        self.report.seconds = self.started.elapsed().as_secs_f64();
        Ok(self.report)
    }

    fn writer_staged_nothing(&self) -> bool {
        !self.writer.has_staged()
    }
}

/// Reads, checks and conforms an export and writes the new table files, without
/// publishing them; see [`PreparedLoad::commit`].
pub fn prepare(opts: &IngestOptions, progress: &dyn Progress) -> Result<PreparedLoad> {
    let started = Instant::now();
    let mut all_files = source::discover(&opts.source, opts.contract)?;
    if let Some(p) = &opts.pattern {
        for files in all_files.entities.values_mut() {
            files.retain(|(f, _)| {
                f.file_name()
                    .is_some_and(|n| source::matches(p, &n.to_string_lossy()))
            });
        }
        all_files.entities.retain(|_, v| !v.is_empty());
    }
    if all_files.entities.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no export files found; expected files named after the contract's entities, e.g. customers.csv, orders.jsonl, order_lines.parquet",
            opts.source.display()
        )));
    }
    for n in REQUIRED_ENTITIES {
        if opts.contract.entity(n).is_none() {
            return Err(Error::Schema {
                file: "export contract".into(),
                key: format!("entities.{n}"),
                message: "entity is needed to build the warehouse but not in the contract".into(),
            });
        }
    }
    let mut writer = crmcube_store::Writer::begin(&opts.warehouse, "ingest")?;
    let load_id = writer.load_id().to_string();

    // Inputs already loaded (same content) are skipped: loading a file twice is a no-op.
    progress.step("hashing inputs");
    let loaded = LoadedInputs::of(&opts.warehouse, writer.base().is_some())?;
    let listed: Vec<(String, PathBuf, FileFormat)> = all_files
        .entities
        .iter()
        .flat_map(|(e, fs)| fs.iter().map(move |(p, f)| (e.clone(), p.clone(), *f)))
        .collect();
    let prints: Vec<Result<(InputFingerprint, bool)>> = listed
        .par_iter()
        .map(|(_, p, _)| {
            let print = InputFingerprint::of(p)?;
            let before = loaded.contains(&print, p)?;
            Ok((print, before))
        })
        .collect();
    let mut files = source::ExportFiles {
        entities: Default::default(),
        unmatched: all_files.unmatched.clone(),
    };
    let mut inputs = Vec::new();
    let mut skipped = Vec::new();
    let mut seen_now: HashSet<String> = HashSet::default();
    for ((entity, path, fmt), p) in listed.into_iter().zip(prints) {
        let (print, before) = p?;
        let entry = serde_json::json!({
            "entity": entity, "file": path.display().to_string(), "format": fmt,
            "xxh3_128": print.xxh3_128, "bytes": print.bytes,
        });
        if before || !seen_now.insert(print.xxh3_128) {
            skipped.push(entry);
            continue;
        }
        inputs.push(entry);
        files.entities.entry(entity).or_default().push((path, fmt));
    }
    crmcube_store::failpoint("before-write");
    let skipped_files: Vec<String> = skipped
        .iter()
        .filter_map(|e| e["file"].as_str().map(str::to_string))
        .collect();
    let mut report = IngestReport {
        load_id: load_id.clone(),
        source: opts.source.display().to_string(),
        warehouse: opts.warehouse.display().to_string(),
        version: None,
        entities: Vec::new(),
        tables: Vec::new(),
        quarantined: 0,
        skipped_files,
        missing_entities: opts
            .contract
            .entities
            .iter()
            .filter(|(n, _)| !all_files.entities.contains_key(n))
            .map(|(n, _)| n.clone())
            .collect(),
        unmatched_files: all_files
            .unmatched
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        conform_seconds: 0.0,
        write_seconds: 0.0,
        seconds: 0.0,
    };
    if files.entities.is_empty() {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(PreparedLoad {
            writer,
            report,
            info: serde_json::json!({"skipped": skipped}),
            started,
        });
    }

    let base = writer.base().cloned();
    let mut load = Load {
        opts,
        files: &files,
        base: base.as_ref(),
        writer: &mut writer,
        progress,
        reports: HashMap::default(),
        rejects: Vec::new(),
        written: Vec::new(),
        day_range: None,
        conform_seconds: 0.0,
        write_seconds: 0.0,
        fk_keys: HashMap::default(),
    };
    let result = load.run();
    let Load {
        mut reports,
        rejects,
        written,
        conform_seconds,
        write_seconds,
        ..
    } = load;
    if let Err(e) = result {
        drop(writer); // removes the files written so far and releases the lock
        return Err(e);
    }

    // Reject limit, then publish.
    let entity_reports: Vec<EntityReport> = opts
        .contract
        .entities
        .iter()
        .filter_map(|(n, _)| reports.remove(n))
        .collect();
    let total_read: u64 = entity_reports.iter().map(|r| r.read).sum();
    let total_rejected = rejects.len() as u64;
    if let Some(limit) = opts.max_reject_rate {
        if total_read > 0 && total_rejected as f64 / total_read as f64 > limit {
            return Err(Error::Data(format!(
                "{total_rejected} of {total_read} rows failed their checks ({:.2}%), over the limit of {:.2}%; nothing was published. Run again without --max-reject-rate to load the good rows and inspect _quarantine",
                100.0 * total_rejected as f64 / total_read as f64,
                100.0 * limit
            )));
        }
    }
    progress.step("publishing");
    let counts: Vec<serde_json::Value> = entity_reports
        .iter()
        .map(|r| {
            serde_json::json!({"entity": r.entity, "read": r.read, "loaded": r.loaded,
                "quarantined": r.quarantined, "orphaned": r.orphaned})
        })
        .collect();
    let info = serde_json::json!({
        "source": opts.source.display().to_string(),
        "inputs": inputs,
        "skipped": skipped,
        "entities": counts,
    });
    report.entities = entity_reports;
    report.tables = written;
    report.quarantined = total_rejected;
    report.conform_seconds = conform_seconds;
    report.write_seconds = write_seconds;
    Ok(PreparedLoad {
        writer,
        report,
        info,
        started,
    })
}

/// Writes `batch` as one file of `table` (under `folder`) and stages it on `w`.
fn stage_batch(
    w: &mut crmcube_store::Writer,
    table: &str,
    folder: Option<&str>,
    batch: &arrow::record_batch::RecordBatch,
    mode: crmcube_store::Mode,
) -> Result<()> {
    let rel = w.new_file_path(folder, 0);
    let (size, sha256) =
        write::write_parquet(&w.dir().join(table).join(&rel), std::slice::from_ref(batch))?;
    let file = crmcube_store::DataFile {
        path: rel,
        size,
        rows: batch.num_rows() as u64,
        sha256,
        modified_ms: chrono::Utc::now().timestamp_millis(),
    };
    w.stage(table, batch.schema(), vec![file], mode);
    Ok(())
}

/// The content fingerprint of an input file: its size and its XXH3-128 hash.
///
/// The hash identifies content, it does not authenticate it: XXH3 is not a
/// cryptographic hash, and an export is the user's own file. It reads at memory speed,
/// where a cryptographic hash of a multi-gigabyte export would take seconds of every
/// load. `xxhsum -H2 FILE` prints the same hash.
struct InputFingerprint {
    /// 32 lowercase hex digits.
    xxh3_128: String,
    bytes: u64,
}

impl InputFingerprint {
    fn of(path: &Path) -> Result<Self> {
        // Mapped, not read: hashing then costs no copy of the file.
        let bytes = read::read_all(path).map_err(|e| Error::io(path, e))?;
        Ok(InputFingerprint {
            xxh3_128: format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes)),
            bytes: bytes.len() as u64,
        })
    }
}

/// The input files earlier versions loaded: their XXH3-128 hashes, and the sha256 of
/// those loaded by versions that recorded a sha256 instead (keyed by byte count, so
/// that a new file is hashed with sha256 only when its size matches one of them).
struct LoadedInputs {
    xxh3: HashSet<String>,
    sha256_by_size: HashMap<u64, HashSet<String>>,
}

impl LoadedInputs {
    fn of(warehouse: &Path, exists: bool) -> Result<Self> {
        let mut out = LoadedInputs {
            xxh3: HashSet::default(),
            sha256_by_size: HashMap::default(),
        };
        if !exists {
            return Ok(out);
        }
        for c in crmcube_store::history(warehouse)? {
            let Some(inputs) = c.info.get("inputs").and_then(|v| v.as_array()) else {
                continue;
            };
            for i in inputs {
                let text = |k: &str| i.get(k).and_then(|s| s.as_str()).map(str::to_string);
                if let Some(h) = text("xxh3_128") {
                    out.xxh3.insert(h);
                } else if let (Some(h), Some(n)) =
                    (text("sha256"), i.get("bytes").and_then(|n| n.as_u64()))
                {
                    out.sha256_by_size.entry(n).or_default().insert(h);
                }
            }
        }
        Ok(out)
    }

    /// Whether an earlier version loaded the content of the file at `path`.
    fn contains(&self, print: &InputFingerprint, path: &Path) -> Result<bool> {
        if self.xxh3.contains(&print.xxh3_128) {
            return Ok(true);
        }
        match self.sha256_by_size.get(&print.bytes) {
            Some(old) => Ok(old.contains(&sha256_file(path)?)),
            None => Ok(false),
        }
    }
}

/// Reads and checks every new file of entity `name`; returns its staged rows and the
/// seconds that took.
fn read_entity(
    opts: &IngestOptions,
    files: &source::ExportFiles,
    progress: &dyn Progress,
    name: &str,
) -> Result<(StagedEntity, f64)> {
    let spec = opts
        .contract
        .entity(name)
        .ok_or_else(|| Error::Usage(format!("no entity {name}")))?;
    let t0 = Instant::now();
    progress.step(&format!("reading {name}"));
    let entity_files = files.entities.get(name).cloned().unwrap_or_default();
    let st = if entity_files.is_empty() {
        StagedEntity::empty(spec)
    } else {
        stage_entity(name, spec, &entity_files, &opts.csv)?
    };
    Ok((st, t0.elapsed().as_secs_f64()))
}

/// Entities the star schema is built from.
const REQUIRED_ENTITIES: [&str; 11] = [
    "regions",
    "customers",
    "products",
    "campaigns",
    "orders",
    "order_lines",
    "campaign_contacts",
    "web_sessions",
    "cart_events",
    "email_events",
    "tickets",
];

/// State of one load while it runs.
struct Load<'a> {
    opts: &'a IngestOptions<'a>,
    files: &'a source::ExportFiles,
    base: Option<&'a crmcube_store::Snapshot>,
    writer: &'a mut crmcube_store::Writer,
    progress: &'a dyn Progress,
    reports: HashMap<String, EntityReport>,
    rejects: Vec<quarantine::QuarantineRow>,
    written: Vec<write::WrittenTable>,
    day_range: Option<(i32, i32)>,
    conform_seconds: f64,
    write_seconds: f64,
    /// Keys of the entities that a foreign key with `on_orphan: quarantine` refers
    /// to, by `entity.column`.
    fk_keys: HashMap<String, HashSet<String>>,
}

impl<'a> Load<'a> {
    fn run(&mut self) -> Result<()> {
        let schema = self.opts.schema;
        // Dimensions. Their source state is written, and the dimensions built and
        // written, on one thread (mostly one-core work) while orders and order lines
        // are read on the others.
        let mut sources = Vec::new();
        let regions_st = self.stage_dimension("regions", &mut sources)?;
        let products_st = self.stage_dimension("products", &mut sources)?;
        let campaigns_st = self.stage_dimension("campaigns", &mut sources)?;
        let customers_st = self.stage_dimension("customers", &mut sources)?;
        let (opts, files, progress) = (self.opts, self.files, self.progress);
        let (resolver, read) = rayon::join(
            || {
                for (table, batch) in sources {
                    self.write(&table, &batch)?;
                }
                self.dimensions(regions_st, products_st, campaigns_st, customers_st)
            },
            || -> Result<_> {
                let orders = read_entity(opts, files, progress, "orders")?;
                let lines = read_entity(opts, files, progress, "order_lines")?;
                Ok((orders, lines))
            },
        );
        let resolver = resolver?;
        let ((mut orders, orders_seconds), (mut lines, lines_seconds)) = read?;
        self.reports.insert(
            "orders".into(),
            EntityReport::new("orders", &orders, orders_seconds),
        );
        self.reports.insert(
            "order_lines".into(),
            EntityReport::new("order_lines", &lines, lines_seconds),
        );

        // fact_sales.
        self.enforce_foreign_keys("orders", &mut orders)?;
        self.remember_keys("orders", &orders);
        self.enforce_foreign_keys("order_lines", &mut lines)?;
        self.progress.step("building fact_sales");
        let t0 = Instant::now();
        let mut sales =
            conform::SalesFact::new(schema.require("fact_sales")?, &lines, &orders, &resolver)?;
        self.conform_seconds += t0.elapsed().as_secs_f64();
        let (orphaned, rejects) = sales.outcome();
        self.write_monthly("fact_sales", &sales)?;
        drop(sales);
        // Tickets refer to orders; only the ids they name are looked up, once tickets are
        // read (a set of every order id would cost more than the tickets themselves).
        let order_id_column = orders.batch.column_by_name("order_id").cloned();
        self.settle(
            &orphaned,
            vec![("order_lines", rejects)],
            &mut [
                ("orders", &mut Some(orders)),
                ("order_lines", &mut Some(lines)),
            ],
        );

        // fact_interaction: each source is resolved as soon as it is read, and all but
        // its id column freed before the next is read.
        let mut fact =
            conform::InteractionFact::new(schema.require("fact_interaction")?, &resolver);
        let sessions = self.events("web_sessions", &mut fact, &resolver)?;
        let carts = self.events("cart_events", &mut fact, &resolver)?;
        let emails = self.events("email_events", &mut fact, &resolver)?;
        self.settle(
            &fact.orphaned(),
            Vec::new(),
            &mut [
                ("web_sessions", &mut Some(sessions)),
                ("cart_events", &mut Some(carts)),
                ("email_events", &mut Some(emails)),
            ],
        );
        self.write_monthly("fact_interaction", &fact)?;
        drop(fact);

        // fact_ticket.
        let mut tickets = self.stage("tickets")?;
        let mut order_ids = known_ids(
            order_id_column.as_ref(),
            &column_texts(&tickets.batch, "order_id"),
        );
        drop(order_id_column);
        if tickets.batch.num_rows() > 0 {
            order_ids.extend(state::previous_order_ids(self.base)?);
        }
        let strict_orders = self.spec("tickets")?.foreign_keys.iter().any(|fk| {
            fk.references == "orders.order_id"
                && fk.on_orphan == crmcube_model::OnOrphan::Quarantine
        });
        if strict_orders {
            // Tickets may refer to orders of earlier loads.
            self.fk_keys
                .insert("orders.order_id".into(), order_ids.clone());
        }
        self.enforce_foreign_keys("tickets", &mut tickets)?;
        let t0 = Instant::now();
        let out = conform::build_fact_ticket(
            schema.require("fact_ticket")?,
            &tickets,
            &order_ids,
            &resolver,
        )?;
        drop(order_ids);
        self.conform_seconds += t0.elapsed().as_secs_f64();
        self.absorb("fact_ticket", out, &mut [("tickets", &mut Some(tickets))])?;

        // fact_campaign_response.
        let mut contacts = self.stage("campaign_contacts")?;
        self.enforce_foreign_keys("campaign_contacts", &mut contacts)?;
        let t0 = Instant::now();
        let out = conform::build_fact_campaign_response(
            schema.require("fact_campaign_response")?,
            &contacts,
            &resolver,
        )?;
        self.conform_seconds += t0.elapsed().as_secs_f64();
        self.absorb(
            "fact_campaign_response",
            out,
            &mut [("campaign_contacts", &mut Some(contacts))],
        )?;

        // dim_date over the facts' dates, and the quarantine.
        if let Some((a, b)) = state::previous_day_range(self.base)? {
            self.day_range = Some(match self.day_range {
                None => (a, b),
                Some((lo, hi)) => (lo.min(a), hi.max(b)),
            });
        }
        let (lo, hi) = self.day_range.unwrap_or_else(|| {
            let today = value::days_of_date(chrono::Utc::now().date_naive());
            (today, today)
        });
        let dim_date = conform::build_dim_date(schema.require("dim_date")?, lo, hi)?;
        self.write("dim_date", &dim_date)?;
        let mut rejects = std::mem::take(&mut self.rejects);
        rejects.sort_by(|a, b| {
            (&a.entity, &a.source_file, a.line).cmp(&(&b.entity, &b.source_file, b.line))
        });
        let q = quarantine::quarantine_batch(&rejects)?;
        self.rejects = rejects;
        let exists = self
            .base
            .is_some_and(|b| b.tables.contains_key(QUARANTINE_TABLE));
        if q.num_rows() > 0 || !exists {
            self.write_mode(QUARANTINE_TABLE, &q, crmcube_store::Mode::Append)?;
        }
        Ok(())
    }

    fn spec(&self, entity: &str) -> Result<&'a crmcube_model::EntitySpec> {
        self.opts
            .contract
            .entity(entity)
            .ok_or_else(|| Error::Usage(format!("no entity {entity}")))
    }

    /// Keeps the keys of `entity` if a foreign key with `on_orphan: quarantine` refers
    /// to it (dimension entities include the rows of earlier loads; orders and web
    /// sessions are those of this load, plus earlier orders for tickets).
    fn remember_keys(&mut self, entity: &str, st: &StagedEntity) {
        for (name, spec) in &self.opts.contract.entities {
            for fk in &spec.foreign_keys {
                if fk.on_orphan == crmcube_model::OnOrphan::Quarantine
                    && fk.target_entity() == entity
                    && !crmcube_model::LINE_ITEMS.contains(&(name.as_str(), fk.column.as_str()))
                    && !self.fk_keys.contains_key(&fk.references)
                {
                    let keys = column_texts(&st.batch, fk.target_column())
                        .into_iter()
                        .flatten()
                        .collect();
                    self.fk_keys.insert(fk.references.clone(), keys);
                }
            }
        }
    }

    /// Quarantines the rows of `name` whose foreign key with `on_orphan: quarantine`
    /// refers to no row (an empty value is not a reference). Foreign keys with
    /// `on_orphan: unknown` are resolved to the Unknown member while the facts are
    /// built.
    fn enforce_foreign_keys(&mut self, name: &str, st: &mut StagedEntity) -> Result<()> {
        let spec = self.spec(name)?;
        for fk in &spec.foreign_keys {
            if fk.on_orphan != crmcube_model::OnOrphan::Quarantine
                || crmcube_model::LINE_ITEMS.contains(&(name, fk.column.as_str()))
            {
                continue;
            }
            let Some(keys) = self.fk_keys.get(&fk.references) else {
                continue;
            };
            let values = column_texts(&st.batch, &fk.column);
            let mut keep = vec![true; values.len()];
            for (i, v) in values.iter().enumerate() {
                if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                    if !keys.contains(v) {
                        keep[i] = false;
                        st.reject(
                            name,
                            i,
                            Some(&fk.column),
                            Some(v.to_string()),
                            format!("not found among the loaded {}", fk.target_entity()),
                        );
                    }
                }
            }
            st.retain(&keep)?;
        }
        Ok(())
    }

    /// Reads web sessions, cart events or email events (`name`: `web_sessions`,
    /// `cart_events` or `email_events`) into `fact`. The first two are the largest
    /// exports. They are resolved as they are read, a few chunks at a time, when their
    /// ids ascend, no foreign key of theirs can refuse a row, and no other entity's can
    /// refuse rows by their keys (see [`entity::stream_entity`]); otherwise they are
    /// staged whole first. Returns the entity without rows.
    fn events(
        &mut self,
        name: &str,
        fact: &mut conform::InteractionFact,
        resolver: &Resolver,
    ) -> Result<StagedEntity> {
        let spec = self.spec(name)?;
        let refusing = spec.foreign_keys.iter().any(|fk| {
            fk.on_orphan == crmcube_model::OnOrphan::Quarantine
                && !crmcube_model::LINE_ITEMS.contains(&(name, fk.column.as_str()))
                && self.fk_keys.contains_key(&fk.references)
        });
        // Keys another entity's rows are checked against need the staged rows.
        let referred = self.opts.contract.entities.iter().any(|(_, e)| {
            e.foreign_keys.iter().any(|fk| {
                fk.on_orphan == crmcube_model::OnOrphan::Quarantine && fk.target_entity() == name
            })
        });
        let files = self.files.entities.get(name).cloned().unwrap_or_default();
        if !refusing && !referred && !files.is_empty() {
            self.progress
                .step(&format!("reading {name} and building fact_interaction"));
            let t0 = Instant::now();
            let mut resolving = 0.0;
            let csv = &self.opts.csv;
            let feed: conform::Feed<StagedEntity> = Box::new(|sink| {
                entity::stream_entity(name, spec, &files, csv, &mut |batches, more| {
                    let t = Instant::now();
                    let done = sink(batches, more);
                    resolving += t.elapsed().as_secs_f64();
                    done
                })
            });
            let streamed = match name {
                "web_sessions" => fact.stream_web_sessions(resolver, feed)?,
                "cart_events" => fact.stream_cart_events(resolver, feed)?,
                "email_events" => fact.stream_email_events(resolver, feed)?,
                other => return Err(Error::Usage(format!("{other} is no interaction source"))),
            };
            if let Some(st) = streamed {
                // The reading time includes the resolving, which overlaps it.
                let seconds = t0.elapsed().as_secs_f64();
                self.reports
                    .insert(name.into(), EntityReport::new(name, &st, seconds));
                self.conform_seconds += resolving;
                return Ok(st);
            }
            self.progress
                .step(&format!("{name} ids do not ascend: staging them whole"));
        }
        let mut st = self.stage(name)?;
        self.enforce_foreign_keys(name, &mut st)?;
        self.remember_keys(name, &st);
        self.conform(
            &format!("building fact_interaction from {name}"),
            || match name {
                "web_sessions" => fact.add_web_sessions(&st, resolver),
                "cart_events" => fact.add_cart_events(&st, resolver),
                "email_events" => fact.add_email_events(&st, resolver),
                other => Err(Error::Usage(format!("{other} is no interaction source"))),
            },
        )?;
        st.drop_rows();
        Ok(st)
    }

    /// Reads and checks every new file of an entity.
    fn stage(&mut self, name: &str) -> Result<StagedEntity> {
        let (st, seconds) = read_entity(self.opts, self.files, self.progress, name)?;
        self.reports
            .insert(name.to_string(), EntityReport::new(name, &st, seconds));
        Ok(st)
    }

    /// Stages a dimension entity's new rows, adds the rows of earlier loads to them and
    /// keeps the union as the entity's source state, to be written: its table and rows
    /// are added to `sources`.
    fn stage_dimension(
        &mut self,
        name: &str,
        sources: &mut Vec<(String, arrow::record_batch::RecordBatch)>,
    ) -> Result<StagedEntity> {
        let st = self.stage(name)?;
        let spec = self.spec(name)?;
        let previous = state::previous_source(self.base, name, spec)?;
        let mut st = state::union_previous(spec, st, previous)?;
        // Dimensions refer only to dimensions staged before them (customers to
        // regions), so their keys are known here.
        self.enforce_foreign_keys(name, &mut st)?;
        self.remember_keys(name, &st);
        sources.push((state::source_table(name), state::source_batch(spec, &st)?));
        Ok(st)
    }

    /// Builds and writes the dimensions from their entities' staged rows; returns the
    /// lookups of their keys.
    fn dimensions(
        &mut self,
        regions_st: StagedEntity,
        products_st: StagedEntity,
        campaigns_st: StagedEntity,
        customers_st: StagedEntity,
    ) -> Result<Resolver> {
        let schema = self.opts.schema;
        self.progress.step("building dimensions");
        let t0 = Instant::now();
        let regions = conform::region_lookup(&regions_st)?;
        let mut dims = Vec::new();
        for (table, entity, st) in [
            ("dim_region", "regions", &regions_st),
            ("dim_product", "products", &products_st),
            ("dim_campaign", "campaigns", &campaigns_st),
        ] {
            let spec = self.spec(entity)?;
            dims.push((
                table,
                conform::build_simple_dims(table, schema.require(table)?, entity, spec, st)?,
            ));
        }
        let (dim_customer, versions, cust_orph) =
            conform::build_dim_customer(schema.require("dim_customer")?, &customers_st, &regions)?;
        dims.push(("dim_customer", dim_customer));
        let channel_def = schema.require("dim_channel")?;
        dims.push(("dim_channel", conform::build_dim_channel(channel_def)?));
        let resolver = build_resolver(
            &products_st,
            &campaigns_st,
            &regions_st,
            versions,
            channel_def,
        )?;
        self.conform_seconds += t0.elapsed().as_secs_f64();
        for (name, st, orph) in [
            ("regions", regions_st, 0),
            ("products", products_st, 0),
            ("campaigns", campaigns_st, 0),
            ("customers", customers_st, cust_orph),
        ] {
            self.finish(name, st, orph);
        }
        for (table, batch) in dims {
            self.write(table, &batch)?;
        }
        Ok(resolver)
    }

    /// Closes an entity's report and keeps its refused rows.
    fn finish(&mut self, name: &str, st: StagedEntity, orphaned: u64) {
        if let Some(r) = self.reports.get_mut(name) {
            r.finish(&st, orphaned);
        }
        self.rejects.extend(st.rejects);
    }

    /// Takes a built fact: records its rejects and orphans, writes it, frees its sources.
    fn absorb(
        &mut self,
        table: &str,
        out: conform::FactOutput,
        sources: &mut [(&str, &mut Option<StagedEntity>)],
    ) -> Result<()> {
        self.settle(&out.orphaned, out.rejects, sources);
        if let Some(p) = self
            .opts
            .schema
            .table(table)
            .and_then(|d| d.partition_by.clone())
        {
            for range in out.batches.iter().filter_map(|b| ts_day_range(b, &p)) {
                self.widen_days(range);
            }
        }
        self.write_fact(table, out.batches)
    }

    /// Records a fact's rejects and orphans against its sources and frees them.
    fn settle(
        &mut self,
        orphaned: &[(&str, u64)],
        rejects: Vec<(&str, Vec<conform::FactReject>)>,
        sources: &mut [(&str, &mut Option<StagedEntity>)],
    ) {
        for (entity, rejects) in rejects {
            if let Some((_, Some(st))) = sources.iter_mut().find(|(n, _)| *n == entity) {
                for (row, col, value, reason) in rejects {
                    st.reject(entity, row, Some(col), Some(value), reason);
                }
            }
        }
        for (entity, slot) in sources.iter_mut() {
            if let Some(st) = slot.take() {
                let orphaned = orphaned
                    .iter()
                    .filter(|(e, _)| e == entity)
                    .map(|(_, n)| *n)
                    .sum();
                self.finish(entity, st, orphaned);
            }
        }
    }

    /// Runs one step of conforming rows to the star schema, timed as such.
    fn conform<T>(&mut self, step: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.progress.step(step);
        let t0 = Instant::now();
        let out = f();
        self.conform_seconds += t0.elapsed().as_secs_f64();
        out
    }

    /// Widens the day range of dim_date to include `(lo, hi)`.
    fn widen_days(&mut self, (lo, hi): (i32, i32)) {
        self.day_range = Some(match self.day_range {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
    }

    /// Writes a fact's rows, merged with the live table's files they touch.
    fn write_fact(
        &mut self,
        table: &str,
        batches: Vec<arrow::record_batch::RecordBatch>,
    ) -> Result<()> {
        let def = self.opts.schema.require(table)?;
        let exists = self.base.is_some_and(|b| b.tables.contains_key(table));
        if batches.iter().all(|b| b.num_rows() == 0) && exists {
            return Ok(());
        }
        let merged = state::merge_fact(self.base, table, def, batches)?;
        self.write_files(
            table,
            merged.batches,
            crmcube_store::Mode::ReplaceFiles,
            merged.replaced,
        )
    }

    /// Writes a fact built a month at a time. On a first load into a table partitioned
    /// by the fact's time column, each month is built, written and dropped in turn;
    /// otherwise every month is built first (to be merged with the live files they
    /// touch, or partitioned as the schema says).
    fn write_monthly(&mut self, table: &str, fact: &impl conform::MonthlyFact) -> Result<()> {
        if let Some(range) = fact.day_range() {
            self.widen_days(range);
        }
        let def = self.opts.schema.require(table)?;
        let exists = self.base.is_some_and(|b| b.tables.contains_key(table));
        let by_month = def.partition_by.as_deref() == Some(fact.time_column());
        if exists || !by_month || fact.months().is_empty() {
            let t0 = Instant::now();
            let batches = fact.build_all()?;
            self.conform_seconds += t0.elapsed().as_secs_f64();
            return self.write_fact(table, batches);
        }
        self.write_with(
            table,
            def.arrow_schema(),
            crmcube_store::Mode::ReplaceFiles,
            Vec::new(),
            |dir, file_name| {
                write::write_months(
                    dir,
                    file_name,
                    &def.sort_by,
                    fact.months(),
                    fact.month_rows(),
                    |k| fact.month(k),
                )
            },
        )
    }

    /// Writes a whole table (a new version replaces it).
    fn write(&mut self, name: &str, batch: &arrow::record_batch::RecordBatch) -> Result<()> {
        self.write_mode(name, batch, crmcube_store::Mode::Replace)
    }

    /// Writes new files of a table and stages them for the commit.
    fn write_mode(
        &mut self,
        name: &str,
        batch: &arrow::record_batch::RecordBatch,
        mode: crmcube_store::Mode,
    ) -> Result<()> {
        self.write_files(name, vec![batch.clone()], mode, Vec::new())
    }

    /// Writes new files of a table from its parts (one schema); the commit removes the
    /// live files `replaced`.
    fn write_files(
        &mut self,
        name: &str,
        parts: Vec<arrow::record_batch::RecordBatch>,
        mode: crmcube_store::Mode,
        replaced: Vec<String>,
    ) -> Result<()> {
        let schema_def = self.opts.schema;
        let (partition_by, sort_by) = match schema_def.table(name) {
            Some(def) => (def.partition_by.as_deref(), def.sort_by.as_slice()),
            None => (None, &[][..]),
        };
        let schema = match parts.first() {
            Some(p) => p.schema(),
            None => schema_def.require(name)?.arrow_schema(),
        };
        self.write_with(name, schema, mode, replaced, |dir, file_name| {
            write::write_table(dir, file_name, partition_by, sort_by, parts)
        })
    }

    /// Writes a table's new files with `write` (given the table's staging folder and
    /// the file name for this load), then stages them for the commit and reports them.
    fn write_with(
        &mut self,
        name: &str,
        schema: arrow::datatypes::SchemaRef,
        mode: crmcube_store::Mode,
        replaced: Vec<String>,
        write: impl FnOnce(&Path, &str) -> Result<Vec<crmcube_store::DataFile>>,
    ) -> Result<()> {
        self.progress.step(&format!("writing {name}"));
        let t0 = Instant::now();
        let file_name = self.writer.new_file_path(None, 0);
        let dir = self.writer.dir().join(name);
        let files = write(&dir, &file_name)?;
        self.written.push(write::summarize(name, &files));
        self.writer
            .stage_replacing(name, schema, files, mode, replaced);
        self.write_seconds += t0.elapsed().as_secs_f64();
        Ok(())
    }
}

/// A column's values as text (`None` for nulls); empty when the column is missing.
fn column_texts(batch: &arrow::record_batch::RecordBatch, col: &str) -> Vec<Option<String>> {
    use arrow::array::{Array, AsArray};
    let Some(a) = batch.column_by_name(col) else {
        return Vec::new();
    };
    match arrow::compute::cast(a, &arrow::datatypes::DataType::Utf8) {
        Ok(t) => t
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect(),
        Err(_) => vec![None; a.len()],
    }
}

/// The values of `wanted` that occur in the text column `ids`.
fn known_ids(ids: Option<&arrow::array::ArrayRef>, wanted: &[Option<String>]) -> HashSet<String> {
    use arrow::array::{Array, AsArray};
    let wanted: HashSet<&str> = wanted.iter().flatten().map(String::as_str).collect();
    let Some(ids) = ids.and_then(|a| a.as_string_opt::<i32>()) else {
        return HashSet::default();
    };
    if wanted.is_empty() {
        return HashSet::default();
    }
    (0..ids.len())
        .into_par_iter()
        .filter(|&i| ids.is_valid(i) && wanted.contains(ids.value(i)))
        .map(|i| ids.value(i).to_string())
        .collect()
}

fn conform_ids(st: &StagedEntity, col: &str) -> HashSet<String> {
    st.batch
        .column_by_name(col)
        .and_then(|a| a.as_any().downcast_ref::<arrow::array::StringArray>())
        .map(|a| a.iter().flatten().map(str::to_string).collect())
        .unwrap_or_default()
}

fn build_resolver(
    products: &StagedEntity,
    campaigns: &StagedEntity,
    regions: &StagedEntity,
    versions: conform::CustomerVersions,
    channel_def: &crmcube_model::TableDef,
) -> Result<Resolver> {
    use arrow::array::Array;
    let p = conform::Cols::new("products", products);
    let (ids, cost) = (p.str("product_id")?, p.dec("unit_cost")?);
    let mut products = conform::Members::with_capacity(ids.len());
    for i in 0..ids.len() {
        let c = if cost.is_valid(i) {
            conform::to_money(cost.value(i), cost.scale())
        } else {
            0
        };
        products.insert(ids.value(i), (key_of(ids.value(i)), c))?;
    }
    let c = conform::Cols::new("campaigns", campaigns);
    let (ids, ch) = (c.str("campaign_id")?, c.str("channel")?);
    let mut campaigns = conform::Members::with_capacity(ids.len());
    for i in 0..ids.len() {
        campaigns.insert(ids.value(i), (key_of(ids.value(i)), key_of(ch.value(i))))?;
    }
    Ok(Resolver {
        customers: versions,
        products,
        regions: conform_ids(regions, "region_id"),
        campaigns,
        channels: channel_def
            .members
            .iter()
            .filter_map(|m| m.get("channel").cloned())
            .collect(),
    })
}

fn ts_day_range(batch: &arrow::record_batch::RecordBatch, col: &str) -> Option<(i32, i32)> {
    use arrow::array::AsArray;
    use arrow::datatypes::TimestampMicrosecondType;
    let a = batch
        .column_by_name(col)?
        .as_primitive_opt::<TimestampMicrosecondType>()?;
    let lo = arrow::compute::min(a)?;
    let hi = arrow::compute::max(a)?;
    Some((value::days_of_micros(lo), value::days_of_micros(hi)))
}

/// The hex sha256 of a file (how versions before XXH3 fingerprints recorded inputs).
fn sha256_file(path: &Path) -> Result<String> {
    let bytes = read::read_all(path).map_err(|e| Error::io(path, e))?;
    Ok(Sha256::digest(&*bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Publishes one table's new rows as a new warehouse version: the batch is written as
/// one file under `folder` (e.g. `as_of=2025-12-31`) and committed with `mode` (replace
/// the table, append, or replace the files of that folder). Used by jobs that write
/// derived tables (customer scores, pre-aggregations). The warehouse must exist.
pub fn commit_table(
    warehouse: &Path,
    operation: &str,
    table: &str,
    folder: Option<&str>,
    batch: &arrow::record_batch::RecordBatch,
    mode: crmcube_store::Mode,
    info: serde_json::Value,
) -> Result<Option<crmcube_store::Commit>> {
    if !crmcube_store::is_warehouse(warehouse) {
        return Err(Error::Usage(format!(
            "{}: not a crmcube warehouse; build one with `crmcube ingest` first",
            warehouse.display()
        )));
    }
    let mut w = crmcube_store::Writer::begin(warehouse, operation)?;
    stage_batch(&mut w, table, folder, batch, mode)?;
    w.commit(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, RecordBatch};
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
    use crmcube_store::{AsOf, Snapshot};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn sample() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sample_data")
    }

    fn load(source: &Path, warehouse: &Path) -> IngestReport {
        load_with(source, warehouse, &ExportContract::builtin().unwrap())
    }

    fn load_with(source: &Path, warehouse: &Path, contract: &ExportContract) -> IngestReport {
        load_showing(source, warehouse, contract, &NoProgress)
    }

    /// The steps of a load, as its progress shows them.
    #[derive(Default)]
    struct Steps(std::sync::Mutex<Vec<String>>);
    impl Progress for Steps {
        fn step(&self, message: &str) {
            self.0.lock().unwrap().push(message.to_string());
        }
    }
    impl Steps {
        fn any(&self, message: &str) -> bool {
            self.0.lock().unwrap().iter().any(|m| m == message)
        }
    }

    fn load_showing(
        source: &Path,
        warehouse: &Path,
        contract: &ExportContract,
        progress: &dyn Progress,
    ) -> IngestReport {
        let schema = WarehouseSchema::builtin().unwrap();
        load_into(source, warehouse, contract, &schema, progress)
    }

    fn load_into(
        source: &Path,
        warehouse: &Path,
        contract: &ExportContract,
        schema: &WarehouseSchema,
        progress: &dyn Progress,
    ) -> IngestReport {
        let opts = IngestOptions {
            source: source.to_path_buf(),
            warehouse: warehouse.to_path_buf(),
            contract,
            schema,
            csv: CsvOptions::default(),
            max_reject_rate: None,
            pattern: None,
        };
        ingest(&opts, progress).unwrap()
    }

    /// The live files of fact_interaction: (partition folder, rows of the file).
    fn interaction_files(warehouse: &Path) -> Vec<(String, RecordBatch)> {
        table_files(warehouse, "fact_interaction")
    }

    /// The live files of a table: (partition folder, rows of the file).
    fn table_files(warehouse: &Path, table: &str) -> Vec<(String, RecordBatch)> {
        let snap = Snapshot::open(warehouse, AsOf::Latest).unwrap();
        let mut files: Vec<String> = snap.tables[table].files.keys().cloned().collect();
        files.sort();
        files
            .into_iter()
            .map(|rel| {
                let f = std::fs::File::open(warehouse.join(table).join(&rel)).unwrap();
                let r = ParquetRecordBatchReaderBuilder::try_new(f)
                    .unwrap()
                    .build()
                    .unwrap();
                let batches: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
                let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
                let folder = rel
                    .rsplit_once('/')
                    .map(|(f, _)| f)
                    .unwrap_or("")
                    .to_string();
                (folder, all)
            })
            .collect()
    }

    fn strs<'b>(b: &'b RecordBatch, name: &str) -> &'b arrow::array::StringArray {
        b.column_by_name(name).unwrap().as_string::<i32>()
    }

    fn ints<'b>(b: &'b RecordBatch, name: &str) -> &'b arrow::array::Int64Array {
        b.column_by_name(name).unwrap().as_primitive::<Int64Type>()
    }

    fn times<'b>(b: &'b RecordBatch, name: &str) -> &'b arrow::array::TimestampMicrosecondArray {
        b.column_by_name(name)
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
    }

    /// (interaction_id, date_key, customer_key) of every row, sorted.
    fn rows(files: &[(String, RecordBatch)]) -> Vec<(String, i64, i64)> {
        let mut out = Vec::new();
        for (_, b) in files {
            let id = strs(b, "interaction_id");
            let dk = ints(b, "date_key");
            let ck = ints(b, "customer_key");
            for i in 0..b.num_rows() {
                out.push((id.value(i).to_string(), dk.value(i), ck.value(i)));
            }
        }
        out.sort();
        out
    }

    /// The sample export in `to`, with `entity`'s CSV file replaced by a folder of files
    /// (read in name order), each `head` and then the lines of one of `files`.
    fn split_sample(to: &Path, entity: &str, head: &str, files: &[&[&str]]) -> PathBuf {
        copy_sample(to);
        std::fs::remove_file(to.join(format!("{entity}.csv"))).unwrap();
        std::fs::create_dir_all(to.join(entity)).unwrap();
        for (i, rows) in files.iter().enumerate() {
            let mut s = format!("{head}\n");
            for l in rows.iter() {
                s.push_str(l);
                s.push('\n');
            }
            std::fs::write(to.join(format!("{entity}/part{i}.csv")), s).unwrap();
        }
        to.to_path_buf()
    }

    /// The sample export's CSV files, copied into `to`.
    fn copy_sample(to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(sample()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "csv") {
                std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
            }
        }
    }

    /// Sets field `column` of line `line` (0: the header) of the CSV file at `path`, a
    /// file without quoted fields; returns the line's first field (its id).
    fn set_field(path: &Path, line: usize, column: usize, value: &str) -> String {
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut fields: Vec<&str> = lines[line].split(',').collect();
        let id = fields[0].to_string();
        fields[column] = value;
        lines[line] = fields.join(",");
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
        id
    }

    fn data_lines(path: &Path) -> usize {
        std::fs::read_to_string(path).unwrap().lines().count() - 1
    }

    #[test]
    fn interactions_are_written_by_month_in_sort_order() {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().join("wh");
        load(&sample(), &wh);
        let files = interaction_files(&wh);
        let total: usize = files.iter().map(|(_, b)| b.num_rows()).sum();
        let expected: usize = ["web_sessions.csv", "cart_events.csv", "email_events.csv"]
            .iter()
            .map(|f| data_lines(&sample().join(f)))
            .sum();
        assert_eq!(total, expected);
        let source_rank = |id: &str| {
            ["web:", "cart:", "email:"]
                .iter()
                .position(|p| id.starts_with(p))
        };
        for (folder, b) in &files {
            let ts = times(b, "event_ts");
            let dk = ints(b, "date_key");
            let id = strs(b, "interaction_id");
            for i in 0..b.num_rows() {
                let ym = value::date_key_of_micros(ts.value(i)) / 100;
                assert_eq!(&write::partition_folder(ym), folder, "row {i} of {folder}");
                assert_eq!(
                    i64::from(value::date_key_of_micros(ts.value(i))),
                    dk.value(i)
                );
                if i > 0 {
                    assert!(
                        dk.value(i - 1) <= dk.value(i),
                        "{folder}: row {i} out of order"
                    );
                    if dk.value(i - 1) == dk.value(i) {
                        // A day's rows keep the sources' order: web, cart, email.
                        assert!(source_rank(id.value(i - 1)) <= source_rank(id.value(i)));
                    }
                }
            }
        }
    }

    #[test]
    fn monthly_facts_follow_the_sort_order_and_partitioning_the_schema_gives() {
        let dir = tempfile::tempdir().unwrap();
        let contract = ExportContract::builtin().unwrap();
        let builtin = crmcube_model::BUILTIN_WAREHOUSE_YAML;
        // Every fact row as text, in a canonical order: the same rows for every layout.
        let rows_of = |files: &[(String, RecordBatch)]| -> Vec<String> {
            let mut rows: Vec<String> = files
                .iter()
                .flat_map(|(_, b)| {
                    let cols: Vec<_> = b
                        .columns()
                        .iter()
                        .map(|c| {
                            arrow::util::display::ArrayFormatter::try_new(
                                c.as_ref(),
                                &Default::default(),
                            )
                            .unwrap()
                        })
                        .collect();
                    (0..b.num_rows())
                        .map(|i| {
                            cols.iter()
                                .map(|c| c.value(i).to_string())
                                .collect::<Vec<_>>()
                                .join("|")
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            rows.sort();
            rows
        };
        let keys = |b: &RecordBatch, i: usize, by: &[&str]| -> Vec<i64> {
            by.iter().map(|c| ints(b, c).value(i)).collect()
        };
        let mut expected: HashMap<&str, Vec<String>> = HashMap::default();
        let layouts: [(&str, &[&str], bool); 4] = [
            ("day", &["date_key"], true),
            ("day_customer", &["date_key", "customer_key"], true),
            ("customer", &["customer_key"], true),
            ("unpartitioned", &["date_key"], false),
        ];
        for (name, by, monthly) in layouts {
            let mut yaml = builtin.replace(
                "sort_by: [date_key]\n",
                &format!("sort_by: [{}]\n", by.join(", ")),
            );
            if !monthly {
                yaml = yaml
                    .replace("    partition_by: order_ts\n", "")
                    .replace("    partition_by: event_ts\n", "");
            }
            let schema = WarehouseSchema::parse(&yaml, name).unwrap();
            let wh = dir.path().join(name);
            load_into(&sample(), &wh, &contract, &schema, &NoProgress);
            for (table, source_order) in [
                ("fact_sales", "order_id"),
                ("fact_interaction", "interaction_id"),
            ] {
                let files = table_files(&wh, table);
                assert_eq!(files.len() > 1, monthly, "{name} {table}");
                for (folder, b) in &files {
                    for i in 1..b.num_rows() {
                        let (prev, this) = (keys(b, i - 1, by), keys(b, i, by));
                        assert!(
                            prev <= this,
                            "{name} {table} {folder}: row {i} out of order"
                        );
                        if prev == this && name == "day" && table == "fact_sales" {
                            // A day's lines keep the export's order (ascending order ids).
                            let id = strs(b, source_order);
                            assert!(id.value(i - 1) <= id.value(i), "{name} {folder} row {i}");
                        }
                    }
                }
                let rows = rows_of(&files);
                assert!(!rows.is_empty());
                let want = expected.entry(table).or_insert_with(|| rows.clone());
                assert_eq!(&rows, want, "{name} {table}");
            }
        }
    }

    #[test]
    fn interactions_loaded_in_two_parts_equal_one_load() {
        let dir = tempfile::tempdir().unwrap();
        let once = dir.path().join("once");
        load(&sample(), &once);

        // First load: everything but the second half of the email events; then the
        // second half alone, merged into the live months.
        let (first, second) = (dir.path().join("first"), dir.path().join("second"));
        std::fs::create_dir_all(&second).unwrap();
        copy_sample(&first);
        let text = std::fs::read_to_string(sample().join("email_events.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let half = lines.len() / 2;
        let head = lines[0];
        let write_csv = |path: &Path, body: &[&str]| {
            let mut s = String::from(head);
            for l in body {
                s.push('\n');
                s.push_str(l);
            }
            s.push('\n');
            std::fs::write(path, s).unwrap();
        };
        write_csv(&first.join("email_events.csv"), &lines[1..half]);
        write_csv(&second.join("email_events.csv"), &lines[half..]);
        let twice = dir.path().join("twice");
        load(&first, &twice);
        load(&second, &twice);

        let (a, b) = (interaction_files(&once), interaction_files(&twice));
        assert_eq!(rows(&a), rows(&b));
        assert!(
            b.len() > a.len(),
            "the second load adds files to live months"
        );
    }

    #[test]
    fn empty_interaction_numbers_stay_null_where_the_contract_allows_them() {
        // A contract where a web session's pages_viewed and a cart event's quantity may
        // be empty, and an export with one of each left empty.
        let yaml = crmcube_model::BUILTIN_OLTP_YAML
            .replace(
                "{ name: pages_viewed, type: int, min: 0 }",
                "{ name: pages_viewed, type: int, min: 0, nullable: true }",
            )
            .replace(
                "{ name: quantity, type: int, min: 0 }",
                "{ name: quantity, type: int, min: 0, nullable: true }",
            );
        assert_ne!(yaml, crmcube_model::BUILTIN_OLTP_YAML);
        let contract = ExportContract::parse(&yaml, "test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("export");
        copy_sample(&export);
        let session = format!(
            "web:{}",
            set_field(&export.join("web_sessions.csv"), 3, 5, "")
        );
        let cart = format!(
            "cart:{}",
            set_field(&export.join("cart_events.csv"), 4, 6, "")
        );
        let warehouse = dir.path().join("wh");
        load_with(&export, &warehouse, &contract);

        let mut seen = 0;
        for (_, b) in interaction_files(&warehouse) {
            let (id, pages, duration, qty) = (
                strs(&b, "interaction_id"),
                ints(&b, "pages_viewed"),
                ints(&b, "duration_s"),
                ints(&b, "quantity"),
            );
            for i in 0..b.num_rows() {
                let (web, carted) = (
                    id.value(i).starts_with("web:"),
                    id.value(i).starts_with("cart:"),
                );
                if id.value(i) == session {
                    assert!(pages.is_null(i) && duration.is_valid(i), "{session}");
                    seen += 1;
                } else if id.value(i) == cart {
                    assert!(qty.is_null(i), "{cart}");
                    seen += 1;
                } else {
                    assert_eq!(pages.is_valid(i), web, "{}", id.value(i));
                    assert_eq!(duration.is_valid(i), web, "{}", id.value(i));
                    assert_eq!(qty.is_valid(i), carted, "{}", id.value(i));
                }
            }
        }
        assert_eq!(seen, 2);
    }

    #[test]
    fn interaction_numbers_beyond_32_bits_and_references_load_as_exported() {
        // A contract where durations may be negative, and an export with numbers that
        // do not fit the 32 bits a resolved row keeps them in.
        let yaml = crmcube_model::BUILTIN_OLTP_YAML.replace(
            "{ name: duration_s, type: int, min: 0 }",
            "{ name: duration_s, type: int }",
        );
        assert_ne!(yaml, crmcube_model::BUILTIN_OLTP_YAML);
        let contract = ExportContract::parse(&yaml, "test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("export");
        copy_sample(&export);
        let set = |file: &str, line: usize, column: usize, value: &str| {
            set_field(&export.join(file), line, column, value)
        };
        let mut expected: HashMap<String, (usize, i64)> = HashMap::default();
        let big = format!("web:{}", set("web_sessions.csv", 3, 5, "5000000000"));
        expected.insert(big, (0, 5_000_000_000));
        let negative = format!("web:{}", set("web_sessions.csv", 7, 6, "-7"));
        expected.insert(negative, (1, -7));
        let max = format!("web:{}", set("web_sessions.csv", 9, 6, "4294967295"));
        expected.insert(max, (1, 4_294_967_295));
        let many = format!("cart:{}", set("cart_events.csv", 4, 6, "9999999999"));
        expected.insert(many, (2, 9_999_999_999));
        let warehouse = dir.path().join("wh");
        load_with(&export, &warehouse, &contract);

        // Each cart event's product and email event's campaign, from the export.
        let read = |file: &str, column: usize, prefix: &str| -> HashMap<String, String> {
            let text = std::fs::read_to_string(export.join(file)).unwrap();
            text.lines()
                .skip(1)
                .map(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    (format!("{prefix}{}", f[0]), f[column].to_string())
                })
                .collect()
        };
        let products = read("cart_events.csv", 5, "cart:");
        let campaigns = read("email_events.csv", 2, "email:");
        let members = |file: &str| -> HashSet<String> { read(file, 0, "").into_keys().collect() };
        let (known_products, known_campaigns) = (members("products.csv"), members("campaigns.csv"));
        let key = |id: &String, known: &HashSet<String>| {
            if known.contains(id) {
                key_of(id)
            } else {
                crmcube_model::keys::UNKNOWN_KEY
            }
        };
        let (mut seen, mut referenced) = (0, 0);
        for (_, b) in interaction_files(&warehouse) {
            let id = strs(&b, "interaction_id");
            let numbers = [
                ints(&b, "pages_viewed"),
                ints(&b, "duration_s"),
                ints(&b, "quantity"),
            ];
            let (product, campaign) = (ints(&b, "product_key"), ints(&b, "campaign_key"));
            for i in 0..b.num_rows() {
                if let Some(&(column, value)) = expected.get(id.value(i)) {
                    assert_eq!(numbers[column].value(i), value, "{}", id.value(i));
                    seen += 1;
                }
                if let Some(p) = products.get(id.value(i)) {
                    assert_eq!(product.value(i), key(p, &known_products), "{}", id.value(i));
                    referenced += 1;
                } else if let Some(c) = campaigns.get(id.value(i)) {
                    assert_eq!(
                        campaign.value(i),
                        key(c, &known_campaigns),
                        "{}",
                        id.value(i)
                    );
                    referenced += 1;
                } else {
                    assert_eq!(product.value(i), crmcube_model::keys::UNKNOWN_KEY);
                    assert_eq!(campaign.value(i), crmcube_model::keys::UNKNOWN_KEY);
                }
            }
        }
        assert_eq!(seen, expected.len());
        assert_eq!(referenced, products.len() + campaigns.len());
    }

    #[test]
    fn events_streamed_or_staged_load_alike() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole");
        load(&sample(), &whole);
        let expected = interaction_files(&whole);

        let text = std::fs::read_to_string(sample().join("cart_events.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let (head, body) = (lines[0], &lines[1..]);
        let half = body.len() / 2;
        // The sample export's cart events as a folder of files.
        let export = |name: &str, files: &[&[&str]]| {
            split_sample(&dir.path().join(name), "cart_events", head, files)
        };
        let cart = |r: &IngestReport| -> (u64, u64, u64) {
            let e = r
                .entities
                .iter()
                .find(|e| e.entity == "cart_events")
                .unwrap();
            (e.read, e.loaded, e.quarantined)
        };
        let n = body.len() as u64;
        let contract = ExportContract::builtin().unwrap();
        let load = |src: &Path, name: &str, streamed: bool| {
            let steps = Steps::default();
            let r = load_showing(src, &dir.path().join(name), &contract, &steps);
            assert!(steps.any("reading cart_events and building fact_interaction"));
            let staged = steps.any("cart_events ids do not ascend: staging them whole");
            assert_eq!(staged, !streamed, "{name}");
            // The sample's web sessions and email events are numbered in order.
            for entity in ["web_sessions", "email_events"] {
                let staged = format!("{entity} ids do not ascend: staging them whole");
                let web_staged = name.starts_with("wh_web_staged") && entity == "web_sessions";
                assert_eq!(steps.any(&staged), web_staged, "{name} {entity}");
            }
            r
        };

        // Ids ascending across two files: resolved as read, the same rows in the same
        // order as from one file.
        let src = export("ascending", &[&body[..half], &body[half..]]);
        let r = load(&src, "wh_ascending", true);
        assert_eq!(cart(&r), (n, n, 0));
        assert_eq!(
            interaction_files(&dir.path().join("wh_ascending")),
            expected
        );

        // The second file's ids come before the first's: staged whole instead, the
        // same rows (rows of equal keys follow the files' order).
        let src = export("descending", &[&body[half..], &body[..half]]);
        let r = load(&src, "wh_descending", false);
        assert_eq!(cart(&r), (n, n, 0));
        let got = interaction_files(&dir.path().join("wh_descending"));
        assert_eq!(rows(&got), rows(&expected));

        // A repeated id in the second file: staged whole, the repeat quarantined (the
        // first row wins), everything else loaded.
        let mut second: Vec<&str> = body[half..].to_vec();
        second.push(body[0]);
        let src = export("repeated", &[&body[..half], &second]);
        let r = load(&src, "wh_repeated", false);
        assert_eq!(cart(&r), (n + 1, n, 1));
        let got = interaction_files(&dir.path().join("wh_repeated"));
        assert_eq!(rows(&got), rows(&expected));

        // The first file's ids follow one pattern (kept as numbers), the second's none
        // (kept as text): streamed, the same rows as those files staged whole (in
        // reverse order), and each id as the export has it.
        let suffixed: Vec<String> = body[half..]
            .iter()
            .map(|l| {
                let (id, rest) = l.split_once(',').unwrap();
                format!("{id}x,{rest}")
            })
            .collect();
        let suffixed: Vec<&str> = suffixed.iter().map(String::as_str).collect();
        let src = export("mixed", &[&body[..half], &suffixed]);
        assert_eq!(cart(&load(&src, "wh_mixed", true)), (n, n, 0));
        let src = export("mixed_staged", &[&suffixed, &body[..half]]);
        assert_eq!(cart(&load(&src, "wh_mixed_staged", false)), (n, n, 0));
        let mixed = rows(&interaction_files(&dir.path().join("wh_mixed")));
        let staged = rows(&interaction_files(&dir.path().join("wh_mixed_staged")));
        assert_eq!(mixed, staged);
        let text_ids: Vec<&str> = mixed
            .iter()
            .map(|(id, _, _)| id.as_str())
            .filter(|id| id.ends_with('x'))
            .collect();
        assert_eq!(text_ids.len(), body.len() - half);
        let first_text_id = format!("cart:{}x", body[half].split(',').next().unwrap());
        assert!(text_ids.contains(&first_text_id.as_str()));

        // The sample export's web sessions as a folder of files.
        let text = std::fs::read_to_string(sample().join("web_sessions.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let (head, body) = (lines[0], &lines[1..]);
        let half = body.len() / 2;
        let web_export = |name: &str, files: &[&[&str]]| {
            split_sample(&dir.path().join(name), "web_sessions", head, files)
        };
        // Web sessions whose second file's ids come first: staged whole, and the cart
        // events still find their sessions (same rows, same customers).
        let src = web_export("web_staged", &[&body[half..], &body[..half]]);
        load(&src, "wh_web_staged", true);
        let got = interaction_files(&dir.path().join("wh_web_staged"));
        assert_eq!(rows(&got), rows(&expected));

        // A session missing from the second file breaks the run of session numbers:
        // streamed, the cart events find their sessions through the ids' text, as
        // when the same files are staged whole.
        let gap: Vec<&str> = body[half + 1..].to_vec();
        let src = web_export("web_gap", &[&body[..half], &gap]);
        let streamed = load(&src, "wh_web_gap", true);
        let src = web_export("web_staged_gap", &[&gap, &body[..half]]);
        let staged = load(&src, "wh_web_staged_gap", true);
        let orphans =
            |r: &IngestReport| -> Vec<u64> { r.entities.iter().map(|e| e.orphaned).collect() };
        assert_eq!(orphans(&streamed), orphans(&staged));
        let got = rows(&interaction_files(&dir.path().join("wh_web_gap")));
        assert_eq!(
            got,
            rows(&interaction_files(&dir.path().join("wh_web_staged_gap")))
        );
        assert_eq!(got.len(), rows(&expected).len() - 1);
    }

    #[test]
    fn input_fingerprints_are_xxh3_128_and_older_sha256_records_still_match() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        // Reference values from the xxhash Python package (xxh3_128_hexdigest); the
        // 3 MB file is mapped, the others are read.
        for (bytes, want) in [
            (b"".to_vec(), "99aa06d3014798d86001c324468d497f"),
            (b"abc".to_vec(), "06b05ab6733a618578af5f94892f3950"),
            (vec![b'x'; 3_000_000], "1f895bac9b72598405afde2f9995314a"),
        ] {
            let print = InputFingerprint::of(&file("f", &bytes)).unwrap();
            assert_eq!(
                (print.xxh3_128.as_str(), print.bytes),
                (want, bytes.len() as u64)
            );
        }
        // A warehouse whose log recorded "abc" by its sha256 (FIPS 180-2 example).
        let abc = file("abc.csv", b"abc");
        let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let mut loaded = LoadedInputs {
            xxh3: HashSet::default(),
            sha256_by_size: HashMap::default(),
        };
        loaded
            .sha256_by_size
            .entry(3)
            .or_default()
            .insert(sha.into());
        let print = InputFingerprint::of(&abc).unwrap();
        assert!(loaded.contains(&print, &abc).unwrap());
        let abd = file("abd.csv", b"abd");
        assert!(!loaded
            .contains(&InputFingerprint::of(&abd).unwrap(), &abd)
            .unwrap());
        // Its XXH3 record matches without reading the file again.
        loaded.sha256_by_size.clear();
        loaded.xxh3.insert(print.xxh3_128.clone());
        std::fs::remove_file(&abc).unwrap();
        assert!(loaded.contains(&print, &abc).unwrap());
    }
}
