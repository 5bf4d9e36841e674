//! fact_sales: order lines joined to their orders and resolved to dimension keys.
//!
//! A kept line is 24 bytes: its row among the staged lines, its order's row, and its
//! product's key and unit cost. Lines are grouped by month as they are resolved; each
//! month is put in the table's order ([`MonthOrder`]) when it is written, and its
//! columns are made a row group at a time from the staged lines and orders. The fact is never in
//! memory whole, and its columns are never copied from one order into another.

use super::facts::{date_keys, ints, money, row_ranges, FactReject, IdIndex, Resolver};
use super::{opt_str, to_money, Cols, MonthIndex, MonthOrder, MonthlyFact, TableAssembler};
use crate::entity::StagedEntity;
use crate::value::{date_key_of_micros, month_of_ordinal, month_ordinal};
use crate::write::MonthRows;
use arrow::array::{
    Array, BooleanArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt32Array,
};
use crmcube_model::{Error, Result, TableDef};
use rayon::prelude::*;
use std::sync::Arc;

/// What an order gives each of its lines: (order_ts, customer_key, region_key,
/// channel_key, campaign_key).
type OrderKeys = (i64, i64, i64, i64, i64);

/// One kept order line.
#[derive(Debug, Clone, Copy)]
struct Sale {
    /// Row among the staged order lines.
    line: u32,
    /// Row of its order among the staged orders.
    order: u32,
    product_key: i64,
    /// The product's unit cost in cents.
    unit_cost: i64,
}

/// The staged order lines' columns that fact_sales reads.
struct Lines<'a> {
    order_id: &'a StringArray,
    line_no: &'a Int64Array,
    quantity: &'a Int64Array,
    unit_price: &'a Decimal128Array,
    discount: &'a Decimal128Array,
    returned: &'a BooleanArray,
    price_scale: i8,
    discount_scale: i8,
}

/// fact_sales of one load, ready to be written a month at a time (see the module's
/// documentation).
pub struct SalesFact<'a> {
    def: &'a TableDef,
    lines: Lines<'a>,
    orders: Vec<OrderKeys>,
    /// Kept lines, grouped by month (months ascending), each month in line order.
    sales: Vec<Sale>,
    /// The months present and the lines' time range.
    index: MonthIndex,
    /// Where each month starts in `sales` (one more entry than months).
    starts: Vec<usize>,
    /// The order in which months are handed to the writer.
    order: MonthOrder,
    /// Orders and order lines with an orphaned reference.
    orphaned: [u64; 2],
    rejects: Vec<FactReject>,
}

/// One part of the lines, resolved.
struct ResolvedPart {
    /// Kept lines, in line order.
    sales: Vec<Sale>,
    /// The month ordinal (see [`month_ordinal`]) of each kept line.
    months: Vec<i32>,
    rejects: Vec<FactReject>,
    /// Lines with an unknown product.
    orphaned: u64,
    /// The first and last order_ts of the kept lines.
    ts_range: Option<(i64, i64)>,
}

impl<'a> SalesFact<'a> {
    /// Resolves order `lines` against their `orders` and the dimensions. Lines whose
    /// order is missing, or whose discount exceeds their amount, are refused.
    pub fn new(
        def: &'a TableDef,
        lines: &'a StagedEntity,
        orders: &'a StagedEntity,
        r: &Resolver,
    ) -> Result<Self> {
        let o = Cols::new("orders", orders);
        let (o_id, o_cust, o_ts, o_chan, o_reg, o_camp) = (
            o.str("order_id")?,
            o.str("customer_id")?,
            o.ts("order_ts")?,
            o.str("channel")?,
            o.str("region_id")?,
            o.str("campaign_id")?,
        );
        let l = Cols::new("order_lines", lines);
        let l_order = l.str("order_id")?;
        let l_prod = l.str("product_id")?;
        let lines = Lines {
            order_id: l_order,
            line_no: l.int("line_no")?,
            quantity: l.int("quantity")?,
            unit_price: l.dec("unit_price")?,
            discount: l.dec("discount")?,
            returned: l.bool("returned")?,
            price_scale: l.scale("unit_price")?,
            discount_scale: l.scale("discount")?,
        };
        for (entity, n) in [("orders", o_id.len()), ("order_lines", l_order.len())] {
            if n >= u32::MAX as usize {
                return Err(Error::format(
                    "fact_sales",
                    format!("{n} {entity} in one load; at most {} fit", u32::MAX - 1),
                ));
            }
        }

        let keys = || -> (Vec<OrderKeys>, Vec<bool>) {
            (0..o_id.len())
                .into_par_iter()
                .map(|i| {
                    let ts = o_ts.value(i);
                    let (ck, c_orph) = r.customers.resolve(opt_str(o_cust, i), ts);
                    let (rk, r_orph) = r.region(opt_str(o_reg, i));
                    let (chk, ch_orph) = r.channel(opt_str(o_chan, i));
                    let ((mk, _), m_orph) = r.campaign(opt_str(o_camp, i));
                    ((ts, ck, rk, chk, mk), c_orph || r_orph || ch_orph || m_orph)
                })
                .unzip()
        };
        let (order_idx, (orders, order_orphaned)) = rayon::join(|| IdIndex::new(o_id), keys);
        let orders_orphaned = order_orphaned.iter().filter(|&&o| o).count() as u64;
        drop(order_orphaned);

        let month_of = |ts: i64| month_ordinal(date_key_of_micros(ts) / 100);
        let part = |range: std::ops::Range<usize>| -> Result<ResolvedPart> {
            let mut sales = Vec::with_capacity(range.len());
            let mut months = Vec::with_capacity(range.len());
            let mut ts_range: Option<(i64, i64)> = None;
            let mut rejects = Vec::new();
            let mut orphaned = 0u64;
            let mut order_of = order_idx.cursor();
            for i in range {
                let order_id = l_order.value(i);
                let Some(oi) = order_of.get(order_id) else {
                    rejects.push((
                        i,
                        "order_id",
                        order_id.to_string(),
                        "order_id not found among the loaded orders (missing from the export, or quarantined); a line needs its order".to_string(),
                    ));
                    continue;
                };
                let qty = lines.quantity.value(i);
                let unit = to_money(lines.unit_price.value(i), lines.price_scale);
                let d = to_money(lines.discount.value(i), lines.discount_scale);
                let g = unit * i128::from(qty);
                if d > g {
                    rejects.push((
                        i,
                        "discount",
                        format!("{:.2}", d as f64 / 100.0),
                        format!(
                            "discount exceeds the line amount {:.2} (quantity × unit_price)",
                            g as f64 / 100.0
                        ),
                    ));
                    continue;
                }
                let product = opt_str(l_prod, i);
                let ((product_key, unit_cost), p_orph) = r.product(product);
                if p_orph {
                    orphaned += 1;
                }
                let unit_cost = i64::try_from(unit_cost).map_err(|_| {
                    Error::format(
                        "fact_sales",
                        format!(
                            "product {}: unit cost of {unit_cost} cents is out of range",
                            product.unwrap_or_default()
                        ),
                    )
                })?;
                sales.push(Sale {
                    line: i as u32,
                    order: oi as u32,
                    product_key,
                    unit_cost,
                });
                let ts = orders[oi].0;
                months.push(month_of(ts));
                ts_range = Some(ts_range.map_or((ts, ts), |(a, b)| (a.min(ts), b.max(ts))));
            }
            Ok(ResolvedPart {
                sales,
                months,
                rejects,
                orphaned,
                ts_range,
            })
        };
        let parts = row_ranges(l_order.len())
            .into_par_iter()
            .map(part)
            .collect::<Result<Vec<_>>>()?;

        // Group the kept lines by month, keeping line order inside a month.
        let ts_range = parts
            .iter()
            .filter_map(|p| p.ts_range)
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)));
        let (lo, hi) = ts_range.map_or((0, -1), |(a, b)| (month_of(a), month_of(b)));
        let mut counts = vec![0usize; (hi - lo + 1).max(0) as usize];
        for p in &parts {
            for &m in &p.months {
                counts[(m - lo) as usize] += 1;
            }
        }
        let mut starts = vec![0usize];
        let (mut months, mut month_rows, mut next) = (Vec::new(), Vec::new(), Vec::new());
        for (k, &c) in counts.iter().enumerate() {
            next.push(*starts.last().unwrap_or(&0));
            if c > 0 {
                months.push(month_of_ordinal(lo + k as i32));
                month_rows.push(c);
                starts.push(starts.last().unwrap_or(&0) + c);
            }
        }
        let total = *starts.last().unwrap_or(&0);
        let mut sales = vec![
            Sale {
                line: 0,
                order: 0,
                product_key: 0,
                unit_cost: 0,
            };
            total
        ];
        let mut rejects = Vec::new();
        let mut lines_orphaned = 0;
        for part in parts {
            for (s, m) in part.sales.into_iter().zip(part.months) {
                let slot = &mut next[(m - lo) as usize];
                sales[*slot] = s;
                *slot += 1;
            }
            rejects.extend(part.rejects);
            lines_orphaned += part.orphaned;
        }
        Ok(SalesFact {
            def,
            lines,
            orders,
            sales,
            index: MonthIndex {
                months,
                rows: month_rows,
                ts_range,
            },
            starts,
            order: MonthOrder::of(&def.sort_by),
            orphaned: [orders_orphaned, lines_orphaned],
            rejects,
        })
    }

    /// Rows with an orphaned reference (per source entity) and refused lines, taken
    /// once.
    pub fn outcome(&mut self) -> (Vec<(&'static str, u64)>, Vec<FactReject>) {
        (
            vec![
                ("orders", self.orphaned[0]),
                ("order_lines", self.orphaned[1]),
            ],
            std::mem::take(&mut self.rejects),
        )
    }

    /// The kept lines of `months[k]`, in line order.
    fn month_sales(&self, k: usize) -> &[Sale] {
        &self.sales[self.starts[k]..self.starts[k + 1]]
    }

    /// Month `k`'s lines in the order (date_key) or (date_key, customer_key); lines
    /// that tie keep their order.
    ///
    /// By date_key alone, a counting sort on the day of the month: each line's order
    /// is looked up once, and the lines are placed in two passes.
    fn sorted_month(&self, k: usize) -> Vec<Sale> {
        let sales = self.month_sales(k);
        if self.order == MonthOrder::DayCustomer {
            let mut keys: Vec<(i32, i64, u32)> = sales
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    let (ts, customer, ..) = self.orders[s.order as usize];
                    (date_key_of_micros(ts), customer, j as u32)
                })
                .collect();
            keys.sort_unstable();
            return keys.into_iter().map(|(.., j)| sales[j as usize]).collect();
        }
        let days: Vec<u8> = sales
            .iter()
            .map(|s| (date_key_of_micros(self.orders[s.order as usize].0) % 100) as u8)
            .collect();
        let mut next = [0usize; 33];
        for &d in &days {
            next[usize::from(d) + 1] += 1;
        }
        for d in 1..next.len() {
            next[d] += next[d - 1];
        }
        let mut out = sales.to_vec();
        for (s, &d) in sales.iter().zip(&days) {
            let slot = &mut next[usize::from(d)];
            out[*slot] = *s;
            *slot += 1;
        }
        out
    }

    /// The table's columns for `sales`, in their order.
    fn columns(&self, sales: &[Sale]) -> Result<RecordBatch> {
        let n = sales.len();
        let l = &self.lines;
        let rows = UInt32Array::from_iter_values(sales.iter().map(|s| s.line));
        let take = |a: &dyn Array| {
            arrow::compute::take(a, &rows, None).map_err(|e| Error::format("fact_sales", e))
        };
        let [mut ts, mut cust, mut prod, mut reg, mut chan, mut camp]: [Vec<i64>; 6] =
            std::array::from_fn(|_| Vec::with_capacity(n));
        let [mut price, mut gross, mut disc, mut revenue, mut cost, mut profit]: [Vec<i128>; 6] =
            std::array::from_fn(|_| Vec::with_capacity(n));
        for s in sales {
            let (t, ck, rk, chk, mk) = self.orders[s.order as usize];
            let i = s.line as usize;
            let qty = i128::from(l.quantity.value(i));
            let unit = to_money(l.unit_price.value(i), l.price_scale);
            let d = to_money(l.discount.value(i), l.discount_scale);
            let g = unit * qty;
            let rev = g - d;
            let c = i128::from(s.unit_cost) * qty;
            ts.push(t);
            cust.push(ck);
            prod.push(s.product_key);
            reg.push(rk);
            chan.push(chk);
            camp.push(mk);
            price.push(unit);
            gross.push(g);
            disc.push(d);
            revenue.push(rev);
            cost.push(c);
            profit.push(rev - c);
        }
        let mut t = TableAssembler::new("fact_sales", self.def);
        t.set("order_id", take(l.order_id)?)
            .set("line_no", take(l.line_no)?)
            .set("date_key", date_keys(&ts))
            .set("order_ts", Arc::new(TimestampMicrosecondArray::from(ts)))
            .set("customer_key", ints(cust))
            .set("product_key", ints(prod))
            .set("region_key", ints(reg))
            .set("channel_key", ints(chan))
            .set("campaign_key", ints(camp))
            .set("quantity", take(l.quantity)?)
            .set("unit_price", money(price)?)
            .set("gross_amount", money(gross)?)
            .set("discount", money(disc)?)
            .set("revenue", money(revenue)?)
            .set("cost", money(cost)?)
            .set("gross_profit", money(profit)?)
            .set("returned", take(l.returned)?);
        t.finish(n)
    }
}

impl MonthlyFact for SalesFact<'_> {
    fn time_column(&self) -> &str {
        "order_ts"
    }

    fn index(&self) -> &MonthIndex {
        &self.index
    }

    fn month(&self, k: usize) -> Result<MonthRows<'_>> {
        if self.order == MonthOrder::Other {
            return self.build_month(k).map(MonthRows::Batch);
        }
        let sales = self.sorted_month(k);
        Ok(MonthRows::in_row_groups(
            self.def.arrow_schema(),
            sales.len(),
            move |r| self.columns(&sales[r]),
        ))
    }

    fn build_month(&self, k: usize) -> Result<RecordBatch> {
        match self.order {
            MonthOrder::Other => self.columns(self.month_sales(k)),
            _ => self.columns(&self.sorted_month(k)),
        }
    }

    fn build_empty(&self) -> Result<RecordBatch> {
        self.columns(&[])
    }
}
