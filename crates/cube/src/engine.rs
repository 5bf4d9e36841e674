//! Running cube queries: the per-fact aggregates are merged on the grain, then ratios,
//! time intelligence, shares and ranks are computed from the merged cells.

use crate::model::{Agg, CubeModel, LevelRef, MeasureKind, Period};
use crate::period::{self, Step};
use crate::plan::{self, FactQuery, FactSpec, ALL};
use crate::query::{parent_level, CubeQuery, Filter, FilterOp, ToDate, Totals};
use crate::QueryResult;
use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use crmcube_model::{Error, Result};
use datafusion::prelude::SessionContext;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// A model opened against one warehouse: knows which tables exist.
pub struct Cube {
    /// The model.
    pub model: CubeModel,
    missing: BTreeSet<String>,
    checked: bool,
    /// Pre-aggregations the planner may answer from (none: base facts only).
    pub(crate) preaggs: Option<crate::preagg::Catalog>,
    /// Rows of each dimension table (for planning).
    dimension_rows: HashMap<String, u64>,
}

/// An answer: the result table, how many rows there were before the limit, and the
/// SQL that computed it.
pub struct CubeResult {
    /// Result schema.
    pub schema: SchemaRef,
    /// Result rows.
    pub batches: Vec<RecordBatch>,
    /// Rows before the limit.
    pub total_rows: usize,
    /// Rows returned.
    pub shown_rows: usize,
    /// SQL statements run.
    pub sql: Vec<String>,
    /// Where each fact was read from (a pre-aggregation or the base facts) and why the
    /// other pre-aggregations were not used; for `--explain`.
    pub sources: Vec<String>,
    /// Remarks for stderr (approximations, widened filters).
    pub notes: Vec<String>,
}

/// One merged cell: labels and base measure values.
type Cells = HashMap<Vec<String>, Vec<Option<f64>>>;

impl Cube {
    /// Checks which of the model's tables the warehouse has.
    pub async fn open(model: CubeModel, ctx: &SessionContext) -> Result<Cube> {
        let mut tables: BTreeSet<String> = BTreeSet::new();
        for (_, d) in &model.dimensions {
            tables.insert(d.table.clone());
            for (_, l) in &d.lookups {
                tables.insert(l.table.clone());
            }
        }
        for (_, f) in &model.facts {
            tables.insert(f.table.clone());
        }
        let mut missing = BTreeSet::new();
        for t in tables {
            let exists = ctx
                .table_exist(t.as_str())
                .map_err(|e| Error::Query(e.to_string()))?;
            if !exists {
                missing.insert(t);
            }
        }
        // Dimension sizes decide which dimensions are joined after summing (plan.rs);
        // Parquet footers answer the counts without reading the data.
        let mut dimension_rows = HashMap::new();
        for (_, d) in &model.dimensions {
            if missing.contains(&d.table) || dimension_rows.contains_key(&d.table) {
                continue;
            }
            let sql = format!("SELECT COUNT(*) FROM \"{}\"", d.table.replace('"', "\"\""));
            let counted = run_sql(ctx, &sql).await?;
            let rows = counted
                .batches
                .first()
                .filter(|b| b.num_rows() > 0)
                .and_then(|b| {
                    arrow::compute::cast(b.column(0), &DataType::Int64)
                        .ok()
                        .and_then(|a| a.as_any().downcast_ref::<Int64Array>().map(|x| x.value(0)))
                });
            if let Some(n) = rows {
                dimension_rows.insert(d.table.clone(), n.max(0) as u64);
            }
        }
        Ok(Cube {
            model,
            missing,
            checked: true,
            preaggs: None,
            dimension_rows,
        })
    }

    /// The model without a warehouse: nothing is known to be missing.
    pub fn unchecked(model: CubeModel) -> Cube {
        Cube {
            model,
            missing: BTreeSet::new(),
            checked: false,
            preaggs: None,
            dimension_rows: HashMap::new(),
        }
    }

    /// Creates the wide view `cube_<fact>` of every fact (see [`plan::wide_view_sql`])
    /// in `ctx`. Returns the views created and, for each fact left out, why (a table
    /// it reads is not in the warehouse).
    pub async fn register_views(&self, ctx: &SessionContext) -> Result<(Vec<String>, Vec<String>)> {
        let mut made = Vec::new();
        let mut skipped = Vec::new();
        for (fact, _) in &self.model.facts {
            let name = format!("cube_{fact}");
            let sql =
                plan::wide_view_sql(&self.model, fact, &|r| self.level_unavailable(r).is_none())?;
            let create = format!("CREATE OR REPLACE VIEW {} AS {sql}", plan::ident(&name));
            match ctx.sql(&create).await {
                Ok(df) => {
                    df.collect()
                        .await
                        .map_err(|e| Error::Query(format!("view {name}: {e}")))?;
                    made.push(name);
                }
                Err(e) => skipped.push(format!("{name}: {e}")),
            }
        }
        Ok((made, skipped))
    }

    /// Runs every saved query of the model (see [`crate::saved`]) and registers its
    /// result in `ctx` as a table named after the query, with `dimension.level` columns
    /// renamed `dimension_level`. Returns the views made and, for each query left out,
    /// why (it needs a table the warehouse lacks). The results are computed once: a
    /// caller serving a warehouse registers them again for each new version.
    pub async fn register_saved_queries(
        &self,
        ctx: &SessionContext,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let mut made = Vec::new();
        let mut skipped = Vec::new();
        for (name, saved) in &self.model.queries {
            let q = saved.to_query(&self.model)?;
            let r = match self.run(ctx, &q).await {
                Ok(r) => r,
                Err(e) => {
                    skipped.push(format!("{name}: {e}"));
                    continue;
                }
            };
            let (schema, batches) = saved_view(&r)?;
            let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])
                .map_err(|e| Error::Query(format!("saved query {name}: {e}")))?;
            ctx.register_table(name.as_str(), Arc::new(table))
                .map_err(|e| Error::Query(format!("saved query {name}: {e}")))?;
            made.push(name.clone());
        }
        Ok((made, skipped))
    }

    /// Whether tables were checked against a warehouse.
    pub fn is_checked(&self) -> bool {
        self.checked
    }

    /// Why a table is unavailable, or None.
    pub fn table_missing(&self, table: &str) -> bool {
        self.missing.contains(table)
    }

    /// Tables of the model the warehouse lacks.
    pub fn missing_tables(&self) -> Vec<String> {
        self.missing.iter().cloned().collect()
    }

    /// Why a level cannot be used, or None.
    pub fn level_unavailable(&self, r: &LevelRef) -> Option<String> {
        self.model
            .level_tables(r)
            .into_iter()
            .find(|t| self.table_missing(t))
            .map(|t| format!("level `{r}` is unavailable: table {t} is not in this warehouse"))
    }

    /// Why a measure cannot be used, or None.
    pub fn measure_unavailable(&self, name: &str) -> Option<String> {
        for b in self.model.base_measures(name) {
            let fact = self.model.measure(&b).and_then(|m| m.fact.clone())?;
            let table = self.model.fact(&fact)?.table.clone();
            if self.table_missing(&table) {
                return Some(format!(
                    "measure `{name}` is unavailable: table {table} is not in this warehouse"
                ));
            }
        }
        None
    }

    fn check(&self, q: &CubeQuery) -> Result<()> {
        if q.measures.is_empty() {
            return Err(Error::Usage(format!(
                "give --measures; measures are {}",
                crate::model::names(&self.model.measures)
            )));
        }
        for m in &q.measures {
            if self.model.measure(m).is_none() {
                return Err(Error::Usage(format!(
                    "unknown measure `{m}`; measures are {}",
                    crate::model::names(&self.model.measures)
                )));
            }
            if let Some(why) = self.measure_unavailable(m) {
                return Err(Error::Usage(why));
            }
        }
        for l in q
            .axis_levels()
            .iter()
            .chain(q.filters.iter().map(|f| &f.level))
        {
            if self.model.level(l).is_none() {
                return Err(Error::Usage(format!(
                    "unknown level `{l}`; levels are {}",
                    self.model.level_names()
                )));
            }
            if let Some(why) = self.level_unavailable(l) {
                return Err(Error::Usage(why));
            }
        }
        let axis = q.axis_levels();
        for (i, l) in axis.iter().enumerate() {
            if axis[..i].contains(l) {
                return Err(Error::Usage(format!("level `{l}` is on the axes twice")));
            }
        }
        Ok(())
    }

    fn period_of(&self, l: &LevelRef) -> Option<Period> {
        self.model.level(l).and_then(|x| x.period)
    }

    /// Compiles `q` to its SQL statements (what `--explain` prints).
    pub fn explain(&self, q: &CubeQuery) -> Result<Vec<String>> {
        let p = self.prepare(q)?;
        Ok(p.queries.iter().map(FactQuery::text).collect())
    }

    fn prepare(&self, q: &CubeQuery) -> Result<Prepared> {
        self.check(q)?;
        let axis = q.axis_levels();
        let time_intel = q.compare.is_some() || q.to_date.is_some() || q.rolling.is_some();
        let time_axis = axis.iter().rposition(|l| self.period_of(l).is_some());
        if time_intel && time_axis.is_none() {
            return Err(Error::Usage(
                "--compare, --ytd/--qtd/--mtd and --rolling need a time level (e.g. time.month) on --rows or --columns".into(),
            ));
        }
        let mut bases: Vec<String> = Vec::new();
        for m in &q.measures {
            for b in self.model.base_measures(m) {
                if !bases.contains(&b) {
                    bases.push(b);
                }
            }
        }
        if q.to_date.is_some() || q.rolling.is_some() {
            for m in &q.measures {
                for b in self.model.base_measures(m) {
                    let kind = self.model.measure(&b).map(|x| x.kind());
                    if kind != Some(MeasureKind::Additive) {
                        return Err(Error::Usage(format!(
                            "--ytd/--qtd/--mtd/--rolling add up periods, which is wrong for `{m}` (it uses the distinct count `{b}`); use additive measures or ratios of them"
                        )));
                    }
                }
            }
        }
        // Time filters at or above the axis period are applied after the comparisons,
        // so the earlier periods they need are computed.
        let mut sql_filters = Vec::new();
        let mut post_filters = Vec::new();
        let tp = time_axis.and_then(|i| self.period_of(&axis[i]).map(|p| (i, p)));
        for f in &q.filters {
            let coarser = match (tp, self.period_of(&f.level)) {
                (Some((i, p)), Some(fp)) if time_intel => {
                    same_hierarchy(&self.model, &axis[i], &f.level)
                        && period::container(p, sample_label(p), fp).is_some()
                }
                _ => false,
            };
            if coarser {
                post_filters.push(f.clone());
            } else {
                sql_filters.push(f.clone());
            }
        }
        // Share and rank compare each member with its parent: the parent's member is a
        // hidden label, and the parent's cells come from an extra grouping set.
        let target = if q.share_of_parent || q.rank_within_parent {
            let t = if !q.rows.is_empty() {
                q.rows.len() - 1
            } else if !q.columns.is_empty() {
                axis.len() - 1
            } else {
                return Err(Error::Usage(
                    "--share-of-parent and --rank-within-parent need a level on --rows".into(),
                ));
            };
            Some(t)
        } else {
            None
        };
        let mut labels = axis.clone();
        let parent = target.and_then(|t| parent_level(&self.model, &axis[t]));
        let parent_idx = parent.as_ref().map(|p| {
            labels.push(p.clone());
            labels.len() - 1
        });
        let base_sets: Vec<Vec<usize>> = match &q.grouping_sets {
            Some(sets) => {
                let mut out = Vec::new();
                for s in sets {
                    let mut idx = Vec::new();
                    for l in s {
                        let i = axis.iter().position(|a| a == l).ok_or_else(|| {
                            Error::Usage(format!(
                                "grouping set level `{l}` is not on --rows or --columns"
                            ))
                        })?;
                        idx.push(i);
                    }
                    idx.sort();
                    out.push(idx);
                }
                out
            }
            None => axis_sets(q.rows.len(), q.columns.len(), q.totals),
        };
        let attach = |s: &Vec<usize>| -> Vec<usize> {
            let mut s = s.clone();
            if let (Some(t), Some(p)) = (target, parent_idx) {
                if s.contains(&t) {
                    s.push(p);
                }
            }
            s
        };
        let mut sets: Vec<Vec<usize>> = base_sets.iter().map(attach).collect();
        if let Some(t) = target {
            for s in &base_sets {
                if s.contains(&t) {
                    let mut e: Vec<usize> = s.iter().copied().filter(|i| *i != t).collect();
                    if let Some(p) = parent_idx {
                        e.push(p);
                    }
                    sets.push(e);
                }
            }
        }
        let mut uniq: Vec<Vec<usize>> = Vec::new();
        for s in sets {
            let mut sorted = s.clone();
            sorted.sort();
            if !uniq.iter().any(|u| {
                let mut v = u.clone();
                v.sort();
                v == sorted
            }) {
                uniq.push(s);
            }
        }
        let output_signatures: Vec<Vec<bool>> = base_sets
            .iter()
            .map(|s| {
                let s = attach(s);
                (0..labels.len()).map(|i| s.contains(&i)).collect()
            })
            .collect();
        let mut by_fact: Vec<(String, Vec<String>)> = Vec::new();
        for b in &bases {
            let fact = self
                .model
                .measure(b)
                .and_then(|m| m.fact.clone())
                .ok_or_else(|| Error::Usage(format!("measure `{b}` has no fact")))?;
            match by_fact.iter_mut().find(|(f, _)| f == &fact) {
                Some((_, v)) => v.push(b.clone()),
                None => by_fact.push((fact, vec![b.clone()])),
            }
        }
        // Each fact is read from the smallest fresh pre-aggregation that answers exactly
        // (it stores every measure and every level grouped or filtered by, or counts
        // each grouping set's cells), else from the base facts.
        let filter_lists: Vec<&[Filter]> = if post_filters.is_empty() {
            vec![&q.filters]
        } else {
            vec![&q.filters, &sql_filters]
        };
        let ask = crate::preagg::Ask {
            labels: &labels,
            sets: &uniq,
            filters: &filter_lists,
            approximate: q.approximate,
        };
        let mut sources = Vec::new();
        let mut notes = Vec::new();
        let mut chosen = Vec::new();
        for (fact, measures) in &by_fact {
            match &self.preaggs {
                Some(c) => {
                    let choice = c.choose(&self.model, fact, measures, &ask);
                    sources.extend(choice.lines);
                    notes.extend(choice.notes);
                    chosen.push(choice.used);
                }
                None => {
                    let table = self.model.fact(fact).map(|f| f.table.as_str());
                    sources.push(format!(
                        "{fact} ({}): base facts {}",
                        measures.join(", "),
                        table.unwrap_or_default()
                    ));
                    chosen.push(None);
                }
            }
        }
        if let Some(c) = self.preaggs.as_ref().filter(|c| c.off.is_none()) {
            let facts: Vec<&str> = by_fact.iter().map(|(f, _)| f.as_str()).collect();
            sources.extend(c.others(&facts));
        }
        let build = |filters: &[Filter]| -> Result<Vec<FactQuery>> {
            let mut queries = Vec::new();
            for ((fact, measures), used) in by_fact.iter().zip(&chosen) {
                let spec = FactSpec {
                    fact,
                    measures,
                    labels: &labels,
                    sets: &uniq,
                    filters,
                    approximate: q.approximate,
                    dimension_rows: &self.dimension_rows,
                };
                queries.extend(match used {
                    Some(layout) => crate::preagg::fact_queries(&self.model, layout, &spec)?,
                    None => plan::fact_queries(&self.model, &spec)?,
                });
            }
            Ok(queries)
        };
        let queries = build(&q.filters)?;
        let wide_queries = if post_filters.is_empty() {
            None
        } else {
            Some(build(&sql_filters)?)
        };
        Ok(Prepared {
            labels,
            axis_len: axis.len(),
            bases,
            queries,
            wide_queries,
            post_filters,
            sets: uniq,
            output_signatures,
            time: tp,
            target,
            sources,
            notes,
        })
    }

    /// Runs a cube query.
    pub async fn run(&self, ctx: &SessionContext, q: &CubeQuery) -> Result<CubeResult> {
        let p = self.prepare(q)?;
        let mut cells: Cells = HashMap::new();
        let mut integer = vec![false; p.bases.len()];
        let mut wide: Option<Cells> = None;
        let mut ran: Vec<&FactQuery> = Vec::new();
        let mut derived = false;
        if let Some(wq) = &p.wide_queries {
            let mut w = HashMap::new();
            let mut wide_integer = vec![false; p.bases.len()];
            for fq in wq {
                merge(ctx, fq, &p, &mut w, &mut wide_integer).await?;
                ran.push(fq);
            }
            if let Some(narrow) = self.narrowed(&p, &w) {
                cells = narrow;
                integer = wide_integer;
                derived = true;
            }
            wide = Some(w);
        }
        if !derived {
            for fq in &p.queries {
                merge(ctx, fq, &p, &mut cells, &mut integer).await?;
                ran.push(fq);
            }
        }
        let sql: Vec<String> = ran.iter().map(|f| f.text()).collect();
        let mut notes = p.notes.clone();
        if q.approximate
            && p.bases
                .iter()
                .any(|b| self.model.measure(b).and_then(|m| m.agg) == Some(Agg::CountDistinct))
        {
            notes.push("distinct counts are approximate (approx_distinct sketch)".into());
        }
        let table = self.compute(q, &p, &cells, wide.as_ref().unwrap_or(&cells), &integer)?;
        let table = if q.columns.is_empty() {
            table
        } else {
            pivot(table, q.rows.len(), q.columns.len())
        };
        let (schema, batch, total) = finish(table, q)?;
        Ok(CubeResult {
            shown_rows: batch.num_rows(),
            schema,
            batches: vec![batch],
            total_rows: total,
            sources: p.sources.clone(),
            sql,
            notes,
        })
    }

    /// Lists the fact rows behind the filters (drill-through), at most `limit` of them.
    pub async fn drill_through(
        &self,
        ctx: &SessionContext,
        q: &CubeQuery,
        limit: usize,
    ) -> Result<CubeResult> {
        let measure = q
            .measures
            .first()
            .cloned()
            .unwrap_or_else(|| "revenue".into());
        let mut q2 = q.clone();
        q2.measures = vec![measure.clone()];
        self.check(&q2)?;
        let fact = self
            .model
            .base_measures(&measure)
            .first()
            .and_then(|b| self.model.measure(b))
            .and_then(|m| m.fact.clone())
            .ok_or_else(|| Error::Usage(format!("measure `{measure}` has no fact")))?;
        let (rows_sql, count_sql) =
            plan::drill_through_sql(&self.model, &fact, &q.axis_levels(), &q.filters, limit)?;
        let rows = run_sql(ctx, &rows_sql).await?;
        let count = run_sql(ctx, &count_sql).await?;
        let total = count
            .batches
            .first()
            .filter(|b| b.num_rows() > 0)
            .map(|b| {
                arrow::compute::cast(b.column(0), &DataType::Int64)
                    .ok()
                    .and_then(|a| a.as_any().downcast_ref::<Int64Array>().map(|x| x.value(0)))
                    .unwrap_or(0)
            })
            .unwrap_or(0) as usize;
        Ok(CubeResult {
            shown_rows: rows.num_rows(),
            schema: rows.schema,
            batches: rows.batches,
            total_rows: total,
            sql: vec![rows_sql, count_sql],
            sources: vec![format!(
                "{fact}: base facts {} (drill-through lists fact rows; pre-aggregations hold none)",
                self.model
                    .fact(&fact)
                    .map(|f| f.table.as_str())
                    .unwrap_or_default()
            )],
            notes: vec![format!("fact rows of `{fact}` behind {measure}")],
        })
    }

    /// The cells of the filtered query taken from the wide one (which leaves out the time
    /// filters), so the facts are read once: possible when every grouping set keeps the
    /// time level, as then each cell lies within one time member, and that member lies
    /// within the filters' periods or not. None (run the filtered queries) otherwise, and
    /// for members that cannot be placed in a period (`Unknown`) or filters that may name
    /// members by a code.
    fn narrowed(&self, p: &Prepared, wide: &Cells) -> Option<Cells> {
        let (ti, tper) = p.time?;
        if p.post_filters.is_empty() || !p.sets.iter().all(|s| s.contains(&ti)) {
            return None;
        }
        let mut periods = Vec::new();
        for f in &p.post_filters {
            let level = self.model.level(&f.level)?;
            if level.code.is_some() {
                return None;
            }
            periods.push((f, level.period?));
        }
        let mut out: Cells = HashMap::new();
        for (k, v) in wide {
            let member = k.get(ti)?;
            if member == ALL || member == plan::UNKNOWN {
                return None;
            }
            let mut keep = true;
            for (f, fp) in &periods {
                if !filter_accepts(f, &period::container(tper, member, *fp)?) {
                    keep = false;
                    break;
                }
            }
            if keep {
                out.insert(k.clone(), v.clone());
            }
        }
        Some(out)
    }

    fn compute(
        &self,
        q: &CubeQuery,
        p: &Prepared,
        cells: &Cells,
        history: &Cells,
        integer: &[bool],
    ) -> Result<Table> {
        let base_index = |name: &str| p.bases.iter().position(|b| b == name);
        let eval = |vals: &[Option<f64>], m: &str| eval_measure(&self.model, m, vals, &base_index);
        let is_int = |m: &str| -> bool {
            self.model
                .measure(m)
                .map(|x| x.ratio.is_none())
                .unwrap_or(false)
                && base_index(m).map(|i| integer[i]).unwrap_or(false)
        };
        // Output rows: cells from the requested grouping sets.
        let keys: Vec<&Vec<String>> = cells
            .keys()
            .filter(|k| {
                let sig: Vec<bool> = k.iter().map(|v| v != ALL).collect();
                p.output_signatures
                    .iter()
                    .any(|s| signature_matches(s, &sig, k))
            })
            .collect();
        let mut columns: Vec<ColumnSpec> = Vec::new();
        for m in &q.measures {
            let name = if q.approximate
                && self.model.measure(m).and_then(|x| x.agg) == Some(Agg::CountDistinct)
            {
                format!("{m} (approx)")
            } else {
                m.clone()
            };
            columns.push(ColumnSpec {
                name: name.clone(),
                integer: is_int(m),
            });
            if let Some(step) = q.compare {
                let tag = match step {
                    Step::Previous => "previous",
                    Step::Year => "last year",
                    Step::Month => "last month",
                };
                columns.push(ColumnSpec {
                    name: format!("{name} {tag}"),
                    integer: is_int(m),
                });
                columns.push(ColumnSpec {
                    name: format!("{name} change"),
                    integer: is_int(m),
                });
                columns.push(ColumnSpec {
                    name: format!("{name} change %"),
                    integer: false,
                });
            }
            if let Some(td) = q.to_date {
                let tag = match td {
                    ToDate::Year => "ytd",
                    ToDate::Quarter => "qtd",
                    ToDate::Month => "mtd",
                };
                columns.push(ColumnSpec {
                    name: format!("{name} {tag}"),
                    integer: is_int(m),
                });
            }
            if let Some(n) = q.rolling {
                columns.push(ColumnSpec {
                    name: format!("{name} rolling {n}"),
                    integer: is_int(m),
                });
            }
            if q.share_of_parent {
                columns.push(ColumnSpec {
                    name: format!("{name} % of parent"),
                    integer: false,
                });
            }
            if q.rank_within_parent {
                columns.push(ColumnSpec {
                    name: format!("{name} rank"),
                    integer: true,
                });
            }
        }
        let to_date_period = match q.to_date {
            Some(ToDate::Year) => Some(Period::Year),
            Some(ToDate::Quarter) => Some(Period::Quarter),
            Some(ToDate::Month) => Some(Period::Month),
            None => None,
        };
        if let (Some(tdp), Some((_, tper))) = (to_date_period, p.time) {
            if tper == tdp || period::container(tper, sample_label(tper), tdp).is_none() {
                return Err(Error::Usage(format!(
                    "the running total needs a time level finer than {tdp:?} on the axes"
                )));
            }
        }
        if q.compare == Some(Step::Month) {
            if let Some((_, tper)) = p.time {
                if !matches!(tper, Period::Month | Period::Day) {
                    return Err(Error::Usage(
                        "--compare mom needs time.month or time.day on the axes".into(),
                    ));
                }
            }
        }
        // Running totals: per (other labels, container), cumulative sums in time order.
        let mut to_date: HashMap<Vec<String>, Vec<Option<f64>>> = HashMap::new();
        if let (Some(tdp), Some((ti, tper))) = (to_date_period, p.time) {
            let mut groups: HashMap<(Vec<String>, String), Vec<&Vec<String>>> = HashMap::new();
            for k in history.keys() {
                if k[ti] == ALL {
                    continue;
                }
                let Some(c) = period::container(tper, &k[ti], tdp) else {
                    continue;
                };
                let mut others = k.clone();
                others[ti] = String::new();
                groups.entry((others, c)).or_default().push(k);
            }
            for (_, mut ks) in groups {
                ks.sort_by(|a, b| a[ti].cmp(&b[ti]));
                let mut acc = vec![None; p.bases.len()];
                for k in ks {
                    add_into(&mut acc, &history[k]);
                    to_date.insert(k.clone(), acc.clone());
                }
            }
        }
        let mut rows: Vec<(Vec<String>, Vec<Option<f64>>)> = Vec::new();
        for k in &keys {
            let vals = &cells[*k];
            let mut out = Vec::new();
            for m in &q.measures {
                let v = eval(vals, m);
                out.push(v);
                if let Some(step) = q.compare {
                    let prev = p.time.and_then(|(ti, tper)| {
                        if k[ti] == ALL {
                            return None;
                        }
                        let label = period::shift(tper, &k[ti], step)?;
                        let mut pk = (*k).clone();
                        pk[ti] = label;
                        history.get(&pk).and_then(|pv| eval(pv, m))
                    });
                    out.push(prev);
                    out.push(match (v, prev) {
                        (Some(a), Some(b)) => Some(a - b),
                        _ => None,
                    });
                    out.push(match (v, prev) {
                        (Some(a), Some(b)) if b != 0.0 => Some((a - b) / b.abs() * 100.0),
                        _ => None,
                    });
                }
                if q.to_date.is_some() {
                    out.push(to_date.get(*k).and_then(|acc| eval(acc, m)));
                }
                if let Some(n) = q.rolling {
                    let rolled = p.time.and_then(|(ti, tper)| {
                        if k[ti] == ALL {
                            return None;
                        }
                        let mut acc = vec![None; p.bases.len()];
                        let mut key = (*k).clone();
                        for i in 0..n {
                            if i > 0 {
                                key[ti] = period::shift(tper, &key[ti], Step::Previous)?;
                            }
                            if let Some(c) = history.get(&key) {
                                add_into(&mut acc, c);
                            }
                        }
                        eval(&acc, m)
                    });
                    out.push(rolled);
                }
                if q.share_of_parent {
                    let share = p.target.and_then(|t| {
                        if k[t] == ALL {
                            return None;
                        }
                        let mut pk = (*k).clone();
                        pk[t] = ALL.to_string();
                        let pv = cells.get(&pk).and_then(|pv| eval(pv, m))?;
                        let v = v?;
                        (pv != 0.0).then(|| v / pv * 100.0)
                    });
                    out.push(share);
                }
                if q.rank_within_parent {
                    out.push(None);
                }
            }
            rows.push(((*k).clone(), out));
        }
        if q.rank_within_parent {
            if let Some(t) = p.target {
                rank_rows(&mut rows, t, &columns, q);
            }
        }
        let mut label_names: Vec<String> = p.labels[..p.axis_len]
            .iter()
            .map(|l| l.to_string())
            .collect();
        label_names.truncate(p.axis_len);
        let rows = rows
            .into_iter()
            .map(|(mut k, v)| {
                k.truncate(p.axis_len);
                (k, v)
            })
            .collect();
        Ok(Table {
            labels: label_names,
            columns,
            rows,
        })
    }
}

fn rank_rows(
    rows: &mut [(Vec<String>, Vec<Option<f64>>)],
    t: usize,
    columns: &[ColumnSpec],
    q: &CubeQuery,
) {
    let per_measure = columns.len() / q.measures.len().max(1);
    for mi in 0..q.measures.len() {
        let value_col = mi * per_measure;
        let rank_col = value_col + per_measure - 1;
        let mut groups: HashMap<Vec<String>, Vec<usize>> = HashMap::new();
        for (i, (k, _)) in rows.iter().enumerate() {
            if k[t] == ALL {
                continue;
            }
            let mut pk = k.clone();
            pk[t] = ALL.to_string();
            groups.entry(pk).or_default().push(i);
        }
        for (_, idx) in groups {
            let vals: Vec<f64> = idx
                .iter()
                .map(|i| rows[*i].1[value_col].unwrap_or(f64::NEG_INFINITY))
                .collect();
            for (j, i) in idx.iter().enumerate() {
                let better = vals.iter().filter(|v| **v > vals[j]).count();
                rows[*i].1[rank_col] = Some((better + 1) as f64);
            }
        }
    }
}

fn same_hierarchy(model: &CubeModel, a: &LevelRef, b: &LevelRef) -> bool {
    a.dimension == b.dimension
        && crate::query::hierarchy_of(model, &a.dimension, Some(&a.level))
            .is_some_and(|h| h.contains(&b.level))
}

fn sample_label(p: Period) -> &'static str {
    match p {
        Period::Year => "2024",
        Period::Quarter => "2024-Q1",
        Period::Month => "2024-01",
        Period::Day => "2024-01-01",
        Period::IsoWeek => "2024-W01",
    }
}

/// Whether a member passes a filter (used for filters applied after aggregation).
pub fn filter_accepts(f: &Filter, label: &str) -> bool {
    match &f.op {
        FilterOp::In(v) => v.iter().any(|x| x == label),
        FilterOp::NotIn(v) => !v.iter().any(|x| x == label),
        FilterOp::Between(a, b) => label >= a.as_str() && label <= b.as_str(),
        FilterOp::Compare(op, v) => match op.as_str() {
            "<" => label < v.as_str(),
            "<=" => label <= v.as_str(),
            ">" => label > v.as_str(),
            ">=" => label >= v.as_str(),
            _ => true,
        },
    }
}

fn signature_matches(set: &[bool], sig: &[bool], _key: &[String]) -> bool {
    set == sig
}

fn add_into(acc: &mut [Option<f64>], vals: &[Option<f64>]) {
    for (a, v) in acc.iter_mut().zip(vals) {
        if let Some(v) = v {
            *a = Some(a.unwrap_or(0.0) + v);
        }
    }
}

fn eval_measure(
    model: &CubeModel,
    m: &str,
    vals: &[Option<f64>],
    base_index: &dyn Fn(&str) -> Option<usize>,
) -> Option<f64> {
    let def = model.measure(m)?;
    match &def.ratio {
        Some(parts) => {
            let n = eval_measure(model, &parts[0], vals, base_index);
            let d = eval_measure(model, &parts[1], vals, base_index)?;
            if d == 0.0 {
                return None;
            }
            Some(n.unwrap_or(0.0) / d * def.scale.unwrap_or(1.0))
        }
        None => {
            // A fact with no rows in a cell contributes zero there.
            Some(vals.get(base_index(m)?).copied().flatten().unwrap_or(0.0))
        }
    }
}

struct Prepared {
    labels: Vec<LevelRef>,
    axis_len: usize,
    bases: Vec<String>,
    queries: Vec<FactQuery>,
    /// The same aggregates without the time filters, for looking up earlier periods.
    wide_queries: Option<Vec<FactQuery>>,
    /// The time filters the wide queries leave out.
    post_filters: Vec<Filter>,
    /// The grouping sets queried, as indices into `labels`.
    sets: Vec<Vec<usize>>,
    output_signatures: Vec<Vec<bool>>,
    time: Option<(usize, Period)>,
    target: Option<usize>,
    /// Where each fact is read from, for `--explain`.
    sources: Vec<String>,
    /// Remarks about the sources (stale pre-aggregations).
    notes: Vec<String>,
}

/// The grouping sets of the axes: all levels, or ROLLUP / CUBE over each axis.
fn axis_sets(rows: usize, cols: usize, totals: Totals) -> Vec<Vec<usize>> {
    let options = |n: usize, offset: usize| -> Vec<Vec<usize>> {
        match totals {
            Totals::None => vec![(offset..offset + n).collect()],
            Totals::Rollup => (0..=n)
                .rev()
                .map(|k| (offset..offset + k).collect())
                .collect(),
            Totals::Cube => (0..(1usize << n))
                .rev()
                .map(|mask| {
                    (0..n)
                        .filter(|i| mask & (1 << (n - 1 - i)) != 0)
                        .map(|i| offset + i)
                        .collect()
                })
                .collect(),
        }
    };
    let mut out = Vec::new();
    for r in options(rows, 0) {
        for c in options(cols, rows) {
            let mut s = r.clone();
            s.extend(c);
            out.push(s);
        }
    }
    out
}

/// A DataFusion error as one clear line.
fn query_error(e: datafusion::error::DataFusionError) -> Error {
    let text = e.to_string();
    Error::Query(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Runs one statement; errors become one clear line.
pub async fn run_sql(ctx: &SessionContext, sql: &str) -> Result<QueryResult> {
    let df = ctx.sql(sql).await.map_err(query_error)?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(query_error)?;
    Ok(QueryResult { schema, batches })
}

/// Runs a fact query: its stage first (kept in memory under its name while the query
/// runs, removed after), then its SQL.
async fn run_fact_query(ctx: &SessionContext, fq: &FactQuery) -> Result<QueryResult> {
    let Some(stage) = &fq.stage else {
        return run_sql(ctx, &fq.sql).await;
    };
    let df = ctx.sql(&stage.sql).await.map_err(query_error)?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let parts = df.collect_partitioned().await.map_err(query_error)?;
    let table = datafusion::datasource::MemTable::try_new(schema, parts).map_err(query_error)?;
    ctx.register_table(stage.name.as_str(), Arc::new(table))
        .map_err(query_error)?;
    // Removed when the query ends, fails or is dropped (a server's timeout).
    let _registered = StageTable {
        ctx,
        name: &stage.name,
    };
    run_sql(ctx, &fq.sql).await
}

/// A stage table registered in a context, deregistered on drop.
struct StageTable<'a> {
    ctx: &'a SessionContext,
    name: &'a str,
}

impl Drop for StageTable<'_> {
    fn drop(&mut self) {
        // Deregistering an in-memory table from the default schema cannot fail.
        let _ = self.ctx.deregister_table(self.name);
    }
}

async fn merge(
    ctx: &SessionContext,
    fq: &FactQuery,
    p: &Prepared,
    cells: &mut Cells,
    integer: &mut [bool],
) -> Result<()> {
    let result = run_fact_query(ctx, fq).await?;
    let n = p.labels.len();
    let targets: Vec<usize> = fq
        .measures
        .iter()
        .map(|m| p.bases.iter().position(|b| b == m).unwrap_or(0))
        .collect();
    for (j, t) in targets.iter().enumerate() {
        if let Some(f) = result.schema.fields().get(n + j) {
            integer[*t] = matches!(
                f.data_type(),
                DataType::Int64 | DataType::UInt64 | DataType::Int32 | DataType::UInt32
            );
        }
    }
    for batch in &result.batches {
        let mut labels = Vec::new();
        for i in 0..n {
            let a = arrow::compute::cast(batch.column(i), &DataType::Utf8)
                .map_err(|e| Error::Query(e.to_string()))?;
            labels.push(a);
        }
        let mut values = Vec::new();
        for j in 0..fq.measures.len() {
            let a = arrow::compute::cast(batch.column(n + j), &DataType::Float64)
                .map_err(|e| Error::Query(e.to_string()))?;
            values.push(a);
        }
        for r in 0..batch.num_rows() {
            let key: Vec<String> = labels
                .iter()
                .map(|a| {
                    a.as_any()
                        .downcast_ref::<StringArray>()
                        .filter(|s| s.is_valid(r))
                        .map(|s| s.value(r).to_string())
                        .unwrap_or_else(|| ALL.to_string())
                })
                .collect();
            let entry = cells
                .entry(key)
                .or_insert_with(|| vec![None; p.bases.len()]);
            for (j, t) in targets.iter().enumerate() {
                entry[*t] = values[j]
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .filter(|a| a.is_valid(r))
                    .map(|a| a.value(r));
            }
        }
    }
    Ok(())
}

/// A value column of the result.
#[derive(Debug, Clone)]
struct ColumnSpec {
    name: String,
    integer: bool,
}

/// Result rows before layout: label columns and value columns.
struct Table {
    labels: Vec<String>,
    columns: Vec<ColumnSpec>,
    rows: Vec<(Vec<String>, Vec<Option<f64>>)>,
}

/// Sort rank of a member: ordinary members, then Unknown, then All.
fn member_rank(label: &str) -> (u8, &str) {
    match label {
        ALL => (2, label),
        plan::UNKNOWN => (1, label),
        _ => (0, label),
    }
}

fn sort_members(a: &[String], b: &[String]) -> std::cmp::Ordering {
    a.iter()
        .map(|x| member_rank(x))
        .cmp(b.iter().map(|x| member_rank(x)))
}

/// Pivot cells: (row members, column members) → measure values.
type PivotCells = HashMap<(Vec<String>, Vec<String>), Vec<Option<f64>>>;

/// Turns the column-axis members into `<member> | <value>` columns.
fn pivot(table: Table, nrows: usize, ncols: usize) -> Table {
    let mut col_members: Vec<Vec<String>> = Vec::new();
    let mut row_keys: Vec<Vec<String>> = Vec::new();
    let mut cells: PivotCells = HashMap::new();
    for (k, v) in table.rows {
        let rk = k[..nrows].to_vec();
        let ck = k[nrows..nrows + ncols].to_vec();
        if !col_members.contains(&ck) {
            col_members.push(ck.clone());
        }
        if !row_keys.contains(&rk) {
            row_keys.push(rk.clone());
        }
        cells.insert((rk, ck), v);
    }
    col_members.sort_by(|a, b| sort_members(a, b));
    let mut columns = Vec::new();
    for cm in &col_members {
        for c in &table.columns {
            columns.push(ColumnSpec {
                name: format!("{} | {}", cm.join(" / "), c.name),
                integer: c.integer,
            });
        }
    }
    let width = table.columns.len();
    let rows = row_keys
        .into_iter()
        .map(|rk| {
            let mut vals = Vec::new();
            for cm in &col_members {
                match cells.get(&(rk.clone(), cm.clone())) {
                    Some(v) => vals.extend(v.iter().copied()),
                    None => vals.extend(std::iter::repeat_n(None, width)),
                }
            }
            (rk, vals)
        })
        .collect();
    Table {
        labels: table.labels[..nrows].to_vec(),
        columns,
        rows,
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Sorts, limits and builds the Arrow batch.
fn finish(mut table: Table, q: &CubeQuery) -> Result<(SchemaRef, RecordBatch, usize)> {
    let mut keys: Vec<(Option<usize>, Vec<usize>, bool)> = Vec::new();
    for o in &q.order {
        if let Some(i) = table.labels.iter().position(|l| l == &o.column) {
            keys.push((Some(i), vec![], o.descending));
            continue;
        }
        let exact: Vec<usize> = table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name == o.column)
            .map(|(i, _)| i)
            .collect();
        let pivoted: Vec<usize> = table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name.ends_with(&format!(" | {}", o.column)))
            .map(|(i, _)| i)
            .collect();
        let all_col: Vec<usize> = pivoted
            .iter()
            .copied()
            .filter(|i| table.columns[*i].name.starts_with(&format!("{ALL} | ")))
            .collect();
        let cols = if !exact.is_empty() {
            exact
        } else if !all_col.is_empty() {
            all_col
        } else {
            pivoted
        };
        if cols.is_empty() {
            let mut valid: Vec<String> = table.labels.clone();
            valid.extend(q.measures.iter().cloned());
            valid.extend(table.columns.iter().map(|c| c.name.clone()));
            valid.dedup();
            return Err(Error::Usage(format!(
                "--order `{}`: no such column; order by one of {}",
                o.column,
                valid.join(", ")
            )));
        }
        keys.push((None, cols, o.descending));
    }
    table.rows.sort_by(|a, b| {
        for (label, cols, desc) in &keys {
            let ord = match label {
                Some(i) => member_rank(&a.0[*i]).cmp(&member_rank(&b.0[*i])),
                None => {
                    let sum = |r: &Vec<Option<f64>>| -> f64 {
                        cols.iter().filter_map(|c| r[*c]).sum::<f64>()
                    };
                    let (x, y) = (sum(&a.1), sum(&b.1));
                    x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
                }
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        sort_members(&a.0, &b.0)
    });
    let total = table.rows.len();
    if let Some(l) = q.limit {
        table.rows.truncate(l);
    }
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, name) in table.labels.iter().enumerate() {
        fields.push(Field::new(name, DataType::Utf8, false));
        arrays.push(Arc::new(StringArray::from_iter_values(
            table.rows.iter().map(|r| r.0[i].as_str()),
        )));
    }
    for (j, c) in table.columns.iter().enumerate() {
        if c.integer {
            fields.push(Field::new(&c.name, DataType::Int64, true));
            arrays.push(Arc::new(Int64Array::from_iter(
                table.rows.iter().map(|r| r.1[j].map(|v| v.round() as i64)),
            )));
        } else {
            fields.push(Field::new(&c.name, DataType::Float64, true));
            arrays.push(Arc::new(Float64Array::from_iter(
                table.rows.iter().map(|r| r.1[j].map(round2)),
            )));
        }
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let batch = if arrays.is_empty() {
        RecordBatch::new_empty(schema.clone())
    } else {
        RecordBatch::try_new(schema.clone(), arrays).map_err(|e| Error::Query(e.to_string()))?
    };
    Ok((schema, batch, total))
}

/// A cube result as a view: `dimension.level` columns renamed by
/// [`crate::saved::view_column`] (unless the new name is taken).
pub fn saved_view(r: &CubeResult) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let names: Vec<String> = r.schema.fields().iter().map(|f| f.name().clone()).collect();
    let fields: Vec<Field> = r
        .schema
        .fields()
        .iter()
        .map(|f| {
            let renamed = crate::saved::view_column(f.name());
            let taken = renamed != *f.name() && names.contains(&renamed);
            if taken {
                f.as_ref().clone()
            } else {
                f.as_ref().clone().with_name(renamed)
            }
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batches = r
        .batches
        .iter()
        .map(|b| {
            RecordBatch::try_new(schema.clone(), b.columns().to_vec())
                .map_err(|e| Error::Query(format!("saved query result: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollup_and_cube_sets() {
        assert_eq!(
            axis_sets(2, 0, Totals::Rollup),
            vec![vec![0, 1], vec![0], vec![]]
        );
        assert_eq!(
            axis_sets(2, 0, Totals::Cube),
            vec![vec![0, 1], vec![0], vec![1], vec![]]
        );
        assert_eq!(
            axis_sets(1, 1, Totals::Rollup),
            vec![vec![0, 1], vec![0], vec![1], vec![]]
        );
        assert_eq!(axis_sets(1, 1, Totals::None), vec![vec![0, 1]]);
    }
}
