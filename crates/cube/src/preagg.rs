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
//! `crmcube cube materialize` builds the tables and records, in the `_preagg_state`
//! table of the same warehouse commit, the Delta version of every table each one was
//! built from and a fingerprint of its definition. A pre-aggregation is used only while
//! all of those match the version being read (see [`Catalog`]).

use crate::engine::Cube;
use crate::model::{names, Agg, CubeModel, LevelRef, Link, MeasureKind};
use crate::plan::{ident, literal, member_condition, FactQuery, FactSpec, RowAgg, RowSource, Star};
use crate::query::Filter;
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

/// A pre-aggregation as declared in the model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreAggregation {
    /// The fact it aggregates.
    pub fact: String,
    /// Measures it can answer (ratios bring their parts).
    pub measures: Vec<String>,
    /// Levels (`dimension.level`) it keeps; the levels above them come along.
    pub levels: Vec<String>,
    /// A calendar level (e.g. `time.month`): one partition per member, rebuilt only
    /// when fact rows of that member change.
    #[serde(default)]
    pub partition_by: Option<String>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
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
    /// Distinct measures (base) it was declared for.
    pub distinct: Vec<String>,
    /// Index into `levels` of the partition level.
    pub partition: Option<usize>,
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
        for text in &def.levels {
            let r = level_ref(text)
                .ok_or_else(|| Error::Usage(format!("`{text}` is not dimension.level")))?;
            for a in ancestors(model, &r) {
                push(a);
            }
            push(r);
        }
        let mut sums = Vec::new();
        let mut keys: Vec<StoredKey> = Vec::new();
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
            distinct,
            partition,
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
        for l in &self.levels {
            out.push(l.column.as_str());
            if let Some(c) = &l.code {
                out.push(c.as_str());
            }
        }
        out.extend(self.keys.iter().map(|k| k.column.as_str()));
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
        for k in &self.keys {
            if let Some(r) = level_ref(&k.key.column) {
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

    /// Picks the source of fact `fact` for base measures `measures`, given every level
    /// the query groups or filters by: the fresh pre-aggregation with the fewest rows
    /// that stores all of them, else the base facts. Explains every choice.
    pub(crate) fn choose(
        &self,
        model: &CubeModel,
        fact: &str,
        measures: &[String],
        levels: &[LevelRef],
    ) -> Choice {
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
                why = levels
                    .iter()
                    .find(|r| l.stored_level(r).is_none())
                    .map(|r| format!("level `{r}` is not stored (it stores {})", l.level_names()));
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
            let kind = def
                .partition_by
                .as_ref()
                .map(|p| format!("by {p}"))
                .unwrap_or_default();
            // The levels it stores: the declared ones and those above them.
            let levels = match &layout {
                Ok(l) => l.level_names(),
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
        let m = CubeModel::parse(
            &with("  p:\n    fact: sales\n    measures: [margin_pct, customers, repeat_customers]\n    levels: [time.month, geography.country]\n    partition_by: time.month\n"),
            "cube.yaml",
            &wh(),
        )
        .unwrap();
        let l = Layout::new(&m, "p").unwrap();
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
        let m = CubeModel::parse(
            &with(
                "  p:\n    fact: sales\n    measures: [revenue]\n    levels: [geography.country]\n",
            ),
            "cube.yaml",
            &wh(),
        )
        .unwrap();
        let l = Layout::new(&m, "p").unwrap();
        let why = l.cannot_compute(&m, "customers").unwrap();
        assert!(why.contains("never added up"), "{why}");
        assert!(why.contains("customer.customer"), "{why}");
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
