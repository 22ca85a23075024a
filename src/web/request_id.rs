//! Every request gets an id: the caller's `X-Request-Id` when it is
//! well-formed, a new one otherwise. It is echoed in the response's
//! `X-Request-Id` and carried by every log line written while serving it.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;

use crate::logging;

pub const HEADER: &str = "x-request-id";

/// The middleware (`middleware::from_fn(request_id::assign)`).
pub async fn assign(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| well_formed(v))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    let value = HeaderValue::from_str(&id).ok();
    // The access log reads it from the request (`%{x-request-id}i`).
    if let Some(value) = &value {
        req.headers_mut()
            .insert(HeaderName::from_static(HEADER), value.clone());
    }
    let mut response = logging::with_request_id(id, next.call(req)).await?;
    if let Some(value) = value {
        response
            .headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(response)
}

/// 1 to 128 letters, digits and `-_.:`: anything else (a log injection, a
/// header of a megabyte) is replaced.
fn well_formed(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_kept() {
        assert!(well_formed("req-2026.12:06_a1"));
        assert!(!well_formed(""));
        assert!(!well_formed("a b"));
        assert!(!well_formed("evil\ninjected"));
        assert!(!well_formed(&"x".repeat(129)));
    }
}
