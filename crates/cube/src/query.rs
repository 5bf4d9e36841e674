//! The cube query model: what to show (measures on row and column axes), which members
//! (slices and dices), navigation (drill, roll-up) and the calculations after
//! aggregation (totals, comparisons, running totals, shares, ranks).

use crate::model::{CubeModel, LevelRef};
use crate::period::Step;
use crmcube_model::{Error, Result};

/// A member filter on one level.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The level filtered.
    pub level: LevelRef,
    /// Which members pass.
    pub op: FilterOp,
}

/// Filter operators; values are member names (or codes).
#[derive(Debug, Clone, PartialEq)]
pub enum FilterOp {
    /// One of these members.
    In(Vec<String>),
    /// None of these members.
    NotIn(Vec<String>),
    /// Members between two names, both included (names compare as text, which orders
    /// the calendar formats correctly).
    Between(String, String),
    /// Members compared to one name: `<`, `<=`, `>`, `>=`.
    Compare(String, String),
}

/// Which subtotals to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Totals {
    /// None.
    #[default]
    None,
    /// Subtotals along each axis, coarse to fine, and the grand total (ROLLUP).
    Rollup,
    /// Every combination of axis levels (CUBE).
    Cube,
}

/// Period-to-date running totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToDate {
    /// Year to date.
    Year,
    /// Quarter to date.
    Quarter,
    /// Month to date.
    Month,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    /// Output column (a measure, a derived column or a `dimension.level`).
    pub column: String,
    /// Largest first.
    pub descending: bool,
}

/// A cube query.
#[derive(Debug, Clone, Default)]
pub struct CubeQuery {
    /// Measures to show.
    pub measures: Vec<String>,
    /// Levels on the row axis.
    pub rows: Vec<LevelRef>,
    /// Levels on the column axis (pivoted into `<member> | <measure>` columns).
    pub columns: Vec<LevelRef>,
    /// Member filters.
    pub filters: Vec<Filter>,
    /// Subtotals.
    pub totals: Totals,
    /// Explicit grouping sets (each a list of axis levels), instead of `totals`.
    pub grouping_sets: Option<Vec<Vec<LevelRef>>>,
    /// Sort keys (default: by the axis members).
    pub order: Vec<OrderKey>,
    /// Most rows to return.
    pub limit: Option<usize>,
    /// Compare each time member with an earlier one.
    pub compare: Option<Step>,
    /// Running totals from the start of the year / quarter / month.
    pub to_date: Option<ToDate>,
    /// Sum over the last N periods.
    pub rolling: Option<usize>,
    /// Each value in % of its parent member's value.
    pub share_of_parent: bool,
    /// Rank of each member among its parent's children.
    pub rank_within_parent: bool,
    /// Distinct counts by a sketch (approx_distinct) instead of exactly.
    pub approximate: bool,
}

fn split_values(text: &str) -> Vec<String> {
    text.split(',')
        .map(|v| unquote(v.trim()))
        .filter(|v| !v.is_empty())
        .collect()
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['\'', '"'] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

const DICE_SYNTAX: &str = "write `LEVEL in (A,B)`, `LEVEL not in (A,B)`, `LEVEL between A and B`, `LEVEL = A`, `LEVEL != A`, or `LEVEL <|<=|>|>= A`";

impl Filter {
    /// Parses a slice: `dimension.level=member`.
    pub fn parse_slice(model: &CubeModel, text: &str) -> Result<Filter> {
        let Some((l, v)) = text.split_once('=') else {
            return Err(Error::Usage(format!(
                "--slice `{text}`: write LEVEL=MEMBER, e.g. time.year=2025"
            )));
        };
        let level = model.parse_level(l)?;
        Ok(Filter {
            level,
            op: FilterOp::In(vec![unquote(v)]),
        })
    }

    /// Parses a dice expression, e.g. `geography.country in (DE,FR)`.
    pub fn parse_dice(model: &CubeModel, text: &str) -> Result<Filter> {
        let t = text.trim();
        let bad = || Error::Usage(format!("--dice `{text}`: {DICE_SYNTAX}"));
        let lower = t.to_ascii_lowercase();
        for (word, negate) in [(" not in ", true), (" in ", false)] {
            if let Some(i) = lower.find(word) {
                let level = model.parse_level(&t[..i])?;
                let rest = t[i + word.len()..].trim();
                let inner = rest
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(bad)?;
                let values = split_values(inner);
                if values.is_empty() {
                    return Err(bad());
                }
                let op = if negate {
                    FilterOp::NotIn(values)
                } else {
                    FilterOp::In(values)
                };
                return Ok(Filter { level, op });
            }
        }
        if let Some(i) = lower.find(" between ") {
            let level = model.parse_level(&t[..i])?;
            let rest = &t[i + " between ".len()..];
            let j = rest.to_ascii_lowercase().find(" and ").ok_or_else(bad)?;
            let (a, b) = (unquote(&rest[..j]), unquote(&rest[j + 5..]));
            if a.is_empty() || b.is_empty() {
                return Err(bad());
            }
            return Ok(Filter {
                level,
                op: FilterOp::Between(a, b),
            });
        }
        for op in ["!=", "<=", ">=", "=", "<", ">"] {
            if let Some(i) = t.find(op) {
                let level = model.parse_level(&t[..i])?;
                let v = unquote(&t[i + op.len()..]);
                if v.is_empty() {
                    return Err(bad());
                }
                let op = match op {
                    "=" => FilterOp::In(vec![v]),
                    "!=" => FilterOp::NotIn(vec![v]),
                    other => FilterOp::Compare(other.to_string(), v),
                };
                return Ok(Filter { level, op });
            }
        }
        Err(bad())
    }

    /// The filter as text, as a user would write it.
    pub fn describe(&self) -> String {
        match &self.op {
            FilterOp::In(v) if v.len() == 1 => format!("{} = {}", self.level, v[0]),
            FilterOp::In(v) => format!("{} in ({})", self.level, v.join(", ")),
            FilterOp::NotIn(v) => format!("{} not in ({})", self.level, v.join(", ")),
            FilterOp::Between(a, b) => format!("{} between {a} and {b}", self.level),
            FilterOp::Compare(op, v) => format!("{} {op} {v}", self.level),
        }
    }
}

/// Parses `measure:desc` / `level:asc` (default descending for measures).
pub fn parse_order(text: &str) -> Result<OrderKey> {
    let (column, dir) = match text.rsplit_once(':') {
        Some((c, d)) => (c.trim(), Some(d.trim().to_ascii_lowercase())),
        None => (text.trim(), None),
    };
    let descending = match dir.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(Error::Usage(format!(
                "--order `{text}`: direction `{other}` must be asc or desc"
            )))
        }
    };
    Ok(OrderKey {
        column: column.to_string(),
        descending,
    })
}

/// Where a dimension sits on the axes.
fn axis_position(q: &CubeQuery, dim: &str) -> Option<(bool, usize)> {
    if let Some(i) = q.rows.iter().position(|l| l.dimension == dim) {
        return Some((true, i));
    }
    q.columns
        .iter()
        .position(|l| l.dimension == dim)
        .map(|i| (false, i))
}

/// The hierarchy (levels, coarse to fine) of `dim` that contains `level`, or the first.
pub fn hierarchy_of<'a>(
    model: &'a CubeModel,
    dim: &str,
    level: Option<&str>,
) -> Option<&'a [String]> {
    let d = model.dimension(dim)?;
    match level {
        Some(l) => d
            .hierarchies
            .iter()
            .find(|(_, h)| h.iter().any(|x| x == l))
            .map(|(_, h)| h.as_slice()),
        None => d.hierarchies.first().map(|(_, h)| h.as_slice()),
    }
}

/// The parent level of `level` in its hierarchy.
pub fn parent_level(model: &CubeModel, level: &LevelRef) -> Option<LevelRef> {
    let h = hierarchy_of(model, &level.dimension, Some(&level.level))?;
    let i = h.iter().position(|x| x == &level.level)?;
    (i > 0).then(|| LevelRef {
        dimension: level.dimension.clone(),
        level: h[i - 1].clone(),
    })
}

impl CubeQuery {
    /// Applies, in this order, slices (`level=member`), dice conditions, drills,
    /// roll-ups and sort keys (`name[:asc|desc]`) as `cube query` and saved queries
    /// spell them.
    pub fn apply_steps(
        &mut self,
        model: &CubeModel,
        slice: &[String],
        dice: &[String],
        drill: &[String],
        rollup: &[String],
        order: &[String],
    ) -> Result<()> {
        for s in slice {
            self.filters.push(Filter::parse_slice(model, s)?);
        }
        for d in dice {
            self.filters.push(Filter::parse_dice(model, d)?);
        }
        for d in drill {
            self.drill(model, d)?;
        }
        for r in rollup {
            self.rollup(model, r)?;
        }
        for o in order {
            self.order.push(parse_order(o)?);
        }
        Ok(())
    }

    /// Moves `dimension` one level down its hierarchy; with `=member`, first keeps only
    /// that member of the current level. A dimension not on an axis joins the rows at its
    /// top level (or, with a member, is sliced there and shown one level down).
    pub fn drill(&mut self, model: &CubeModel, spec: &str) -> Result<()> {
        let (dim, member) = match spec.split_once('=') {
            Some((d, m)) => (d.trim(), Some(unquote(m))),
            None => (spec.trim(), None),
        };
        let d = model.dimension(dim).ok_or_else(|| {
            Error::Usage(format!(
                "--drill `{spec}`: unknown dimension `{dim}`; dimensions are {}",
                crate::model::names(&model.dimensions)
            ))
        })?;
        let pos = axis_position(self, dim);
        let current = pos.map(|(rows, i)| {
            if rows {
                self.rows[i].level.clone()
            } else {
                self.columns[i].level.clone()
            }
        });
        let hierarchy = hierarchy_of(model, dim, current.as_deref()).ok_or_else(|| {
            Error::Usage(format!(
                "--drill `{spec}`: dimension `{dim}` has no hierarchy"
            ))
        })?;
        let _ = d;
        let (from, next) = match &current {
            Some(c) => {
                let i = hierarchy.iter().position(|x| x == c).unwrap_or(0);
                match hierarchy.get(i + 1) {
                    Some(n) => (Some(c.clone()), n.clone()),
                    None => {
                        return Err(Error::Usage(format!(
                            "--drill `{spec}`: {dim}.{c} is the finest level of {}; nothing to drill into",
                            hierarchy.join(" > ")
                        )))
                    }
                }
            }
            None if member.is_some() => {
                if hierarchy.len() < 2 {
                    return Err(Error::Usage(format!(
                        "--drill `{spec}`: {dim} has one level only"
                    )));
                }
                (Some(hierarchy[0].clone()), hierarchy[1].clone())
            }
            None => (None, hierarchy[0].clone()),
        };
        let next = LevelRef {
            dimension: dim.to_string(),
            level: next,
        };
        if let (Some(m), Some(f)) = (member, from) {
            self.filters.push(Filter {
                level: LevelRef {
                    dimension: dim.to_string(),
                    level: f,
                },
                op: FilterOp::In(vec![m]),
            });
        }
        match pos {
            Some((true, i)) => self.rows[i] = next,
            Some((false, i)) => self.columns[i] = next,
            None => self.rows.push(next),
        }
        Ok(())
    }

    /// Moves `dimension` one level up its hierarchy; rolling up the top level removes
    /// the dimension from the axes.
    pub fn rollup(&mut self, model: &CubeModel, dim: &str) -> Result<()> {
        let dim = dim.trim();
        if model.dimension(dim).is_none() {
            return Err(Error::Usage(format!(
                "--rollup `{dim}`: unknown dimension; dimensions are {}",
                crate::model::names(&model.dimensions)
            )));
        }
        let Some((rows, i)) = axis_position(self, dim) else {
            return Err(Error::Usage(format!(
                "--rollup `{dim}`: {dim} is not on the rows or columns"
            )));
        };
        let axis = if rows {
            &mut self.rows
        } else {
            &mut self.columns
        };
        match parent_level(model, &axis[i]) {
            Some(p) => axis[i] = p,
            None => {
                axis.remove(i);
            }
        }
        Ok(())
    }

    /// Every level on an axis: rows, then columns.
    pub fn axis_levels(&self) -> Vec<LevelRef> {
        self.rows
            .iter()
            .chain(self.columns.iter())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmcube_model::WarehouseSchema;

    fn model() -> CubeModel {
        CubeModel::builtin(&WarehouseSchema::builtin().unwrap()).unwrap()
    }

    #[test]
    fn dice_forms() {
        let m = model();
        let f = Filter::parse_dice(&m, "geography.country in (DE, 'FR')").unwrap();
        assert_eq!(f.op, FilterOp::In(vec!["DE".into(), "FR".into()]));
        let f = Filter::parse_dice(&m, "time.month between 2025-01 and 2025-06").unwrap();
        assert_eq!(f.op, FilterOp::Between("2025-01".into(), "2025-06".into()));
        let f = Filter::parse_dice(&m, "time.year >= 2024").unwrap();
        assert_eq!(f.op, FilterOp::Compare(">=".into(), "2024".into()));
        let f = Filter::parse_dice(&m, "product.category != Books").unwrap();
        assert_eq!(f.op, FilterOp::NotIn(vec!["Books".into()]));
        let e = Filter::parse_dice(&m, "geography.countri in (DE)")
            .unwrap_err()
            .to_string();
        assert!(e.contains("geography.country"), "{e}");
        assert!(Filter::parse_dice(&m, "geography.country like DE").is_err());
    }

    #[test]
    fn drill_and_rollup_walk_the_hierarchy() {
        let m = model();
        let mut q = CubeQuery {
            rows: vec![m.parse_level("geography.region").unwrap()],
            ..Default::default()
        };
        q.drill(&m, "geography=Europe").unwrap();
        assert_eq!(q.rows[0].level, "country");
        assert_eq!(q.filters[0].describe(), "geography.region = Europe");
        q.drill(&m, "geography").unwrap();
        assert_eq!(q.rows[0].level, "city");
        assert!(q.drill(&m, "geography").is_err());
        q.rollup(&m, "geography").unwrap();
        q.rollup(&m, "geography").unwrap();
        q.rollup(&m, "geography").unwrap();
        assert!(q.rows.is_empty());
        q.drill(&m, "time").unwrap();
        assert_eq!(q.rows[0].to_string(), "time.year");
    }
}
