//! Reading a request body whole: within the time a body may take
//! (`CLIENT_BODY_TIMEOUT`) and a size limit, else a `400` that says which.

use actix_web::web::{self, Bytes};

use crate::web::errors::ApiError;

pub async fn read_body(
    payload: web::Payload,
    timeout: std::time::Duration,
    max_bytes: usize,
) -> Result<Bytes, ApiError> {
    let refused = |why: String| ApiError::Validation(format!("The request body {why}."));
    tokio::time::timeout(timeout, payload.to_bytes_limited(max_bytes))
        .await
        .map_err(|_| refused("did not arrive in time".to_owned()))?
        .map_err(|_| refused(format!("is larger than {}", size(max_bytes))))?
        .map_err(|_| refused("could not be read".to_owned()))
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{} KiB", bytes / 1024)
    }
}
