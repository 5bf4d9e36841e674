//! `mine basket`: association rules and cross-sell suggestions.

use super::{batch, cast, floats, ints, round, rows, strings};
use crate::commands::{runtime, Context};
use crate::output::{emit, Format};
use anyhow::Result;
use arrow::array::AsArray;
use arrow::datatypes::DataType;
use crmcube_cube::Warehouse;
use crmcube_mining::basket::{association_rules, suggestions, Baskets, RuleOptions};
use crmcube_model::Error;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Flags of `mine basket`.
#[derive(clap::Args)]
pub struct BasketArgs {
    /// Warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    /// Product level of the basket items.
    #[arg(long, value_enum, default_value = "subcategory")]
    pub level: BasketLevel,
    /// Least share of orders holding antecedent and consequent together (0..1).
    #[arg(long, default_value_t = 0.01)]
    pub min_support: f64,
    /// Least confidence of a rule (0..1).
    #[arg(long, default_value_t = 0.2)]
    pub min_confidence: f64,
    /// Most items in a rule (antecedent and consequent together).
    #[arg(long, default_value_t = 3)]
    pub max_len: usize,
    /// Rules to print, best lift first (0 = all).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Write cross-sell suggestions per customer to this CSV file.
    #[arg(long)]
    pub suggestions: Option<PathBuf>,
    /// Suggestions per customer.
    #[arg(long, default_value_t = 3)]
    pub per_customer: usize,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the rules to a file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Product levels for basket items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BasketLevel {
    /// dim_product.category.
    Category,
    /// dim_product.subcategory.
    Subcategory,
    /// dim_product.product_name.
    Product,
}

impl BasketLevel {
    fn column(self) -> &'static str {
        match self {
            BasketLevel::Category => "category",
            BasketLevel::Subcategory => "subcategory",
            BasketLevel::Product => "product_name",
        }
    }
}

/// Runs `mine basket`.
pub fn run_basket(ctx: &Context, a: BasketArgs) -> Result<()> {
    let col = a.level.column();
    let rt = runtime()?;
    let (pairs, bought) = rt.block_on(async {
        let wh = Warehouse::open(&a.warehouse).await?;
        let q = format!(
            "SELECT f.order_id, p.{col} FROM fact_sales f \
             JOIN dim_product p ON f.product_key = p.product_key \
             WHERE f.product_key <> 0 AND p.{col} IS NOT NULL GROUP BY 1, 2"
        );
        let mut pairs: Vec<(String, String)> = vec![];
        for b in rows(&wh, &q).await? {
            let (o, i) = (cast(&b, 0, &DataType::Utf8)?, cast(&b, 1, &DataType::Utf8)?);
            let (o, i) = (o.as_string::<i32>(), i.as_string::<i32>());
            for r in 0..b.num_rows() {
                pairs.push((o.value(r).to_string(), i.value(r).to_string()));
            }
        }
        let mut bought: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        if a.suggestions.is_some() {
            let q = format!(
                "SELECT DISTINCT c.customer_id, p.{col} FROM fact_sales f \
                 JOIN dim_customer c ON f.customer_key = c.customer_key \
                 JOIN dim_product p ON f.product_key = p.product_key \
                 WHERE f.customer_key <> 0 AND f.product_key <> 0 AND p.{col} IS NOT NULL"
            );
            for b in rows(&wh, &q).await? {
                let (c, i) = (cast(&b, 0, &DataType::Utf8)?, cast(&b, 1, &DataType::Utf8)?);
                let (c, i) = (c.as_string::<i32>(), i.as_string::<i32>());
                for r in 0..b.num_rows() {
                    bought
                        .entry(c.value(r).to_string())
                        .or_default()
                        .insert(i.value(r).to_string());
                }
            }
        }
        anyhow::Ok((pairs, bought))
    })?;
    if pairs.is_empty() {
        return Err(Error::Data(
            "fact_sales holds no order lines with a known product; no baskets to mine".into(),
        )
        .into());
    }
    let baskets = Baskets::from_pairs(pairs.iter().map(|(o, i)| (o.as_str(), i.as_str())));
    let opts = RuleOptions {
        min_support: a.min_support,
        min_confidence: a.min_confidence,
        max_len: a.max_len,
    };
    let rules = association_rules(&baskets, &opts)?;
    ctx.note(format!(
        "{} orders, {} distinct items at {} level, {} rules at support >= {} and confidence >= {}",
        baskets.baskets.len(),
        baskets.items.len(),
        a.level.column().trim_end_matches("_name"),
        rules.len(),
        a.min_support,
        a.min_confidence
    ));
    if let Some(path) = &a.suggestions {
        let s = suggestions(&rules, &bought, a.per_customer);
        let b = batch(vec![
            strings("customer_id", s.iter().map(|x| x.customer.clone())),
            ints("rank", s.iter().map(|x| i64::from(x.rank))),
            strings("item", s.iter().map(|x| x.item.clone())),
            floats("confidence", s.iter().map(|x| round(x.confidence, 4))),
            floats("lift", s.iter().map(|x| round(x.lift, 4))),
            strings("because", s.iter().map(|x| x.because.clone())),
        ])?;
        emit(Some(path), &b.schema(), &[b], Format::Csv)?;
        let customers: BTreeSet<&str> = s.iter().map(|x| x.customer.as_str()).collect();
        ctx.note(format!(
            "wrote {} suggestions for {} customers to {}",
            s.len(),
            customers.len(),
            path.display()
        ));
    }
    let shown = if a.top == 0 {
        &rules[..]
    } else {
        &rules[..a.top.min(rules.len())]
    };
    let b = batch(vec![
        strings("antecedent", shown.iter().map(|r| r.antecedent.join(" + "))),
        strings("consequent", shown.iter().map(|r| r.consequent.join(" + "))),
        ints("count", shown.iter().map(|r| r.count as i64)),
        floats("support", shown.iter().map(|r| round(r.support, 4))),
        floats("confidence", shown.iter().map(|r| round(r.confidence, 4))),
        floats("lift", shown.iter().map(|r| round(r.lift, 3))),
    ])?;
    emit(a.output.as_deref(), &b.schema(), &[b], a.format)
}
