//! The cities the business sells to: real city, country and sales-region names, with a
//! relative customer weight, whether the city has one of our stores, and which name list
//! fits its population.

use crate::names::Culture;

/// One city of the `regions` entity.
#[derive(Clone, Debug)]
pub(crate) struct City {
    /// Natural key, `R001`…
    pub id: String,
    /// City name.
    pub city: &'static str,
    /// Country name.
    pub country: &'static str,
    /// ISO 3166-1 alpha-2 code.
    pub country_code: &'static str,
    /// Sales region (one of the five of the contract).
    pub region: &'static str,
    /// Index of `region` in [`REGIONS`].
    pub region_index: usize,
    /// Relative share of customers living here.
    pub weight: f64,
    /// Whether one of our stores is in this city.
    pub has_store: bool,
    /// Which first/last-name list customers here draw from.
    pub culture: Culture,
}

/// The five sales regions of the contract.
pub(crate) const REGIONS: [&str; 5] = [
    "Europe",
    "North America",
    "Latin America",
    "Asia Pacific",
    "Middle East & Africa",
];

use Culture::*;

/// (city, country, code, region index, weight, store, culture)
type CityRow = (
    &'static str,
    &'static str,
    &'static str,
    usize,
    f64,
    bool,
    Culture,
);

const CITIES: &[CityRow] = &[
    ("Berlin", "Germany", "DE", 0, 3.6, true, German),
    ("Munich", "Germany", "DE", 0, 1.5, false, German),
    ("Hamburg", "Germany", "DE", 0, 1.8, false, German),
    ("Cologne", "Germany", "DE", 0, 1.1, false, German),
    ("Frankfurt", "Germany", "DE", 0, 0.8, false, German),
    ("Paris", "France", "FR", 0, 3.5, true, French),
    ("Lyon", "France", "FR", 0, 0.9, false, French),
    ("Marseille", "France", "FR", 0, 0.9, false, French),
    ("Toulouse", "France", "FR", 0, 0.5, false, French),
    ("London", "United Kingdom", "GB", 0, 4.5, true, English),
    ("Manchester", "United Kingdom", "GB", 0, 1.2, false, English),
    ("Birmingham", "United Kingdom", "GB", 0, 1.1, false, English),
    ("Edinburgh", "United Kingdom", "GB", 0, 0.5, false, English),
    ("Madrid", "Spain", "ES", 0, 2.2, true, Spanish),
    ("Barcelona", "Spain", "ES", 0, 1.7, false, Spanish),
    ("Valencia", "Spain", "ES", 0, 0.6, false, Spanish),
    ("Rome", "Italy", "IT", 0, 1.9, false, Italian),
    ("Milan", "Italy", "IT", 0, 1.8, true, Italian),
    ("Naples", "Italy", "IT", 0, 0.7, false, Italian),
    ("Amsterdam", "Netherlands", "NL", 0, 1.2, true, German),
    ("Rotterdam", "Netherlands", "NL", 0, 0.6, false, German),
    ("Stockholm", "Sweden", "SE", 0, 1.0, false, Nordic),
    ("Gothenburg", "Sweden", "SE", 0, 0.4, false, Nordic),
    ("Warsaw", "Poland", "PL", 0, 1.2, false, Polish),
    ("Kraków", "Poland", "PL", 0, 0.6, false, Polish),
    ("Zürich", "Switzerland", "CH", 0, 0.7, false, German),
    ("Geneva", "Switzerland", "CH", 0, 0.4, false, French),
    ("New York", "United States", "US", 1, 5.0, true, English),
    ("Los Angeles", "United States", "US", 1, 3.2, true, English),
    ("Chicago", "United States", "US", 1, 2.2, true, English),
    ("Houston", "United States", "US", 1, 1.6, false, English),
    ("Seattle", "United States", "US", 1, 1.1, false, English),
    ("Miami", "United States", "US", 1, 1.0, false, Spanish),
    ("Boston", "United States", "US", 1, 1.0, false, English),
    ("Toronto", "Canada", "CA", 1, 1.9, true, English),
    ("Montréal", "Canada", "CA", 1, 1.1, false, French),
    ("Vancouver", "Canada", "CA", 1, 0.9, false, English),
    ("Mexico City", "Mexico", "MX", 2, 2.0, true, Spanish),
    ("Guadalajara", "Mexico", "MX", 2, 0.6, false, Spanish),
    ("Monterrey", "Mexico", "MX", 2, 0.5, false, Spanish),
    ("São Paulo", "Brazil", "BR", 2, 2.1, true, Portuguese),
    ("Rio de Janeiro", "Brazil", "BR", 2, 1.1, false, Portuguese),
    ("Belo Horizonte", "Brazil", "BR", 2, 0.4, false, Portuguese),
    ("Buenos Aires", "Argentina", "AR", 2, 1.2, false, Spanish),
    ("Córdoba", "Argentina", "AR", 2, 0.3, false, Spanish),
    ("Bogotá", "Colombia", "CO", 2, 0.7, false, Spanish),
    ("Medellín", "Colombia", "CO", 2, 0.3, false, Spanish),
    ("Santiago", "Chile", "CL", 2, 0.6, false, Spanish),
    ("Tokyo", "Japan", "JP", 3, 2.4, true, Japanese),
    ("Osaka", "Japan", "JP", 3, 1.0, false, Japanese),
    ("Sydney", "Australia", "AU", 3, 1.6, true, English),
    ("Melbourne", "Australia", "AU", 3, 1.4, false, English),
    ("Brisbane", "Australia", "AU", 3, 0.6, false, English),
    ("Singapore", "Singapore", "SG", 3, 1.2, true, Chinese),
    ("Mumbai", "India", "IN", 3, 1.3, false, Indian),
    ("Delhi", "India", "IN", 3, 1.1, false, Indian),
    ("Bangalore", "India", "IN", 3, 1.0, false, Indian),
    ("Seoul", "South Korea", "KR", 3, 1.2, false, Korean),
    ("Dubai", "United Arab Emirates", "AE", 4, 1.4, true, Arabic),
    (
        "Abu Dhabi",
        "United Arab Emirates",
        "AE",
        4,
        0.5,
        false,
        Arabic,
    ),
    ("Johannesburg", "South Africa", "ZA", 4, 0.9, false, English),
    ("Cape Town", "South Africa", "ZA", 4, 0.7, false, English),
    ("Tel Aviv", "Israel", "IL", 4, 0.6, false, English),
    ("Cairo", "Egypt", "EG", 4, 0.6, false, Arabic),
    ("Nairobi", "Kenya", "KE", 4, 0.4, false, English),
    ("Lagos", "Nigeria", "NG", 4, 0.5, false, English),
];

/// All cities, in `region_id` order.
pub(crate) fn cities() -> Vec<City> {
    CITIES
        .iter()
        .enumerate()
        .map(
            |(i, &(city, country, country_code, region_index, weight, has_store, culture))| City {
                id: format!("R{:03}", i + 1),
                city,
                country,
                country_code,
                region: REGIONS[region_index],
                region_index,
                weight,
                has_store,
                culture,
            },
        )
        .collect()
}

/// For every city, the store city its customers shop in: their own city when it has a
/// store, else a store in the same country, else the biggest store in the same region,
/// else the biggest store overall.
pub(crate) fn nearest_stores(cities: &[City]) -> Vec<usize> {
    let biggest = |pred: &dyn Fn(&City) -> bool| -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, c) in cities.iter().enumerate() {
            if c.has_store && pred(c) && best.is_none_or(|b| cities[b].weight < c.weight) {
                best = Some(i);
            }
        }
        best
    };
    let overall = biggest(&|_| true).unwrap_or(0);
    cities
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if c.has_store {
                i
            } else {
                biggest(&|o: &City| o.country_code == c.country_code)
                    .or_else(|| biggest(&|o: &City| o.region_index == c.region_index))
                    .unwrap_or(overall)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geography_has_the_promised_shape() {
        let cities = cities();
        assert!((55..=70).contains(&cities.len()));
        let mut countries: Vec<&str> = cities.iter().map(|c| c.country_code).collect();
        countries.sort_unstable();
        countries.dedup();
        assert!((22..=30).contains(&countries.len()));
        for r in 0..REGIONS.len() {
            assert!(cities.iter().any(|c| c.region_index == r));
        }
        let stores = nearest_stores(&cities);
        for (i, s) in stores.iter().enumerate() {
            assert!(cities[*s].has_store, "{}", cities[i].city);
        }
    }
}
