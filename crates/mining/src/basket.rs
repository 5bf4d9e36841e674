//! Market-basket analysis: frequent itemsets by FP-growth (Han, Pei & Yin 2000),
//! association rules, and cross-sell suggestions per customer.
//!
//! Definitions, over N baskets: support(X) = baskets containing X / N;
//! confidence(A → C) = support(A ∪ C) / support(A); lift(A → C) = confidence / support(C)
//! (above 1: buying A makes C more likely than it is on its own).

use crmcube_model::{Error, Result};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Baskets of items, items interned as numbers.
#[derive(Debug, Clone, Default)]
pub struct Baskets {
    /// Item names; an item's number is its index here.
    pub items: Vec<String>,
    /// Each basket's distinct items, ascending.
    pub baskets: Vec<Vec<u32>>,
}

impl Baskets {
    /// Builds baskets from (basket id, item) pairs in any order; duplicates collapse.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut names: BTreeSet<&str> = BTreeSet::new();
        let mut by_basket: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (b, i) in pairs {
            names.insert(i);
            by_basket.entry(b).or_default().push(i);
        }
        let items: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let index: HashMap<&str, u32> = names
            .iter()
            .enumerate()
            .map(|(k, s)| (*s, k as u32))
            .collect();
        let baskets = by_basket
            .into_values()
            .map(|v| {
                let mut ids: Vec<u32> = v.iter().map(|s| index[s]).collect();
                ids.sort_unstable();
                ids.dedup();
                ids
            })
            .collect();
        Baskets { items, baskets }
    }
}

/// A node of the FP-tree.
struct Node {
    item: u32,
    count: usize,
    parent: usize,
    children: Vec<usize>,
}

/// An FP-tree over weighted transactions, each already filtered to frequent items and
/// ordered by descending frequency.
struct FpTree {
    nodes: Vec<Node>,
    /// Nodes of each item, by item.
    header: BTreeMap<u32, Vec<usize>>,
    /// Item order: most frequent first (ties by item number).
    order: Vec<(u32, usize)>,
}

const ROOT: usize = 0;

impl FpTree {
    fn build(transactions: &[(Vec<u32>, usize)], min_count: usize) -> Self {
        let mut freq: HashMap<u32, usize> = HashMap::new();
        for (t, w) in transactions {
            for &i in t {
                *freq.entry(i).or_default() += w;
            }
        }
        let mut order: Vec<(u32, usize)> = freq.into_iter().filter(|e| e.1 >= min_count).collect();
        order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let rank: HashMap<u32, usize> = order.iter().enumerate().map(|(r, e)| (e.0, r)).collect();
        let mut tree = FpTree {
            nodes: vec![Node {
                item: u32::MAX,
                count: 0,
                parent: ROOT,
                children: vec![],
            }],
            header: BTreeMap::new(),
            order,
        };
        for (t, w) in transactions {
            let mut path: Vec<u32> = t.iter().copied().filter(|i| rank.contains_key(i)).collect();
            path.sort_by_key(|i| rank[i]);
            let mut at = ROOT;
            for item in path {
                let found = tree.nodes[at]
                    .children
                    .iter()
                    .copied()
                    .find(|&c| tree.nodes[c].item == item);
                at = match found {
                    Some(c) => c,
                    None => {
                        let id = tree.nodes.len();
                        tree.nodes.push(Node {
                            item,
                            count: 0,
                            parent: at,
                            children: vec![],
                        });
                        tree.nodes[at].children.push(id);
                        tree.header.entry(item).or_default().push(id);
                        id
                    }
                };
                tree.nodes[at].count += w;
            }
        }
        tree
    }

    /// Adds every frequent itemset that ends in `suffix` to `out`.
    fn mine(&self, suffix: &[u32], min_count: usize, max_len: usize, out: &mut Vec<Itemset>) {
        // Least frequent first, the classic order; any order gives the same sets.
        for &(item, count) in self.order.iter().rev() {
            let mut set: Vec<u32> = suffix.to_vec();
            set.push(item);
            set.sort_unstable();
            out.push(Itemset {
                items: set.clone(),
                count,
            });
            if set.len() >= max_len {
                continue;
            }
            let base: Vec<(Vec<u32>, usize)> = self.header[&item]
                .iter()
                .filter_map(|&n| {
                    let mut prefix = vec![];
                    let mut at = self.nodes[n].parent;
                    while at != ROOT {
                        prefix.push(self.nodes[at].item);
                        at = self.nodes[at].parent;
                    }
                    (!prefix.is_empty()).then(|| (prefix, self.nodes[n].count))
                })
                .collect();
            if base.is_empty() {
                continue;
            }
            let conditional = FpTree::build(&base, min_count);
            if !conditional.order.is_empty() {
                conditional.mine(&set, min_count, max_len, out);
            }
        }
    }
}

/// A frequent itemset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Itemset {
    /// Item numbers, ascending.
    pub items: Vec<u32>,
    /// Baskets containing all of them.
    pub count: usize,
}

/// Every itemset of at most `max_len` items found in at least `min_count` baskets, sorted
/// by items.
pub fn frequent_itemsets(baskets: &[Vec<u32>], min_count: usize, max_len: usize) -> Vec<Itemset> {
    let min_count = min_count.max(1);
    let weighted: Vec<(Vec<u32>, usize)> = baskets.iter().map(|b| (b.clone(), 1)).collect();
    let tree = FpTree::build(&weighted, min_count);
    let mut out = vec![];
    if max_len > 0 {
        tree.mine(&[], min_count, max_len, &mut out);
    }
    out.sort();
    out
}

/// An association rule A → C.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Items of A, ascending by name.
    pub antecedent: Vec<String>,
    /// Items of C, ascending by name.
    pub consequent: Vec<String>,
    /// Baskets holding A ∪ C.
    pub count: usize,
    /// support(A ∪ C).
    pub support: f64,
    /// support(A ∪ C) / support(A).
    pub confidence: f64,
    /// confidence / support(C).
    pub lift: f64,
}

/// Settings of a rule search.
#[derive(Debug, Clone, Copy)]
pub struct RuleOptions {
    /// Least support of A ∪ C, 0..1.
    pub min_support: f64,
    /// Least confidence, 0..1.
    pub min_confidence: f64,
    /// Most items in A ∪ C.
    pub max_len: usize,
}

/// Rules meeting the thresholds, ordered by lift, then confidence, then count (all
/// descending), then by names.
pub fn association_rules(baskets: &Baskets, opts: &RuleOptions) -> Result<Vec<Rule>> {
    for (name, v) in [
        ("min support", opts.min_support),
        ("min confidence", opts.min_confidence),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(Error::Usage(format!(
                "{name} must be between 0 and 1, found {v}"
            )));
        }
    }
    if opts.max_len < 2 {
        return Err(Error::Usage(format!(
            "a rule needs itemsets of at least 2 items; max length is {}",
            opts.max_len
        )));
    }
    let n = baskets.baskets.len();
    if n == 0 {
        return Ok(vec![]);
    }
    let nf = n as f64;
    // The smallest count whose support reaches min_support (guarding against rounding).
    let mut min_count = (opts.min_support * nf).ceil() as usize;
    while min_count > 0 && (min_count - 1) as f64 / nf >= opts.min_support {
        min_count -= 1;
    }
    let sets = frequent_itemsets(&baskets.baskets, min_count.max(1), opts.max_len);
    let counts: HashMap<&[u32], usize> = sets.iter().map(|s| (&s.items[..], s.count)).collect();
    let names = |ids: &[u32]| -> Vec<String> {
        let mut v: Vec<String> = ids
            .iter()
            .map(|&i| baskets.items[i as usize].clone())
            .collect();
        v.sort();
        v
    };
    let mut rules = vec![];
    for s in sets.iter().filter(|s| s.items.len() >= 2) {
        let k = s.items.len();
        for mask in 1..(1u32 << k) - 1 {
            let (a, c): (Vec<u32>, Vec<u32>) = {
                let mut a = vec![];
                let mut c = vec![];
                for (bit, &item) in s.items.iter().enumerate() {
                    if mask & (1 << bit) != 0 {
                        a.push(item);
                    } else {
                        c.push(item);
                    }
                }
                (a, c)
            };
            // Every subset of a frequent itemset is frequent, so both counts exist.
            let (Some(&ca), Some(&cc)) = (counts.get(&a[..]), counts.get(&c[..])) else {
                continue;
            };
            let confidence = s.count as f64 / ca as f64;
            if confidence + 1e-12 < opts.min_confidence {
                continue;
            }
            rules.push(Rule {
                antecedent: names(&a),
                consequent: names(&c),
                count: s.count,
                support: s.count as f64 / nf,
                confidence,
                lift: confidence / (cc as f64 / nf),
            });
        }
    }
    rules.sort_by(|x, y| {
        y.lift
            .total_cmp(&x.lift)
            .then(y.confidence.total_cmp(&x.confidence))
            .then(y.count.cmp(&x.count))
            .then(x.antecedent.cmp(&y.antecedent))
            .then(x.consequent.cmp(&y.consequent))
    });
    Ok(rules)
}

/// A cross-sell suggestion.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// Customer identifier.
    pub customer: String,
    /// 1 = best.
    pub rank: u32,
    /// Suggested item.
    pub item: String,
    /// Confidence of the best rule that suggests it.
    pub confidence: f64,
    /// Lift of that rule.
    pub lift: f64,
    /// That rule's antecedent, items joined by " + ".
    pub because: String,
}

/// Up to `k` suggestions per customer: consequents of single-item-consequent rules with
/// lift above 1 whose antecedent the customer has bought, leaving out items already bought;
/// each item scored by its best rule (confidence, then lift). `bought` maps customers to
/// items. Rules with lift at or below 1 are left out: their antecedent makes the consequent
/// no more likely than it is anyway.
pub fn suggestions(
    rules: &[Rule],
    bought: &BTreeMap<String, BTreeSet<String>>,
    k: usize,
) -> Vec<Suggestion> {
    let single: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.consequent.len() == 1 && r.lift > 1.0)
        .collect();
    let per_customer: Vec<Vec<Suggestion>> = bought
        .par_iter()
        .map(|(customer, items)| {
            let mut best: BTreeMap<&str, &Rule> = BTreeMap::new();
            for r in &single {
                let item = r.consequent[0].as_str();
                if items.contains(item) || !r.antecedent.iter().all(|a| items.contains(a)) {
                    continue;
                }
                let better = best.get(item).is_none_or(|b| {
                    (r.confidence, r.lift) > (b.confidence, b.lift)
                        || ((r.confidence, r.lift) == (b.confidence, b.lift)
                            && r.antecedent < b.antecedent)
                });
                if better {
                    best.insert(item, r);
                }
            }
            let mut ranked: Vec<(&str, &Rule)> = best.into_iter().collect();
            ranked.sort_by(|x, y| {
                y.1.confidence
                    .total_cmp(&x.1.confidence)
                    .then(y.1.lift.total_cmp(&x.1.lift))
                    .then(x.0.cmp(y.0))
            });
            ranked
                .into_iter()
                .take(k)
                .enumerate()
                .map(|(i, (item, r))| Suggestion {
                    customer: customer.clone(),
                    rank: i as u32 + 1,
                    item: item.to_string(),
                    confidence: r.confidence,
                    lift: r.lift,
                    because: r.antecedent.join(" + "),
                })
                .collect()
        })
        .collect();
    per_customer.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;

    fn hand_made() -> Baskets {
        // 10 baskets over bread (B), milk (M), eggs (E), tea (T).
        let rows = [
            ("1", "B M"),
            ("2", "B M"),
            ("3", "B M E"),
            ("4", "B E"),
            ("5", "M T"),
            ("6", "B M E"),
            ("7", "T"),
            ("8", "B"),
            ("9", "M E"),
            ("10", "B M"),
        ];
        let pairs: Vec<(&str, &str)> = rows
            .iter()
            .flat_map(|(b, items)| items.split(' ').map(move |i| (*b, i)))
            .collect();
        Baskets::from_pairs(pairs)
    }

    fn find<'a>(rules: &'a [Rule], a: &[&str], c: &[&str]) -> &'a Rule {
        rules
            .iter()
            .find(|r| r.antecedent == a && r.consequent == c)
            .unwrap_or_else(|| panic!("no rule {a:?} -> {c:?} in {rules:#?}"))
    }

    #[test]
    fn rules_match_hand_computed_support_confidence_and_lift() {
        let b = hand_made();
        assert_eq!(b.baskets.len(), 10);
        let rules = association_rules(
            &b,
            &RuleOptions {
                min_support: 0.2,
                min_confidence: 0.5,
                max_len: 3,
            },
        )
        .unwrap();
        // B: 7 baskets, M: 7, E: 4, T: 2; BM: 5, BE: 3, ME: 3, BME: 2.
        // B → M: support 5/10, confidence 5/7, lift (5/7)/(7/10) = 50/49.
        let r = find(&rules, &["B"], &["M"]);
        assert_eq!(r.count, 5);
        assert!((r.support - 0.5).abs() < 1e-12);
        assert!((r.confidence - 5.0 / 7.0).abs() < 1e-12);
        assert!((r.lift - 50.0 / 49.0).abs() < 1e-12);
        // E → B: confidence 3/4, lift (3/4)/(7/10) = 15/14.
        let r = find(&rules, &["E"], &["B"]);
        assert!((r.confidence - 0.75).abs() < 1e-12 && (r.lift - 15.0 / 14.0).abs() < 1e-12);
        // B,E → M: support 2/10, confidence 2/3, lift (2/3)/(7/10) = 20/21.
        let r = find(&rules, &["B", "E"], &["M"]);
        assert_eq!(r.count, 2);
        assert!((r.confidence - 2.0 / 3.0).abs() < 1e-12 && (r.lift - 20.0 / 21.0).abs() < 1e-12);
        // B → E has confidence 3/7 < 0.5; B → M,E confidence 2/7: both below.
        assert!(!rules
            .iter()
            .any(|r| r.antecedent == ["B"] && r.consequent == ["E"]));
        assert!(!rules
            .iter()
            .any(|r| r.consequent == ["E", "M"] && r.antecedent == ["B"]));
        // T appears in 2 baskets but never with another item at support 0.2.
        assert!(!rules
            .iter()
            .flat_map(|r| r.antecedent.iter().chain(&r.consequent))
            .any(|i| i == "T"));
        // Sorted by lift.
        assert!(rules.windows(2).all(|w| w[0].lift >= w[1].lift));
        assert_eq!(rules.len(), 7, "{rules:#?}");
    }

    #[test]
    fn fp_growth_equals_brute_force_enumeration() {
        let mut rng = SplitMix(99);
        for round in 0..30 {
            let items = 3 + rng.below(8) as u32;
            let n = 5 + rng.below(80) as usize;
            let baskets: Vec<Vec<u32>> = (0..n)
                .map(|_| {
                    let mut b: Vec<u32> = (0..items)
                        .filter(|&i| rng.uniform() < 0.15 + 0.5 / f64::from(i + 1))
                        .collect();
                    b.sort_unstable();
                    b
                })
                .collect();
            let min_count = 1 + rng.below(6) as usize;
            let max_len = 1 + rng.below(items as u64 + 1) as usize;
            let mut expected = vec![];
            for mask in 1u32..(1 << items) {
                let set: Vec<u32> = (0..items).filter(|i| mask & (1 << i) != 0).collect();
                if set.len() > max_len {
                    continue;
                }
                let count = baskets
                    .iter()
                    .filter(|b| set.iter().all(|i| b.contains(i)))
                    .count();
                if count >= min_count {
                    expected.push(Itemset { items: set, count });
                }
            }
            expected.sort();
            assert_eq!(
                frequent_itemsets(&baskets, min_count, max_len),
                expected,
                "round {round}: {items} items, {n} baskets, min {min_count}, max len {max_len}"
            );
        }
    }

    #[test]
    fn suggestions_skip_bought_items_and_rank_by_confidence() {
        let b = hand_made();
        let rules = association_rules(
            &b,
            &RuleOptions {
                min_support: 0.2,
                min_confidence: 0.5,
                max_len: 3,
            },
        )
        .unwrap();
        let mut bought = BTreeMap::new();
        bought.insert("alice".to_string(), BTreeSet::from(["E".to_string()]));
        bought.insert(
            "bob".to_string(),
            BTreeSet::from(["B".to_string(), "M".to_string(), "E".to_string()]),
        );
        bought.insert("carol".to_string(), BTreeSet::from(["T".to_string()]));
        let s = suggestions(&rules, &bought, 5);
        // alice bought E: E → B (3/4) and E → M (3/4, same lift 15/14) tie; names decide.
        let alice: Vec<_> = s.iter().filter(|x| x.customer == "alice").collect();
        assert_eq!(
            alice.iter().map(|x| x.item.as_str()).collect::<Vec<_>>(),
            vec!["B", "M"]
        );
        assert_eq!(alice[0].because, "E");
        assert!((alice[0].confidence - 0.75).abs() < 1e-12);
        // bob has everything the rules can offer; carol bought nothing rules know.
        assert!(s.iter().all(|x| x.customer == "alice"));
        assert_eq!(suggestions(&rules, &bought, 1).len(), 1);
        // A confident rule with lift below 1 is no reason to suggest its consequent.
        let rule = |c: &str, confidence: f64, lift: f64| Rule {
            antecedent: vec!["X".into()],
            consequent: vec![c.into()],
            count: 1,
            support: 0.1,
            confidence,
            lift,
        };
        let rules = vec![rule("Y", 0.9, 0.8), rule("Z", 0.3, 1.5)];
        let bought = BTreeMap::from([("dave".to_string(), BTreeSet::from(["X".to_string()]))]);
        let s = suggestions(&rules, &bought, 5);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].item.as_str(), s[0].because.as_str()), ("Z", "X"));
    }

    #[test]
    fn thresholds_are_checked() {
        let b = hand_made();
        let bad = RuleOptions {
            min_support: 1.5,
            min_confidence: 0.5,
            max_len: 3,
        };
        assert!(association_rules(&b, &bad)
            .unwrap_err()
            .to_string()
            .contains("min support"));
        assert!(association_rules(
            &Baskets::default(),
            &RuleOptions {
                min_support: 0.1,
                ..bad
            }
        )
        .unwrap()
        .is_empty());
    }
}
