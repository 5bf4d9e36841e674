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
    let _lock = publish::WriterLock::acquire(&opts.warehouse)?;
    publish::clean_stale_staging(&opts.warehouse)?;

    // 1. Stage every entity.
    let mut staged: HashMap<String, StagedEntity> = HashMap::default();
    let mut reports: Vec<EntityReport> = Vec::new();
    let mut inputs = Vec::new();
    for (name, spec) in &opts.contract.entities {
        let t0 = Instant::now();
        let entity_files = files.entities.get(name).cloned().unwrap_or_default();
        progress.step(&format!("reading {name}"));
        let (st, hashes) = rayon::join(
            || -> Result<StagedEntity> {
                if entity_files.is_empty() {
                    Ok(StagedEntity::empty(spec))
                } else {
                    stage_entity(name, spec, &entity_files, &opts.csv)
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
            inputs.push(serde_json::json!({
                "entity": name, "file": path.display().to_string(), "format": fmt,
                "sha256": sha, "bytes": bytes,
            }));
        }
        reports.push(EntityReport::new(name, &st, t0.elapsed().as_secs_f64()));
        staged.insert(name.clone(), st);
    }
    let get = |staged: &HashMap<String, StagedEntity>, n: &str| -> Result<()> {
        staged.get(n).map(|_| ()).ok_or_else(|| Error::Schema {
            file: "export contract".into(),
            key: format!("entities.{n}"),
            message: "entity is needed to build the warehouse but not in the contract".into(),
        })
    };
    for n in [
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
    ] {
        get(&staged, n)?;
    }

    // 2. Conform dimensions.
    progress.step("building dimensions");
    let t0 = Instant::now();
    let schema = opts.schema;
    let mut tables: Vec<(String, arrow::record_batch::RecordBatch)> = Vec::new();
    let mut orphaned: HashMap<&str, u64> = HashMap::default();
    let regions = conform::region_lookup(&staged["regions"])?;
    for (table, entity) in [
        ("dim_region", "regions"),
        ("dim_product", "products"),
        ("dim_campaign", "campaigns"),
    ] {
        let spec = opts
            .contract
            .entity(entity)
            .ok_or_else(|| Error::Usage(format!("no entity {entity}")))?;
        tables.push((
            table.into(),
            conform::build_simple_dims(
                table,
                schema.require(table)?,
                entity,
                spec,
                &staged[entity],
            )?,
        ));
    }
    let (dim_customer, versions, cust_orph) = conform::build_dim_customer(
        schema.require("dim_customer")?,
        &staged["customers"],
        &regions,
    )?;
    orphaned.insert("customers", cust_orph);
    tables.push(("dim_customer".into(), dim_customer));
    let channel_def = schema.require("dim_channel")?;
    tables.push((
        "dim_channel".into(),
        conform::build_dim_channel(channel_def)?,
    ));

    let resolver = build_resolver(&staged, &versions, channel_def)?;

    // 3. Facts.
    progress.step("building facts");
    let mut outputs = vec![(
        "fact_sales",
        conform::build_fact_sales(
            schema.require("fact_sales")?,
            &staged["order_lines"],
            &staged["orders"],
            &resolver,
        )?,
    )];
    outputs.push((
        "fact_interaction",
        conform::build_fact_interaction(
            schema.require("fact_interaction")?,
            &staged["web_sessions"],
            &staged["cart_events"],
            &staged["email_events"],
            &resolver,
        )?,
    ));
    let order_ids: HashSet<String> = conform_ids(&staged["orders"], "order_id");
    outputs.push((
        "fact_ticket",
        conform::build_fact_ticket(
            schema.require("fact_ticket")?,
            &staged["tickets"],
            &order_ids,
            &resolver,
        )?,
    ));
    outputs.push((
        "fact_campaign_response",
        conform::build_fact_campaign_response(
            schema.require("fact_campaign_response")?,
            &staged["campaign_contacts"],
            &resolver,
        )?,
    ));
    let mut day_range: Option<(i32, i32)> = None;
    for (table, out) in outputs {
        for (entity, n) in out.orphaned {
            *orphaned.entry(entity).or_default() += n;
        }
        for (entity, rejects) in out.rejects {
            if let Some(st) = staged.get_mut(entity) {
                for (row, col, value, reason) in rejects {
                    st.reject(entity, row, Some(col), Some(value), reason);
                }
            }
        }
        if let Some(def) = schema.table(table) {
            if let Some(p) = &def.partition_by {
                if let Some((lo, hi)) = ts_day_range(&out.batch, p) {
                    day_range = Some(match day_range {
                        None => (lo, hi),
                        Some((a, b)) => (a.min(lo), b.max(hi)),
                    });
                }
            }
        }
        tables.push((table.into(), out.batch));
    }
    let (lo, hi) = day_range.unwrap_or_else(|| {
        let today = value::days_of_date(chrono::Utc::now().date_naive());
        (today, today)
    });
    tables.push((
        "dim_date".into(),
        conform::build_dim_date(schema.require("dim_date")?, lo, hi)?,
    ));
    let conform_secs = t0.elapsed().as_secs_f64();

    // 4. Quarantine and the reject limit.
    let mut rejects = Vec::new();
    for r in reports.iter_mut() {
        let st = &staged[&r.entity];
        r.finish(st, orphaned.get(r.entity.as_str()).copied().unwrap_or(0));
        rejects.extend(st.rejects.iter().cloned());
    }
    let total_read: u64 = reports.iter().map(|r| r.read).sum();
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
    rejects.sort_by(|a, b| {
        (&a.entity, &a.source_file, a.line).cmp(&(&b.entity, &b.source_file, b.line))
    });
    tables.push((
        QUARANTINE_TABLE.into(),
        quarantine::quarantine_batch(&rejects)?,
    ));

    // 5. Write to staging, then swap in.
    progress.step("writing tables");
    let t0 = Instant::now();
    let staging = opts.warehouse.join(format!(".staging-{load_id}"));
    let written: Vec<Result<write::WrittenTable>> = tables
        .par_iter()
        .map(|(name, batch)| {
            let (partition_by, sort_by) = match schema.table(name) {
                Some(def) => (def.partition_by.as_deref(), def.sort_by.as_slice()),
                None => (None, &[][..]),
            };
            write::write_table(&staging, name, partition_by, sort_by, batch)
        })
        .collect();
    let written: Vec<write::WrittenTable> = written.into_iter().collect::<Result<_>>()?;
    let write_secs = t0.elapsed().as_secs_f64();
    progress.step("publishing");
    let names: Vec<String> = written.iter().map(|w| w.table.clone()).collect();
    let finished_at = chrono::Utc::now();
    let manifest = serde_json::json!({
        "format_version": 1,
        "load_id": load_id,
        "started_at": started_at.to_rfc3339(),
        "finished_at": finished_at.to_rfc3339(),
        "source": opts.source.display().to_string(),
        "inputs": inputs,
        "tables": written,
    });
    publish::swap_in(&opts.warehouse, &staging, &load_id, &names, &manifest)?;

    Ok(IngestReport {
        load_id,
        source: opts.source.display().to_string(),
        warehouse: opts.warehouse.display().to_string(),
        entities: reports,
        tables: written,
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
        conform_seconds: conform_secs,
        write_seconds: write_secs,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn conform_ids(st: &StagedEntity, col: &str) -> HashSet<String> {
    st.batch
        .column_by_name(col)
        .and_then(|a| a.as_any().downcast_ref::<arrow::array::StringArray>())
        .map(|a| a.iter().flatten().map(str::to_string).collect())
        .unwrap_or_default()
}

fn build_resolver<'a>(
    staged: &HashMap<String, StagedEntity>,
    versions: &'a conform::CustomerVersions,
    channel_def: &crmcube_model::TableDef,
) -> Result<Resolver<'a>> {
    use arrow::array::Array;
    let p = conform::Cols::new("products", &staged["products"]);
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
    let c = conform::Cols::new("campaigns", &staged["campaigns"]);
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
        regions: conform_ids(&staged["regions"], "region_id"),
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
