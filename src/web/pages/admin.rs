//! The operators' pages: every organization's synced plan state, one
//! organization in detail with a resync, and webhook health with replay.
//! Only Clerk users in `ADMIN_USER_IDS` get in; everyone else sees a 404.

use actix_session::Session;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::billing::replay::{Selection, replay};
use crate::billing::{access, credits, reconcile, revenue};
use crate::domain::{OrgId, unix_now, unix_now_us};
use crate::state::AppState;
use crate::store::{AdminFilter, AuditEntry, StoreError};
use crate::views::admin::{AdminListPage, AdminOrgData, AdminOrgLine, AdminOrgPage, EventLine};
use crate::views::format::SUBSCRIPTION_STATUSES;
use crate::views::overview::{Overview, OverviewFacts};
use crate::views::webhooks::{
    AdminWebhooksPage, DeliveryFacts, DeliveryHealth, ForeignCheckoutLine,
};
use crate::web::errors::{PageError, html_page, see_other};
use crate::web::guards::{NoFields, Operator, Posted, csrf_token};

const PAGE_SIZE: i64 = 50;

/// Back to `path` after a POST, with what happened as `?done=`.
fn redirect_with_notice(path: &str, notice: &str) -> HttpResponse {
    let notice: String = url::form_urlencoded::byte_serialize(notice.as_bytes()).collect();
    see_other(&format!("{path}?done={notice}"))
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    status: Option<String>,
    page: Option<i64>,
}

pub async fn organizations(
    _: Operator,
    query: web::Query<ListQuery>,
    session: Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let status = query
        .status
        .clone()
        .filter(|s| SUBSCRIPTION_STATUSES.contains(&s.as_str()));
    let search = query
        .q
        .clone()
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    let page = query.page.unwrap_or(1).clamp(1, 10_000);
    let filter = AdminFilter {
        status: status.clone(),
        search: search.clone(),
    };
    // One extra row tells whether there is a next page.
    let mut rows = state
        .store
        .admin_organizations(&filter, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
        .await
        .map_err(PageError::internal)?;
    let has_next = rows.len() as i64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    let link = |p: i64| {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        if let Some(q) = &search {
            url.append_pair("q", q);
        }
        if let Some(s) = &status {
            url.append_pair("status", s);
        }
        url.append_pair("page", &p.to_string());
        format!("/admin?{}", url.finish())
    };
    let first_page = (page, &status, &search) == (1, &None, &None);
    let overview = match first_page {
        true => Some(overview(&state).await?),
        false => None,
    };
    let seats_out_of_step = match first_page && state.seats.follow_members {
        true => state
            .store
            .seats_out_of_step(SEATS_SHOWN)
            .await
            .map_err(PageError::internal)?,
        false => Vec::new(),
    };
    let view = AdminListPage {
        overview,
        rows: rows.iter().map(AdminOrgLine::new).collect(),
        status: status.clone().unwrap_or_default(),
        search: search.clone().unwrap_or_default(),
        statuses: &SUBSCRIPTION_STATUSES,
        page,
        prev_link: (page > 1).then(|| link(page - 1)),
        next_link: has_next.then(|| link(page + 1)),
        seats_out_of_step,
        csrf: csrf_token(&session)?,
    };
    Ok(html_page(view.render().map_err(PageError::internal)?))
}

/// The figures above the list: read concurrently, a few rows each however
/// many organizations there are.
async fn overview(state: &AppState) -> Result<Overview, PageError> {
    let store = &state.store;
    let now = unix_now();
    let (groups, statuses, at_risk, snapshots, events, newest, catch_up) = tokio::try_join!(
        store.recurring_groups(),
        store.status_counts(start_of_month(now)),
        store.at_risk(AT_RISK_SHOWN),
        store.snapshots(now - 366 * DAY),
        store.events_per_day(now - now.rem_euclid(DAY) - 13 * DAY),
        store.newest_event_created(),
        store.catch_up_state(),
    )
    .map_err(PageError::internal)?;
    let mrr = revenue::mrr_of_groups(&groups);
    Ok(Overview::new(OverviewFacts {
        mrr: &mrr,
        statuses: &statuses,
        at_risk: &at_risk,
        snapshots: &snapshots,
        events: &events,
        newest_event: newest,
        catch_up: catch_up.as_ref(),
        now,
    }))
}

const DAY: i64 = 86_400;
const AT_RISK_SHOWN: i64 = 20;
const SEATS_SHOWN: i64 = 50;

/// The first second of `now`'s month (UTC).
fn start_of_month(now: i64) -> i64 {
    time::OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|t| t.date().replace_day(1).ok())
        .map_or(now - now.rem_euclid(DAY), |d| {
            d.midnight().assume_utc().unix_timestamp()
        })
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    done: Option<String>,
}

pub async fn organization(
    _: Operator,
    session: Session,
    id: web::Path<String>,
    query: web::Query<NoticeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let org_id = OrgId::parse(&id).map_err(|_| PageError::NotFound)?;
    let org = state
        .store
        .find_organization(&org_id)
        .await
        .map_err(PageError::internal)?
        .ok_or(PageError::NotFound)?;
    let store = &state.store;
    let c = org.stripe_customer_id.as_ref().map(|c| c.as_str());
    let (billing, invoices, cards, ledger, events, failed_usage) = tokio::try_join!(
        store.billing_state(org.id.as_str(), c),
        of_customer(c, |c| async move {
            Ok(store.invoices_page(c, None, 50).await?.unwrap_or_default())
        }),
        of_customer(c, |c| store.payment_methods_of(c)),
        async {
            let entries = store.credit_entries(org.id.as_str(), None, 100).await?;
            Ok(entries.unwrap_or_default())
        },
        of_customer(c, |c| store.events_of_customer(c, 25)),
        store.failed_usage(org.id.as_str(), 25),
    )
    .map_err(PageError::internal)?;
    let members = store
        .members_of(org.id.as_str())
        .await
        .map_err(PageError::internal)?;
    let access = access::of(store, &org, state.access.grace_period)
        .await
        .map_err(PageError::internal)?;
    let data = AdminOrgData {
        id: org.id.to_string(),
        name: org.name.clone().or_else(|| org.slug.clone()),
        deleted_at: org.deleted_at,
        members,
        customer: c.map(str::to_owned),
        billing,
        invoices,
        cards,
        ledger,
        events,
        failed_usage,
        access,
    };
    let view = AdminOrgPage::new(data, csrf_token(&session)?, query.done.clone());
    Ok(html_page(view.render().map_err(PageError::internal)?))
}

/// `read` of the organization's customer; nothing when it has none.
async fn of_customer<'a, T, F>(
    customer: Option<&'a str>,
    read: impl FnOnce(&'a str) -> F,
) -> Result<Vec<T>, StoreError>
where
    F: Future<Output = Result<Vec<T>, StoreError>>,
{
    match customer {
        Some(c) => read(c).await,
        None => Ok(Vec::new()),
    }
}

pub async fn resync(
    posted: Posted<Operator, NoFields>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Operator(identity) = posted.by;
    let org_id = OrgId::parse(&id).map_err(|_| PageError::NotFound)?;
    let report = reconcile::sync(&state.store, &state.stripe, Some(&org_id))
        .await
        .map_err(PageError::internal)?;
    log::info!("{} resynced {org_id}: {report}", identity.user_id);
    Ok(redirect_with_notice(
        &format!("/admin/orgs/{org_id}"),
        &report.to_string(),
    ))
}

/// An operator runs an organization's seat update now.
pub async fn update_seats(
    posted: Posted<Operator, NoFields>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Operator(identity) = posted.by;
    let org_id = OrgId::parse(&id).map_err(|_| PageError::NotFound)?;
    if !state.seats.follow_members {
        return Err(PageError::BadRequest(
            "Seats do not follow members here (BILLING_SEATS is off).".to_owned(),
        ));
    }
    state
        .store
        .seat_sync_now(org_id.as_str(), unix_now_us() / 1000)
        .await
        .map_err(PageError::internal)?;
    log::info!("{} asked for the seats of {org_id} now", identity.user_id);
    Ok(redirect_with_notice(
        &format!("/admin/orgs/{org_id}"),
        "The seats will be set in Stripe within seconds.",
    ))
}

#[derive(Deserialize)]
pub struct Adjustment {
    amount: String,
    reason: String,
}

/// An operator adds or removes credits, with a reason; the ledger keeps who.
pub async fn adjust_credits(
    posted: Posted<Operator, Adjustment>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Operator(identity) = posted.by;
    let org_id = OrgId::parse(&id).map_err(|_| PageError::NotFound)?;
    state
        .store
        .find_organization(&org_id)
        .await
        .map_err(PageError::internal)?
        .ok_or(PageError::NotFound)?;
    let amount: i64 = posted.form.amount.trim().parse().map_err(|_| {
        PageError::BadRequest("The amount must be a whole number of credits.".to_owned())
    })?;
    let actor = identity.user_id.to_string();
    let balance = credits::adjust(&state.store, &org_id, amount, &posted.form.reason, &actor)
        .await
        .map_err(PageError::internal)?
        .map_err(PageError::BadRequest)?;
    state
        .audit
        .record(AuditEntry {
            org_id: org_id.to_string(),
            user_id: actor,
            action: "credit_adjustment",
            stripe_session_id: None,
        })
        .await;
    Ok(redirect_with_notice(
        &format!("/admin/orgs/{org_id}"),
        &format!("Credits adjusted by {amount}: the balance is {balance}."),
    ))
}

/// Sends the organization's usage Stripe refused again (after a fix).
pub async fn retry_usage(
    posted: Posted<Operator, NoFields>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Operator(identity) = posted.by;
    let org_id = OrgId::parse(&id).map_err(|_| PageError::NotFound)?;
    let again = state
        .store
        .retry_failed_usage(org_id.as_str(), unix_now())
        .await
        .map_err(PageError::internal)?;
    log::info!(
        "{} sent {again} refused usage record(s) of {org_id} again",
        identity.user_id
    );
    Ok(redirect_with_notice(
        &format!("/admin/orgs/{org_id}"),
        &format!("{again} usage record(s) will be sent again."),
    ))
}

pub async fn webhooks(
    _: Operator,
    session: Session,
    query: web::Query<NoticeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let store = &state.store;
    let (failed, recent, versions, catch_up, newest, other_mode, refetch, foreign) =
        tokio::try_join!(
            store.failed_events(50),
            store.recent_events(50),
            store.api_versions(),
            store.catch_up_state(),
            store.newest_event_created(),
            store.other_mode_events(state.stripe.is_live()),
            store.refetch_backlog(),
            store.foreign_checkouts(50),
        )
        .map_err(PageError::internal)?;
    let health = DeliveryHealth::new(DeliveryFacts {
        ours: state.stripe.api_version(),
        versions: &versions,
        catch_up: catch_up.as_ref(),
        newest,
        other_mode,
        live: state.stripe.is_live(),
        refetch,
        now: unix_now(),
    });
    let view = AdminWebhooksPage {
        csrf: csrf_token(&session)?,
        notice: query.done.clone(),
        failed: failed.iter().map(EventLine::new).collect(),
        recent: recent.iter().map(EventLine::new).collect(),
        health,
        foreign_checkouts: foreign.iter().map(ForeignCheckoutLine::new).collect(),
    };
    Ok(html_page(view.render().map_err(PageError::internal)?))
}

pub async fn replay_event(
    posted: Posted<Operator, NoFields>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Operator(identity) = posted.by;
    let report = replay(
        &state.store,
        Selection::One(id.clone()),
        state.stripe.is_live(),
    )
    .await
    .map_err(PageError::internal)?;
    if report.missing > 0 {
        return Err(PageError::NotFound);
    }
    log::info!("{} replayed {id}: {report}", identity.user_id);
    Ok(redirect_with_notice(
        "/admin/webhooks",
        &format!("{id}: {report}"),
    ))
}
