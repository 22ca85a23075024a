//! The product catalog, fetched: products, prices and their features.

use std::collections::BTreeMap;

use super::{Resource, SyncReport, apply_fetched, list_all, read};
use crate::billing::rules::{Change, feature_row, fetched_version, price_row, product_row};
use crate::domain::unix_now;
use crate::store::Store;
use crate::stripe::objects::{Price, Product, ProductFeature as StripeProductFeature};
use crate::stripe::{StripeClient, path_segment};

pub(super) async fn sync_catalog(
    store: &Store,
    stripe: &StripeClient,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let fetched_at = unix_now();
    let version = || fetched_version(fetched_at, 0);
    let products: Vec<Product> = read(
        report,
        Resource::Products,
        list_all(stripe, "/v1/products", &[]),
    )
    .await?
    .unwrap_or_default();
    // Plans are listed here too: a plan is the price of the same id.
    let prices: Vec<Price> = read(
        report,
        Resource::Prices,
        list_all(stripe, "/v1/prices", &[]),
    )
    .await?
    .unwrap_or_default();
    let features = product_features(stripe, &products, report).await?;
    let mut changes: Vec<Change> = products
        .iter()
        .map(|p| Change::Product(product_row(p, version(), false)))
        .collect();
    changes.extend(
        prices
            .iter()
            .map(|p| Change::Price(price_row(p, version(), false))),
    );
    for listed in features.values().flatten() {
        changes.push(Change::Feature(feature_row(
            &listed.entitlement_feature,
            version(),
        )));
    }
    let mut tx = store.begin().await?;
    apply_fetched(&mut tx, &changes, report).await?;
    for (product, listed) in &features {
        let ids: Vec<String> = listed
            .iter()
            .map(|f| f.entitlement_feature.id.clone())
            .collect();
        if tx.replace_product_features(product, &ids).await? {
            report.changed(Resource::Features);
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Each active product's features (`GET /v1/products/{id}/features`); a
/// product whose list is refused keeps the features it had.
async fn product_features(
    stripe: &StripeClient,
    products: &[Product],
    report: &mut SyncReport,
) -> anyhow::Result<BTreeMap<String, Vec<StripeProductFeature>>> {
    let mut features = BTreeMap::new();
    for product in products.iter().filter(|p| p.active && !p.deleted) {
        let path = format!("/v1/products/{}/features", path_segment(&product.id));
        if let Some(listed) = read(report, Resource::Features, list_all(stripe, &path, &[])).await?
        {
            features.insert(product.id.clone(), listed);
        }
    }
    Ok(features)
}
