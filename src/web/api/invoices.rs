//! `GET /api/v1/operations/payment/invoices`: the organization's synced
//! invoices, newest first, a page at a time.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::state::AppState;
use crate::store::InvoiceView;
use crate::web::errors::{ApiError, ErrorBody, no_store};
use crate::web::guards::Member;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvoiceQuery {
    /// 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// An invoice id: the page after it.
    starting_after: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InvoicePageBody {
    data: Vec<InvoiceBody>,
    has_more: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InvoiceBody {
    id: String,
    number: Option<String>,
    status: Option<String>,
    currency: String,
    amount_due: i64,
    amount_paid: i64,
    total: i64,
    hosted_invoice_url: Option<String>,
    invoice_pdf: Option<String>,
    subscription: Option<String>,
    period_start: Option<i64>,
    period_end: Option<i64>,
    created: i64,
}

impl From<InvoiceView> for InvoiceBody {
    fn from(i: InvoiceView) -> Self {
        Self {
            id: i.id,
            number: i.number,
            status: i.status,
            currency: i.currency,
            amount_due: i.amount_due,
            amount_paid: i.amount_paid,
            total: i.total,
            hosted_invoice_url: i.hosted_invoice_url,
            invoice_pdf: i.invoice_pdf,
            subscription: i.subscription_id,
            period_start: i.period_start,
            period_end: i.period_end,
            created: i.created,
        }
    }
}

/// Newest first; `starting_after=<invoice id>` continues after that invoice.
#[utoipa::path(
    get,
    path = "/api/v1/operations/payment/invoices",
    tag = "billing",
    params(InvoiceQuery),
    security(("clerk_bearer" = []), ("clerk_session_cookie" = [])),
    responses(
        (status = 200, description = "A page of invoices", body = InvoicePageBody),
        (status = 400, description = "`VALIDATION_ERROR`: no organization, a bad `limit` or an unknown `starting_after`", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 500, description = "`INTERNAL_ERROR`", body = ErrorBody),
    )
)]
pub async fn invoices(
    member: Member,
    query: web::Query<InvoiceQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::Validation(
            "limit must be between 1 and 100.".to_owned(),
        ));
    }
    let org = member.organization(&state.store).await?;
    let Some(customer) = org.stripe_customer_id else {
        return Ok(page(Vec::new(), false));
    };
    // One extra row tells whether another page exists.
    let mut rows = state
        .store
        .invoices_page(
            customer.as_str(),
            query.starting_after.as_deref(),
            limit + 1,
        )
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::Validation("starting_after is not one of your invoices.".to_owned())
        })?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(page(rows, has_more))
}

fn page(rows: Vec<InvoiceView>, has_more: bool) -> HttpResponse {
    no_store(StatusCode::OK).json(InvoicePageBody {
        data: rows.into_iter().map(Into::into).collect(),
        has_more,
    })
}
