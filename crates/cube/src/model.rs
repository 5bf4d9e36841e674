//! The cube model (`schemas/cube.yaml`): dimensions, levels, hierarchies, facts and
//! measures, checked against the warehouse schema when loaded.

use crmcube_model::{Error, Result, WarehouseSchema};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

/// The cube model shipped with crmcube (`schemas/cube.yaml`).
pub const BUILTIN_CUBE_YAML: &str = include_str!("../../../schemas/cube.yaml");
/// Name under which the built-in model appears in messages.
pub const BUILTIN_CUBE_ORIGIN: &str = "<built-in schemas/cube.yaml>";

/// The whole cube model, in file order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CubeModel {
    /// Tables the cube reads that the warehouse schema does not define.
    #[serde(default, deserialize_with = "ordered_map")]
    pub tables: Vec<(String, ExtraTable)>,
    /// Dimensions by name.
    #[serde(deserialize_with = "ordered_map")]
    pub dimensions: Vec<(String, Dimension)>,
    /// Facts by name.
    #[serde(deserialize_with = "ordered_map")]
    pub facts: Vec<(String, Fact)>,
    /// Measures by name.
    #[serde(deserialize_with = "ordered_map")]
    pub measures: Vec<(String, Measure)>,
    /// Pre-aggregations by name (see `crate::preagg`).
    #[serde(default, deserialize_with = "ordered_map")]
    pub pre_aggregations: Vec<(String, crate::preagg::PreAggregation)>,
    /// Saved queries by name (see `crate::saved`): views in `serve` and `export`.
    #[serde(default, deserialize_with = "ordered_map")]
    pub queries: Vec<(String, crate::saved::SavedQuery)>,
    /// Where the model was read from (file path or built-in marker).
    #[serde(skip)]
    pub origin: String,
}

/// A table outside the warehouse schema (e.g. written by `crmcube mine`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraTable {
    /// The table may be missing from a warehouse.
    #[serde(default)]
    pub optional: bool,
    /// What it holds.
    #[serde(default)]
    pub description: String,
    /// Its columns.
    pub columns: Vec<String>,
}

/// A dimension: one table, joined to facts on its key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    /// Dimension table.
    pub table: String,
    /// Key column facts refer to.
    pub key: String,
    /// Tables joined to the dimension table to provide more levels.
    #[serde(default, deserialize_with = "ordered_map")]
    pub lookups: Vec<(String, Lookup)>,
    /// Levels (attributes) by name.
    #[serde(deserialize_with = "ordered_map")]
    pub levels: Vec<(String, Level)>,
    /// Hierarchies by name, each a list of levels from coarse to fine.
    #[serde(default, deserialize_with = "ordered_map")]
    pub hierarchies: Vec<(String, Vec<String>)>,
}

/// A table joined to a dimension table on a shared column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// Lookup table.
    pub table: String,
    /// Column present in both tables.
    pub on: String,
    /// Snapshot column: only rows with its greatest value are used.
    #[serde(default)]
    pub latest: Option<String>,
}

/// Calendar kinds of time levels (for period arithmetic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// "2025"
    Year,
    /// "2025-Q1"
    Quarter,
    /// "2025-01"
    Month,
    /// "2025-01-31"
    Day,
    /// "2025-W01"
    IsoWeek,
}

/// A level (attribute) of a dimension.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    /// Column holding the member names.
    pub column: String,
    /// Lookup that holds the column (default: the dimension table).
    #[serde(default)]
    pub lookup: Option<String>,
    /// SQL computing the member names from `$column` references.
    #[serde(default)]
    pub expr: Option<String>,
    /// Second column by which members may be named in filters.
    #[serde(default)]
    pub code: Option<String>,
    /// Calendar kind of the members.
    #[serde(default)]
    pub period: Option<Period>,
}

/// A fact table and its links to dimensions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fact {
    /// Fact table.
    pub table: String,
    /// How each dimension is reached.
    #[serde(deserialize_with = "ordered_map")]
    pub dimensions: Vec<(String, Link)>,
}

/// How a fact reaches a dimension.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Link {
    /// A fact column holding the dimension key.
    Column(String),
    /// A column of another (directly linked) dimension's table holding the key.
    Through {
        /// The dimension reached first.
        through: String,
        /// Its column holding this dimension's key.
        column: String,
    },
}

/// Aggregations of base measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Agg {
    /// Sum of a column (additive).
    Sum,
    /// Row count (additive).
    Count,
    /// Exact distinct count (not additive).
    CountDistinct,
    /// Distinct values of `column` having at least `min` distinct `per` values.
    CountDistinctHaving,
}

/// A measure: an aggregate over one fact, or a ratio of two measures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    /// Fact it aggregates.
    #[serde(default)]
    pub fact: Option<String>,
    /// Aggregation.
    #[serde(default)]
    pub agg: Option<Agg>,
    /// Fact column or `dimension.level` it aggregates.
    #[serde(default)]
    pub column: Option<String>,
    /// Boolean fact column selecting the rows counted.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// For count_distinct_having: the column counted per value.
    #[serde(default)]
    pub per: Option<String>,
    /// For count_distinct_having: the least count.
    #[serde(default)]
    pub min: Option<i64>,
    /// `[numerator, denominator]` of a ratio.
    #[serde(default)]
    pub ratio: Option<Vec<String>>,
    /// Factor applied to a ratio (100 for percent).
    #[serde(default)]
    pub scale: Option<f64>,
    /// What it means.
    #[serde(default)]
    pub description: String,
}

/// What kind of measure, as `describe` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasureKind {
    /// Sums and counts: children add up to the parent.
    Additive,
    /// Distinct counts: recomputed at every level.
    Distinct,
    /// Ratio of two measures, computed after aggregation.
    Ratio,
}

impl MeasureKind {
    /// Name shown to users.
    pub fn name(self) -> &'static str {
        match self {
            MeasureKind::Additive => "additive",
            MeasureKind::Distinct => "distinct",
            MeasureKind::Ratio => "ratio",
        }
    }
}

impl Measure {
    /// The measure's kind.
    pub fn kind(&self) -> MeasureKind {
        match (self.ratio.is_some(), self.agg) {
            (true, _) => MeasureKind::Ratio,
            (_, Some(Agg::Sum | Agg::Count)) | (_, None) => MeasureKind::Additive,
            _ => MeasureKind::Distinct,
        }
    }
}

/// A reference to a level: `dimension.level`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LevelRef {
    /// Dimension name.
    pub dimension: String,
    /// Level name.
    pub level: String,
}

impl fmt::Display for LevelRef {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}.{}", self.dimension, self.level)
    }
}

fn ordered_map<'de, D, T>(deserializer: D) -> Result<Vec<(String, T)>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct OrderedVisitor<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for OrderedVisitor<T> {
        type Value = Vec<(String, T)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping of names to definitions")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, T>()? {
                if out.iter().any(|(name, _)| name == &k) {
                    return Err(serde::de::Error::custom(format!("`{k}` is defined twice")));
                }
                out.push((k, v));
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(OrderedVisitor(PhantomData))
}

fn find<'a, T>(items: &'a [(String, T)], name: &str) -> Option<&'a T> {
    items.iter().find(|(n, _)| n == name).map(|(_, t)| t)
}

/// Names of a list of named items, for "expected one of" messages.
pub fn names<T>(items: &[(String, T)]) -> String {
    items
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl CubeModel {
    /// The model compiled into crmcube, checked against `warehouse`.
    pub fn builtin(warehouse: &WarehouseSchema) -> Result<Self> {
        Self::parse(BUILTIN_CUBE_YAML, BUILTIN_CUBE_ORIGIN, warehouse)
    }

    /// Reads and checks a model file.
    pub fn from_file(path: &Path, warehouse: &WarehouseSchema) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &path.display().to_string(), warehouse)
    }

    /// Parses and checks a model; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, warehouse: &WarehouseSchema) -> Result<Self> {
        let mut model: CubeModel = serde_yaml::from_str(text).map_err(|e| Error::Schema {
            file: origin.to_string(),
            key: e
                .location()
                .map(|l| format!("line {}", l.line()))
                .unwrap_or_else(|| "document".into()),
            message: e.to_string(),
        })?;
        model.origin = origin.to_string();
        model.check(warehouse)?;
        Ok(model)
    }

    /// The dimension called `name`.
    pub fn dimension(&self, name: &str) -> Option<&Dimension> {
        find(&self.dimensions, name)
    }

    /// The fact called `name`.
    pub fn fact(&self, name: &str) -> Option<&Fact> {
        find(&self.facts, name)
    }

    /// The measure called `name`.
    pub fn measure(&self, name: &str) -> Option<&Measure> {
        find(&self.measures, name)
    }

    /// The pre-aggregation called `name`.
    pub fn pre_aggregation(&self, name: &str) -> Option<&crate::preagg::PreAggregation> {
        find(&self.pre_aggregations, name)
    }

    /// The saved query called `name`.
    pub fn saved_query(&self, name: &str) -> Option<&crate::saved::SavedQuery> {
        find(&self.queries, name)
    }

    /// The level `dimension.level`.
    pub fn level(&self, r: &LevelRef) -> Option<&Level> {
        self.dimension(&r.dimension)
            .and_then(|d| find(&d.levels, &r.level))
    }

    /// Every level as `dimension.level`, for messages.
    pub fn level_names(&self) -> String {
        self.dimensions
            .iter()
            .flat_map(|(d, dim)| dim.levels.iter().map(move |(l, _)| format!("{d}.{l}")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Tables an element needs: the dimension table, lookups, facts.
    pub fn level_tables(&self, r: &LevelRef) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(d) = self.dimension(&r.dimension) {
            out.push(d.table.clone());
            if let Some(l) = find(&d.levels, &r.level) {
                if let Some(lk) = l.lookup.as_deref().and_then(|n| find(&d.lookups, n)) {
                    out.push(lk.table.clone());
                }
            }
        }
        out
    }

    /// Base (non-ratio) measures a measure is computed from, itself included.
    pub fn base_measures(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_bases(name, &mut out, 0);
        out
    }

    fn collect_bases(&self, name: &str, out: &mut Vec<String>, depth: usize) {
        let Some(m) = self.measure(name) else { return };
        if depth > 16 {
            return;
        }
        match &m.ratio {
            Some(parts) => {
                for p in parts {
                    self.collect_bases(p, out, depth + 1);
                }
            }
            None => {
                if !out.iter().any(|o| o == name) {
                    out.push(name.to_string());
                }
            }
        }
    }

    /// Parses `dimension.level` against the model; the error lists valid levels.
    pub fn parse_level(&self, text: &str) -> Result<LevelRef> {
        let text = text.trim();
        let r = match text.split_once('.') {
            Some((d, l)) => LevelRef {
                dimension: d.trim().to_string(),
                level: l.trim().to_string(),
            },
            None => {
                return Err(Error::Usage(format!(
                    "`{text}` is not a level: write dimension.level, one of {}",
                    self.level_names()
                )))
            }
        };
        if self.level(&r).is_none() {
            return Err(Error::Usage(format!(
                "unknown level `{text}`; levels are {}",
                self.level_names()
            )));
        }
        Ok(r)
    }

    fn columns_of(&self, warehouse: &WarehouseSchema, table: &str) -> Option<Vec<String>> {
        if let Some(t) = warehouse.table(table) {
            return Some(t.columns.iter().map(|c| c.name.clone()).collect());
        }
        find(&self.tables, table).map(|t| t.columns.clone())
    }

    fn check(&self, warehouse: &WarehouseSchema) -> Result<()> {
        let err = |key: String, message: String| Error::Schema {
            file: self.origin.clone(),
            key,
            message,
        };
        let table_cols = |key: String, table: &str| -> Result<Vec<String>> {
            self.columns_of(warehouse, table).ok_or_else(|| {
                err(
                    key,
                    format!(
                        "table \"{table}\" is neither in the warehouse schema nor under `tables:`"
                    ),
                )
            })
        };
        let has_col = |key: String, table: &str, cols: &[String], col: &str| -> Result<()> {
            if cols.iter().any(|c| c == col) {
                Ok(())
            } else {
                Err(err(
                    key,
                    format!(
                        "column \"{col}\" not in {table} (columns: {})",
                        cols.join(", ")
                    ),
                ))
            }
        };
        for (d, dim) in &self.dimensions {
            let base = format!("dimensions.{d}");
            let cols = table_cols(format!("{base}.table"), &dim.table)?;
            has_col(format!("{base}.key"), &dim.table, &cols, &dim.key)?;
            for (n, lk) in &dim.lookups {
                let k = format!("{base}.lookups.{n}");
                let lcols = table_cols(format!("{k}.table"), &lk.table)?;
                has_col(format!("{k}.on"), &dim.table, &cols, &lk.on)?;
                has_col(format!("{k}.on"), &lk.table, &lcols, &lk.on)?;
                if let Some(latest) = &lk.latest {
                    has_col(format!("{k}.latest"), &lk.table, &lcols, latest)?;
                }
            }
            if dim.levels.is_empty() {
                return Err(err(
                    format!("{base}.levels"),
                    "a dimension needs at least one level".into(),
                ));
            }
            for (l, level) in &dim.levels {
                let k = format!("{base}.levels.{l}");
                let (table, lcols) = match &level.lookup {
                    None => (dim.table.clone(), cols.clone()),
                    Some(lk) => {
                        let Some(lookup) = find(&dim.lookups, lk) else {
                            return Err(err(
                                format!("{k}.lookup"),
                                format!(
                                    "lookup \"{lk}\" not defined under {base}.lookups (defined: {})",
                                    names(&dim.lookups)
                                ),
                            ));
                        };
                        (
                            lookup.table.clone(),
                            table_cols(format!("{k}.lookup"), &lookup.table)?,
                        )
                    }
                };
                has_col(format!("{k}.column"), &table, &lcols, &level.column)?;
                if let Some(code) = &level.code {
                    has_col(format!("{k}.code"), &table, &lcols, code)?;
                }
                if let Some(expr) = &level.expr {
                    for c in expr_columns(expr) {
                        has_col(format!("{k}.expr"), &table, &lcols, &c)?;
                    }
                }
            }
            for (h, levels) in &dim.hierarchies {
                let k = format!("{base}.hierarchies.{h}");
                if levels.is_empty() {
                    return Err(err(k, "a hierarchy needs at least one level".into()));
                }
                for l in levels {
                    if find(&dim.levels, l).is_none() {
                        return Err(err(
                            k.clone(),
                            format!("level \"{l}\" not defined (levels: {})", names(&dim.levels)),
                        ));
                    }
                }
            }
        }
        for (f, fact) in &self.facts {
            let base = format!("facts.{f}");
            let cols = table_cols(format!("{base}.table"), &fact.table)?;
            for (d, link) in &fact.dimensions {
                let k = format!("{base}.dimensions.{d}");
                let Some(dim) = self.dimension(d) else {
                    return Err(err(
                        k,
                        format!(
                            "dimension \"{d}\" not defined (dimensions: {})",
                            names(&self.dimensions)
                        ),
                    ));
                };
                match link {
                    Link::Column(c) => has_col(k, &fact.table, &cols, c)?,
                    Link::Through { through, column } => {
                        let direct = find(&fact.dimensions, through);
                        let Some(Link::Column(_)) = direct else {
                            return Err(err(
                                format!("{k}.through"),
                                format!("\"{through}\" must be a dimension {f} links to by a column of {}", fact.table),
                            ));
                        };
                        let Some(via) = self.dimension(through) else {
                            return Err(err(
                                format!("{k}.through"),
                                format!("dimension \"{through}\" not defined"),
                            ));
                        };
                        let vcols = table_cols(format!("{k}.through"), &via.table)?;
                        has_col(format!("{k}.column"), &via.table, &vcols, column)?;
                    }
                }
                let _ = dim;
            }
        }
        for (m, measure) in &self.measures {
            let base = format!("measures.{m}");
            if let Some(parts) = &measure.ratio {
                if parts.len() != 2 {
                    return Err(err(
                        format!("{base}.ratio"),
                        "a ratio is [numerator, denominator]".into(),
                    ));
                }
                for p in parts {
                    if self.measure(p).is_none() {
                        return Err(err(
                            format!("{base}.ratio"),
                            format!(
                                "measure \"{p}\" not defined (measures: {})",
                                names(&self.measures)
                            ),
                        ));
                    }
                }
                if self.ratio_depth(m, 0) > 8 {
                    return Err(err(
                        format!("{base}.ratio"),
                        "ratios refer to each other in a cycle".into(),
                    ));
                }
                continue;
            }
            let Some(fname) = &measure.fact else {
                return Err(err(
                    base,
                    "a measure needs `fact` and `agg`, or `ratio`".into(),
                ));
            };
            let Some(fact) = self.fact(fname) else {
                return Err(err(
                    format!("{base}.fact"),
                    format!(
                        "fact \"{fname}\" not defined (facts: {})",
                        names(&self.facts)
                    ),
                ));
            };
            let Some(agg) = measure.agg else {
                return Err(err(
                    format!("{base}.agg"),
                    "missing; one of sum, count, count_distinct, count_distinct_having".into(),
                ));
            };
            let cols = table_cols(format!("{base}.fact"), &fact.table)?;
            let check_ref = |key: String, c: &str| -> Result<()> {
                match c.split_once('.') {
                    Some((d, l)) => {
                        if find(&fact.dimensions, d).is_none() {
                            return Err(err(
                                key,
                                format!("fact \"{fname}\" has no dimension \"{d}\""),
                            ));
                        }
                        let r = LevelRef {
                            dimension: d.into(),
                            level: l.into(),
                        };
                        if self.level(&r).is_none() {
                            return Err(err(
                                key,
                                format!(
                                    "level \"{c}\" not defined (levels: {})",
                                    self.level_names()
                                ),
                            ));
                        }
                        Ok(())
                    }
                    None => has_col(key, &fact.table, &cols, c),
                }
            };
            match (agg, &measure.column) {
                (Agg::Count, _) => {}
                (_, None) => {
                    return Err(err(
                        format!("{base}.column"),
                        "this aggregation needs a column".into(),
                    ))
                }
                (_, Some(c)) => check_ref(format!("{base}.column"), c)?,
            }
            if let Some(c) = &measure.column {
                if agg == Agg::Count {
                    check_ref(format!("{base}.column"), c)?;
                }
            }
            if let Some(w) = &measure.filter {
                has_col(format!("{base}.where"), &fact.table, &cols, w)?;
            }
            if agg == Agg::CountDistinctHaving {
                match &measure.per {
                    Some(p) => check_ref(format!("{base}.per"), p)?,
                    None => {
                        return Err(err(
                            format!("{base}.per"),
                            "count_distinct_having needs `per`".into(),
                        ))
                    }
                }
            }
        }
        crate::preagg::check(self)?;
        crate::saved::check(self, warehouse)
    }

    fn ratio_depth(&self, name: &str, depth: usize) -> usize {
        if depth > 8 {
            return depth;
        }
        match self.measure(name).and_then(|m| m.ratio.as_ref()) {
            Some(parts) => parts
                .iter()
                .map(|p| self.ratio_depth(p, depth + 1))
                .max()
                .unwrap_or(depth),
            None => depth,
        }
    }
}

/// The `$column` references of a level expression.
pub fn expr_columns(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        let tail = &rest[i + 1..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wh() -> WarehouseSchema {
        WarehouseSchema::builtin().unwrap()
    }

    #[test]
    fn builtin_model_loads() {
        let m = CubeModel::builtin(&wh()).unwrap();
        assert!(m.dimension("time").is_some());
        assert_eq!(
            m.base_measures("margin_pct"),
            vec!["gross_profit".to_string(), "revenue".to_string()]
        );
        assert_eq!(
            m.measure("customers").unwrap().kind(),
            MeasureKind::Distinct
        );
    }

    #[test]
    fn bad_column_names_file_and_key() {
        let text = BUILTIN_CUBE_YAML.replace(
            "country: { column: country, code: country_code }",
            "country: { column: countri }",
        );
        let e = CubeModel::parse(&text, "schemas/cube.yaml", &wh())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e.lines().next().unwrap(),
            "schemas/cube.yaml: dimensions.geography.levels.country.column: column \"countri\" not in dim_region (columns: region_key, region_id, city, country, country_code, region)"
        );
    }

    #[test]
    fn bad_references_are_named() {
        let cases = [
            (
                "catalog: [category, subcategory, product]",
                "catalog: [category, subcat]",
                "dimensions.product.hierarchies.catalog",
            ),
            (
                "margin_pct: { ratio: [gross_profit, revenue]",
                "margin_pct: { ratio: [gross_profit, revenu]",
                "measures.margin_pct.ratio",
            ),
            (
                "revenue: { fact: sales, agg: sum, column: revenue",
                "revenue: { fact: sales, agg: sum, column: revenu",
                "measures.revenue.column",
            ),
            (
                "table: fact_ticket",
                "table: fact_tickets",
                "facts.tickets.table",
            ),
        ];
        for (from, to, key) in cases {
            let text = BUILTIN_CUBE_YAML.replace(from, to);
            assert_ne!(text, BUILTIN_CUBE_YAML, "{from}");
            let e = CubeModel::parse(&text, "cube.yaml", &wh())
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("cube.yaml: {key}: ")), "{e}");
        }
    }

    #[test]
    fn expr_columns_are_found() {
        assert_eq!(
            expr_columns("concat($iso_year, '-W', $iso_week)"),
            vec!["iso_year", "iso_week"]
        );
    }
}
