//! Saved cube queries: named questions declared in the model under `queries:`, run with
//! `crmcube cube query --saved NAME` and offered as views (a table named after the query)
//! by `crmcube serve` and `crmcube export`.
//!
//! ```yaml
//! queries:
//!   revenue_by_segment_region:
//!     description: Revenue and buyers by customer segment and region, with subtotals.
//!     measures: [revenue, customers]
//!     rows: [customer.segment, geography.region]
//!     dice: ["time.year >= 2024"]
//!     totals: rollup
//! ```
//!
//! The keys are the flags of `cube query`: `measures`, `rows`, `columns`, `slice`, `dice`,
//! `drill`, `rollup`, `order`, `limit`, `totals` (rollup | cube), `compare`
//! (previous | yoy | mom), `to_date` (year | quarter | month), `rolling`,
//! `share_of_parent`, `rank_within_parent`, `approximate`.
//!
//! As a view, a column named `dimension.level` in the cube's output is called
//! `dimension_level` (the naming of the wide `cube_<fact>` views), so SQL clients need no
//! quoting; pivoted columns (`<member> | <measure>`) keep their names.

use crate::model::CubeModel;
use crate::period::Step;
use crate::query::{CubeQuery, ToDate, Totals};
use crmcube_model::{Error, Result, WarehouseSchema};
use serde::Deserialize;

/// Subtotals of a saved query.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SavedTotals {
    /// ROLLUP along the axes.
    Rollup,
    /// Every combination of axis levels.
    Cube,
}

/// Comparison of a saved query.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SavedCompare {
    /// The period just before.
    Previous,
    /// The same period a year before.
    Yoy,
    /// The same period a month before.
    Mom,
}

/// Period-to-date running totals of a saved query.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SavedToDate {
    /// Year to date.
    Year,
    /// Quarter to date.
    Quarter,
    /// Month to date.
    Month,
}

/// A saved query as declared in the model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedQuery {
    /// What it answers.
    #[serde(default)]
    pub description: String,
    /// Measures to show.
    pub measures: Vec<String>,
    /// Levels on the rows (`dimension.level`).
    #[serde(default)]
    pub rows: Vec<String>,
    /// Levels on the columns (pivot).
    #[serde(default)]
    pub columns: Vec<String>,
    /// Slices, `LEVEL=MEMBER`.
    #[serde(default)]
    pub slice: Vec<String>,
    /// Dices, e.g. `time.year >= 2024`.
    #[serde(default)]
    pub dice: Vec<String>,
    /// Drill-downs, `DIMENSION` or `DIMENSION=MEMBER`.
    #[serde(default)]
    pub drill: Vec<String>,
    /// Roll-ups, `DIMENSION`.
    #[serde(default)]
    pub rollup: Vec<String>,
    /// Sort keys, `COLUMN[:asc|desc]`.
    #[serde(default)]
    pub order: Vec<String>,
    /// Most rows.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Subtotals.
    #[serde(default)]
    pub totals: Option<SavedTotals>,
    /// Time comparison.
    #[serde(default)]
    pub compare: Option<SavedCompare>,
    /// Period-to-date running totals.
    #[serde(default)]
    pub to_date: Option<SavedToDate>,
    /// Sum over the last N periods.
    #[serde(default)]
    pub rolling: Option<usize>,
    /// Each value in % of its parent member.
    #[serde(default)]
    pub share_of_parent: bool,
    /// Rank among the parent's children.
    #[serde(default)]
    pub rank_within_parent: bool,
    /// Distinct counts by a sketch.
    #[serde(default)]
    pub approximate: bool,
}

impl SavedQuery {
    /// The cube query it stands for, checked against `model`.
    pub fn to_query(&self, model: &CubeModel) -> Result<CubeQuery> {
        if self.measures.is_empty() {
            return Err(Error::Usage("`measures` is empty".into()));
        }
        for m in &self.measures {
            if model.measure(m).is_none() {
                return Err(Error::Usage(format!(
                    "unknown measure `{m}`; measures are {}",
                    model
                        .measures
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let levels =
            |v: &[String]| -> Result<Vec<_>> { v.iter().map(|s| model.parse_level(s)).collect() };
        let mut q = CubeQuery {
            measures: self.measures.clone(),
            rows: levels(&self.rows)?,
            columns: levels(&self.columns)?,
            limit: self.limit,
            approximate: self.approximate,
            share_of_parent: self.share_of_parent,
            rank_within_parent: self.rank_within_parent,
            rolling: self.rolling,
            ..Default::default()
        };
        q.apply_steps(
            model,
            &self.slice,
            &self.dice,
            &self.drill,
            &self.rollup,
            &self.order,
        )?;
        q.totals = match self.totals {
            None => Totals::None,
            Some(SavedTotals::Rollup) => Totals::Rollup,
            Some(SavedTotals::Cube) => Totals::Cube,
        };
        q.compare = self.compare.map(|c| match c {
            SavedCompare::Previous => Step::Previous,
            SavedCompare::Yoy => Step::Year,
            SavedCompare::Mom => Step::Month,
        });
        q.to_date = self.to_date.map(|t| match t {
            SavedToDate::Year => ToDate::Year,
            SavedToDate::Quarter => ToDate::Quarter,
            SavedToDate::Month => ToDate::Month,
        });
        Ok(q)
    }
}

/// The view column for a cube output column: `dimension.level` becomes
/// `dimension_level`; other names are kept.
pub fn view_column(name: &str) -> String {
    match name.split_once('.') {
        Some((d, l)) if !d.contains(' ') && !l.contains(' ') && !l.contains('.') => {
            format!("{d}_{l}")
        }
        _ => name.to_string(),
    }
}

/// Checks every saved query of `model` (names and queries); errors name the query.
pub(crate) fn check(model: &CubeModel, warehouse: &WarehouseSchema) -> Result<()> {
    for (name, s) in &model.queries {
        let err = |message: String| Error::Schema {
            file: model.origin.clone(),
            key: format!("queries.{name}"),
            message,
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid || name.starts_with('_') || name.starts_with("cube_") {
            return Err(err(
                "a saved query's name is a view name: lower-case letters, digits and `_`, \
                 not starting with a digit, `_` or `cube_`"
                    .into(),
            ));
        }
        if model.tables.iter().any(|(t, _)| t == name) || warehouse.table(name).is_some() {
            return Err(err(format!("the name is already the table `{name}`")));
        }
        s.to_query(model).map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_columns_drop_the_dot() {
        assert_eq!(view_column("customer.segment"), "customer_segment");
        assert_eq!(view_column("revenue"), "revenue");
        assert_eq!(view_column("2024 | revenue"), "2024 | revenue");
        assert_eq!(view_column("revenue vs 2024.1"), "revenue vs 2024.1");
    }
}
