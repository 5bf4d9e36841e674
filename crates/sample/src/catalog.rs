//! The product catalog: categories > subcategories with realistic price bands, a set of
//! brands per category, launch dates and discontinued (inactive) products.

use std::collections::HashSet;

use crate::rng::Rng;

/// One product of the `products` entity.
#[derive(Clone, Debug)]
pub(crate) struct Product {
    /// Natural key, `P00001`…
    pub id: String,
    /// Display name (may contain quotes and commas: exercises CSV quoting).
    pub name: String,
    /// Index into [`Catalog::categories`].
    pub category: usize,
    /// Subcategory name.
    pub subcategory: &'static str,
    /// Brand name.
    pub brand: &'static str,
    /// List price in cents.
    pub list_cents: i64,
    /// Unit cost in cents.
    pub cost_cents: i64,
    /// Launch date (day number); `None` for legacy items with unknown launch.
    pub launched_on: Option<i32>,
    /// First day the product is no longer sold (not exported; drives `active`).
    pub discontinued_on: Option<i32>,
}

impl Product {
    /// Whether the product can be sold on `day`.
    #[inline]
    pub(crate) fn available_on(&self, day: i32) -> bool {
        self.launched_on.is_none_or(|l| l <= day) && self.discontinued_on.is_none_or(|d| day < d)
    }

    /// `active` column: not discontinued.
    pub(crate) fn active(&self) -> bool {
        self.discontinued_on.is_none()
    }
}

/// A top-level category with its shopping behaviour.
#[derive(Clone, Debug)]
pub(crate) struct Category {
    /// Category name.
    pub name: &'static str,
    /// Share of demand before customer preferences.
    pub weight: f64,
    /// Probability a line of this category is returned.
    pub return_rate: f64,
    /// Product indices sorted by list price (for spend-driven product choice).
    pub by_price: Vec<usize>,
}

/// All products and categories.
#[derive(Clone, Debug)]
pub(crate) struct Catalog {
    /// Products in `product_id` order.
    pub products: Vec<Product>,
    /// Categories in a fixed order.
    pub categories: Vec<Category>,
}

struct SubcategorySpec {
    name: &'static str,
    /// Price band in currency units (list prices are log-uniform inside it).
    lo: f64,
    hi: f64,
    items: &'static [&'static str],
}

struct CategorySpec {
    name: &'static str,
    weight: f64,
    return_rate: f64,
    brands: &'static [&'static str],
    subcategories: &'static [SubcategorySpec],
}

const fn sub(
    name: &'static str,
    lo: f64,
    hi: f64,
    items: &'static [&'static str],
) -> SubcategorySpec {
    SubcategorySpec {
        name,
        lo,
        hi,
        items,
    }
}

const SPECS: &[CategorySpec] = &[
    CategorySpec {
        name: "Electronics",
        weight: 0.22,
        return_rate: 0.06,
        brands: &["Voltra", "Sonique", "Nexa", "Pixelon"],
        subcategories: &[
            sub(
                "Audio",
                25.0,
                350.0,
                &[
                    "Wireless Headphones",
                    "Bluetooth Speaker",
                    "Earbuds",
                    "Soundbar",
                    "Turntable",
                ],
            ),
            sub(
                "Phones",
                150.0,
                1200.0,
                &["Smartphone", "Smartphone Pro", "Flip Phone"],
            ),
            sub(
                "Computers",
                350.0,
                2200.0,
                &[
                    "Laptop 14\"",
                    "Laptop 16\"",
                    "Desktop Tower",
                    "Tablet 11\"",
                    "Monitor 27\", 4K",
                ],
            ),
            sub(
                "TV & Video",
                250.0,
                1800.0,
                &["55\" 4K TV", "65\" OLED TV", "Projector", "Streaming Box"],
            ),
            sub(
                "Accessories",
                8.0,
                80.0,
                &[
                    "USB-C Cable",
                    "Phone Case",
                    "Charger",
                    "Power Bank",
                    "Mouse",
                    "Keyboard",
                ],
            ),
        ],
    },
    CategorySpec {
        name: "Home",
        weight: 0.20,
        return_rate: 0.04,
        brands: &["Casa Nova", "Hearthwell", "Lumo"],
        subcategories: &[
            sub(
                "Kitchen",
                10.0,
                300.0,
                &[
                    "Chef's Knife",
                    "Knife Set, 6-Piece",
                    "Blender",
                    "Coffee Maker",
                    "Frying Pan",
                    "Kettle",
                ],
            ),
            sub(
                "Furniture",
                60.0,
                900.0,
                &[
                    "Armchair",
                    "Bookshelf",
                    "Desk",
                    "Dining Chair",
                    "Coffee Table",
                ],
            ),
            sub(
                "Decor",
                8.0,
                120.0,
                &[
                    "Table Lamp",
                    "Vase",
                    "Wall Mirror",
                    "Picture Frame",
                    "Candle Set",
                ],
            ),
            sub(
                "Bedding",
                20.0,
                200.0,
                &["Duvet", "Pillow", "Sheet Set", "Throw Blanket"],
            ),
        ],
    },
    CategorySpec {
        name: "Apparel",
        weight: 0.22,
        return_rate: 0.14,
        brands: &["Northwind", "Urbane", "Strider"],
        subcategories: &[
            sub(
                "Shoes",
                40.0,
                220.0,
                &["Running Shoes", "Sneakers", "Leather Boots", "Sandals"],
            ),
            sub(
                "Men",
                15.0,
                150.0,
                &["Oxford Shirt", "Chinos", "Hoodie", "Rain Jacket", "Polo"],
            ),
            sub(
                "Women",
                15.0,
                180.0,
                &["Summer Dress", "Blouse", "Jeans", "Wool Coat", "Cardigan"],
            ),
            sub(
                "Kids",
                8.0,
                60.0,
                &["T-Shirt", "Pyjamas", "Rain Boots", "Hoodie"],
            ),
        ],
    },
    CategorySpec {
        name: "Beauty",
        weight: 0.12,
        return_rate: 0.03,
        brands: &["Aurelle", "Glowe"],
        subcategories: &[
            sub(
                "Skincare",
                8.0,
                90.0,
                &["Face Cream", "Serum", "Cleanser", "Sunscreen SPF 50"],
            ),
            sub(
                "Makeup",
                6.0,
                60.0,
                &["Lipstick", "Mascara", "Foundation", "Eyeshadow Palette"],
            ),
            sub(
                "Fragrance",
                30.0,
                150.0,
                &["Eau de Parfum", "Eau de Toilette", "Body Mist"],
            ),
        ],
    },
    CategorySpec {
        name: "Sports",
        weight: 0.12,
        return_rate: 0.05,
        brands: &["Peakline", "Trailforge", "Velox"],
        subcategories: &[
            sub(
                "Fitness",
                10.0,
                400.0,
                &[
                    "Yoga Mat",
                    "Dumbbell Set",
                    "Resistance Bands",
                    "Rowing Machine",
                ],
            ),
            sub(
                "Outdoor",
                15.0,
                500.0,
                &[
                    "Tent, 2-Person",
                    "Sleeping Bag",
                    "Hiking Backpack",
                    "Headlamp",
                ],
            ),
            sub(
                "Cycling",
                20.0,
                1500.0,
                &["Road Bike", "Bike Helmet", "Bike Light", "Cycling Gloves"],
            ),
        ],
    },
    CategorySpec {
        name: "Books",
        weight: 0.08,
        return_rate: 0.02,
        brands: &["Paperleaf Press", "Inkwell"],
        subcategories: &[
            sub(
                "Fiction",
                6.0,
                30.0,
                &["Novel", "Thriller", "Short Stories", "Fantasy Saga"],
            ),
            sub(
                "Non-fiction",
                8.0,
                45.0,
                &["Cookbook", "Biography", "History of Europe", "Travel Guide"],
            ),
            sub(
                "Children",
                5.0,
                25.0,
                &["Picture Book", "Activity Book", "Bedtime Stories"],
            ),
        ],
    },
    CategorySpec {
        name: "Toys",
        weight: 0.04,
        return_rate: 0.04,
        brands: &["Brickhaus", "Funfair"],
        subcategories: &[
            sub(
                "Games",
                10.0,
                80.0,
                &["Board Game", "Card Game", "Puzzle 1000 pcs"],
            ),
            sub(
                "Building",
                15.0,
                200.0,
                &["Building Set", "Marble Run", "Robot Kit"],
            ),
        ],
    },
];

const MODEL_SUFFIXES: &[&str] = &[
    "Classic",
    "Pro",
    "Lite",
    "Max",
    "Mini",
    "Plus",
    "Air",
    "Sport",
    "Essential",
    "Signature",
    "X2",
    "S3",
    "Edge",
    "Studio",
];

/// How many products each subcategory gets.
const PRODUCTS_PER_SUBCATEGORY: usize = 8;

/// Builds the catalog for the period [start, end] (day numbers).
pub(crate) fn build_catalog(rng: &mut Rng, start: i32, end: i32) -> Catalog {
    let mut products = Vec::new();
    let mut categories = Vec::new();
    let mut names = HashSet::new();
    for (ci, spec) in SPECS.iter().enumerate() {
        for subcat in spec.subcategories {
            for k in 0..PRODUCTS_PER_SUBCATEGORY {
                let brand = *rng.choose(spec.brands);
                let item = subcat.items[k % subcat.items.len()];
                let mut name = format!("{brand} {item} {}", rng.choose(MODEL_SUFFIXES));
                let mut generation = 2;
                while !names.insert(name.clone()) {
                    name = format!(
                        "{brand} {item} {} Gen {generation}",
                        rng.choose(MODEL_SUFFIXES)
                    );
                    generation += 1;
                }
                let price = (subcat.lo.ln() + rng.f64() * (subcat.hi / subcat.lo).ln()).exp();
                let list_cents = round_price(price);
                let cost_cents = (list_cents as f64 * rng.uniform(0.40, 0.75)).round() as i64;
                let launched_on = if rng.chance(0.12) {
                    None
                } else if rng.chance(0.7) {
                    Some(start - rng.range_i64(30, 5 * 365) as i32)
                } else {
                    Some(start + rng.range_i64(0, i64::from((end - start - 30).max(0))) as i32)
                };
                let first_sold = launched_on.unwrap_or(start).max(start);
                let discontinued_on = if rng.chance(0.12) && end - first_sold > 120 {
                    Some(first_sold + rng.range_i64(90, i64::from(end - first_sold)) as i32)
                } else {
                    None
                };
                products.push(Product {
                    id: format!("P{:05}", products.len() + 1),
                    name,
                    category: ci,
                    subcategory: subcat.name,
                    brand,
                    list_cents,
                    cost_cents,
                    launched_on,
                    discontinued_on,
                });
            }
        }
        categories.push(Category {
            name: spec.name,
            weight: spec.weight,
            return_rate: spec.return_rate,
            by_price: Vec::new(),
        });
    }
    for (ci, cat) in categories.iter_mut().enumerate() {
        let mut idx: Vec<usize> = (0..products.len())
            .filter(|&i| products[i].category == ci)
            .collect();
        idx.sort_by_key(|&i| (products[i].list_cents, i));
        cat.by_price = idx;
    }
    Catalog {
        products,
        categories,
    }
}

/// Retail-style price points: x.99 below 100, whole x9.00 / x4.00 above.
fn round_price(price: f64) -> i64 {
    if price < 100.0 {
        (price.floor().max(1.0) as i64) * 100 + 99
    } else {
        let units = (price / 5.0).round() as i64 * 5 - 1;
        units * 100
    }
}

impl Catalog {
    /// Picks an available product of `category` with list price close to `target_cents`.
    /// Falls back to any product available on `day`; `None` only if nothing is on sale.
    pub(crate) fn pick_near_price(
        &self,
        rng: &mut Rng,
        category: usize,
        target_cents: i64,
        day: i32,
    ) -> Option<usize> {
        let list = &self.categories[category].by_price;
        if list.is_empty() {
            return None;
        }
        let pos = list.partition_point(|&i| self.products[i].list_cents < target_cents);
        // Jitter around the closest price so that the same spend does not always buy the
        // same item.
        let jitter = rng.range_i64(-2, 1);
        let start = (pos as i64 + jitter).clamp(0, list.len() as i64 - 1) as usize;
        for step in 0..list.len() {
            // Walk outward: start, start-1, start+1, start-2, …
            let offset = (step as i64 + 1) / 2 * if step % 2 == 0 { 1 } else { -1 };
            let i = start as i64 + offset;
            if i < 0 || i >= list.len() as i64 {
                continue;
            }
            let p = list[i as usize];
            if self.products[p].available_on(day) {
                return Some(p);
            }
        }
        (0..self.products.len()).find(|&p| self.products[p].available_on(day))
    }

    /// The most expensive list price in a category (cents).
    pub(crate) fn max_price(&self, category: usize) -> i64 {
        self.categories[category]
            .by_price
            .last()
            .map_or(0, |&i| self.products[i].list_cents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::days_from_civil;

    #[test]
    fn catalog_is_realistic() {
        let mut rng = Rng::from_seed(3);
        let start = days_from_civil(2023, 1, 1);
        let end = days_from_civil(2025, 12, 31);
        let cat = build_catalog(&mut rng, start, end);
        assert!((180..=220).contains(&cat.products.len()));
        let mut brands: Vec<&str> = cat.products.iter().map(|p| p.brand).collect();
        brands.sort_unstable();
        brands.dedup();
        assert!((15..=25).contains(&brands.len()));
        let inactive = cat.products.iter().filter(|p| !p.active()).count();
        assert!(inactive > 5 && inactive < 50, "{inactive}");
        for p in &cat.products {
            assert!(
                p.cost_cents >= p.list_cents * 39 / 100 && p.cost_cents <= p.list_cents * 76 / 100
            );
            if let (Some(l), Some(d)) = (p.launched_on, p.discontinued_on) {
                assert!(l < d);
            }
        }
        let mut rng = Rng::from_seed(4);
        let p = cat.pick_near_price(&mut rng, 0, 30_000, start + 400);
        assert!(p.is_some_and(|p| cat.products[p].available_on(start + 400)));
    }
}
