//! The category endpoints: gather the registry once, keep the families of one category (by
//! the catalogue's category table), encode only those. Whole families go out — HELP, TYPE
//! and every series — so a category scrape is a valid exposition on its own.
//!
//! The seed's historical names are added here, at scrape time: [`with_aliases`] follows each
//! gathered family that has a catalogue alias with a copy under that name. The instruments,
//! and so the request path, know the canonical names only; the copy carries the same samples
//! because it is made from the same gathering.

use prometheus::proto::MetricFamily;
use prometheus::{Encoder, TextEncoder};

use super::catalogue::{self, Category};

/// Whether a gathered family belongs to `category`. A family missing from the catalogue is
/// only served by `all` (the contract tests keep that set empty).
pub fn belongs(family: &MetricFamily, category: Category) -> bool {
    catalogue::get(family.name()).is_some_and(|f| f.categories.contains(&category))
}

/// `families` with, after each family the catalogue gives a historical name, a copy of it
/// (HELP, TYPE, every sample) under that name.
pub fn with_aliases(families: Vec<MetricFamily>) -> Vec<MetricFamily> {
    let mut out = Vec::with_capacity(families.len() + catalogue::FAMILIES.len());
    for family in families {
        let alias = catalogue::legacy(family.name()).map(|name| {
            let mut copy = family.clone();
            copy.set_name(name.to_owned());
            copy
        });
        out.push(family);
        out.extend(alias);
    }
    out
}

/// Keeps the families of `category`, in gathered order.
pub fn select(mut families: Vec<MetricFamily>, category: Category) -> Vec<MetricFamily> {
    families.retain(|f| belongs(f, category));
    families
}

/// Prometheus text format 0.0.4.
pub fn encode(families: &[MetricFamily]) -> Result<Vec<u8>, prometheus::Error> {
    let mut out = Vec::with_capacity(16 * 1024);
    TextEncoder::new().encode(families, &mut out)?;
    Ok(out)
}

/// The category named in a URL.
pub fn parse_category(name: &str) -> Option<Category> {
    Category::ALL.into_iter().find(|c| c.as_str() == name)
}
