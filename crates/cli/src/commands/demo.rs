//! `crmcube demo`: sample export → warehouse → example queries → RFM scores.

use super::{load_schemas, runtime, Context};
use crate::commands::ingest::render_report;
use crate::commands::mine::{rfm_scores, write_scores, CustomerScore};
use crate::output::{write_batches, Format};
use anyhow::Result;
use crmcube_cube::Warehouse;
use crmcube_ingest::{ingest, CsvOptions, IngestOptions};
use crmcube_mining::SegmentMap;
use crmcube_sample::{generate, ExportFormat, SampleConfig};
use std::io::Write;
use std::path::PathBuf;

/// Flags of `demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where to build the demo warehouse.
    #[arg(long, default_value = "demo-warehouse")]
    pub warehouse: PathBuf,
    /// Sample export to load (default: ./sample_data, or a freshly generated one if absent).
    #[arg(long)]
    pub sample: Option<PathBuf>,
}

/// The example questions the demo answers.
pub const DEMO_QUERIES: &[(&str, &str)] = &[
    (
        "Revenue and gross profit by region and year",
        "SELECT r.region, d.year, SUM(f.revenue) AS revenue, SUM(f.gross_profit) AS gross_profit, \
         ROUND(100 * CAST(SUM(f.gross_profit) AS DOUBLE) / CAST(SUM(f.revenue) AS DOUBLE), 1) AS margin_pct, \
         COUNT(DISTINCT f.order_id) AS orders \
         FROM fact_sales f JOIN dim_region r ON f.region_key = r.region_key \
         JOIN dim_date d ON f.date_key = d.date_key \
         GROUP BY r.region, d.year ORDER BY r.region, d.year",
    ),
    (
        "Top 10 customers by revenue",
        "SELECT c.customer_id, c.first_name || ' ' || c.last_name AS name, c.segment, c.country, \
         COUNT(DISTINCT f.order_id) AS orders, SUM(f.revenue) AS revenue \
         FROM fact_sales f JOIN dim_customer v ON f.customer_key = v.customer_key \
         JOIN dim_customer c ON c.customer_id = v.customer_id AND c.is_current \
         GROUP BY 1, 2, 3, 4 ORDER BY revenue DESC, c.customer_id LIMIT 10",
    ),
    (
        "Complaint rate by ticket channel",
        "SELECT ch.channel_name AS channel, COUNT(*) AS tickets, \
         SUM(CASE WHEN t.is_complaint THEN 1 ELSE 0 END) AS complaints, \
         ROUND(100.0 * SUM(CASE WHEN t.is_complaint THEN 1 ELSE 0 END) / COUNT(*), 1) AS complaint_rate_pct, \
         ROUND(AVG(t.satisfaction_score), 2) AS avg_satisfaction \
         FROM fact_ticket t JOIN dim_channel ch ON t.channel_key = ch.channel_key \
         GROUP BY 1 ORDER BY tickets DESC",
    ),
    (
        "Campaign response rate by objective and channel",
        "SELECT m.objective, m.channel, COUNT(DISTINCT m.campaign_id) AS campaigns, SUM(r.sent) AS sent, \
         ROUND(100.0 * SUM(r.opened) / SUM(r.sent), 1) AS open_pct, \
         ROUND(100.0 * SUM(r.clicked) / SUM(r.sent), 2) AS click_pct, \
         ROUND(100.0 * SUM(r.converted) / SUM(r.sent), 2) AS conversion_pct \
         FROM fact_campaign_response r JOIN dim_campaign m ON r.campaign_key = m.campaign_key \
         GROUP BY 1, 2 ORDER BY conversion_pct DESC",
    ),
];

/// Revenue by RFM segment and region: scores joined into the star like any dimension.
pub const SEGMENT_QUERY: &str =
    "SELECT s.rfm_segment, c.region, COUNT(DISTINCT c.customer_id) AS customers, \
     SUM(f.revenue) AS revenue \
     FROM fact_sales f JOIN dim_customer v ON f.customer_key = v.customer_key \
     JOIN dim_customer c ON c.customer_id = v.customer_id AND c.is_current \
     JOIN customer_scores s ON s.customer_id = c.customer_id \
       AND s.as_of = (SELECT MAX(as_of) FROM customer_scores) \
     GROUP BY 1, 2 ORDER BY revenue DESC LIMIT 15";

/// Runs the demo.
pub fn run(ctx: &Context, a: DemoArgs) -> Result<()> {
    let sample = match a.sample {
        Some(s) => s,
        None if PathBuf::from("sample_data/customers.csv").is_file() => {
            PathBuf::from("sample_data")
        }
        None => {
            let dir = a.warehouse.with_extension("sample");
            ctx.note(format!(
                "no ./sample_data here; generating the sample export into {}",
                dir.display()
            ));
            generate(&SampleConfig::default(), ExportFormat::Csv, &dir)
                .map_err(|e| crmcube_model::Error::Usage(e.to_string()))?;
            dir
        }
    };
    let (contract, schema) = load_schemas(None)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();

    writeln!(
        out,
        "== Loading {} into {}\n",
        sample.display(),
        a.warehouse.display()
    )?;
    let report = ingest(
        &IngestOptions {
            source: sample,
            warehouse: a.warehouse.clone(),
            contract: &contract,
            schema: &schema,
            csv: CsvOptions::default(),
            max_reject_rate: None,
            pattern: None,
        },
        &crate::progress::Spinner::new(ctx),
    )?;
    writeln!(out, "{}", render_report(&report))?;

    let rt = runtime()?;
    rt.block_on(async {
        let wh = Warehouse::open(&a.warehouse).await?;
        for (title, q) in DEMO_QUERIES {
            writeln!(out, "== {title}")?;
            let r = wh.sql(q).await?;
            write_batches(&mut out, &r.schema, &r.batches, Format::Table)?;
            writeln!(out)?;
        }
        let map = SegmentMap::builtin()?;
        let (scores, as_of) = rfm_scores(&wh, None, &map).await?;
        write_scores(&a.warehouse, &CustomerScore::rfm_only(&scores), as_of)?;
        anyhow::Ok(as_of)
    })
    .and_then(|as_of| {
        // Re-open so the new customer_scores table is registered.
        rt.block_on(async {
            let wh = Warehouse::open(&a.warehouse).await?;
            writeln!(out, "== RFM segments as of {as_of}")?;
            let r = wh
                .sql("SELECT rfm_segment, COUNT(*) AS customers, ROUND(AVG(recency_days), 0) AS avg_recency_days, \
                      ROUND(AVG(transactions), 1) AS avg_transactions, ROUND(AVG(monetary), 2) AS avg_monetary \
                      FROM customer_scores WHERE as_of = (SELECT MAX(as_of) FROM customer_scores) \
                      GROUP BY 1 ORDER BY customers DESC")
                .await?;
            write_batches(&mut out, &r.schema, &r.batches, Format::Table)?;
            writeln!(out, "\n== Revenue by RFM segment and region (top 15)")?;
            let r = wh.sql(SEGMENT_QUERY).await?;
            write_batches(&mut out, &r.schema, &r.batches, Format::Table)?;
            anyhow::Ok(())
        })
    })?;
    writeln!(
        out,
        "\nThe warehouse is in {dir}. Try:\n  crmcube tables --warehouse {dir}\n  crmcube sql --warehouse {dir} \"SELECT * FROM dim_customer LIMIT 5\"",
        dir = a.warehouse.display()
    )?;
    Ok(())
}
