//! Compiling a cube question to SQL: one aggregate query per fact at the requested
//! grain (and grouping sets), so facts never multiply each other's rows. The aggregates
//! are merged on the grain afterwards (drill-across).

use crate::model::{Agg, CubeModel, Level, LevelRef, Link};
use crate::query::{Filter, FilterOp};
use crmcube_model::{Error, Result};
use std::collections::HashMap;

/// Label of rolled-up members.
pub const ALL: &str = "All";
/// Label of members whose key is missing or unknown.
pub const UNKNOWN: &str = "Unknown";

/// One aggregate query over one fact.
#[derive(Debug, Clone)]
pub struct FactQuery {
    /// Fact name.
    pub fact: String,
    /// Base measures it computes, in result column order after the labels.
    pub measures: Vec<String>,
    /// The SQL.
    pub sql: String,
    /// A statement run first, its result kept in memory as a table the SQL reads.
    pub stage: Option<Stage>,
}

/// An intermediate result computed once and read by several parts of a [`FactQuery`].
#[derive(Debug, Clone)]
pub struct Stage {
    /// Name of the in-memory table (unique in the process).
    pub name: String,
    /// The statement computing it.
    pub sql: String,
}

impl FactQuery {
    /// The statements as run, for `--explain`: the stage (if any), then the SQL.
    pub fn text(&self) -> String {
        match &self.stage {
            Some(s) => format!("-- stage {}:\n{};\n{}", s.name, s.sql, self.sql),
            None => self.sql.clone(),
        }
    }
}

/// A fresh name for a stage table.
fn stage_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("_cube_stage_{}_{n}", std::process::id())
}

/// A quoted SQL identifier.
pub(crate) fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn dim_alias(dim: &str) -> String {
    ident(&format!("d_{dim}"))
}

fn lookup_alias(dim: &str, lookup: &str) -> String {
    ident(&format!("d_{dim}__{lookup}"))
}

/// The FROM clause of one fact with the dimensions it needs, and the SQL of levels.
pub struct Star<'a> {
    model: &'a CubeModel,
    fact_name: String,
    /// Joins in order: the dimension joined (None for a lookup) and the join's text.
    joins: Vec<(Option<String>, String)>,
    joined: Vec<String>,
    /// Columns of dimension tables read as member names (dimension, column).
    text_columns: Vec<(String, String)>,
    /// Columns of dimension tables read as they are: join keys, expression inputs.
    raw_columns: Vec<(String, String)>,
    /// A statement read instead of the fact table (still as `f`).
    base: Option<String>,
}

impl<'a> Star<'a> {
    /// Starts from fact `fact`.
    pub fn new(model: &'a CubeModel, fact: &str) -> Result<Self> {
        if model.fact(fact).is_none() {
            return Err(Error::Usage(format!("unknown fact `{fact}`")));
        }
        Ok(Star {
            model,
            fact_name: fact.to_string(),
            joins: Vec::new(),
            joined: Vec::new(),
            text_columns: Vec::new(),
            raw_columns: Vec::new(),
            base: None,
        })
    }

    /// The value on the fact's side of the join to `dim`: a fact column, or the column
    /// of the dimension it is reached through (joined if needed).
    pub(crate) fn link_value(&mut self, dim: &str) -> Result<String> {
        let link = self
            .model
            .fact(&self.fact_name)
            .and_then(|f| f.dimensions.iter().find(|(n, _)| n == dim))
            .map(|(_, l)| l.clone())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "fact `{}` has no `{dim}` dimension",
                    self.fact_name
                ))
            })?;
        match link {
            Link::Column(c) => Ok(format!("f.{}", ident(&c))),
            Link::Through { through, column } => {
                self.join_dimension(&through, &format!("dimension `{dim}`"))?;
                Ok(format!("{}.{}", dim_alias(&through), ident(&column)))
            }
        }
    }

    /// Starts from the rows of `base` (named `f`), which has the fact's key columns.
    fn over(model: &'a CubeModel, fact: &str, base: String) -> Result<Self> {
        let mut star = Star::new(model, fact)?;
        star.base = Some(base);
        Ok(star)
    }

    fn join_dimension(&mut self, dim: &str, why: &str) -> Result<()> {
        if self.joined.iter().any(|d| d == dim) {
            return Ok(());
        }
        let fact = self
            .model
            .fact(&self.fact_name)
            .ok_or_else(|| Error::Usage(format!("unknown fact `{}`", self.fact_name)))?;
        let d = self
            .model
            .dimension(dim)
            .ok_or_else(|| Error::Usage(format!("unknown dimension `{dim}`")))?;
        let link = fact
            .dimensions
            .iter()
            .find(|(n, _)| n == dim)
            .map(|(_, l)| l.clone())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{why}: fact `{}` ({}) has no `{dim}` dimension; it links to {}",
                    self.fact_name,
                    fact.table,
                    crate::model::names(&fact.dimensions)
                ))
            })?;
        let on = match link {
            Link::Column(c) => format!("f.{}", ident(&c)),
            Link::Through { through, column } => {
                self.join_dimension(&through, why)?;
                self.use_column(&through, &column, false);
                format!("{}.{}", dim_alias(&through), ident(&column))
            }
        };
        self.joins.push((
            Some(dim.to_string()),
            format!(
                "AS {} ON {}.{} = {on}",
                dim_alias(dim),
                dim_alias(dim),
                ident(&d.key)
            ),
        ));
        self.joined.push(dim.to_string());
        Ok(())
    }

    fn join_lookup(&mut self, dim: &str, lookup: &str) -> Result<()> {
        let key = format!("{dim}__{lookup}");
        if self.joined.iter().any(|d| d == &key) {
            return Ok(());
        }
        let d = self
            .model
            .dimension(dim)
            .ok_or_else(|| Error::Usage(format!("unknown dimension `{dim}`")))?;
        let lk = d
            .lookups
            .iter()
            .find(|(n, _)| n == lookup)
            .map(|(_, l)| l)
            .ok_or_else(|| Error::Usage(format!("unknown lookup `{lookup}` of {dim}")))?;
        let table = ident(&lk.table);
        let source = match &lk.latest {
            Some(col) => format!(
                "(SELECT * FROM {table} WHERE {c} = (SELECT MAX({c}) FROM {table}))",
                c = ident(col)
            ),
            None => table,
        };
        self.joins.push((
            None,
            format!(
                "LEFT JOIN {source} AS {a} ON {a}.{on} = {d}.{on}",
                a = lookup_alias(dim, lookup),
                on = ident(&lk.on),
                d = dim_alias(dim)
            ),
        ));
        let on = lk.on.clone();
        self.use_column(dim, &on, false);
        self.joined.push(key);
        Ok(())
    }

    /// Notes a column of a dimension table the statement reads, as text or as it is.
    fn use_column(&mut self, dim: &str, column: &str, text: bool) {
        let list = if text {
            &mut self.text_columns
        } else {
            &mut self.raw_columns
        };
        if !list.iter().any(|(d, c)| d == dim && c == column) {
            list.push((dim.to_string(), column.to_string()));
        }
    }

    /// What a dimension is joined as: its table, or, when member names are read from it,
    /// a projection of the columns used with the name columns cast to text there, once per
    /// dimension row instead of once per fact row (the join then carries text views).
    fn dimension_source(&self, dim: &str) -> Result<String> {
        let d = self
            .model
            .dimension(dim)
            .ok_or_else(|| Error::Usage(format!("unknown dimension `{dim}`")))?;
        let mine = |list: &[(String, String)]| -> Vec<String> {
            list.iter()
                .filter(|(x, c)| x == dim && c != &d.key)
                .map(|(_, c)| c.clone())
                .collect()
        };
        let raw = mine(&self.raw_columns);
        let text: Vec<String> = mine(&self.text_columns)
            .into_iter()
            .filter(|c| !raw.contains(c))
            .collect();
        if text.is_empty() {
            return Ok(ident(&d.table));
        }
        let mut cols = vec![ident(&d.key)];
        cols.extend(raw.iter().map(|c| ident(c)));
        cols.extend(
            text.iter()
                .map(|c| format!("CAST({} AS VARCHAR) AS {}", ident(c), ident(c))),
        );
        Ok(format!(
            "(SELECT {} FROM {})",
            cols.join(", "),
            ident(&d.table)
        ))
    }

    fn level_def(&self, r: &LevelRef) -> Result<&'a Level> {
        self.model
            .level(r)
            .ok_or_else(|| Error::Usage(format!("unknown level `{r}`")))
    }

    /// The raw SQL value of a level (NULL when the dimension row is missing).
    pub fn level_value(&mut self, r: &LevelRef, why: &str) -> Result<String> {
        self.join_dimension(&r.dimension, why)?;
        let level = self.level_def(r)?;
        let alias = match &level.lookup {
            Some(lk) => {
                self.join_lookup(&r.dimension, lk)?;
                lookup_alias(&r.dimension, lk)
            }
            None => dim_alias(&r.dimension),
        };
        if level.lookup.is_none() {
            match &level.expr {
                Some(expr) => {
                    for c in crate::model::expr_columns(expr) {
                        self.use_column(&r.dimension, &c, false);
                    }
                }
                None => self.use_column(&r.dimension, &level.column, true),
            }
        }
        Ok(match &level.expr {
            Some(expr) => {
                let mut out = expr.clone();
                let mut cols = crate::model::expr_columns(expr);
                cols.sort_by_key(|c| std::cmp::Reverse(c.len()));
                for c in cols {
                    out = out.replace(&format!("${c}"), &format!("{alias}.{}", ident(&c)));
                }
                format!("({out})")
            }
            None => format!("{alias}.{}", ident(&level.column)),
        })
    }

    /// A level's member name: text, `Unknown` when missing.
    pub fn level_label(&mut self, r: &LevelRef, why: &str) -> Result<String> {
        let v = self.level_value(r, why)?;
        Ok(format!(
            "COALESCE(CAST({v} AS VARCHAR), {})",
            literal(UNKNOWN)
        ))
    }

    /// A level's member code (`DE` for Germany), where the level has one.
    pub(crate) fn code_label(&mut self, r: &LevelRef) -> Result<Option<String>> {
        let level = self.level_def(r)?;
        let Some(code) = &level.code else {
            return Ok(None);
        };
        let alias = match &level.lookup {
            Some(lk) => lookup_alias(&r.dimension, lk),
            None => {
                let code = code.clone();
                self.use_column(&r.dimension, &code, true);
                dim_alias(&r.dimension)
            }
        };
        Ok(Some(format!(
            "COALESCE(CAST({alias}.{} AS VARCHAR), {})",
            ident(code),
            literal(UNKNOWN)
        )))
    }

    /// The WHERE condition of one filter.
    pub fn condition(&mut self, f: &Filter) -> Result<String> {
        let why = format!("filter `{}`", f.describe());
        let label = self.level_label(&f.level, &why)?;
        let code = self.code_label(&f.level)?;
        let cond = member_condition(&label, code.as_deref(), &f.op);
        Ok(match self.key_range(f, &cond)? {
            Some(range) => format!("{cond}\n  AND {range}"),
            None => cond,
        })
    }

    /// For a filter on the calendar: the range of date keys it keeps, as a condition on
    /// the fact's own key column. The facts are partitioned by month and sorted by date,
    /// so the range skips whole files and row groups by their statistics before
    /// anything is joined. It only narrows what the filter keeps anyway: a fact row
    /// whose key has no calendar row belongs to `Unknown`, which the filter must reject
    /// for the range to be added. Levels from lookups or computed by an expression keep
    /// the plain filter.
    fn key_range(&self, f: &Filter, cond: &str) -> Result<Option<String>> {
        let level = self.level_def(&f.level)?;
        let Some(d) = self.model.dimension(&f.level.dimension) else {
            return Ok(None);
        };
        let calendar = d.levels.iter().any(|(_, l)| l.period.is_some());
        let column = self.model.fact(&self.fact_name).and_then(|fact| {
            fact.dimensions
                .iter()
                .find(|(n, _)| n == &f.level.dimension)
                .and_then(|(_, link)| match link {
                    Link::Column(c) => Some(c.clone()),
                    Link::Through { .. } => None,
                })
        });
        let Some(column) = column else {
            return Ok(None);
        };
        if !calendar
            || level.lookup.is_some()
            || level.expr.is_some()
            || crate::engine::filter_accepts(f, UNKNOWN)
        {
            return Ok(None);
        }
        let bound = |agg: &str| {
            format!(
                "(SELECT {agg}({a}.{k}) FROM {t} AS {a} WHERE {cond})",
                a = dim_alias(&f.level.dimension),
                k = ident(&d.key),
                t = ident(&d.table)
            )
        };
        let c = format!("f.{}", ident(&column));
        Ok(Some(format!(
            "{c} >= {} AND {c} <= {}",
            bound("MIN"),
            bound("MAX")
        )))
    }

    /// `FROM fact f LEFT JOIN …`.
    pub fn from_clause(&self) -> Result<String> {
        let fact = self
            .model
            .fact(&self.fact_name)
            .ok_or_else(|| Error::Usage(format!("unknown fact `{}`", self.fact_name)))?;
        let mut s = match &self.base {
            Some(b) => format!("FROM (\n{b}\n) AS f"),
            None => format!("FROM {} AS f", ident(&fact.table)),
        };
        for (dim, j) in &self.joins {
            s.push_str("\n  ");
            if let Some(dim) = dim {
                s.push_str(&format!("LEFT JOIN {} ", self.dimension_source(dim)?));
            }
            s.push_str(j);
        }
        Ok(s)
    }

    /// The SQL value a measure column refers to: a fact column or `dimension.level`.
    pub(crate) fn column_value(&mut self, c: &str, why: &str) -> Result<String> {
        match c.split_once('.') {
            Some((d, l)) => self.level_value(
                &LevelRef {
                    dimension: d.into(),
                    level: l.into(),
                },
                why,
            ),
            None => Ok(format!("f.{}", ident(c))),
        }
    }
}

/// Everything one fact query needs to know.
pub struct FactSpec<'q> {
    /// Fact name.
    pub fact: &'q str,
    /// Base measures of this fact.
    pub measures: &'q [String],
    /// Label levels (output columns l0, l1, …).
    pub labels: &'q [LevelRef],
    /// Grouping sets as indices into `labels`.
    pub sets: &'q [Vec<usize>],
    /// Filters.
    pub filters: &'q [Filter],
    /// Distinct counts by sketch.
    pub approximate: bool,
    /// Rows of the dimension tables, by table (those not given are taken as large).
    pub dimension_rows: &'q HashMap<String, u64>,
}

/// The condition a member label (and, where the level has codes, its code) must meet.
pub(crate) fn member_condition(label: &str, code: Option<&str>, op: &FilterOp) -> String {
    let list = |v: &[String]| v.iter().map(|x| literal(x)).collect::<Vec<_>>().join(", ");
    let member_in = |v: &[String]| match code {
        Some(c) => format!("({label} IN ({l}) OR {c} IN ({l}))", l = list(v)),
        None => format!("{label} IN ({})", list(v)),
    };
    match op {
        FilterOp::In(v) => member_in(v),
        FilterOp::NotIn(v) => format!("NOT {}", member_in(v)),
        FilterOp::Between(a, b) => {
            format!("{label} BETWEEN {} AND {}", literal(a), literal(b))
        }
        FilterOp::Compare(op, v) => format!("{label} {op} {}", literal(v)),
    }
}

fn group_by(cols: &[String], sets: &[Vec<usize>], extra: &[&str]) -> String {
    let set = |s: &Vec<usize>| {
        s.iter()
            .map(|i| cols[*i].clone())
            .chain(extra.iter().map(|e| e.to_string()))
            .collect::<Vec<_>>()
    };
    if sets.len() == 1 {
        let s = set(&sets[0]);
        if s.is_empty() {
            String::new()
        } else {
            format!("\nGROUP BY {}", s.join(", "))
        }
    } else {
        let parts: Vec<String> = sets
            .iter()
            .map(|s| format!("({})", set(s).join(", ")))
            .collect();
        format!("\nGROUP BY GROUPING SETS ({})", parts.join(", "))
    }
}

/// How a row value is aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowAgg {
    /// `SUM(v)`: sums and counts (a count is the sum of 1 per counted row).
    Sum,
    /// `COUNT(DISTINCT v)` (or the sketch with `--approx`).
    CountDistinct,
}

/// Where the rows of a fact query come from: the fact table joined to its dimensions
/// ([`Star`]), or a pre-aggregation of it. Either way the aggregate query around the
/// rows is the same, so both give the same cells.
pub(crate) trait RowSource {
    /// A level's member name per row (never NULL: `Unknown` when missing).
    fn label(&mut self, r: &LevelRef, why: &str) -> Result<String>;
    /// The WHERE condition of one filter.
    fn condition(&mut self, f: &Filter) -> Result<String>;
    /// The row value of a sum, count or count_distinct measure and how it aggregates.
    fn measure_value(&mut self, m: &str) -> Result<(String, RowAgg)>;
    /// For a count_distinct_having measure: the counted value, the per value, and the
    /// conditions a row must meet (besides the counted value being present).
    fn having_values(&mut self, m: &str) -> Result<(String, String, Vec<String>)>;
    /// `FROM …`.
    fn table_clause(&self) -> Result<String>;
}

impl RowSource for Star<'_> {
    fn label(&mut self, r: &LevelRef, why: &str) -> Result<String> {
        self.level_label(r, why)
    }

    fn condition(&mut self, f: &Filter) -> Result<String> {
        Star::condition(self, f)
    }

    fn measure_value(&mut self, m: &str) -> Result<(String, RowAgg)> {
        let def = self
            .model
            .measure(m)
            .ok_or_else(|| Error::Usage(format!("unknown measure `{m}`")))?;
        let filter = def.filter.as_ref().map(|w| format!("f.{}", ident(w)));
        let value = match &def.column {
            Some(c) => Some(self.column_value(c, &format!("measure `{m}`"))?),
            None => None,
        };
        Ok(match (def.agg, value) {
            (Some(Agg::Count), None) => (
                match &filter {
                    Some(w) => format!("CASE WHEN {w} THEN 1 ELSE 0 END"),
                    None => "1".to_string(),
                },
                RowAgg::Sum,
            ),
            (Some(Agg::Count), Some(c)) => (
                match &filter {
                    Some(w) => format!("CASE WHEN {w} AND {c} IS NOT NULL THEN 1 ELSE 0 END"),
                    None => format!("CASE WHEN {c} IS NOT NULL THEN 1 ELSE 0 END"),
                },
                RowAgg::Sum,
            ),
            (Some(Agg::Sum), Some(c)) => (
                match &filter {
                    Some(w) => format!("CASE WHEN {w} THEN {c} END"),
                    None => c,
                },
                RowAgg::Sum,
            ),
            (Some(Agg::CountDistinct), Some(c)) => (
                match &filter {
                    Some(w) => format!("CASE WHEN {w} THEN {c} END"),
                    None => c,
                },
                RowAgg::CountDistinct,
            ),
            _ => {
                return Err(Error::Usage(format!(
                    "measure `{m}` cannot be computed (agg and column do not fit)"
                )))
            }
        })
    }

    fn having_values(&mut self, m: &str) -> Result<(String, String, Vec<String>)> {
        let def = self
            .model
            .measure(m)
            .ok_or_else(|| Error::Usage(format!("unknown measure `{m}`")))?;
        let (Some(c), Some(per)) = (&def.column, &def.per) else {
            return Err(Error::Usage(format!("measure `{m}` needs column and per")));
        };
        let why = format!("measure `{m}`");
        let c = self.column_value(c, &why)?;
        let per = self.column_value(per, &why)?;
        let conds = def
            .filter
            .iter()
            .map(|w| format!("f.{}", ident(w)))
            .collect();
        Ok((c, per, conds))
    }

    fn table_clause(&self) -> Result<String> {
        self.from_clause()
    }
}

/// Compiles the aggregate queries of one fact: plain measures in one query, each
/// count_distinct_having measure in its own nested query.
pub fn fact_queries(model: &CubeModel, spec: &FactSpec) -> Result<Vec<FactQuery>> {
    queries_from(model, spec, &mut || {
        Ok(Box::new(Star::new(model, spec.fact)?))
    })
}

/// A fresh row source for each statement.
pub(crate) type NewSource<'s, 'm> = dyn FnMut() -> Result<Box<dyn RowSource + 'm>> + 's;

/// [`fact_queries`] over the rows of any source.
pub(crate) fn queries_from(
    model: &CubeModel,
    spec: &FactSpec,
    new_source: &mut NewSource,
) -> Result<Vec<FactQuery>> {
    let mut plain = Vec::new();
    let mut nested = Vec::new();
    for m in spec.measures {
        let def = model
            .measure(m)
            .ok_or_else(|| Error::Usage(format!("unknown measure `{m}`")))?;
        if def.agg == Some(Agg::CountDistinctHaving) {
            nested.push(m.clone());
        } else {
            plain.push(m.clone());
        }
    }
    // A distinct count of the values a count_distinct_having measure counts (customers next
    // to repeat_customers) is the number of per-value rows that measure's query forms:
    // it is counted there, and the facts are read once for both.
    let mut with_nested: Vec<Vec<String>> = nested.iter().map(|m| vec![m.clone()]).collect();
    if !spec.approximate {
        plain.retain(|m| {
            let Some(def) = model.measure(m) else {
                return true;
            };
            if def.agg != Some(Agg::CountDistinct) {
                return true;
            }
            let host = nested.iter().position(|n| {
                model
                    .measure(n)
                    .is_some_and(|h| h.column == def.column && h.filter == def.filter)
            });
            match host {
                Some(i) => {
                    with_nested[i].push(m.clone());
                    false
                }
                None => true,
            }
        });
    }
    // Under several grouping sets each exact distinct count gets its own staged query
    // (see [`staged_distinct`]); the sums then roll up from the finest grain.
    let mut staged = Vec::new();
    if !spec.approximate && spec.sets.len() > 1 {
        plain.retain(|m| {
            let distinct = model
                .measure(m)
                .is_some_and(|d| d.agg == Some(Agg::CountDistinct));
            if distinct {
                staged.push(m.clone());
            }
            !distinct
        });
    }
    let mut out = Vec::new();
    if !plain.is_empty() {
        match summed_by_keys(model, spec, &plain)? {
            Some(q) => out.push(q),
            None => {
                let mut source = new_source()?;
                out.push(one_query(model, spec, source.as_mut(), &plain, None)?);
            }
        }
    }
    for (m, ms) in nested.iter().zip(&with_nested) {
        let mut source = new_source()?;
        out.push(if spec.sets.len() > 1 {
            staged_having(model, spec, source.as_mut(), ms, m)?
        } else {
            one_query(model, spec, source.as_mut(), ms, Some(m))?
        });
    }
    for m in &staged {
        let mut source = new_source()?;
        out.push(staged_distinct(spec, source.as_mut(), m)?);
    }
    Ok(out)
}

/// Labels and WHERE conditions of the rows behind a query: `l0, l1, …` per row.
fn labelled_rows(
    spec: &FactSpec,
    star: &mut dyn RowSource,
    why: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut select = Vec::new();
    for (i, l) in spec.labels.iter().enumerate() {
        select.push(format!("{} AS l{i}", star.label(l, why)?));
    }
    let mut conds = Vec::new();
    for f in spec.filters {
        conds.push(star.condition(f).map_err(|e| match e {
            Error::Usage(m) => Error::Usage(format!("{m} (needed by {why})")),
            other => other,
        })?);
    }
    Ok((select, conds))
}

/// An exact distinct count under several grouping sets. `COUNT(DISTINCT v)` with
/// GROUPING SETS keeps a hash set per group and set and feeds it row by row; instead the
/// rows are reduced once to their distinct (labels, value) pairs by an ordinary GROUP BY
/// (the stage, kept in memory), and each set counts those pairs: directly at the finest
/// set, and after reducing them to distinct (set labels, value) pairs at coarser ones.
/// NULL values stay in the pairs (a cell whose values are all NULL counts 0), and
/// `COUNT(v)` skips them.
fn staged_distinct(spec: &FactSpec, star: &mut dyn RowSource, m: &str) -> Result<FactQuery> {
    let why = format!("measure `{m}`");
    let (mut select, conds) = labelled_rows(spec, star, &why)?;
    let (v, _) = star.measure_value(m)?;
    select.push(format!("{v} AS v"));
    let base = base_select(&*star, &select, &conds)?;
    let sql_of = |rows: &str, kept: &[String]| {
        let group = group_clause(kept);
        format!("COUNT(v) AS m0 FROM {rows}{group}")
    };
    staged(spec, &base, &["v"], &[m.to_string()], &sql_of)
}

/// A count_distinct_having measure (and the distinct counts of the same values it hosts)
/// under several grouping sets, staged like [`staged_distinct`]: the distinct (labels,
/// counted value, per value) triples once, then per set the number of per values of each
/// counted value, and how many counted values reach the minimum.
fn staged_having(
    model: &CubeModel,
    spec: &FactSpec,
    star: &mut dyn RowSource,
    measures: &[String],
    m: &str,
) -> Result<FactQuery> {
    let def = model
        .measure(m)
        .ok_or_else(|| Error::Usage(format!("unknown measure `{m}`")))?;
    let why = format!("measure `{}`", measures.join("`, `"));
    let (select, conds) = labelled_rows(spec, star, &why)?;
    let base = having_rows(star, m, select, conds)?;
    let min = def.min.unwrap_or(2);
    let hosted = measures.len();
    let sql_of = |rows: &str, kept: &[String]| {
        let mut per_value = kept.to_vec();
        per_value.push("c".into());
        let mut cols = vec![format!("SUM(CASE WHEN n >= {min} THEN 1 ELSE 0 END) AS m0")];
        // Distinct counts of the same values: one per-value row each.
        cols.extend((1..hosted).map(|k| format!("COUNT(*) AS m{k}")));
        format!(
            "{} FROM (SELECT {}, COUNT(p) AS n FROM {rows}{}) AS per_value{}",
            cols.join(", "),
            per_value.join(", "),
            group_clause(&per_value),
            group_clause(kept)
        )
    };
    staged(spec, &base, &["c", "p"], measures, &sql_of)
}

/// The rows a count_distinct_having measure reads: the labels, `c` (the counted value,
/// never NULL) and `p` (the per value), under the query's and the measure's conditions.
fn having_rows(
    star: &mut dyn RowSource,
    m: &str,
    mut select: Vec<String>,
    mut conds: Vec<String>,
) -> Result<String> {
    let (c, per, extra) = star.having_values(m)?;
    select.push(format!("{c} AS c"));
    select.push(format!("{per} AS p"));
    conds.extend(extra);
    conds.push(format!("{c} IS NOT NULL"));
    base_select(&*star, &select, &conds)
}

fn group_clause(cols: &[String]) -> String {
    if cols.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", cols.join(", "))
    }
}

/// The staged statement over `base` (rows with `l0, l1, …` and the `values` columns):
/// the stage keeps its distinct (labels, values) rows; each grouping set reads them, or
/// at a coarser set their distinct (set labels, values) rows, through
/// `aggregate(rows, set labels)` (measure columns `m0, m1, …` and the FROM … GROUP BY).
fn staged(
    spec: &FactSpec,
    base: &str,
    values: &[&str],
    measures: &[String],
    aggregate: &dyn Fn(&str, &[String]) -> String,
) -> Result<FactQuery> {
    let n = spec.labels.len();
    let label = |i: usize| format!("l{i}");
    let mut grain: Vec<String> = (0..n).map(label).collect();
    grain.extend(values.iter().map(|v| v.to_string()));
    let stage = Stage {
        name: stage_name(),
        sql: format!(
            "SELECT {g}\nFROM (\n{base}\n) AS base\nGROUP BY {g}",
            g = grain.join(", ")
        ),
    };
    let table = ident(&stage.name);
    let mut parts = Vec::new();
    for set in spec.sets {
        let kept: Vec<String> = set.iter().map(|i| label(*i)).collect();
        let rows = if (0..n).all(|i| set.contains(&i)) {
            table.clone()
        } else {
            let mut distinct = kept.clone();
            distinct.extend(values.iter().map(|v| v.to_string()));
            let distinct = distinct.join(", ");
            format!("(SELECT {distinct} FROM {table} GROUP BY {distinct}) AS distinct_rows")
        };
        let cols: Vec<String> = (0..n)
            .map(|i| {
                if set.contains(&i) {
                    label(i)
                } else {
                    format!("CAST(NULL AS VARCHAR) AS l{i}")
                }
            })
            .collect();
        let mut select = cols.join(", ");
        if !select.is_empty() {
            select.push_str(", ");
        }
        parts.push(format!("SELECT {select}{}", aggregate(&rows, &kept)));
    }
    let mut cols: Vec<String> = (0..n)
        .map(|i| format!("COALESCE(l{i}, {}) AS a{i}", literal(ALL)))
        .collect();
    cols.extend((0..measures.len()).map(|k| format!("m{k}")));
    Ok(FactQuery {
        fact: spec.fact.to_string(),
        measures: measures.to_vec(),
        sql: format!(
            "SELECT {}\nFROM (\n{}\n) AS sets",
            cols.join(", "),
            parts.join("\nUNION ALL\n")
        ),
        stage: Some(stage),
    })
}

/// The most key combinations the facts are summed to before small dimensions are joined.
const KEYED_CELLS: u64 = 100_000;

/// The dimensions whose members are looked up after the fact rows are summed by their
/// keys: small dimensions the fact links to directly, smallest first, as long as all
/// their key combinations together stay within [`KEYED_CELLS`]. Not: dimensions with
/// levels from lookups, dimensions others are reached through, and a filtered calendar
/// (its filter narrows the date keys read, which needs it joined first).
fn keyed_dimensions(model: &CubeModel, spec: &FactSpec) -> Vec<String> {
    let Some(fact) = model.fact(spec.fact) else {
        return Vec::new();
    };
    let link = |d: &str| fact.dimensions.iter().find(|(n, _)| n == d).map(|(_, l)| l);
    let used: Vec<&LevelRef> = spec
        .labels
        .iter()
        .chain(spec.filters.iter().map(|f| &f.level))
        .collect();
    let mut dims: Vec<&str> = Vec::new();
    for l in &used {
        if !dims.contains(&l.dimension.as_str()) {
            dims.push(&l.dimension);
        }
    }
    let mut candidates: Vec<(String, u64)> = Vec::new();
    for d in &dims {
        if !matches!(link(d), Some(Link::Column(_))) {
            continue;
        }
        let reached_through = dims
            .iter()
            .any(|u| matches!(link(u), Some(Link::Through { through, .. }) if through == d));
        let from_lookup = used
            .iter()
            .filter(|l| l.dimension == *d)
            .any(|l| model.level(l).is_none_or(|x| x.lookup.is_some()));
        let Some(dim) = model.dimension(d) else {
            continue;
        };
        let calendar = dim.levels.iter().any(|(_, l)| l.period.is_some());
        let filtered = spec.filters.iter().any(|f| f.level.dimension == *d);
        if reached_through || from_lookup || (calendar && filtered) {
            continue;
        }
        if let Some(rows) = spec.dimension_rows.get(&dim.table) {
            candidates.push((d.to_string(), *rows));
        }
    }
    candidates.sort_by_key(|(_, rows)| *rows);
    let mut cells = 1u64;
    let mut keyed = Vec::new();
    for (d, rows) in candidates {
        let more = cells.saturating_mul(rows.max(1));
        if more <= KEYED_CELLS {
            cells = more;
            keyed.push(d);
        }
    }
    keyed
}

/// Sums and counts with small dimensions on the axes (brand by channel, region by year):
/// the fact rows are first summed by those dimensions' keys (integers, before any join),
/// and the few summed rows are then joined to the dimensions, filtered by them and
/// grouped by their members. None when a measure is not a sum or count of fact columns,
/// or no dimension qualifies (see [`keyed_dimensions`]).
fn summed_by_keys(
    model: &CubeModel,
    spec: &FactSpec,
    measures: &[String],
) -> Result<Option<FactQuery>> {
    for m in measures {
        let Some(def) = model.measure(m) else {
            return Ok(None);
        };
        let fact_column = |c: &Option<String>| c.as_ref().is_none_or(|c| !c.contains('.'));
        if !matches!(def.agg, Some(Agg::Sum) | Some(Agg::Count))
            || !fact_column(&def.column)
            || !fact_column(&def.filter)
        {
            return Ok(None);
        }
    }
    let keyed = keyed_dimensions(model, spec);
    if keyed.is_empty() {
        return Ok(None);
    }
    let fact = model
        .fact(spec.fact)
        .ok_or_else(|| Error::Usage(format!("unknown fact `{}`", spec.fact)))?;
    let key_columns: Vec<String> = keyed
        .iter()
        .filter_map(|d| {
            fact.dimensions
                .iter()
                .find(|(n, _)| n == d)
                .and_then(|(_, l)| match l {
                    Link::Column(c) => Some(ident(c)),
                    Link::Through { .. } => None,
                })
        })
        .collect();
    let why = format!("measure `{}`", measures.join("`, `"));
    let is_keyed = |l: &LevelRef| keyed.contains(&l.dimension);
    // Inner: the fact rows, other dimensions joined, summed by labels and keys.
    let mut inner = Star::new(model, spec.fact)?;
    let mut select = Vec::new();
    let mut grain = Vec::new();
    for (i, l) in spec.labels.iter().enumerate() {
        if !is_keyed(l) {
            select.push(format!("{} AS l{i}", inner.level_label(l, &why)?));
            grain.push(format!("l{i}"));
        }
    }
    for c in &key_columns {
        select.push(format!("f.{c} AS {c}"));
        grain.push(c.clone());
    }
    for (k, m) in measures.iter().enumerate() {
        let def = model
            .measure(m)
            .ok_or_else(|| Error::Usage(format!("unknown measure `{m}`")))?;
        let filter = def.filter.as_ref().map(|w| format!("f.{}", ident(w)));
        let column = def.column.as_ref().map(|c| format!("f.{}", ident(c)));
        let v = match (def.agg, column, filter) {
            (Some(Agg::Count), None, None) => "1".to_string(),
            (Some(Agg::Count), None, Some(w)) => format!("CASE WHEN {w} THEN 1 ELSE 0 END"),
            (Some(Agg::Count), Some(c), None) => {
                format!("CASE WHEN {c} IS NOT NULL THEN 1 ELSE 0 END")
            }
            (Some(Agg::Count), Some(c), Some(w)) => {
                format!("CASE WHEN {w} AND {c} IS NOT NULL THEN 1 ELSE 0 END")
            }
            (Some(Agg::Sum), Some(c), None) => c,
            (Some(Agg::Sum), Some(c), Some(w)) => format!("CASE WHEN {w} THEN {c} END"),
            _ => return Ok(None),
        };
        select.push(format!("{v} AS v{k}"));
    }
    let mut conds = Vec::new();
    for f in spec.filters.iter().filter(|f| !is_keyed(&f.level)) {
        conds.push(inner.condition(f)?);
    }
    let summed = finest_grain(
        &base_select(&inner, &select, &conds)?,
        &grain,
        measures.len(),
    );
    // Middle: the summed rows joined to the keyed dimensions.
    let mut outer = Star::over(model, spec.fact, summed)?;
    let mut select = Vec::new();
    for (i, l) in spec.labels.iter().enumerate() {
        if is_keyed(l) {
            select.push(format!("{} AS l{i}", outer.level_label(l, &why)?));
        } else {
            select.push(format!("f.l{i} AS l{i}"));
        }
    }
    for k in 0..measures.len() {
        select.push(format!("f.v{k} AS v{k}"));
    }
    let mut conds = Vec::new();
    for f in spec.filters.iter().filter(|f| is_keyed(&f.level)) {
        conds.push(outer.condition(f)?);
    }
    let middle = base_select(&outer, &select, &conds)?;
    let label_cols: Vec<String> = (0..spec.labels.len()).map(|i| format!("l{i}")).collect();
    let mut cols: Vec<String> = label_cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("COALESCE({c}, {}) AS a{i}", literal(ALL)))
        .collect();
    cols.extend((0..measures.len()).map(|k| format!("SUM(v{k}) AS m{k}")));
    Ok(Some(FactQuery {
        fact: spec.fact.to_string(),
        measures: measures.to_vec(),
        sql: format!(
            "SELECT {}\nFROM (\n{middle}\n) AS base{}",
            cols.join(", "),
            group_by(&label_cols, spec.sets, &[])
        ),
        stage: None,
    }))
}

fn one_query(
    model: &CubeModel,
    spec: &FactSpec,
    star: &mut dyn RowSource,
    measures: &[String],
    nested: Option<&String>,
) -> Result<FactQuery> {
    let why_axis = format!("measure `{}`", measures.join("`, `"));
    let (mut select, conds) = labelled_rows(spec, star, &why_axis)?;
    let label_cols: Vec<String> = (0..spec.labels.len()).map(|i| format!("l{i}")).collect();
    let outer_labels: Vec<String> = label_cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("COALESCE({c}, {}) AS a{i}", literal(ALL)))
        .collect();
    let sql = match nested {
        None => {
            let mut aggs = Vec::new();
            let mut summed = Vec::new();
            for (k, m) in measures.iter().enumerate() {
                let (v, agg) = star.measure_value(m)?;
                let agg = match agg {
                    RowAgg::Sum => format!("SUM(v{k})"),
                    RowAgg::CountDistinct if spec.approximate => {
                        // The sketch hashes each type its own way: one type (text
                        // views) for the values from base facts and from
                        // pre-aggregations keeps the estimates identical.
                        format!("CAST(approx_distinct(arrow_cast(v{k}, 'Utf8View')) AS BIGINT)")
                    }
                    RowAgg::CountDistinct => format!("COUNT(DISTINCT v{k})"),
                };
                select.push(format!("{v} AS v{k}"));
                summed.push(agg.starts_with("SUM("));
                aggs.push(format!("{agg} AS m{k}"));
            }
            let base = base_select(&*star, &select, &conds)?;
            let mut cols = outer_labels.clone();
            cols.extend(aggs);
            let base = if spec.sets.len() > 1 && summed.iter().all(|s| *s) {
                finest_grain(&base, &label_cols, summed.len())
            } else {
                base
            };
            format!(
                "SELECT {}\nFROM (\n{base}\n) AS base{}",
                cols.join(", "),
                group_by(&label_cols, spec.sets, &[])
            )
        }
        Some(m) => {
            let def = model
                .measure(m)
                .ok_or_else(|| Error::Usage(format!("unknown measure `{m}`")))?;
            let base = having_rows(star, m, select, conds)?;
            let mut inner_cols = label_cols.clone();
            inner_cols.push("c".into());
            let min = def.min.unwrap_or(2);
            let mut cols = outer_labels.clone();
            inner_cols.push("COUNT(DISTINCT p) AS n".into());
            cols.push(format!("SUM(CASE WHEN n >= {min} THEN 1 ELSE 0 END) AS m0"));
            // Distinct counts of the same values: one per-value row each.
            for k in 1..measures.len() {
                cols.push(format!("COUNT(*) AS m{k}"));
            }
            let outer_group = if label_cols.is_empty() {
                String::new()
            } else {
                format!("\nGROUP BY {}", label_cols.join(", "))
            };
            format!(
                "SELECT {}\nFROM (\nSELECT {}\nFROM (\n{base}\n) AS base{}\n) AS per_value{outer_group}",
                cols.join(", "),
                inner_cols.join(", "),
                group_by(&label_cols, spec.sets, &["c"])
            )
        }
    };
    Ok(FactQuery {
        fact: spec.fact.to_string(),
        measures: measures.to_vec(),
        sql,
        stage: None,
    })
}

/// With several grouping sets and only sums and counts, the fact rows are first summed
/// once to the finest grain (every label), and the grouping sets then roll up those cells
/// instead of every fact row once per set. (With a distinct count the grain would have to
/// keep every distinct value, which is slower than counting per set.)
fn finest_grain(base: &str, labels: &[String], measures: usize) -> String {
    let mut cols = labels.to_vec();
    cols.extend((0..measures).map(|k| format!("SUM(v{k}) AS v{k}")));
    let group = if labels.is_empty() {
        String::new()
    } else {
        format!("\nGROUP BY {}", labels.join(", "))
    };
    format!(
        "SELECT {}\nFROM (\n{base}\n) AS fact_rows{group}",
        cols.join(", ")
    )
}

fn base_select(star: &dyn RowSource, select: &[String], conds: &[String]) -> Result<String> {
    let select = if select.is_empty() {
        "1 AS one".to_string()
    } else {
        select.join(", ")
    };
    let mut s = format!("SELECT {select}\n{}", star.table_clause()?);
    if !conds.is_empty() {
        s.push_str(&format!("\nWHERE {}", conds.join("\n  AND ")));
    }
    Ok(s)
}

/// SQL listing the fact rows behind the filters, with the axis levels first.
pub fn drill_through_sql(
    model: &CubeModel,
    fact: &str,
    labels: &[LevelRef],
    filters: &[Filter],
    limit: usize,
) -> Result<(String, String)> {
    let mut star = Star::new(model, fact)?;
    let why = format!("drill-through to {fact}");
    let mut select = Vec::new();
    for l in labels {
        select.push(format!(
            "{} AS {}",
            star.level_label(l, &why)?,
            ident(&l.to_string())
        ));
    }
    select.push("f.*".into());
    let mut conds = Vec::new();
    for f in filters {
        conds.push(star.condition(f)?);
    }
    let rows = format!("{}\nLIMIT {limit}", base_select(&star, &select, &conds)?);
    let count = format!(
        "SELECT COUNT(*) AS n FROM (\n{}\n) AS rows",
        base_select(&star, &["1 AS one".into()], &conds)?
    );
    Ok((rows, count))
}

/// SQL of the wide view of one fact: every fact column, then every level of every
/// dimension the fact reaches, named `dimension_level` (`geography_region`,
/// `time_month`), with the members the cube shows (`Unknown` for a missing key). BI
/// tools and SQL clients group and filter these rows like a flat table. Levels for
/// which `available` is false (they read a table the warehouse lacks) are left out.
pub fn wide_view_sql(
    model: &CubeModel,
    fact: &str,
    available: &dyn Fn(&LevelRef) -> bool,
) -> Result<String> {
    let def = model
        .fact(fact)
        .ok_or_else(|| Error::Usage(format!("unknown fact `{fact}`")))?;
    let mut star = Star::new(model, fact)?;
    let why = format!("view of fact `{fact}`");
    let mut select = vec!["f.*".to_string()];
    for (dim, _) in &def.dimensions {
        let Some(d) = model.dimension(dim) else {
            continue;
        };
        for (level, _) in &d.levels {
            let r = LevelRef {
                dimension: dim.clone(),
                level: level.clone(),
            };
            if !available(&r) {
                continue;
            }
            let label = star.level_label(&r, &why)?;
            select.push(format!("{label} AS {}", ident(&format!("{dim}_{level}"))));
        }
    }
    base_select(&star, &select, &[])
}
