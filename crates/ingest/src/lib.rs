//! crmcube ingest: reads OLTP exports (CSV, JSON Lines, Parquet), checks every row
//! against the export contract, quarantines what fails with its file, line, column,
//! value and reason, conforms the rest to the warehouse star schema and publishes the
//! tables as Parquet.

pub mod conform;
pub mod entity;
pub mod publish;
pub mod quarantine;
pub mod read;
mod report;
pub mod source;
pub mod stage;
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
}

/// Loads an export into the warehouse; returns the run report.
///
/// Entities are staged group by group (dimensions, then each fact with its sources) and
/// each finished table is written to the staging directory at once, so memory holds one
/// group at a time. Nothing is visible in the warehouse until every table is written.
pub fn ingest(opts: &IngestOptions, progress: &dyn Progress) -> Result<IngestReport> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let load_id = format!(
        "{}-{}",
        started_at.format("%Y%m%dT%H%M%S%.6fZ"),
        std::process::id()
    );
    let files = source::discover(&opts.source, opts.contract)?;
    if files.entities.is_empty() {
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
    let _lock = publish::WriterLock::acquire(&opts.warehouse)?;
    publish::clean_stale_staging(&opts.warehouse)?;
    let staging = opts.warehouse.join(format!(".staging-{load_id}"));
    let mut load = Load {
        opts,
        files: &files,
        staging: staging.clone(),
        progress,
        reports: HashMap::default(),
        inputs: Vec::new(),
        rejects: Vec::new(),
        written: Vec::new(),
        day_range: None,
        conform_seconds: 0.0,
        write_seconds: 0.0,
    };
    if let Err(e) = load.run() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }

    // Reject limit, then publish.
    let reports: Vec<EntityReport> = opts
        .contract
        .entities
        .iter()
        .filter_map(|(n, _)| load.reports.remove(n))
        .collect();
    let total_read: u64 = reports.iter().map(|r| r.read).sum();
    let total_rejected = load.rejects.len() as u64;
    if let Some(limit) = opts.max_reject_rate {
        if total_read > 0 && total_rejected as f64 / total_read as f64 > limit {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(Error::Data(format!(
                "{total_rejected} of {total_read} rows failed their checks ({:.2}%), over the limit of {:.2}%; nothing was published. Run again without --max-reject-rate to load the good rows and inspect _quarantine",
                100.0 * total_rejected as f64 / total_read as f64,
                100.0 * limit
            )));
        }
    }
    progress.step("publishing");
    let names: Vec<String> = load.written.iter().map(|w| w.table.clone()).collect();
    let manifest = serde_json::json!({
        "format_version": 1,
        "load_id": load_id,
        "started_at": started_at.to_rfc3339(),
        "finished_at": chrono::Utc::now().to_rfc3339(),
        "source": opts.source.display().to_string(),
        "inputs": load.inputs,
        "tables": load.written,
    });
    if let Err(e) = publish::swap_in(&opts.warehouse, &staging, &load_id, &names, &manifest) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    Ok(IngestReport {
        load_id,
        source: opts.source.display().to_string(),
        warehouse: opts.warehouse.display().to_string(),
        entities: reports,
        tables: load.written,
        quarantined: total_rejected,
        missing_entities: opts
            .contract
            .entities
            .iter()
            .filter(|(n, _)| !files.entities.contains_key(n))
            .map(|(n, _)| n.clone())
            .collect(),
        unmatched_files: files
            .unmatched
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        conform_seconds: load.conform_seconds,
        write_seconds: load.write_seconds,
        seconds: started.elapsed().as_secs_f64(),
    })
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
    staging: PathBuf,
    progress: &'a dyn Progress,
    reports: HashMap<String, EntityReport>,
    inputs: Vec<serde_json::Value>,
    rejects: Vec<quarantine::QuarantineRow>,
    written: Vec<write::WrittenTable>,
    day_range: Option<(i32, i32)>,
    conform_seconds: f64,
    write_seconds: f64,
}

impl Load<'_> {
    fn run(&mut self) -> Result<()> {
        let schema = self.opts.schema;
        // Dimensions.
        let regions_st = self.stage("regions")?;
        let products_st = self.stage("products")?;
        let campaigns_st = self.stage("campaigns")?;
        let customers_st = self.stage("customers")?;
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
            &versions,
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

        // fact_sales.
        let orders = self.stage("orders")?;
        let lines = self.stage("order_lines")?;
        self.progress.step("building fact_sales");
        let t0 = Instant::now();
        let out =
            conform::build_fact_sales(schema.require("fact_sales")?, &lines, &orders, &resolver)?;
        let order_ids: HashSet<String> = conform_ids(&orders, "order_id");
        self.conform_seconds += t0.elapsed().as_secs_f64();
        self.absorb(
            "fact_sales",
            out,
            &mut [
                ("orders", &mut Some(orders)),
                ("order_lines", &mut Some(lines)),
            ],
        )?;

        // fact_interaction.
        let sessions = self.stage("web_sessions")?;
        let carts = self.stage("cart_events")?;
        let emails = self.stage("email_events")?;
        self.progress.step("building fact_interaction");
        let t0 = Instant::now();
        let out = conform::build_fact_interaction(
            schema.require("fact_interaction")?,
            &sessions,
            &carts,
            &emails,
            &resolver,
        )?;
        self.conform_seconds += t0.elapsed().as_secs_f64();
        self.absorb(
            "fact_interaction",
            out,
            &mut [
                ("web_sessions", &mut Some(sessions)),
                ("cart_events", &mut Some(carts)),
                ("email_events", &mut Some(emails)),
            ],
        )?;

        // fact_ticket.
        let tickets = self.stage("tickets")?;
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
        let contacts = self.stage("campaign_contacts")?;
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
        self.write(QUARANTINE_TABLE, &q)
    }

    fn spec(&self, entity: &str) -> Result<&crmcube_model::EntitySpec> {
        self.opts
            .contract
            .entity(entity)
            .ok_or_else(|| Error::Usage(format!("no entity {entity}")))
    }

    /// Reads and checks every file of an entity (hashing them alongside).
    fn stage(&mut self, name: &str) -> Result<StagedEntity> {
        let spec = self.spec(name)?;
        let t0 = Instant::now();
        let entity_files = self.files.entities.get(name).cloned().unwrap_or_default();
        self.progress.step(&format!("reading {name}"));
        let csv = &self.opts.csv;
        let (st, hashes) = rayon::join(
            || -> Result<StagedEntity> {
                if entity_files.is_empty() {
                    Ok(StagedEntity::empty(spec))
                } else {
                    stage_entity(name, spec, &entity_files, csv)
                }
            },
            || {
                entity_files
                    .par_iter()
                    .map(|(p, _)| sha256_file(p))
                    .collect::<Vec<_>>()
            },
        );
        let st = st?;
        for ((path, fmt), h) in entity_files.iter().zip(hashes) {
            let (sha, bytes) = h?;
            self.inputs.push(serde_json::json!({
                "entity": name, "file": path.display().to_string(), "format": fmt,
                "sha256": sha, "bytes": bytes,
            }));
        }
        self.reports.insert(
            name.to_string(),
            EntityReport::new(name, &st, t0.elapsed().as_secs_f64()),
        );
        Ok(st)
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
        for (entity, rejects) in out.rejects {
            if let Some((_, Some(st))) = sources.iter_mut().find(|(n, _)| *n == entity) {
                for (row, col, value, reason) in rejects {
                    st.reject(entity, row, Some(col), Some(value), reason);
                }
            }
        }
        for (entity, slot) in sources.iter_mut() {
            if let Some(st) = slot.take() {
                let orphaned = out
                    .orphaned
                    .iter()
                    .filter(|(e, _)| e == entity)
                    .map(|(_, n)| *n)
                    .sum();
                self.finish(entity, st, orphaned);
            }
        }
        if let Some(p) = self
            .opts
            .schema
            .table(table)
            .and_then(|d| d.partition_by.clone())
        {
            if let Some((lo, hi)) = ts_day_range(&out.batch, &p) {
                self.day_range = Some(match self.day_range {
                    None => (lo, hi),
                    Some((a, b)) => (a.min(lo), b.max(hi)),
                });
            }
        }
        self.write(table, &out.batch)
    }

    /// Writes one table into the staging directory.
    fn write(&mut self, name: &str, batch: &arrow::record_batch::RecordBatch) -> Result<()> {
        self.progress.step(&format!("writing {name}"));
        let t0 = Instant::now();
        let (partition_by, sort_by) = match self.opts.schema.table(name) {
            Some(def) => (def.partition_by.as_deref(), def.sort_by.as_slice()),
            None => (None, &[][..]),
        };
        let w = write::write_table(&self.staging, name, partition_by, sort_by, batch)?;
        self.written.push(w);
        self.write_seconds += t0.elapsed().as_secs_f64();
        Ok(())
    }
}

fn conform_ids(st: &StagedEntity, col: &str) -> HashSet<String> {
    st.batch
        .column_by_name(col)
        .and_then(|a| a.as_any().downcast_ref::<arrow::array::StringArray>())
        .map(|a| a.iter().flatten().map(str::to_string).collect())
        .unwrap_or_default()
}

fn build_resolver<'a>(
    products: &StagedEntity,
    campaigns: &StagedEntity,
    regions: &StagedEntity,
    versions: &'a conform::CustomerVersions,
    channel_def: &crmcube_model::TableDef,
) -> Result<Resolver<'a>> {
    use arrow::array::Array;
    let p = conform::Cols::new("products", products);
    let (ids, cost) = (p.str("product_id")?, p.dec("unit_cost")?);
    let mut products = HashMap::with_capacity_and_hasher(ids.len(), Default::default());
    for i in 0..ids.len() {
        let c = if cost.is_valid(i) {
            conform::to_money(cost.value(i), cost.scale())
        } else {
            0
        };
        products.insert(ids.value(i).to_string(), (key_of(ids.value(i)), c));
    }
    let c = conform::Cols::new("campaigns", campaigns);
    let (ids, ch) = (c.str("campaign_id")?, c.str("channel")?);
    let mut campaigns = HashMap::with_capacity_and_hasher(ids.len(), Default::default());
    for i in 0..ids.len() {
        campaigns.insert(
            ids.value(i).to_string(),
            (key_of(ids.value(i)), key_of(ch.value(i))),
        );
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

fn sha256_file(path: &Path) -> Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    let digest = h.finalize();
    Ok((digest.iter().map(|b| format!("{b:02x}")).collect(), n))
}
