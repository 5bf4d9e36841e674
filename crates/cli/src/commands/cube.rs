//! `crmcube cube`: describe the cube model and query it (slice, dice, drill, roll up,
//! pivot, drill through, totals, time intelligence).

use super::ingest::ReportFormat;
use super::{runtime, Context};
use crate::output::{emit, Format};
use anyhow::Result;
use crmcube_cube::period::Step;
use crmcube_cube::{
    Cube, CubeModel, CubeQuery, MaterializeOptions, MaterializeReport, ToDate, Totals, Warehouse,
};
use crmcube_model::{Error, WarehouseSchema};
use std::path::PathBuf;
use std::time::Instant;

/// Cube subcommands.
#[derive(clap::Subcommand)]
pub enum CubeCommand {
    /// List dimensions, hierarchies, levels and measures (kind, formula, facts).
    Describe(DescribeArgs),
    /// Ask the cube: measures by levels on rows and columns, with filters and totals.
    Query(Box<QueryArgs>),
    /// Build the pre-aggregations the model declares (incrementally where possible) and
    /// publish them as a new warehouse version.
    Materialize(MaterializeArgs),
    /// Explore step by step: each line (drill, rollup, slice, dice, pivot, totals, undo,
    /// …) changes the current view and shows the answer. Reads a terminal, a pipe or a file.
    Shell(super::shell::ShellArgs),
}

/// Flags of `cube materialize`.
#[derive(clap::Args)]
pub struct MaterializeArgs {
    /// The warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Only this pre-aggregation (repeatable, or comma-separated; default: all).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub name: Vec<String>,
    /// Rebuild from the base facts even what is up to date or could be rebuilt
    /// incrementally.
    #[arg(long)]
    pub full: bool,
    /// Report format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

/// Where the model comes from.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// Directory with cube.yaml and warehouse.yaml (default: the built-in copies).
    #[arg(long, value_name = "DIR")]
    pub schemas: Option<PathBuf>,
    /// A cube model file (overrides DIR/cube.yaml).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
}

impl ModelArgs {
    pub(crate) fn load(&self) -> Result<CubeModel> {
        let warehouse = match &self.schemas {
            Some(d) => WarehouseSchema::from_file(&d.join("warehouse.yaml"))?,
            None => WarehouseSchema::builtin()?,
        };
        Ok(match (&self.model, &self.schemas) {
            (Some(f), _) => CubeModel::from_file(f, &warehouse)?,
            (None, Some(d)) => CubeModel::from_file(&d.join("cube.yaml"), &warehouse)?,
            (None, None) => CubeModel::builtin(&warehouse)?,
        })
    }
}

/// Flags of `cube describe`.
#[derive(clap::Args)]
pub struct DescribeArgs {
    /// Warehouse to check the model against (shows what is unavailable there).
    #[arg(long)]
    pub warehouse: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the result to a file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Which subtotals `--totals` adds.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum TotalsArg {
    /// Subtotals along each axis from coarse to fine, and the grand total (ROLLUP).
    Rollup,
    /// Every combination of the axis levels (CUBE).
    Cube,
}

/// Comparison period of `--compare`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CompareArg {
    /// The period just before.
    Previous,
    /// The same period a year before.
    Yoy,
    /// The same period a month before.
    Mom,
}

/// Flags of `cube query`.
#[derive(clap::Args)]
pub struct QueryArgs {
    /// The warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Run a saved query of the model (its `queries:` section; `crmcube cube describe`
    /// lists them). --limit, --approx, --explain and the output flags still apply.
    #[arg(long, value_name = "NAME", conflicts_with_all = [
        "measures", "rows", "columns", "slice", "dice", "drill", "rollup", "order", "totals",
        "grouping_sets", "compare", "ytd", "qtd", "mtd", "rolling", "share_of_parent",
        "rank_within_parent",
    ])]
    pub saved: Option<String>,
    /// Measures, comma-separated (see `crmcube cube describe`).
    #[arg(long, value_delimiter = ',')]
    pub measures: Vec<String>,
    /// Levels on the rows, comma-separated `dimension.level`, e.g. geography.region,time.year.
    #[arg(long, value_delimiter = ',')]
    pub rows: Vec<String>,
    /// Levels on the columns (pivot): each member becomes `<member> | <measure>` columns.
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Keep one member: LEVEL=MEMBER, e.g. time.year=2025 (repeatable).
    #[arg(long)]
    pub slice: Vec<String>,
    /// Keep members by a condition: "LEVEL in (A,B)", "LEVEL not in (A)", "LEVEL between A and B",
    /// "LEVEL = A", "LEVEL != A", "LEVEL >= A" (repeatable).
    #[arg(long)]
    pub dice: Vec<String>,
    /// Drill down: DIMENSION moves one level down its hierarchy; DIMENSION=MEMBER keeps
    /// that member and shows the level below it (repeatable).
    #[arg(long)]
    pub drill: Vec<String>,
    /// Roll up: DIMENSION moves one level up; from the top level it leaves the axes (repeatable).
    #[arg(long)]
    pub rollup: Vec<String>,
    /// Sort by COLUMN[:asc|desc] (a measure or a level; measures default to desc). Repeatable.
    #[arg(long)]
    pub order: Vec<String>,
    /// Show at most N rows (the number of rows there were is always reported).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Add subtotals and the grand total (`All` members): rollup (default) or cube.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "rollup")]
    pub totals: Option<TotalsArg>,
    /// Explicit grouping sets: levels joined by ',' and sets by ';', e.g.
    /// "geography.region,time.year;time.year;" (an empty set is the grand total).
    #[arg(long, value_name = "SETS", conflicts_with = "totals")]
    pub grouping_sets: Option<String>,
    /// Compare each time member with the previous one, the same one a year before (yoy) or
    /// a month before (mom): value, change and change %.
    #[arg(long, value_enum)]
    pub compare: Option<CompareArg>,
    /// Year-to-date running totals (needs a time level below year on the axes).
    #[arg(long, conflicts_with_all = ["qtd", "mtd"])]
    pub ytd: bool,
    /// Quarter-to-date running totals.
    #[arg(long, conflicts_with = "mtd")]
    pub qtd: bool,
    /// Month-to-date running totals (needs time.day).
    #[arg(long)]
    pub mtd: bool,
    /// Sum over the last N periods of the time level on the axes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rolling: Option<u32>,
    /// Each value in % of its parent member (the level above the last row level).
    #[arg(long)]
    pub share_of_parent: bool,
    /// Rank of each member among the children of its parent (1 = largest).
    #[arg(long)]
    pub rank_within_parent: bool,
    /// Distinct counts by a sketch (approx_distinct): faster, marked "(approx)".
    #[arg(long)]
    pub approx: bool,
    /// Drill through: list the fact rows behind the filters (of the first measure's fact)
    /// instead of aggregating; --limit caps the rows (default 100).
    #[arg(long)]
    pub through: bool,
    /// Print on stderr where each fact is read from (a pre-aggregation or the base
    /// facts), why the other pre-aggregations were not used, and the SQL.
    #[arg(long)]
    pub explain: bool,
    /// Read the base facts only, never a pre-aggregation.
    #[arg(long)]
    pub no_preagg: bool,
    /// Print on stderr where the time went inside the process: loading the model,
    /// opening the warehouse, running the query, writing the result.
    #[arg(long)]
    pub timing: bool,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the result to a file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs `cube`.
pub fn run(ctx: &Context, c: CubeCommand) -> Result<()> {
    match c {
        CubeCommand::Describe(a) => describe(a),
        CubeCommand::Query(a) => query(ctx, *a),
        CubeCommand::Materialize(a) => materialize(a),
        CubeCommand::Shell(a) => super::shell::run(ctx, a),
    }
}

fn describe(a: DescribeArgs) -> Result<()> {
    let model = a.model.load()?;
    let rt = runtime()?;
    let (schema, batch) = rt.block_on(async {
        let cube = match &a.warehouse {
            Some(w) => {
                let wh = Warehouse::open(w).await?;
                let mut cube = Cube::open(model, wh.context()).await?;
                cube.use_pre_aggregations(&wh).await?;
                cube
            }
            None => Cube::unchecked(model),
        };
        anyhow::Ok(cube.describe()?)
    })?;
    emit(a.output.as_deref(), &schema, &[batch], a.format)?;
    Ok(())
}

/// Builds the query from the flags.
pub fn build_query(model: &CubeModel, a: &QueryArgs) -> Result<CubeQuery, Error> {
    if let Some(name) = &a.saved {
        let saved = model.saved_query(name).ok_or_else(|| {
            Error::Usage(format!(
                "--saved: the model has no saved query `{name}`; it has {}",
                if model.queries.is_empty() {
                    "none".to_string()
                } else {
                    model
                        .queries
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ))
        })?;
        let mut q = saved.to_query(model)?;
        if a.limit.is_some() {
            q.limit = a.limit;
        }
        q.approximate |= a.approx;
        return Ok(q);
    }
    let levels = |v: &[String]| -> Result<Vec<_>, Error> {
        v.iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| model.parse_level(s))
            .collect()
    };
    let mut q = CubeQuery {
        measures: a
            .measures
            .iter()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect(),
        rows: levels(&a.rows)?,
        columns: levels(&a.columns)?,
        limit: a.limit,
        approximate: a.approx,
        share_of_parent: a.share_of_parent,
        rank_within_parent: a.rank_within_parent,
        rolling: a.rolling.map(|n| n as usize),
        ..Default::default()
    };
    q.apply_steps(model, &a.slice, &a.dice, &a.drill, &a.rollup, &a.order)?;
    q.totals = match a.totals {
        None => Totals::None,
        Some(TotalsArg::Rollup) => Totals::Rollup,
        Some(TotalsArg::Cube) => Totals::Cube,
    };
    if let Some(gs) = &a.grouping_sets {
        let mut sets = Vec::new();
        for part in gs.split(';') {
            sets.push(
                part.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| model.parse_level(s))
                    .collect::<Result<Vec<_>, Error>>()?,
            );
        }
        q.grouping_sets = Some(sets);
    }
    q.compare = a.compare.map(|c| match c {
        CompareArg::Previous => Step::Previous,
        CompareArg::Yoy => Step::Year,
        CompareArg::Mom => Step::Month,
    });
    q.to_date = if a.ytd {
        Some(ToDate::Year)
    } else if a.qtd {
        Some(ToDate::Quarter)
    } else if a.mtd {
        Some(ToDate::Month)
    } else {
        None
    };
    Ok(q)
}

pub(crate) fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn query(ctx: &Context, a: QueryArgs) -> Result<()> {
    let started = Instant::now();
    let model = a.model.load()?;
    let q = build_query(&model, &a)?;
    let rt = runtime()?;
    let model_seconds = started.elapsed().as_secs_f64();
    let mut open_seconds = 0.0;
    let result = rt.block_on(async {
        let t = Instant::now();
        let wh = Warehouse::open(&a.warehouse).await?;
        let mut cube = Cube::open(model, wh.context()).await?;
        if a.no_preagg {
            cube.skip_pre_aggregations("--no-preagg")?;
        } else {
            cube.use_pre_aggregations(&wh).await?;
        }
        open_seconds = t.elapsed().as_secs_f64();
        if a.through {
            let mut q = q.clone();
            q.limit = None;
            anyhow::Ok(
                cube.drill_through(wh.context(), &q, a.limit.unwrap_or(100))
                    .await?,
            )
        } else {
            anyhow::Ok(cube.run(wh.context(), &q).await?)
        }
    })?;
    if a.explain {
        for line in &result.sources {
            eprintln!("-- {line}");
        }
        for (i, s) in result.sql.iter().enumerate() {
            eprintln!("-- query {}\n{s};", i + 1);
        }
    }
    for n in &result.notes {
        ctx.note(n);
    }
    let query_seconds = started.elapsed().as_secs_f64() - model_seconds - open_seconds;
    let t = Instant::now();
    emit(
        a.output.as_deref(),
        &result.schema,
        &result.batches,
        a.format,
    )?;
    if a.timing {
        // Always printed when asked for, even with --quiet: it is what was asked.
        eprintln!(
            "timing: model {model_seconds:.4} s, open {open_seconds:.4} s, query {query_seconds:.4} s, output {:.4} s, total {:.4} s",
            t.elapsed().as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
    if result.shown_rows < result.total_rows {
        // A cut result is always reported, even with --quiet.
        eprintln!(
            "showing {} of {} rows",
            thousands(result.shown_rows),
            thousands(result.total_rows)
        );
    } else if a.limit.is_some() || a.through {
        ctx.note(format!(
            "showing {} of {} rows",
            thousands(result.shown_rows),
            thousands(result.total_rows)
        ));
    } else {
        ctx.note(format!("({} rows)", thousands(result.total_rows)));
    }
    Ok(())
}

fn materialize(a: MaterializeArgs) -> Result<()> {
    let model = a.model.load()?;
    let opts = MaterializeOptions {
        names: a
            .name
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect(),
        full: a.full,
    };
    let rt = runtime()?;
    let report = rt.block_on(crmcube_cube::materialize(&a.warehouse, &model, &opts))?;
    match a.format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Table => print!("{}", render_materialize(&report)),
    }
    Ok(())
}

/// The materialize report as aligned text.
pub fn render_materialize(r: &MaterializeReport) -> String {
    let rebuilt = |p: &crmcube_cube::materialize::BuildReport| -> String {
        match (&p.partition_by, p.build.as_str()) {
            (None, _) => "-".into(),
            (Some(_), "full") => format!("all {}", p.partitions_rebuilt.len()),
            (Some(_), "incremental") if p.partitions_rebuilt.is_empty() => "none".into(),
            (Some(_), "incremental") => p.partitions_rebuilt.join(", "),
            _ => "-".into(),
        }
    };
    let name_w = r
        .pre_aggregations
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0)
        .max("pre-aggregation".len());
    let mut s = format!(
        "{:<name_w$}  {:<11}  {:>10}  {:>8}  {:<12}  partitions rebuilt\n",
        "pre-aggregation", "build", "rows", "seconds", "partition_by"
    );
    for p in &r.pre_aggregations {
        s.push_str(&format!(
            "{:<name_w$}  {:<11}  {:>10}  {:>8.2}  {:<12}  {}\n",
            p.name,
            p.build,
            thousands(p.rows as usize),
            p.seconds,
            p.partition_by.as_deref().unwrap_or("-"),
            rebuilt(p)
        ));
    }
    for p in &r.pre_aggregations {
        s.push_str(&format!("{}: {} ({})\n", p.name, p.build, p.reason));
    }
    s.push_str(&match r.version {
        Some(v) => format!(
            "built from version {}, published as version {v} of {} in {:.2}s\n",
            r.built_from_version, r.warehouse, r.seconds
        ),
        None => format!(
            "every pre-aggregation of {} is up to date with version {}; nothing published\n",
            r.warehouse, r.built_from_version
        ),
    });
    s
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
