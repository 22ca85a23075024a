//! The credits wallet: `GET /api/v1/internal/organizations/{org_id}/credits`
//! and `POST …/credits/debits` for the product's other services, and
//! `GET /api/v1/operations/payment/credits` for the organization's members.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::body::read_body;
use super::known_organization;
use crate::billing::credits::{Debit, DebitAnswer, DebitLine, DebitRequest, DebitResult};
use crate::domain::unix_now;
use crate::state::AppState;
use crate::store::{CreditEntry, CreditLot};
use crate::web::errors::{ApiError, ErrorBody, no_store};
use crate::web::guards::{Member, ServiceCaller};

/// Debit bodies are a few hundred bytes; metadata is at most 4 KiB.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// An organization's credits now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BalanceBody<'a> {
    organization: &'a str,
    /// Whole credits; never below zero through debits. Expired credits are
    /// not in it.
    balance: i64,
    /// Credits that will expire, soonest first (`CREDITS_EXPIRE_AFTER`);
    /// the rest of the balance does not.
    expiring: Vec<ExpiringBody>,
}

/// What is left of a grant that expires.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExpiringBody {
    amount: i64,
    /// Unix seconds.
    expires_at: i64,
}

impl From<CreditLot> for ExpiringBody {
    fn from(lot: CreditLot) -> Self {
        Self {
            amount: lot.remaining,
            expires_at: lot.expires_at,
        }
    }
}

/// A debit taken.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DebitBody<'a> {
    /// The balance after the debit.
    balance: i64,
    debit: &'a DebitLine,
}

/// A debit the balance could not cover: nothing was taken.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InsufficientBody<'a> {
    #[schema(inline)]
    error: Detail<'a>,
    /// The balance now.
    balance: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Detail<'a> {
    /// `INSUFFICIENT_CREDITS`.
    code: &'a str,
    message: &'a str,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// An entry id: the page after it.
    starting_after: Option<String>,
}

/// The balance and the ledger, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryBody {
    balance: i64,
    /// Credits that will expire, soonest first.
    expiring: Vec<ExpiringBody>,
    data: Vec<EntryBody>,
    has_more: bool,
}

/// One movement of credits.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EntryBody {
    /// `<kind>:<source id>`.
    id: String,
    /// `checkout_session` or `invoice` (a purchase), `debit`, `adjustment`,
    /// `clawback` (a purchase refunded, disputed or credited back), `expiry`
    /// (what was left of a grant when it expired).
    kind: String,
    /// Positive when credits were added.
    amount: i64,
    reason: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    created_at: i64,
}

impl From<CreditEntry> for EntryBody {
    fn from(entry: CreditEntry) -> Self {
        Self {
            id: entry.id(),
            metadata: entry
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok()),
            kind: entry.kind,
            amount: entry.amount,
            reason: entry.reason,
            created_at: entry.created_at,
        }
    }
}

/// Any organization's balance, for the product's other services.
#[utoipa::path(
    get,
    path = "/api/v1/internal/organizations/{org_id}/credits",
    tag = "credits",
    params(("org_id" = String, Path, description = "A Clerk organization id, `org_…`")),
    security(("service_token" = [])),
    responses(
        (status = 200, description = "The balance", body = BalanceBody),
        (status = 400, description = "`VALIDATION_ERROR`: not an organization id", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`: no valid service token", body = ErrorBody),
        (status = 404, description = "`NOT_FOUND`: no organization of this id has been seen, or no service token is configured", body = ErrorBody),
        (status = 500, description = "`INTERNAL_ERROR`", body = ErrorBody),
    )
)]
pub async fn balance(
    _: ServiceCaller,
    org: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org = known_organization(&state, &org).await?;
    let (balance, expiring) = tokio::try_join!(
        state.store.credit_balance(org.id.as_str()),
        state.store.credit_lots(org.id.as_str(), unix_now()),
    )
    .map_err(ApiError::internal)?;
    Ok(no_store(StatusCode::OK).json(BalanceBody {
        organization: org.id.as_str(),
        balance,
        expiring: expiring.into_iter().map(Into::into).collect(),
    }))
}

/// Takes credits, never below zero; once per `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/api/v1/internal/organizations/{org_id}/credits/debits",
    tag = "credits",
    params(
        ("org_id" = String, Path, description = "A Clerk organization id, `org_…`"),
        ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters; the same key answers the same result and debits once"),
    ),
    request_body(content = DebitRequest, content_type = "application/json"),
    security(("service_token" = [])),
    responses(
        (status = 200, description = "Debited (now, or before under this key)", body = DebitBody),
        (status = 400, description = "`VALIDATION_ERROR`: no key, or a bad body", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`: no valid service token", body = ErrorBody),
        (status = 402, description = "`INSUFFICIENT_CREDITS`: the balance does not cover the amount; nothing was taken", body = InsufficientBody),
        (status = 404, description = "`NOT_FOUND`: no organization of this id has been seen, or no service token is configured", body = ErrorBody),
        (status = 409, description = "`CONFLICT`: the key was first sent with another request", body = ErrorBody),
        (status = 500, description = "`INTERNAL_ERROR`", body = ErrorBody),
    )
)]
pub async fn debit(
    _: ServiceCaller,
    req: HttpRequest,
    org: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org = known_organization(&state, &org).await?;
    let body = read_body(body, state.body_timeout, MAX_BODY_BYTES).await?;
    let key = req
        .headers()
        .get("Idempotency-Key")
        .map(|v| v.to_str().unwrap_or_default());
    let debit = Debit::parse(org.id, key, &body).map_err(ApiError::Validation)?;
    match state
        .debits
        .submit(debit)
        .await
        .map_err(ApiError::internal)?
    {
        DebitAnswer::Result(result) => Ok(answer(&result)),
        DebitAnswer::KeyReused => Err(ApiError::Conflict(
            "This Idempotency-Key was first used with a different request.".to_owned(),
        )),
    }
}

fn answer(result: &DebitResult) -> HttpResponse {
    match result {
        DebitResult::Debited { balance, debit } => no_store(StatusCode::OK).json(DebitBody {
            balance: *balance,
            debit,
        }),
        DebitResult::Insufficient { balance, amount } => {
            let message = format!("The balance ({balance}) does not cover {amount} credits.");
            no_store(StatusCode::PAYMENT_REQUIRED).json(InsufficientBody {
                error: Detail {
                    code: "INSUFFICIENT_CREDITS",
                    message: &message,
                },
                balance: *balance,
            })
        }
    }
}

/// The signed-in user's organization's balance and ledger, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/operations/payment/credits",
    tag = "credits",
    params(HistoryQuery),
    security(("clerk_bearer" = []), ("clerk_session_cookie" = [])),
    responses(
        (status = 200, description = "The balance and a page of the ledger", body = HistoryBody),
        (status = 400, description = "`VALIDATION_ERROR`: no organization, a bad `limit` or an unknown `starting_after`", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 500, description = "`INTERNAL_ERROR`", body = ErrorBody),
    )
)]
pub async fn history(
    member: Member,
    query: web::Query<HistoryQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::Validation(
            "limit must be between 1 and 100.".to_owned(),
        ));
    }
    let org = member.org.id.as_str();
    let (balance, expiring, entries) = tokio::try_join!(
        state.store.credit_balance(org),
        state.store.credit_lots(org, unix_now()),
        state
            .store
            .credit_entries(org, query.starting_after.as_deref(), limit + 1),
    )
    .map_err(ApiError::internal)?;
    let mut entries = entries.ok_or_else(|| {
        ApiError::Validation("starting_after is not one of your organization's entries.".to_owned())
    })?;
    // One extra row tells whether another page exists.
    let has_more = entries.len() as i64 > limit;
    entries.truncate(limit as usize);
    Ok(no_store(StatusCode::OK).json(HistoryBody {
        balance,
        expiring: expiring.into_iter().map(Into::into).collect(),
        data: entries.into_iter().map(Into::into).collect(),
        has_more,
    }))
}
