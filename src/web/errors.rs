//! The errors at the HTTP boundary, and the few response shapes every handler
//! shares. `ApiError` renders the contract's JSON body
//! `{"error": {"code", "message"}}`; `PageError` renders an HTML page. Both
//! log the cause once and never show internals (SQL, Stripe's text, secrets).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use askama::Template;
use serde::Serialize;

use crate::views::ErrorPage;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts one made before (an idempotency key reused).
    #[error("{0}")]
    Conflict(String),
    /// The cause is logged; the client only sees a generic sentence.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "UNAUTHORIZED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::Validation(_) => "VALIDATION_ERROR",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::Internal(_) => "INTERNAL_ERROR",
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "Something went wrong on our side. Please try again.".to_owned(),
            other => other.to_string(),
        }
    }
}

/// Every error of the JSON API: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// `UNAUTHORIZED`, `FORBIDDEN`, `VALIDATION_ERROR`, `NOT_FOUND`, `CONFLICT` or `INTERNAL_ERROR`.
    code: &'a str,
    /// A sentence for a person; never internals.
    message: &'a str,
}

/// The JSON error body, also used for errors that do not come from a handler
/// (unknown routes, oversized bodies).
pub fn error_json(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let mut response = no_store(status);
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    response.json(ErrorBody {
        error: ErrorDetail { code, message },
    })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            // `{:#}` prints anyhow's whole cause chain on one line.
            Self::Internal(cause) => log::error!("internal error: {cause:#}"),
            other => log::debug!("{}: {other}", other.code()),
        }
        error_json(self.status_code(), self.code(), &self.public_message())
    }
}

/// An error on a page: rendered as an HTML page, never as JSON.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not signed in: to Clerk's sign-in page when configured, else a 401 page.
    #[error("sign in required")]
    SignIn(Option<String>),
    #[error("no active organization")]
    NoOrganization,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    BadRequest(String),
    /// The request contradicts what is already so (a second plan).
    #[error("{0}")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl PageError {
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }

    /// What the error page says: title, message, and a way back.
    fn explained(&self) -> (&'static str, String, Option<(&'static str, &'static str)>) {
        const BACK: Option<(&str, &str)> = Some(("Back to organization", "/organization#/plans"));
        match self {
            Self::SignIn(_) => (
                "Sign in required",
                "Sign in to see your organization's billing.".to_owned(),
                None,
            ),
            Self::NoOrganization => (
                "No organization selected",
                "You are signed in, but no organization is active. Select or create an organization, then come back."
                    .to_owned(),
                None,
            ),
            Self::Forbidden(why) => ("Not allowed", (*why).to_owned(), BACK),
            Self::BadRequest(why) => ("Something is not right", why.clone(), BACK),
            Self::Conflict(why) => ("Already done", (*why).to_owned(), BACK),
            Self::NotFound => ("Not found", "There is nothing here.".to_owned(), None),
            Self::Internal(_) => (
                "Something went wrong",
                "Something went wrong on our side. Please try again in a moment.".to_owned(),
                None,
            ),
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn(Some(_)) => StatusCode::SEE_OTHER,
            Self::SignIn(None) => StatusCode::UNAUTHORIZED,
            Self::NoOrganization | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::SignIn(Some(url)) = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, url.as_str()))
                .finish();
        }
        if let Self::Internal(cause) = self {
            log::error!("page error: {cause:#}");
        }
        let (title, message, action) = self.explained();
        let page = ErrorPage {
            title,
            message: &message,
            action,
        };
        html(
            self.status_code(),
            page.render().unwrap_or_else(|_| message.clone()),
        )
    }
}

/// A response no cache may keep: per-user billing, bearer URLs, errors.
pub fn no_store(status: StatusCode) -> HttpResponseBuilder {
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    response
}

/// A rendered page; pages show per-user billing, so no cache keeps them.
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    no_store(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// `200 OK` with a rendered page.
pub fn html_page(body: String) -> HttpResponse {
    html(StatusCode::OK, body)
}

/// A redirect after a POST (or to Stripe), never cached.
pub fn see_other(location: &str) -> HttpResponse {
    no_store(StatusCode::SEE_OTHER)
        .insert_header((header::LOCATION, location))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_its_contract_code_and_status() {
        let cases = [
            (ApiError::Unauthorized("x"), 401, "UNAUTHORIZED"),
            (ApiError::Forbidden("x".into()), 403, "FORBIDDEN"),
            (ApiError::Validation("x".into()), 400, "VALIDATION_ERROR"),
            (ApiError::NotFound("x".into()), 404, "NOT_FOUND"),
            (ApiError::Conflict("x".into()), 409, "CONFLICT"),
            (
                ApiError::internal(anyhow::anyhow!("x")),
                500,
                "INTERNAL_ERROR",
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status_code().as_u16(), status);
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = ApiError::internal(anyhow::anyhow!("password=hunter2 in SQL"));
        assert!(!err.public_message().contains("hunter2"));
    }

    #[test]
    fn every_page_error_has_a_status_and_a_page() {
        let cases = [
            (PageError::SignIn(None), 401),
            (PageError::SignIn(Some("https://x.test".into())), 303),
            (PageError::NoOrganization, 400),
            (PageError::Forbidden("x"), 403),
            (PageError::BadRequest("x".into()), 400),
            (PageError::NotFound, 404),
            (PageError::internal(anyhow::anyhow!("secret")), 500),
        ];
        for (err, status) in cases {
            assert_eq!(err.error_response().status().as_u16(), status);
            assert!(!err.explained().1.contains("secret"));
        }
    }
}
