//! `crmcube cube shell`: an interactive view of the cube. Each line changes the current
//! view (measures, axes, filters, drill, roll-up, pivot, totals, comparisons) and shows
//! the new answer; `undo` steps back, `query` prints the view as a `cube query` command.
//!
//! Lines come from the terminal or from a pipe or file (`crmcube cube shell … < steps.txt`).
//! On a terminal an error is printed and the view stays as it was; from a pipe or file
//! the first error stops the shell with the usual exit code, as a script expects.

use super::cube::{thousands, ModelArgs};
use super::{runtime, Context};
use crate::output::{emit, Format};
use anyhow::{bail, Result};
use crmcube_cube::period::Step;
use crmcube_cube::query::parse_order;
use crmcube_cube::{Cube, CubeModel, CubeQuery, Filter, FilterOp, ToDate, Totals, Warehouse};
use crmcube_model::Error;
use datafusion::prelude::SessionContext;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

/// Flags of `cube shell`.
#[derive(clap::Args)]
pub struct ShellArgs {
    /// The warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Measures of the first view, comma-separated (default: the model's first measure).
    #[arg(long, value_delimiter = ',')]
    pub measures: Vec<String>,
    /// Levels on the rows of the first view, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub rows: Vec<String>,
    /// Result format of each answer.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Read the base facts only, never a pre-aggregation.
    #[arg(long)]
    pub no_preagg: bool,
}

const HELP: &str = "\
The view (each change shows the new answer):
  measures M,M           the measures shown            rows L,L / columns L,L   the axes
  drill DIM[=MEMBER]     one level down (into MEMBER)  rollup DIM               one level up (out of MEMBER)
  slice LEVEL=MEMBER     keep one member               dice CONDITION           e.g. geography.country in (DE,FR)
  unfilter [LEVEL|DIM]   drop filters (all without an argument)
  pivot                  swap rows and columns         order COL[:asc|desc]     sort (no argument: default order)
  limit N|off            rows shown                    totals rollup|cube|off   subtotals and grand total
  compare previous|yoy|mom|off                         todate year|quarter|month|off
  rolling N|off          sum over the last N periods   share on|off / rank on|off   % of parent / rank in parent
  approx on|off          distinct counts by sketch
Other:
  show                   run the view again            through [N]              the fact rows behind the view
  view / query           the view as a `crmcube cube query` command
  explain                where the facts are read from, and the SQL
  format table|csv|json|ndjson   undo   reset   describe   help   quit";

/// Runs the shell until `quit` or the end of the input.
pub fn run(ctx: &Context, a: ShellArgs) -> Result<()> {
    let model = a.model.load()?;
    let rt = runtime()?;
    let (wh, cube) = rt.block_on(async {
        let wh = Warehouse::open(&a.warehouse).await?;
        let mut cube = Cube::open(model, wh.context()).await?;
        if a.no_preagg {
            cube.skip_pre_aggregations("--no-preagg")?;
        } else {
            cube.use_pre_aggregations(&wh).await?;
        }
        anyhow::Ok((wh, cube))
    })?;
    let mut shell = Shell {
        cube: &cube,
        sql: wh.context(),
        rt: &rt,
        view: CubeQuery::default(),
        history: Vec::new(),
        format: a.format,
    };
    shell.view.measures = if a.measures.is_empty() {
        cube.model
            .measures
            .iter()
            .take(1)
            .map(|(n, _)| n.clone())
            .collect()
    } else {
        a.measures.iter().map(|m| m.trim().to_string()).collect()
    };
    shell.view.rows = a
        .rows
        .iter()
        .filter(|r| !r.trim().is_empty())
        .map(|r| cube.model.parse_level(r))
        .collect::<Result<_, Error>>()?;
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        ctx.note("crmcube cube shell: `help` lists the commands, `quit` leaves.");
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut number = 0usize;
    loop {
        if interactive {
            eprint!("cube> ");
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else {
            break;
        };
        let line = line?;
        number += 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match shell.step(ctx, line) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Quit) => break,
            Err(e) if interactive => eprintln!("error: {e:#}"),
            Err(e) => return Err(e.context(format!("shell input line {number}: `{line}`"))),
        }
    }
    Ok(())
}

enum Flow {
    Continue,
    Quit,
}

struct Shell<'a> {
    cube: &'a Cube,
    sql: &'a SessionContext,
    rt: &'a tokio::runtime::Runtime,
    view: CubeQuery,
    history: Vec<CubeQuery>,
    format: Format,
}

fn on_off(word: &str, arg: &str) -> Result<bool> {
    match arg {
        "" | "on" => Ok(true),
        "off" => Ok(false),
        other => bail!(Error::Usage(format!(
            "`{word} {other}`: write `{word} on` or `{word} off`"
        ))),
    }
}

/// `off` as None, otherwise a positive number.
fn number_or_off(word: &str, arg: &str) -> Result<Option<usize>> {
    if arg == "off" {
        return Ok(None);
    }
    match arg.parse::<usize>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => bail!(Error::Usage(format!(
            "`{word} {arg}`: expected a positive number or `off`"
        ))),
    }
}

/// The argument without one pair of surrounding quotes.
fn unquoted(arg: &str) -> &str {
    for q in ['"', '\''] {
        if arg.len() >= 2 && arg.starts_with(q) && arg.ends_with(q) {
            return &arg[1..arg.len() - 1];
        }
    }
    arg
}

impl Shell<'_> {
    fn model(&self) -> &CubeModel {
        &self.cube.model
    }

    fn levels(&self, arg: &str) -> Result<Vec<crmcube_cube::LevelRef>> {
        Ok(arg
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| self.model().parse_level(s.trim()))
            .collect::<Result<_, Error>>()?)
    }

    /// Carries out one line.
    fn step(&mut self, ctx: &Context, line: &str) -> Result<Flow> {
        let (word, arg) = match line.split_once(char::is_whitespace) {
            Some((w, a)) => (w, unquoted(a.trim())),
            None => (line, ""),
        };
        let word = word.to_ascii_lowercase();
        let mut next = self.view.clone();
        match word.as_str() {
            "quit" | "exit" | "\\q" => return Ok(Flow::Quit),
            "help" | "?" => {
                println!("{HELP}");
                return Ok(Flow::Continue);
            }
            "view" | "query" => {
                println!("{}", command_line(&self.view));
                return Ok(Flow::Continue);
            }
            "describe" => {
                let (schema, batch) = self.cube.describe()?;
                emit(None, &schema, &[batch], self.format)?;
                return Ok(Flow::Continue);
            }
            "format" => {
                self.format = match arg {
                    "table" => Format::Table,
                    "csv" => Format::Csv,
                    "json" => Format::Json,
                    "ndjson" => Format::Ndjson,
                    other => bail!(Error::Usage(format!(
                        "`format {other}`: write table, csv, json or ndjson"
                    ))),
                };
                return Ok(Flow::Continue);
            }
            "undo" => {
                match self.history.pop() {
                    Some(v) => self.view = v,
                    None => bail!(Error::Usage("nothing to undo".into())),
                }
                self.show(ctx)?;
                return Ok(Flow::Continue);
            }
            "show" => {
                self.show(ctx)?;
                return Ok(Flow::Continue);
            }
            "explain" => {
                let result = self.rt.block_on(self.cube.run(self.sql, &self.view))?;
                for line in &result.sources {
                    println!("-- {line}");
                }
                for (i, s) in result.sql.iter().enumerate() {
                    println!("-- query {}\n{s};", i + 1);
                }
                return Ok(Flow::Continue);
            }
            "through" => {
                let limit = if arg.is_empty() {
                    100
                } else {
                    number_or_off("through", arg)?.unwrap_or(100)
                };
                let mut q = self.view.clone();
                q.limit = None;
                let result = self
                    .rt
                    .block_on(self.cube.drill_through(self.sql, &q, limit))?;
                emit(None, &result.schema, &result.batches, self.format)?;
                ctx.note(format!(
                    "showing {} of {} fact rows",
                    thousands(result.shown_rows),
                    thousands(result.total_rows)
                ));
                return Ok(Flow::Continue);
            }
            "reset" => {
                next = CubeQuery {
                    measures: self.view.measures.clone(),
                    ..Default::default()
                }
            }
            "measures" => {
                next.measures = arg
                    .split(',')
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty())
                    .collect();
            }
            "rows" => next.rows = self.levels(arg)?,
            "columns" | "cols" => next.columns = self.levels(arg)?,
            "pivot" => std::mem::swap(&mut next.rows, &mut next.columns),
            "drill" => next.drill(self.model(), arg)?,
            "rollup" | "roll" => {
                next.rollup(self.model(), arg)?;
                // Going back up past a member that `drill DIM=MEMBER` pinned shows its
                // siblings again: a one-member filter on the level now on the axis goes.
                let axis: Vec<String> = next.axis_levels().iter().map(|l| l.to_string()).collect();
                next.filters.retain(|f| {
                    let pinned = matches!(&f.op, FilterOp::In(v) if v.len() == 1);
                    !(pinned && axis.contains(&f.level.to_string()))
                });
            }
            "slice" => next.filters.push(Filter::parse_slice(self.model(), arg)?),
            "dice" => next.filters.push(Filter::parse_dice(self.model(), arg)?),
            "unfilter" | "unslice" => {
                let before = next.filters.len();
                next.filters.retain(|f| {
                    !arg.is_empty() && arg != f.level.to_string() && arg != f.level.dimension
                });
                if next.filters.len() == before {
                    bail!(Error::Usage(format!(
                        "`{line}`: no filter to remove{}",
                        if before == 0 {
                            String::new()
                        } else {
                            format!(
                                "; the filters are {}",
                                self.view
                                    .filters
                                    .iter()
                                    .map(|f| f.describe())
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            )
                        }
                    )));
                }
            }
            "order" => {
                next.order = arg
                    .split(',')
                    .filter(|o| !o.trim().is_empty())
                    .map(parse_order)
                    .collect::<Result<_, Error>>()?;
            }
            "limit" => next.limit = number_or_off("limit", arg)?,
            "totals" => {
                next.grouping_sets = None;
                next.totals = match arg {
                    "" | "rollup" => Totals::Rollup,
                    "cube" => Totals::Cube,
                    "off" => Totals::None,
                    other => bail!(Error::Usage(format!(
                        "`totals {other}`: write rollup, cube or off"
                    ))),
                };
            }
            "compare" => {
                next.compare = match arg {
                    "previous" => Some(Step::Previous),
                    "yoy" => Some(Step::Year),
                    "mom" => Some(Step::Month),
                    "off" => None,
                    other => bail!(Error::Usage(format!(
                        "`compare {other}`: write previous, yoy, mom or off"
                    ))),
                };
            }
            "todate" | "ytd" | "qtd" | "mtd" => {
                let which = if word == "todate" { arg } else { &word[..1] };
                next.to_date = match which {
                    "year" | "y" => Some(ToDate::Year),
                    "quarter" | "q" => Some(ToDate::Quarter),
                    "month" | "m" => Some(ToDate::Month),
                    "off" => None,
                    other => bail!(Error::Usage(format!(
                        "`todate {other}`: write year, quarter, month or off"
                    ))),
                };
            }
            "rolling" => next.rolling = number_or_off("rolling", arg)?,
            "share" => next.share_of_parent = on_off("share", arg)?,
            "rank" => next.rank_within_parent = on_off("rank", arg)?,
            "approx" => next.approximate = on_off("approx", arg)?,
            other => bail!(Error::Usage(format!(
                "unknown command `{other}`; `help` lists the commands"
            ))),
        }
        // The new view is kept only if it answers.
        let previous = std::mem::replace(&mut self.view, next);
        match self.show(ctx) {
            Ok(()) => {
                self.history.push(previous);
                Ok(Flow::Continue)
            }
            Err(e) => {
                self.view = previous;
                Err(e)
            }
        }
    }

    /// Runs the view and prints the answer.
    fn show(&self, ctx: &Context) -> Result<()> {
        let result = self.rt.block_on(self.cube.run(self.sql, &self.view))?;
        ctx.note(format!("-- {}", summary(&self.view)));
        emit(None, &result.schema, &result.batches, self.format)?;
        for n in &result.notes {
            ctx.note(n);
        }
        if result.shown_rows < result.total_rows {
            eprintln!(
                "showing {} of {} rows",
                thousands(result.shown_rows),
                thousands(result.total_rows)
            );
        } else {
            ctx.note(format!("({} rows)", thousands(result.total_rows)));
        }
        Ok(())
    }
}

fn joined<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A one-line description of the view.
fn summary(q: &CubeQuery) -> String {
    let mut s = q.measures.join(", ");
    if !q.rows.is_empty() {
        s.push_str(&format!(" by {}", joined(&q.rows)));
    }
    if !q.columns.is_empty() {
        s.push_str(&format!(" across {}", joined(&q.columns)));
    }
    if !q.filters.is_empty() {
        let f: Vec<String> = q.filters.iter().map(|f| f.describe()).collect();
        s.push_str(&format!(" where {}", f.join(" and ")));
    }
    s
}

/// Quotes a shell word when it needs it.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:=/".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The view as a `crmcube cube query` command (without --warehouse).
fn command_line(q: &CubeQuery) -> String {
    let mut parts = vec!["crmcube cube query".to_string()];
    let mut flag = |name: &str, value: String| {
        parts.push(format!("--{name} {}", shell_word(&value)));
    };
    flag("measures", q.measures.join(","));
    if !q.rows.is_empty() {
        flag("rows", joined(&q.rows));
    }
    if !q.columns.is_empty() {
        flag("columns", joined(&q.columns));
    }
    for f in &q.filters {
        flag("dice", f.describe());
    }
    if !q.order.is_empty() {
        let o: Vec<String> = q
            .order
            .iter()
            .map(|k| format!("{}:{}", k.column, if k.descending { "desc" } else { "asc" }))
            .collect();
        flag("order", o.join(","));
    }
    if let Some(n) = q.limit {
        flag("limit", n.to_string());
    }
    match q.totals {
        Totals::None => {}
        Totals::Rollup => flag("totals", "rollup".into()),
        Totals::Cube => flag("totals", "cube".into()),
    }
    if let Some(c) = q.compare {
        let name = match c {
            Step::Previous => "previous",
            Step::Year => "yoy",
            Step::Month => "mom",
        };
        flag("compare", name.into());
    }
    let mut switches = Vec::new();
    match q.to_date {
        Some(ToDate::Year) => switches.push("--ytd"),
        Some(ToDate::Quarter) => switches.push("--qtd"),
        Some(ToDate::Month) => switches.push("--mtd"),
        None => {}
    }
    if q.share_of_parent {
        switches.push("--share-of-parent");
    }
    if q.rank_within_parent {
        switches.push("--rank-within-parent");
    }
    if q.approximate {
        switches.push("--approx");
    }
    if let Some(n) = q.rolling {
        parts.push(format!("--rolling {n}"));
    }
    parts.extend(switches.into_iter().map(String::from));
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmcube_model::WarehouseSchema;

    #[test]
    fn the_view_prints_as_a_command_that_parses_back() {
        let model = CubeModel::builtin(&WarehouseSchema::builtin().unwrap()).unwrap();
        let mut q = CubeQuery {
            measures: vec!["revenue".into(), "customers".into()],
            ..Default::default()
        };
        q.drill(&model, "geography").unwrap();
        q.drill(&model, "geography=Europe").unwrap();
        q.filters
            .push(Filter::parse_dice(&model, "time.year in (2024, 2025)").unwrap());
        q.totals = Totals::Rollup;
        q.compare = Some(Step::Year);
        let line = command_line(&q);
        assert!(line.starts_with("crmcube cube query --measures revenue,customers"));
        assert!(line.contains("--rows geography.country"), "{line}");
        assert!(
            line.contains("--dice 'geography.region = Europe'"),
            "{line}"
        );
        assert!(
            line.contains("--dice 'time.year in (2024, 2025)'"),
            "{line}"
        );
        assert!(line.contains("--totals rollup") && line.contains("--compare yoy"));
        // Each --dice value parses back into the same filter.
        for f in &q.filters {
            assert_eq!(&Filter::parse_dice(&model, &f.describe()).unwrap(), f);
        }
    }

    #[test]
    fn words_with_spaces_or_quotes_are_quoted() {
        assert_eq!(shell_word("time.year"), "time.year");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
