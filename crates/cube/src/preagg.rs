//! Pre-aggregations: facts summed up in advance to a declared grain, stored as warehouse
//! tables (`_preagg_<name>`) and used by the query planner when they can answer exactly.
//!
//! A pre-aggregation is declared in the model (`pre_aggregations:` in cube.yaml) as one
//! fact, some measures and some levels. Its table holds one row per combination of
//!
//! - the declared levels **and every level above them in their hierarchies** (so
//!   `time.month` also stores `time.quarter` and `time.year`): a coarser level is read
//!   from its own column, computed from the same fact rows as the base query would, and
//!   never derived by joining labels back to a dimension (two cities of the same name in
//!   two countries stay apart);
//! - the members' codes, where a level has them (filters may name `DE` for Germany);
//! - for distinct counts, the **exact values counted** (`order_id`, the customer's
//!   natural key): a distinct count is recomputed from them at every level, never added.
//!
//! Sums and counts are stored as sums and added up; ratios are computed after
//! aggregation from their parts, as for the base facts.
//!
//! A pre-aggregation declared with `distinct: counted` stores, instead of the values
//! counted, each distinct count once per cell of the grains it declares (its levels, their
//! roll-up or cube subtotals, more grouping sets). It answers a query only when every
//! grouping set of the query is one of those grains and every filter picks whole cells.
//!
//! `crmcube cube materialize` builds the tables and records, in the `_preagg_state`
//! table of the same warehouse commit, the Delta version of every table each one was
//! built from and a fingerprint of its definition. A pre-aggregation is used only while
//! all of those match the version being read (see [`Catalog`]).

use crate::engine::Cube;
use crate::model::{names, Agg, CubeModel, LevelRef, Link, MeasureKind};
use crate::plan::{
    ident, literal, member_condition, FactQuery, FactSpec, RowAgg, RowSource, Star, ALL,
};
use crate::query::{Filter, FilterOp};
use crate::warehouse::Warehouse;
use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;
use crmcube_model::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Prefix of pre-aggregation tables.
pub const TABLE_PREFIX: &str = "_preagg_";
/// The table recording how and from what each pre-aggregation was built.
pub const STATE_TABLE: &str = "_preagg_state";
/// Bumped when the layout of pre-aggregation tables changes, so older tables are rebuilt.
const LAYOUT_VERSION: &str = "preagg-layout-1";
/// Column holding the grain of each row of a `distinct: counted` pre-aggregation: its
/// position in [`Layout::grains`].
pub const GRAIN_COLUMN: &str = "grain";

/// How a pre-aggregation stores distinct counts (orders, customers, repeat customers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistinctStorage {
    /// The values counted are kept (one row per order or customer and cell), so any
    /// coarser grain, filter or roll-up recounts them exactly.
    #[default]
    Kept,
    /// Counted once per cell of each stored grain: a small table that answers distinct
    /// counts at exactly those grains (and filters on whole cells), nothing coarser.
    Counted,
}

/// A pre-aggregation as declared in the model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreAggregation {
    /// The fact it aggregates.
    pub fact: String,
    /// Measures it can answer (ratios bring their parts).
    pub measures: Vec<String>,
    /// Levels (`dimension.level`) it keeps; the levels above them come along.
    #[serde(default)]
    pub levels: Vec<String>,
    /// A calendar level (e.g. `time.month`): one partition per member, rebuilt only
    /// when fact rows of that member change.
    #[serde(default)]
    pub partition_by: Option<String>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// `kept` (default) or `counted`; see [`DistinctStorage`].
    #[serde(default)]
    pub distinct: DistinctStorage,
    /// With `distinct: counted`: the subtotals of `levels` stored too, `rollup` (coarse
    /// to fine, as `cube query --totals`) or `cube` (every combination).
    #[serde(default)]
    pub totals: Option<String>,
    /// With `distinct: counted`: more grains to store, each a list of levels.
    #[serde(default)]
    pub grouping_sets: Vec<Vec<String>>,
}

/// Values kept so that a distinct count can be recomputed: a measure column (fact
/// column or `dimension.level`), only on rows meeting `filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    /// Fact column or `dimension.level`.
    pub column: String,
    /// Boolean fact column the rows must meet.
    pub filter: Option<String>,
}

impl KeySpec {
    fn describe(&self) -> String {
        match &self.filter {
            Some(w) => format!("{} where {w}", self.column),
            None => self.column.clone(),
        }
    }
}

/// A stored level column.
#[derive(Debug, Clone)]
pub struct StoredLevel {
    /// The level.
    pub level: LevelRef,
    /// Column of member names.
    pub column: String,
    /// Column of member codes, where the level has codes.
    pub code: Option<String>,
}

/// A stored key column.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// What it holds.
    pub key: KeySpec,
    /// Column name.
    pub column: String,
}

/// A pre-aggregation resolved against the model: its table and columns.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Name in the model.
    pub name: String,
    /// Warehouse table.
    pub table: String,
    /// Fact aggregated.
    pub fact: String,
    /// Level columns: the declared levels and their ancestors, coarse to fine.
    pub levels: Vec<StoredLevel>,
    /// Additive base measures stored as sums: (measure, column).
    pub sums: Vec<(String, String)>,
    /// Values kept for distinct counts.
    pub keys: Vec<StoredKey>,
    /// Distinct base measures counted per cell (`distinct: counted`): (measure, column).
    pub counts: Vec<(String, String)>,
    /// Distinct measures (base) it was declared for.
    pub distinct: Vec<String>,
    /// Index into `levels` of the partition level.
    pub partition: Option<usize>,
    /// With `distinct: counted`: the grains stored, each the sorted indices into `levels`
    /// of its levels and the levels above them. Each row holds one cell of one grain,
    /// numbered in [`GRAIN_COLUMN`]; the levels outside its grain hold `All`.
    pub grains: Option<Vec<Vec<usize>>>,
}

/// Combinations of `n` levels a `totals` setting stores, as indices.
fn totals_sets(n: usize, totals: Option<&str>) -> Result<Vec<Vec<usize>>> {
    match totals.map(|t| t.trim().to_ascii_lowercase()).as_deref() {
        None | Some("none") => Ok(vec![(0..n).collect()]),
        Some("rollup") => Ok((0..=n).rev().map(|k| (0..k).collect()).collect()),
        Some("cube") => Ok((0..(1usize << n))
            .rev()
            .map(|mask| (0..n).filter(|i| mask & (1 << (n - 1 - i)) != 0).collect())
            .collect()),
        Some(other) => Err(Error::Usage(format!(
            "totals `{other}` is not none, rollup or cube"
        ))),
    }
}

fn level_ref(text: &str) -> Option<LevelRef> {
    let (d, l) = text.trim().split_once('.')?;
    Some(LevelRef {
        dimension: d.trim().to_string(),
        level: l.trim().to_string(),
    })
}

fn column_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Keys a distinct base measure needs.
fn keys_of(model: &CubeModel, base: &str) -> Vec<KeySpec> {
    let Some(m) = model.measure(base) else {
        return vec![];
    };
    let key = |c: &Option<String>| {
        c.as_ref().map(|c| KeySpec {
            column: c.clone(),
            filter: m.filter.clone(),
        })
    };
    match m.agg {
        Some(Agg::CountDistinct) => key(&m.column).into_iter().collect(),
        Some(Agg::CountDistinctHaving) => key(&m.column).into_iter().chain(key(&m.per)).collect(),
        _ => vec![],
    }
}

/// Levels above `r` in every hierarchy that contains it, coarse to fine.
fn ancestors(model: &CubeModel, r: &LevelRef) -> Vec<LevelRef> {
    let mut out: Vec<LevelRef> = Vec::new();
    let Some(d) = model.dimension(&r.dimension) else {
        return out;
    };
    for (_, h) in &d.hierarchies {
        if let Some(i) = h.iter().position(|l| l == &r.level) {
            for l in &h[..i] {
                let a = LevelRef {
                    dimension: r.dimension.clone(),
                    level: l.clone(),
                };
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

impl Layout {
    /// Resolves pre-aggregation `name` of `model` (checked when the model was loaded).
    pub fn new(model: &CubeModel, name: &str) -> Result<Layout> {
        let def = model
            .pre_aggregation(name)
            .ok_or_else(|| Error::Usage(format!("unknown pre-aggregation `{name}`")))?;
        let mut levels: Vec<StoredLevel> = Vec::new();
        let mut push = |r: LevelRef| {
            if levels.iter().any(|s| s.level == r) {
                return;
            }
            let column = column_safe(&format!("{}__{}", r.dimension, r.level));
            let code = model
                .level(&r)
                .and_then(|l| l.code.as_ref())
                .map(|_| format!("{column}__code"));
            levels.push(StoredLevel {
                level: r,
                column,
                code,
            });
        };
        let counted = def.distinct == DistinctStorage::Counted;
        let parse = |text: &String| {
            level_ref(text).ok_or_else(|| Error::Usage(format!("`{text}` is not dimension.level")))
        };
        let declared: Vec<LevelRef> = def.levels.iter().map(parse).collect::<Result<_>>()?;
        // The grains a counted pre-aggregation stores, as declared levels.
        let mut grain_levels: Vec<Vec<LevelRef>> = Vec::new();
        if counted {
            if !declared.is_empty() || def.grouping_sets.is_empty() {
                for set in totals_sets(declared.len(), def.totals.as_deref())? {
                    grain_levels.push(set.iter().map(|i| declared[*i].clone()).collect());
                }
            }
            for set in &def.grouping_sets {
                grain_levels.push(set.iter().map(parse).collect::<Result<_>>()?);
            }
        }
        for r in declared.iter().chain(grain_levels.iter().flatten()) {
            for a in ancestors(model, r) {
                push(a);
            }
            push(r.clone());
        }
        if counted {
            // Counted cells are read by member name only.
            for l in &mut levels {
                l.code = None;
            }
        }
        let grains = if counted {
            let mut grains: Vec<Vec<usize>> = Vec::new();
            for set in &grain_levels {
                let mut idx = Vec::new();
                for r in set {
                    for a in ancestors(model, r).iter().chain(std::iter::once(r)) {
                        if let Some(i) = levels.iter().position(|s| &s.level == a) {
                            if !idx.contains(&i) {
                                idx.push(i);
                            }
                        }
                    }
                }
                idx.sort();
                if !grains.contains(&idx) {
                    grains.push(idx);
                }
            }
            Some(grains)
        } else {
            None
        };
        let mut sums = Vec::new();
        let mut keys: Vec<StoredKey> = Vec::new();
        let mut counts = Vec::new();
        let mut distinct = Vec::new();
        for m in &def.measures {
            for b in model.base_measures(m) {
                let kind = model.measure(&b).map(|x| x.kind());
                if kind == Some(MeasureKind::Additive) {
                    if !sums.iter().any(|(n, _)| n == &b) {
                        sums.push((b.clone(), format!("m_{}", column_safe(&b))));
                    }
                    continue;
                }
                if !distinct.contains(&b) {
                    distinct.push(b.clone());
                }
                if counted {
                    if !counts.iter().any(|(n, _)| n == &b) {
                        counts.push((b.clone(), format!("n_{}", column_safe(&b))));
                    }
                    continue;
                }
                for k in keys_of(model, &b) {
                    if keys.iter().any(|s| s.key == k) {
                        continue;
                    }
                    let mut column = format!("k_{}", column_safe(&k.column.replace('.', "__")));
                    if let Some(w) = &k.filter {
                        column.push_str(&format!("__where__{}", column_safe(w)));
                    }
                    keys.push(StoredKey { key: k, column });
                }
            }
        }
        let partition = match &def.partition_by {
            Some(p) => {
                let r = level_ref(p)
                    .ok_or_else(|| Error::Usage(format!("`{p}` is not dimension.level")))?;
                levels.iter().position(|s| s.level == r)
            }
            None => None,
        };
        let layout = Layout {
            name: name.to_string(),
            table: format!("{TABLE_PREFIX}{name}"),
            fact: def.fact.clone(),
            levels,
            sums,
            keys,
            counts,
            distinct,
            partition,
            grains,
        };
        let mut seen: Vec<&str> = Vec::new();
        for c in layout.columns() {
            if seen.contains(&c) {
                return Err(Error::Usage(format!(
                    "pre-aggregation `{name}`: two stored values would share the column `{c}`"
                )));
            }
            seen.push(c);
        }
        Ok(layout)
    }

    /// Every column name, in table order.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if self.grains.is_some() {
            out.push(GRAIN_COLUMN);
        }
        for l in &self.levels {
            out.push(l.column.as_str());
            if let Some(c) = &l.code {
                out.push(c.as_str());
            }
        }
        out.extend(self.keys.iter().map(|k| k.column.as_str()));
        out.extend(self.counts.iter().map(|(_, c)| c.as_str()));
        out.extend(self.sums.iter().map(|(_, c)| c.as_str()));
        out
    }

    /// The stored levels as text.
    pub fn level_names(&self) -> String {
        self.levels
            .iter()
            .map(|l| l.level.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The partition level, if any.
    pub fn partition_level(&self) -> Option<&StoredLevel> {
        self.partition.and_then(|i| self.levels.get(i))
    }

    fn stored_level(&self, r: &LevelRef) -> Option<&StoredLevel> {
        self.levels.iter().find(|l| &l.level == r)
    }

    fn stored_key(&self, k: &KeySpec) -> Option<&StoredKey> {
        self.keys.iter().find(|s| &s.key == k)
    }

    /// The SQL computing the table from the base facts, one row per stored grain,
    /// sorted. With `members`, only the rows of those partition members. `fact_table`
    /// reads another table in place of the fact's (with the same columns).
    pub fn build_sql(
        &self,
        model: &CubeModel,
        members: Option<&[String]>,
        fact_table: Option<&str>,
    ) -> Result<String> {
        let mut model = model.clone();
        if let Some(t) = fact_table {
            if let Some((_, f)) = model.facts.iter_mut().find(|(n, _)| n == &self.fact) {
                f.table = t.to_string();
            }
        }
        if let Some(grains) = &self.grains {
            return self.counted_sql(&model, grains);
        }
        let why = format!("pre-aggregation `{}`", self.name);
        let mut star = Star::new(&model, &self.fact)?;
        let mut select = Vec::new();
        let mut group = Vec::new();
        let mut outer = Vec::new();
        let mut partition_label = None;
        for (i, l) in self.levels.iter().enumerate() {
            let label = star.level_label(&l.level, &why)?;
            if Some(i) == self.partition {
                partition_label = Some(label.clone());
            }
            select.push(format!("{label} AS l{i}"));
            group.push(format!("l{i}"));
            outer.push(format!("l{i} AS {}", ident(&l.column)));
            if let Some(c) = &l.code {
                let code = star
                    .code_label(&l.level)?
                    .ok_or_else(|| Error::Usage(format!("level `{}` has no code", l.level)))?;
                select.push(format!("{code} AS c{i}"));
                group.push(format!("c{i}"));
                outer.push(format!("c{i} AS {}", ident(c)));
            }
        }
        for (i, k) in self.keys.iter().enumerate() {
            let v = star.column_value(&k.key.column, &why)?;
            let v = match &k.key.filter {
                Some(w) => format!("CASE WHEN f.{} THEN {v} END", ident(w)),
                None => v,
            };
            select.push(format!("{v} AS k{i}"));
            group.push(format!("k{i}"));
            outer.push(format!("k{i} AS {}", ident(&k.column)));
        }
        for (i, (m, c)) in self.sums.iter().enumerate() {
            let (v, agg) = star.measure_value(m)?;
            if agg != RowAgg::Sum {
                return Err(Error::Usage(format!(
                    "pre-aggregation `{}`: measure `{m}` does not add up",
                    self.name
                )));
            }
            select.push(format!("{v} AS v{i}"));
            outer.push(format!("SUM(v{i}) AS {}", ident(c)));
        }
        let mut sql = format!("SELECT {}\n{}", select.join(", "), star.from_clause()?);
        if let (Some(members), Some(label)) = (members, partition_label) {
            let list: Vec<String> = members.iter().map(|m| literal(m)).collect();
            let list = if list.is_empty() {
                "NULL".to_string()
            } else {
                list.join(", ")
            };
            sql.push_str(&format!("\nWHERE {label} IN ({list})"));
        }
        let mut out = format!("SELECT {}\nFROM (\n{sql}\n) AS base", outer.join(", "));
        if !group.is_empty() {
            out.push_str(&format!(
                "\nGROUP BY {}\nORDER BY {}",
                group.join(", "),
                group.join(", ")
            ));
        }
        Ok(out)
    }

    /// The SQL of a `distinct: counted` table: for each grain, the cube's own fact
    /// queries at that grain over the base facts (one per kind of measure, joined on the
    /// cell), one row per cell, its grain numbered; all grains stacked.
    fn counted_sql(&self, model: &CubeModel, grains: &[Vec<usize>]) -> Result<String> {
        let measures: Vec<String> = self
            .counts
            .iter()
            .chain(&self.sums)
            .map(|(m, _)| m.clone())
            .collect();
        let no_sizes = std::collections::HashMap::new();
        let mut parts = Vec::new();
        for (g, grain) in grains.iter().enumerate() {
            // The grain's levels are the labels of one grouping set (a0, a1, … in order).
            let labels: Vec<LevelRef> = grain
                .iter()
                .filter_map(|i| self.levels.get(*i))
                .map(|l| l.level.clone())
                .collect();
            let sets = vec![(0..labels.len()).collect::<Vec<usize>>()];
            let spec = FactSpec {
                fact: &self.fact,
                measures: &measures,
                labels: &labels,
                sets: &sets,
                filters: &[],
                approximate: false,
                dimension_rows: &no_sizes,
            };
            let queries = crate::plan::fact_queries(model, &spec)?;
            // One grouping set per grain: no query needs a stage, so each is one statement.
            if queries.iter().any(|q| q.stage.is_some()) {
                return Err(Error::Usage(format!(
                    "pre-aggregation `{}`: a grain needs a staged query",
                    self.name
                )));
            }
            // Label `p` of the cell as any of the first `n` queries has it.
            let label = |n: usize, p: usize| -> String {
                if n == 1 {
                    format!("q0.a{p}")
                } else {
                    let all: Vec<String> = (0..n).map(|j| format!("q{j}.a{p}")).collect();
                    format!("COALESCE({})", all.join(", "))
                }
            };
            let mut from = String::new();
            for (j, q) in queries.iter().enumerate() {
                if j == 0 {
                    from = format!("FROM (\n{}\n) AS q0", q.sql);
                    continue;
                }
                let on: Vec<String> = (0..labels.len())
                    .map(|p| format!("{} = q{j}.a{p}", label(j, p)))
                    .collect();
                let on = if on.is_empty() {
                    "TRUE".to_string()
                } else {
                    on.join(" AND ")
                };
                from.push_str(&format!("\nFULL JOIN (\n{}\n) AS q{j} ON {on}", q.sql));
            }
            let mut cols = vec![format!("CAST({g} AS INT) AS {}", ident(GRAIN_COLUMN))];
            for (i, l) in self.levels.iter().enumerate() {
                let v = match grain.iter().position(|x| *x == i) {
                    Some(p) => label(queries.len(), p),
                    None => literal(ALL),
                };
                cols.push(format!("CAST({v} AS VARCHAR) AS {}", ident(&l.column)));
            }
            for (m, c) in self.counts.iter().chain(&self.sums) {
                let (j, k) = queries
                    .iter()
                    .enumerate()
                    .find_map(|(j, q)| q.measures.iter().position(|x| x == m).map(|k| (j, k)))
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "pre-aggregation `{}` cannot compute `{m}`",
                            self.name
                        ))
                    })?;
                cols.push(format!("q{j}.m{k} AS {}", ident(c)));
            }
            parts.push(format!("SELECT {}\n{from}", cols.join(", ")));
        }
        let mut order = vec![ident(GRAIN_COLUMN)];
        order.extend(self.levels.iter().map(|l| ident(&l.column)));
        Ok(format!(
            "SELECT * FROM (\n{}\n) AS cells\nORDER BY {}",
            parts.join("\nUNION ALL\n"),
            order.join(", ")
        ))
    }

    /// The stored grain (position in `grains`) whose cells answer query grouping set
    /// `set` (indices into `labels`) under `filters`, or why none does. The grain must
    /// hold exactly the set's levels and those above them; a filter must pick whole cells:
    /// on a level of the grain, or one member of a level that the grain adds.
    fn grain_for(
        &self,
        model: &CubeModel,
        labels: &[LevelRef],
        set: &[usize],
        filters: &[Filter],
    ) -> std::result::Result<usize, String> {
        let Some(grains) = &self.grains else {
            return Err("it keeps no grains".into());
        };
        let mut want: Vec<usize> = Vec::new();
        let add = |r: &LevelRef, want: &mut Vec<usize>| -> std::result::Result<(), String> {
            for a in ancestors(model, r).iter().chain(std::iter::once(r)) {
                let i = self
                    .levels
                    .iter()
                    .position(|l| &l.level == a)
                    .ok_or_else(|| {
                        format!(
                            "level `{a}` is not stored (it stores {})",
                            self.level_names()
                        )
                    })?;
                if !want.contains(&i) {
                    want.push(i);
                }
            }
            Ok(())
        };
        for i in set {
            if let Some(r) = labels.get(*i) {
                add(r, &mut want)?;
            }
        }
        for f in filters {
            if model.level(&f.level).is_some_and(|l| l.code.is_some())
                && matches!(f.op, FilterOp::In(_) | FilterOp::NotIn(_))
            {
                return Err(format!(
                    "the filter on `{}` may name members by code, which counted cells do not store",
                    f.level
                ));
            }
            let inside = self
                .levels
                .iter()
                .position(|l| l.level == f.level)
                .is_some_and(|i| want.contains(&i));
            if inside {
                continue;
            }
            match &f.op {
                FilterOp::In(v) if v.len() == 1 => add(&f.level, &mut want)?,
                _ => {
                    return Err(format!(
                        "the filter on `{}` spans several of its cells, and distinct counts are not added up",
                        f.level
                    ))
                }
            }
        }
        want.sort();
        grains.iter().position(|g| g == &want).ok_or_else(|| {
            format!(
                "it counts no grain of exactly {} (it counts {})",
                self.grain_name(&want),
                grains
                    .iter()
                    .map(|g| self.grain_name(g))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
    }

    /// A grain as text: its levels, or `the grand total`.
    fn grain_name(&self, grain: &[usize]) -> String {
        if grain.is_empty() {
            return "the grand total".into();
        }
        grain
            .iter()
            .filter_map(|i| self.levels.get(*i))
            .map(|l| l.level.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// SQL listing the partition members of fact rows, or None when not partitioned.
    /// `tables` reads other tables in place of the model's (fact, dimension or lookup
    /// tables, with the same columns); with `affected`, only rows whose key of
    /// dimension D is listed in column `k` of table T, for some (D, T).
    pub fn members_sql(
        &self,
        model: &CubeModel,
        tables: &BTreeMap<String, String>,
        affected: &[(String, String)],
    ) -> Result<Option<String>> {
        let Some(p) = self.partition_level() else {
            return Ok(None);
        };
        let mut model = model.clone();
        let swap = |t: &mut String| {
            if let Some(n) = tables.get(t.as_str()) {
                *t = n.clone();
            }
        };
        for (_, f) in model.facts.iter_mut() {
            swap(&mut f.table);
        }
        for (_, d) in model.dimensions.iter_mut() {
            swap(&mut d.table);
            for (_, l) in d.lookups.iter_mut() {
                swap(&mut l.table);
            }
        }
        let mut star = Star::new(&model, &self.fact)?;
        let label = star.level_label(&p.level, &format!("pre-aggregation `{}`", self.name))?;
        let mut conds = Vec::new();
        for (dim, keys) in affected {
            let v = star.link_value(dim)?;
            conds.push(format!("{v} IN (SELECT k FROM {})", ident(keys)));
        }
        let mut sql = format!("SELECT DISTINCT {label} AS member\n{}", star.from_clause()?);
        if !conds.is_empty() {
            sql.push_str(&format!("\nWHERE {}", conds.join("\n  OR ")));
        }
        Ok(Some(sql))
    }

    /// Dimensions whose tables it reads: those of its levels and kept values, and those
    /// they are reached through.
    pub fn dimensions(&self, model: &CubeModel) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |d: &str| {
            if !out.iter().any(|o| o == d) {
                out.push(d.to_string());
            }
        };
        let fact = model.fact(&self.fact);
        let refs = self
            .levels
            .iter()
            .map(|l| l.level.clone())
            .chain(self.keys.iter().filter_map(|k| level_ref(&k.key.column)));
        for r in refs {
            if let Some(Link::Through { through, .. }) = fact
                .and_then(|f| f.dimensions.iter().find(|(d, _)| d == &r.dimension))
                .map(|(_, l)| l)
            {
                add(through);
            }
            add(&r.dimension);
        }
        out
    }

    /// The columns of dimension `dim`'s table its values depend on: the key, the
    /// columns of the levels it stores or counts, the columns lookups are joined on, and
    /// the columns through which other dimensions are reached.
    pub fn dimension_columns(&self, model: &CubeModel, dim: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let Some(d) = model.dimension(dim) else {
            return out;
        };
        let mut add = |c: &str| {
            if !out.iter().any(|o| o == c) {
                out.push(c.to_string());
            }
        };
        add(&d.key);
        let refs: Vec<LevelRef> = self
            .levels
            .iter()
            .map(|l| l.level.clone())
            .chain(self.keys.iter().filter_map(|k| level_ref(&k.key.column)))
            .filter(|r| r.dimension == dim)
            .collect();
        for r in &refs {
            let Some(level) = model.level(r) else {
                continue;
            };
            match &level.lookup {
                Some(lk) => {
                    if let Some((_, l)) = d.lookups.iter().find(|(n, _)| n == lk) {
                        add(&l.on);
                    }
                }
                None => {
                    add(&level.column);
                    if let Some(c) = &level.code {
                        add(c);
                    }
                    if let Some(e) = &level.expr {
                        for c in crate::model::expr_columns(e) {
                            add(&c);
                        }
                    }
                }
            }
        }
        if let Some(fact) = model.fact(&self.fact) {
            let dims = self.dimensions(model);
            for (e, link) in &fact.dimensions {
                if let Link::Through { through, column } = link {
                    if through == dim && dims.contains(e) {
                        add(column);
                    }
                }
            }
        }
        out
    }

    /// A fingerprint of the definition: changes whenever the table would hold other
    /// values (measures, levels, their SQL, partitioning).
    pub fn fingerprint(&self, model: &CubeModel) -> Result<String> {
        let sql = self.build_sql(model, None, None)?;
        let part = self
            .partition_level()
            .map(|p| p.level.to_string())
            .unwrap_or_default();
        let text = format!("{LAYOUT_VERSION}\n{part}\n{sql}");
        Ok(format!(
            "{:016x}",
            crmcube_model::keys::key_of(&text) as u64
        ))
    }

    /// Every table it is computed from: the fact's, the dimensions' (also those a
    /// dimension is reached through) and lookups.
    pub fn source_tables(&self, model: &CubeModel) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |t: String| {
            if !out.contains(&t) {
                out.push(t);
            }
        };
        let Some(fact) = model.fact(&self.fact) else {
            return out;
        };
        add(fact.table.clone());
        let mut levels: Vec<LevelRef> = self.levels.iter().map(|l| l.level.clone()).collect();
        for k in self.distinct.iter().flat_map(|m| keys_of(model, m)) {
            if let Some(r) = level_ref(&k.column) {
                levels.push(r);
            }
        }
        for r in &levels {
            if let Some((_, Link::Through { through, .. })) =
                fact.dimensions.iter().find(|(d, _)| d == &r.dimension)
            {
                if let Some(d) = model.dimension(through) {
                    add(d.table.clone());
                }
            }
            for t in model.level_tables(r) {
                add(t);
            }
        }
        out.sort();
        out
    }

    /// Why a `distinct: counted` layout cannot answer `ask` for `measures`, or None:
    /// every grouping set, under every list of filters, must be one of its grains.
    fn cannot_count(&self, model: &CubeModel, measures: &[String], ask: &Ask) -> Option<String> {
        if ask.approximate
            && measures
                .iter()
                .any(|m| self.counts.iter().any(|(n, _)| n == m))
        {
            return Some(
                "its distinct counts are exact, and the query asks for approximate ones".into(),
            );
        }
        for filters in ask.filters {
            for set in ask.sets {
                if let Err(why) = self.grain_for(model, ask.labels, set, filters) {
                    return Some(why);
                }
            }
        }
        None
    }

    /// Why the layout cannot compute base measure `m` of its fact, or None.
    fn cannot_compute(&self, model: &CubeModel, m: &str) -> Option<String> {
        let def = model.measure(m)?;
        if def.kind() == MeasureKind::Additive {
            if self.sums.iter().any(|(n, _)| n == m) {
                return None;
            }
            let stored: Vec<&str> = self.sums.iter().map(|(n, _)| n.as_str()).collect();
            return Some(format!(
                "measure `{m}` is not stored (it stores {})",
                if stored.is_empty() {
                    "no sums".to_string()
                } else {
                    stored.join(", ")
                }
            ));
        }
        if self.grains.is_some() {
            if self.counts.iter().any(|(n, _)| n == m) {
                return None;
            }
            return Some(format!("distinct count `{m}` is not counted in it"));
        }
        let missing: Vec<String> = keys_of(model, m)
            .into_iter()
            .filter(|k| self.stored_key(k).is_none())
            .map(|k| k.describe())
            .collect();
        if missing.is_empty() {
            return None;
        }
        Some(format!(
            "`{m}` is a distinct count and it keeps no {} values to count it from (distinct counts are never added up)",
            missing.join(" / ")
        ))
    }
}

/// Checks the `pre_aggregations:` section; errors name the file and the key.
pub(crate) fn check(model: &CubeModel) -> Result<()> {
    let err = |key: String, message: String| Error::Schema {
        file: model.origin.clone(),
        key,
        message,
    };
    for (name, def) in &model.pre_aggregations {
        let base = format!("pre_aggregations.{name}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err(
                base,
                "a pre-aggregation's name may hold letters, digits and _ only (it names the table _preagg_<name>)".into(),
            ));
        }
        let Some(fact) = model.fact(&def.fact) else {
            return Err(err(
                format!("{base}.fact"),
                format!(
                    "fact \"{}\" not defined (facts: {})",
                    def.fact,
                    names(&model.facts)
                ),
            ));
        };
        if def.measures.is_empty() {
            return Err(err(
                format!("{base}.measures"),
                "list at least one measure".into(),
            ));
        }
        for m in &def.measures {
            if model.measure(m).is_none() {
                return Err(err(
                    format!("{base}.measures"),
                    format!(
                        "measure \"{m}\" not defined (measures: {})",
                        names(&model.measures)
                    ),
                ));
            }
            for b in model.base_measures(m) {
                let f = model.measure(&b).and_then(|x| x.fact.clone());
                if f.as_deref() != Some(def.fact.as_str()) {
                    return Err(err(
                        format!("{base}.measures"),
                        format!(
                            "measure \"{m}\" needs \"{b}\" of fact {}; a pre-aggregation aggregates one fact ({})",
                            f.unwrap_or_default(),
                            def.fact
                        ),
                    ));
                }
            }
        }
        let reaches = |r: &LevelRef| fact.dimensions.iter().any(|(d, _)| d == &r.dimension);
        let parse = |key: String, text: &str| -> Result<LevelRef> {
            let r = level_ref(text).ok_or_else(|| {
                err(
                    key.clone(),
                    format!(
                        "\"{text}\" is not dimension.level (levels: {})",
                        model.level_names()
                    ),
                )
            })?;
            if model.level(&r).is_none() {
                return Err(err(
                    key,
                    format!(
                        "level \"{text}\" not defined (levels: {})",
                        model.level_names()
                    ),
                ));
            }
            if !reaches(&r) {
                return Err(err(
                    key,
                    format!(
                        "fact \"{}\" does not reach dimension \"{}\" (it reaches {})",
                        def.fact,
                        r.dimension,
                        names(&fact.dimensions)
                    ),
                ));
            }
            Ok(r)
        };
        let mut stored = Vec::new();
        for l in &def.levels {
            let r = parse(format!("{base}.levels"), l)?;
            stored.extend(ancestors(model, &r));
            stored.push(r);
        }
        for (i, set) in def.grouping_sets.iter().enumerate() {
            for l in set {
                parse(format!("{base}.grouping_sets[{i}]"), l)?;
            }
        }
        if def.distinct == DistinctStorage::Counted {
            if def.partition_by.is_some() {
                return Err(err(
                    format!("{base}.partition_by"),
                    "a `distinct: counted` pre-aggregation is rebuilt whole (its counts span partitions); drop partition_by".into(),
                ));
            }
            if let Some(t) = &def.totals {
                totals_sets(def.levels.len(), Some(t))
                    .map_err(|e| err(format!("{base}.totals"), e.to_string()))?;
            }
        } else if def.totals.is_some() || !def.grouping_sets.is_empty() {
            return Err(err(
                format!(
                    "{base}.{}",
                    if def.totals.is_some() { "totals" } else { "grouping_sets" }
                ),
                "totals and grouping_sets are for `distinct: counted` pre-aggregations (one that keeps its distinct values answers every coarser grain already)".into(),
            ));
        }
        if let Some(p) = &def.partition_by {
            let key = format!("{base}.partition_by");
            let r = parse(key.clone(), p)?;
            if model.level(&r).and_then(|l| l.period).is_none() {
                return Err(err(
                    key,
                    format!("\"{p}\" is not a calendar level (one with `period`, e.g. time.month)"),
                ));
            }
            if !stored.contains(&r) {
                return Err(err(
                    key,
                    format!(
                        "\"{p}\" is not among the levels it stores ({})",
                        stored
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Layout::new(model, name).map_err(|e| err(base.clone(), e.to_string()))?;
    }
    Ok(())
}

/// Whether a pre-aggregation table may be used with the warehouse version being read.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Built from exactly the table versions being read.
    Fresh {
        /// Rows in its table.
        rows: u64,
    },
    /// `crmcube cube materialize` has not built it.
    NotBuilt,
    /// Built from other table versions or another definition.
    Stale(String),
    /// A table it needs is not in the warehouse.
    Unavailable(String),
}

impl Status {
    /// As shown by `describe` and `--explain`.
    pub fn describe(&self) -> String {
        match self {
            Status::Fresh { rows } => format!("fresh ({} rows)", thousands(*rows)),
            Status::NotBuilt => "not built; run `crmcube cube materialize`".into(),
            Status::Stale(why) => format!("stale: {why}; run `crmcube cube materialize`"),
            Status::Unavailable(why) => format!("unavailable: {why}"),
        }
    }
}

/// One recorded build (a row of `_preagg_state`).
#[derive(Debug, Clone, PartialEq)]
pub struct BuildRecord {
    /// Pre-aggregation name.
    pub name: String,
    /// Fingerprint of the definition built.
    pub fingerprint: String,
    /// Delta version of every source table.
    pub sources: BTreeMap<String, u64>,
    /// Fact aggregated.
    pub fact: String,
    /// Warehouse version the build read.
    pub built_from_version: i64,
    /// When.
    pub built_at: String,
    /// `full` or `incremental`.
    pub build: String,
}

/// The source versions as recorded: a JSON object of table name to Delta version.
pub fn sources_text(sources: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = sources
        .iter()
        .map(|(t, v)| format!("\"{}\":{v}", t.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// Reads [`sources_text`] back (JSON is YAML).
pub fn parse_sources(text: &str) -> Result<BTreeMap<String, u64>> {
    serde_yaml::from_str(text).map_err(|e| Error::format(format!("{STATE_TABLE}.sources"), e))
}

/// The builds recorded in `_preagg_state` of the session's warehouse, if it has one.
pub async fn read_state(ctx: &datafusion::prelude::SessionContext) -> Result<Vec<BuildRecord>> {
    let exists = ctx
        .table_exist(STATE_TABLE)
        .map_err(|e| Error::Query(e.to_string()))?;
    if !exists {
        return Ok(vec![]);
    }
    let r = crate::engine::run_sql(
        ctx,
        &format!(
            "SELECT name, fact, fingerprint, sources, CAST(built_from_version AS BIGINT) AS v, built_at, build FROM {}",
            ident(STATE_TABLE)
        ),
    )
    .await?;
    let mut out = Vec::new();
    for b in &r.batches {
        let col = |i: usize| -> Result<Vec<String>> {
            let a = arrow::compute::cast(b.column(i), &DataType::Utf8)
                .map_err(|e| Error::format(STATE_TABLE, e))?;
            let s = a
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| Error::format(STATE_TABLE, "not text"))?;
            Ok((0..s.len())
                .map(|i| {
                    if s.is_valid(i) {
                        s.value(i).to_string()
                    } else {
                        String::new()
                    }
                })
                .collect())
        };
        let (name, fact, fp, sources, v, at, build) = (
            col(0)?,
            col(1)?,
            col(2)?,
            col(3)?,
            col(4)?,
            col(5)?,
            col(6)?,
        );
        for i in 0..b.num_rows() {
            let sources = parse_sources(&sources[i])?;
            out.push(BuildRecord {
                name: name[i].clone(),
                fingerprint: fp[i].clone(),
                sources,
                fact: fact[i].clone(),
                built_from_version: v[i].parse().unwrap_or(-1),
                built_at: at[i].clone(),
                build: build[i].clone(),
            });
        }
    }
    Ok(out)
}

/// The status of `layout` given the tables of the version being read (Delta version and
/// rows by name) and the recorded builds.
pub fn status_of(
    model: &CubeModel,
    layout: &Layout,
    tables: &BTreeMap<String, crmcube_store::TableVersion>,
    state: &[BuildRecord],
) -> Result<Status> {
    let sources = layout.source_tables(model);
    if let Some(t) = sources.iter().find(|t| !tables.contains_key(*t)) {
        return Ok(Status::Unavailable(format!(
            "table {t} is not in this warehouse"
        )));
    }
    let (Some(table), Some(rec)) = (
        tables.get(&layout.table),
        state.iter().find(|r| r.name == layout.name),
    ) else {
        return Ok(Status::NotBuilt);
    };
    if rec.fingerprint != layout.fingerprint(model)? {
        return Ok(Status::Stale(
            "its definition in the model changed since it was built".into(),
        ));
    }
    for t in &sources {
        let now = tables.get(t).map(|v| v.version);
        match (rec.sources.get(t), now) {
            (Some(was), Some(now)) if *was == now => {}
            (Some(was), Some(now)) => {
                return Ok(Status::Stale(format!(
                    "{t} is at version {now}, it was built from version {was}"
                )))
            }
            _ => {
                return Ok(Status::Stale(format!(
                    "it was built without {t}; its definition changed"
                )))
            }
        }
    }
    Ok(Status::Fresh { rows: table.rows })
}

/// The pre-aggregations of a model and whether each may be used with one warehouse
/// version.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Each declared pre-aggregation with its status.
    pub entries: Vec<(Layout, Status)>,
    /// Why none is consulted (e.g. `--no-preagg`), if so.
    pub off: Option<String>,
}

/// What a query asks of one fact, for choosing where to read it from.
pub(crate) struct Ask<'q> {
    /// Label levels (output columns a0, a1, …).
    pub labels: &'q [LevelRef],
    /// Grouping sets as indices into `labels`.
    pub sets: &'q [Vec<usize>],
    /// Every list of filters the fact is queried with (a time comparison also queries it
    /// without its calendar filters).
    pub filters: &'q [&'q [Filter]],
    /// Distinct counts by sketch.
    pub approximate: bool,
}

/// How one fact of a query is answered.
pub(crate) struct Choice {
    /// The pre-aggregation used, or None for the base facts.
    pub used: Option<Layout>,
    /// Lines for `--explain`.
    pub lines: Vec<String>,
    /// Remarks for stderr (a pre-aggregation that would answer is stale).
    pub notes: Vec<String>,
}

fn thousands(n: u64) -> String {
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

impl Catalog {
    /// The statuses of every pre-aggregation of `model` in the warehouse `wh` reads.
    pub async fn open(model: &CubeModel, wh: &Warehouse) -> Result<Catalog> {
        let mut entries = Vec::new();
        let layouts: Vec<Layout> = model
            .pre_aggregations
            .iter()
            .map(|(n, _)| Layout::new(model, n))
            .collect::<Result<_>>()?;
        match wh.table_versions() {
            None => {
                for l in layouts {
                    entries.push((
                        l,
                        Status::Unavailable(
                            "not a versioned warehouse, so freshness cannot be checked".into(),
                        ),
                    ));
                }
            }
            Some(tables) => {
                let state = if layouts.is_empty() {
                    vec![]
                } else {
                    read_state(wh.context()).await?
                };
                for l in layouts {
                    let s = status_of(model, &l, tables, &state)?;
                    entries.push((l, s));
                }
            }
        }
        Ok(Catalog { entries, off: None })
    }

    /// A catalog that consults nothing, for `reason`.
    pub fn off(model: &CubeModel, reason: &str) -> Result<Catalog> {
        let entries = model
            .pre_aggregations
            .iter()
            .map(|(n, _)| Layout::new(model, n).map(|l| (l, Status::NotBuilt)))
            .collect::<Result<_>>()?;
        Ok(Catalog {
            entries,
            off: Some(reason.to_string()),
        })
    }

    /// Picks the source of fact `fact` for base measures `measures`, given what the
    /// query groups and filters by: the fresh pre-aggregation with the fewest rows that
    /// answers exactly, else the base facts. Explains every choice.
    pub(crate) fn choose(
        &self,
        model: &CubeModel,
        fact: &str,
        measures: &[String],
        ask: &Ask,
    ) -> Choice {
        let mut levels: Vec<LevelRef> = ask.labels.to_vec();
        for f in ask.filters.iter().flat_map(|f| f.iter()) {
            if !levels.contains(&f.level) {
                levels.push(f.level.clone());
            }
        }
        let table = model
            .fact(fact)
            .map(|f| f.table.clone())
            .unwrap_or_default();
        let head = format!("{fact} ({})", measures.join(", "));
        let mine: Vec<&(Layout, Status)> = self
            .entries
            .iter()
            .filter(|(l, _)| l.fact == fact)
            .collect();
        if let Some(why) = &self.off {
            return Choice {
                used: None,
                lines: vec![format!("{head}: base facts {table} ({why})")],
                notes: vec![],
            };
        }
        if mine.is_empty() {
            return Choice {
                used: None,
                lines: vec![format!(
                    "{head}: base facts {table} (no pre-aggregation of {fact} is declared)"
                )],
                notes: vec![],
            };
        }
        let mut usable: Vec<(&Layout, u64)> = Vec::new();
        let mut reasons: Vec<(String, String)> = Vec::new();
        let mut stale: Vec<(String, String)> = Vec::new();
        for (l, status) in &mine {
            let mut why = measures.iter().find_map(|m| l.cannot_compute(model, m));
            if why.is_none() {
                why = match &l.grains {
                    None => levels
                        .iter()
                        .find(|r| l.stored_level(r).is_none())
                        .map(|r| {
                            format!("level `{r}` is not stored (it stores {})", l.level_names())
                        }),
                    Some(_) => l.cannot_count(model, measures, ask),
                };
            }
            match (why, status) {
                (Some(w), _) => reasons.push((l.name.clone(), w)),
                (None, Status::Fresh { rows }) => usable.push((l, *rows)),
                (None, s) => {
                    if let Status::Stale(w) = s {
                        stale.push((l.name.clone(), w.clone()));
                    }
                    reasons.push((l.name.clone(), s.describe()));
                }
            }
        }
        usable.sort_by_key(|(_, rows)| *rows);
        let mut lines = Vec::new();
        let used = usable.first().map(|(l, rows)| {
            lines.push(format!(
                "{head}: pre-aggregation {} ({}, {} rows)",
                l.name,
                l.table,
                thousands(*rows)
            ));
            (*l).clone()
        });
        if let Some(u) = &used {
            for (l, rows) in usable.iter().skip(1) {
                lines.push(format!(
                    "  {} not used: {} rows, more than {}",
                    l.name,
                    thousands(*rows),
                    u.name
                ));
            }
        } else {
            lines.push(format!(
                "{head}: base facts {table} (no fresh pre-aggregation can answer)"
            ));
        }
        // A stale pre-aggregation that would answer is worth a word even without
        // --explain: the query is slower than it would be after materializing.
        let mut notes = Vec::new();
        if let (None, Some((_, why))) = (&used, stale.first()) {
            let names: Vec<&str> = stale.iter().map(|(n, _)| n.as_str()).collect();
            notes.push(format!(
                "{fact} is read from the base facts: pre-aggregation {} would answer but {} stale ({why}); run `crmcube cube materialize`",
                names.join(", "),
                if names.len() == 1 { "is" } else { "are" }
            ));
        }
        for (n, w) in reasons {
            lines.push(format!("  {n} not used: {w}"));
        }
        Choice { used, lines, notes }
    }

    /// Explain lines for the pre-aggregations of facts the query does not read.
    pub(crate) fn others(&self, facts: &[&str]) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(l, _)| !facts.contains(&l.fact.as_str()))
            .map(|(l, _)| {
                format!(
                    "  {} not used: it aggregates {}, which this query does not read",
                    l.name, l.fact
                )
            })
            .collect()
    }
}

impl Cube {
    /// Lets the planner answer from the pre-aggregations of the warehouse `wh` reads
    /// (those that are fresh there).
    pub async fn use_pre_aggregations(&mut self, wh: &Warehouse) -> Result<()> {
        self.preaggs = Some(Catalog::open(&self.model, wh).await?);
        Ok(())
    }

    /// Answers from the base facts only; `--explain` gives `reason`.
    pub fn skip_pre_aggregations(&mut self, reason: &str) -> Result<()> {
        self.preaggs = Some(Catalog::off(&self.model, reason)?);
        Ok(())
    }

    /// Sets the pre-aggregations the planner may use, with their status (as
    /// [`Catalog::open`] finds it for a warehouse).
    pub fn set_pre_aggregations(&mut self, catalog: Catalog) {
        self.preaggs = Some(catalog);
    }

    /// `describe` rows of the pre-aggregations: name, kind, definition, facts, status.
    pub(crate) fn describe_pre_aggregations(&self) -> Vec<[String; 5]> {
        let mut out = Vec::new();
        for (name, def) in &self.model.pre_aggregations {
            let layout = Layout::new(&self.model, name);
            let kind = match (&def.partition_by, &layout) {
                (Some(p), _) => format!("by {p}"),
                (None, Ok(l)) if l.grains.is_some() => "distinct counted".into(),
                _ => String::new(),
            };
            // The levels it stores: the declared ones and those above them; for counted
            // ones, each grain.
            let levels = match &layout {
                Ok(l) => match &l.grains {
                    Some(g) => g
                        .iter()
                        .map(|g| format!("({})", l.grain_name(g)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    None => l.level_names(),
                },
                Err(_) => def.levels.join(", "),
            };
            let mut definition = format!("{} by {levels}", def.measures.join(", "));
            if !def.description.is_empty() {
                definition.push_str(&format!(" -- {}", def.description));
            }
            let table = self
                .model
                .fact(&def.fact)
                .map(|f| f.table.clone())
                .unwrap_or_default();
            let facts = format!("{} ({table}) into {TABLE_PREFIX}{name}", def.fact);
            let status = match (&self.preaggs, self.is_checked()) {
                (Some(c), _) if c.off.is_none() => c
                    .entries
                    .iter()
                    .find(|(l, _)| &l.name == name)
                    .map(|(_, s)| s.describe())
                    .unwrap_or_default(),
                (_, true) => "not checked".into(),
                (_, false) => "not checked (no --warehouse)".into(),
            };
            out.push([name.clone(), kind, definition, facts, status]);
        }
        out
    }

    /// The pre-aggregations and their status, if consulted.
    pub fn pre_aggregations(&self) -> Option<&Catalog> {
        self.preaggs.as_ref()
    }
}

/// Rows of a pre-aggregation table, read as the rows of a fact query.
struct PreAggRows<'l> {
    model: &'l CubeModel,
    layout: &'l Layout,
}

const ALIAS: &str = "pa";

impl PreAggRows<'_> {
    fn col(&self, c: &str) -> String {
        format!("{ALIAS}.{}", ident(c))
    }

    fn level(&self, r: &LevelRef) -> Result<&StoredLevel> {
        self.layout.stored_level(r).ok_or_else(|| {
            Error::Usage(format!(
                "pre-aggregation `{}` does not store level `{r}`",
                self.layout.name
            ))
        })
    }

    fn key(&self, k: &KeySpec, m: &str) -> Result<String> {
        self.layout
            .stored_key(k)
            .map(|s| self.col(&s.column))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "pre-aggregation `{}` cannot count `{m}`",
                    self.layout.name
                ))
            })
    }
}

impl RowSource for PreAggRows<'_> {
    fn label(&mut self, r: &LevelRef, _why: &str) -> Result<String> {
        Ok(self.col(&self.level(r)?.column))
    }

    fn condition(&mut self, f: &Filter) -> Result<String> {
        let l = self.level(&f.level)?;
        let code = l.code.as_ref().map(|c| self.col(c));
        Ok(member_condition(
            &self.col(&l.column),
            code.as_deref(),
            &f.op,
        ))
    }

    fn measure_value(&mut self, m: &str) -> Result<(String, RowAgg)> {
        if let Some((_, c)) = self.layout.sums.iter().find(|(n, _)| n == m) {
            return Ok((self.col(c), RowAgg::Sum));
        }
        match keys_of(self.model, m).as_slice() {
            [k] => Ok((self.key(k, m)?, RowAgg::CountDistinct)),
            _ => Err(Error::Usage(format!(
                "pre-aggregation `{}` cannot compute `{m}`",
                self.layout.name
            ))),
        }
    }

    fn having_values(&mut self, m: &str) -> Result<(String, String, Vec<String>)> {
        match keys_of(self.model, m).as_slice() {
            [c, p] => Ok((self.key(c, m)?, self.key(p, m)?, vec![])),
            _ => Err(Error::Usage(format!(
                "pre-aggregation `{}` cannot compute `{m}`",
                self.layout.name
            ))),
        }
    }

    fn table_clause(&self) -> Result<String> {
        Ok(format!("FROM {} AS {ALIAS}", ident(&self.layout.table)))
    }
}

/// The aggregate queries of one fact, answered from pre-aggregation `layout`.
pub(crate) fn fact_queries(
    model: &CubeModel,
    layout: &Layout,
    spec: &FactSpec,
) -> Result<Vec<FactQuery>> {
    if layout.grains.is_some() {
        return counted_queries(model, layout, spec).map(|q| vec![q]);
    }
    // No dimension sizes: the rows are already summed, so the plan does not sum them by
    // dimension keys before joining (that path reads base facts only).
    let no_sizes = std::collections::HashMap::new();
    let spec = FactSpec {
        dimension_rows: &no_sizes,
        ..*spec
    };
    crate::plan::queries_from(model, &spec, &mut || {
        Ok(Box::new(PreAggRows { model, layout }))
    })
}

/// The query of one fact from a `distinct: counted` pre-aggregation: for each grouping
/// set, the cells of the grain that answers it, filtered (filters pick whole cells).
fn counted_queries(model: &CubeModel, layout: &Layout, spec: &FactSpec) -> Result<FactQuery> {
    let col = |c: &str| format!("{ALIAS}.{}", ident(c));
    let mut parts = Vec::new();
    for set in spec.sets {
        let g = layout
            .grain_for(model, spec.labels, set, spec.filters)
            .map_err(|w| Error::Usage(format!("pre-aggregation `{}`: {w}", layout.name)))?;
        let mut cols = Vec::new();
        for (i, r) in spec.labels.iter().enumerate() {
            let v = match layout.stored_level(r) {
                Some(l) if set.contains(&i) => col(&l.column),
                _ => literal(ALL),
            };
            cols.push(format!("CAST({v} AS VARCHAR) AS a{i}"));
        }
        for (k, m) in spec.measures.iter().enumerate() {
            let c = layout
                .counts
                .iter()
                .chain(&layout.sums)
                .find(|(n, _)| n == m)
                .map(|(_, c)| c)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "pre-aggregation `{}` cannot compute `{m}`",
                        layout.name
                    ))
                })?;
            cols.push(format!("{} AS m{k}", col(c)));
        }
        let mut conds = vec![format!("{} = {g}", col(GRAIN_COLUMN))];
        for f in spec.filters {
            let l = layout.stored_level(&f.level).ok_or_else(|| {
                Error::Usage(format!(
                    "pre-aggregation `{}` does not store level `{}`",
                    layout.name, f.level
                ))
            })?;
            conds.push(member_condition(&col(&l.column), None, &f.op));
        }
        parts.push(format!(
            "SELECT {}\nFROM {} AS {ALIAS}\nWHERE {}",
            cols.join(", "),
            ident(&layout.table),
            conds.join(" AND ")
        ));
    }
    Ok(FactQuery {
        fact: spec.fact.to_string(),
        measures: spec.measures.to_vec(),
        sql: parts.join("\nUNION ALL\n"),
        stage: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BUILTIN_CUBE_YAML;
    use crmcube_model::WarehouseSchema;

    fn wh() -> WarehouseSchema {
        WarehouseSchema::builtin().unwrap()
    }

    fn with(section: &str) -> String {
        let base = BUILTIN_CUBE_YAML
            .split("\npre_aggregations:")
            .next()
            .unwrap()
            .to_string();
        format!("{base}\npre_aggregations:\n{section}")
    }

    /// The model with `section` as its pre-aggregations, and the layout of `name`.
    fn layout(section: &str, name: &str) -> (CubeModel, Layout) {
        let m = CubeModel::parse(&with(section), "cube.yaml", &wh()).unwrap();
        let l = Layout::new(&m, name).unwrap();
        (m, l)
    }

    fn error(section: &str) -> String {
        CubeModel::parse(&with(section), "cube.yaml", &wh())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn sources_round_trip() {
        let s: BTreeMap<String, u64> = [("fact_sales".to_string(), 3), ("dim_date".into(), 0)]
            .into_iter()
            .collect();
        let text = sources_text(&s);
        assert_eq!(text, r#"{"dim_date":0,"fact_sales":3}"#);
        assert_eq!(parse_sources(&text).unwrap(), s);
    }

    #[test]
    fn builtin_pre_aggregations_resolve() {
        let m = CubeModel::builtin(&wh()).unwrap();
        assert!(!m.pre_aggregations.is_empty());
        for (n, _) in &m.pre_aggregations {
            let l = Layout::new(&m, n).unwrap();
            assert!(l.table.starts_with(TABLE_PREFIX));
            l.fingerprint(&m).unwrap();
        }
    }

    #[test]
    fn levels_bring_their_ancestors_and_codes() {
        let (m, l) = layout(
            "  p:\n    fact: sales\n    measures: [margin_pct, customers, repeat_customers]\n    levels: [time.month, geography.country]\n    partition_by: time.month\n",
            "p",
        );
        assert_eq!(
            l.level_names(),
            "time.year, time.quarter, time.month, geography.region, geography.country"
        );
        assert_eq!(l.partition_level().unwrap().level.to_string(), "time.month");
        assert_eq!(
            l.columns(),
            vec![
                "time__year",
                "time__quarter",
                "time__month",
                "geography__region",
                "geography__country",
                "geography__country__code",
                "k_customer__customer",
                "k_order_id",
                "m_gross_profit",
                "m_revenue",
            ]
        );
        assert_eq!(
            l.source_tables(&m),
            vec!["dim_customer", "dim_date", "dim_region", "fact_sales"]
        );
        // Counting customers needs their keys; orders are kept for repeat_customers.
        assert!(l.cannot_compute(&m, "customers").is_none());
        assert!(l.cannot_compute(&m, "orders").is_none());
        assert!(l.cannot_compute(&m, "cost").unwrap().contains("not stored"));
        let sql = l.build_sql(&m, Some(&["2025-01".into()]), None).unwrap();
        assert!(sql.contains("IN ('2025-01')"), "{sql}");
        assert!(sql.contains("GROUP BY"), "{sql}");
    }

    #[test]
    fn distinct_counts_are_not_derivable_from_sums() {
        let (m, l) = layout(
            "  p:\n    fact: sales\n    measures: [revenue]\n    levels: [geography.country]\n",
            "p",
        );
        let why = l.cannot_compute(&m, "customers").unwrap();
        assert!(why.contains("never added up"), "{why}");
        assert!(why.contains("customer.customer"), "{why}");
    }

    fn filter(level: &str, op: FilterOp) -> Filter {
        Filter {
            level: level_ref(level).unwrap(),
            op,
        }
    }

    #[test]
    fn counted_grains_answer_exactly_their_own_cells() {
        let (m, l) = layout(
            "  c:\n    fact: sales\n    measures: [revenue, orders, repeat_customers]\n    levels: [geography.country, time.quarter]\n    totals: rollup\n    distinct: counted\n    grouping_sets: [[customer.segment, time.year]]\n",
            "c",
        );
        assert_eq!(
            l.level_names(),
            "geography.region, geography.country, time.year, time.quarter, customer.segment"
        );
        // country x quarter, country, the grand total; segment x year. Codes are not kept.
        assert_eq!(
            l.grains,
            Some(vec![vec![0, 1, 2, 3], vec![0, 1], vec![], vec![2, 4]])
        );
        assert_eq!(
            l.columns(),
            vec![
                "grain",
                "geography__region",
                "geography__country",
                "time__year",
                "time__quarter",
                "customer__segment",
                "n_orders",
                "n_repeat_customers",
                "m_revenue",
            ]
        );
        assert!(l.cannot_compute(&m, "orders").is_none());
        assert!(l
            .cannot_compute(&m, "customers")
            .unwrap()
            .contains("not counted"));
        let labels = vec![
            level_ref("geography.country").unwrap(),
            level_ref("time.quarter").unwrap(),
            level_ref("geography.region").unwrap(),
            level_ref("customer.segment").unwrap(),
            level_ref("time.year").unwrap(),
        ];
        let grain = |set: &[usize], filters: &[Filter]| l.grain_for(&m, &labels, set, filters);
        assert_eq!(grain(&[0, 1], &[]), Ok(0));
        // A level above the grain's levels adds nothing: region comes with country.
        assert_eq!(grain(&[2, 0], &[]), Ok(1));
        assert_eq!(grain(&[], &[]), Ok(2));
        assert_eq!(grain(&[3, 4], &[]), Ok(3));
        // Filters on levels of the grain pick whole cells; one member of a level the
        // grain adds does too.
        let y2025 = filter("time.year", FilterOp::In(vec!["2025".into()]));
        assert_eq!(grain(&[0, 1], std::slice::from_ref(&y2025)), Ok(0));
        assert_eq!(grain(&[3], std::slice::from_ref(&y2025)), Ok(3));
        // Several members, a range, a coarser grain, or a code: the counts would have to
        // be added up, or a filter may not match.
        let years = filter(
            "time.year",
            FilterOp::In(vec!["2024".into(), "2025".into()]),
        );
        assert!(grain(&[3], &[years]).unwrap_err().contains("spans several"));
        let from = filter("time.year", FilterOp::Compare(">=".into(), "2024".into()));
        assert!(grain(&[3], &[from]).unwrap_err().contains("spans several"));
        let e = grain(&[2], &[]).unwrap_err();
        assert!(e.contains("no grain of exactly geography.region"), "{e}");
        let de = filter("geography.country", FilterOp::In(vec!["DE".into()]));
        assert!(grain(&[0], &[de]).unwrap_err().contains("by code"));
        // Built by the cube's own queries, one grain at a time.
        let sql = l.build_sql(&m, None, None).unwrap();
        assert_eq!(sql.matches("UNION ALL").count(), 3, "{sql}");
        assert!(sql.contains("FULL JOIN"), "{sql}");
    }

    #[test]
    fn bad_declarations_name_file_and_key() {
        let cases = [
            (
                "  p:\n    fact: sale\n    measures: [revenue]\n    levels: [time.month]\n",
                "cube.yaml: pre_aggregations.p.fact: fact \"sale\" not defined",
            ),
            (
                "  p:\n    fact: sales\n    measures: [revenu]\n    levels: [time.month]\n",
                "cube.yaml: pre_aggregations.p.measures: measure \"revenu\" not defined",
            ),
            (
                "  p:\n    fact: sales\n    measures: [complaint_rate]\n    levels: [time.month]\n",
                "cube.yaml: pre_aggregations.p.measures: measure \"complaint_rate\" needs \"complaints\" of fact tickets",
            ),
            (
                "  p:\n    fact: sales\n    measures: [revenue]\n    levels: [time.mont]\n",
                "cube.yaml: pre_aggregations.p.levels: level \"time.mont\" not defined",
            ),
            (
                "  p:\n    fact: tickets\n    measures: [tickets]\n    levels: [product.category]\n",
                "cube.yaml: pre_aggregations.p.levels: fact \"tickets\" does not reach dimension \"product\"",
            ),
            (
                "  p:\n    fact: sales\n    measures: [revenue]\n    levels: [geography.country]\n    partition_by: time.month\n",
                "cube.yaml: pre_aggregations.p.partition_by: \"time.month\" is not among the levels it stores",
            ),
            (
                "  p:\n    fact: sales\n    measures: [orders]\n    levels: [time.month]\n    totals: rollup\n",
                "cube.yaml: pre_aggregations.p.totals: totals and grouping_sets are for `distinct: counted` pre-aggregations",
            ),
            (
                "  p:\n    fact: sales\n    measures: [orders]\n    levels: [time.month]\n    distinct: counted\n    partition_by: time.month\n",
                "cube.yaml: pre_aggregations.p.partition_by: a `distinct: counted` pre-aggregation is rebuilt whole",
            ),
            (
                "  p:\n    fact: sales\n    measures: [orders]\n    levels: [time.month]\n    distinct: counted\n    totals: sideways\n",
                "cube.yaml: pre_aggregations.p.totals: totals `sideways` is not none, rollup or cube",
            ),
            (
                "  p:\n    fact: sales\n    measures: [orders]\n    distinct: counted\n    grouping_sets: [[time.mont]]\n",
                "cube.yaml: pre_aggregations.p.grouping_sets[0]: level \"time.mont\" not defined",
            ),
            (
                "  p:\n    fact: sales\n    measures: [revenue]\n    levels: [geography.country]\n    partition_by: geography.country\n",
                "cube.yaml: pre_aggregations.p.partition_by: \"geography.country\" is not a calendar level",
            ),
            (
                "  p-q:\n    fact: sales\n    measures: [revenue]\n    levels: [time.month]\n",
                "cube.yaml: pre_aggregations.p-q: a pre-aggregation's name may hold",
            ),
        ];
        for (section, want) in cases {
            let e = error(section);
            assert!(e.starts_with(want), "{e}\nwanted: {want}");
        }
    }
}
