//! Who may call a handler, as extractors: a handler's signature says it.
//!
//! The JSON API answers with `ApiError` (the contract's 401/400/403), pages
//! with `PageError` (a sign-in redirect or an HTML page). Every guard reads
//! the Clerk session token once, through the shared `Authenticator`.
//!
//! | guard         | who                                   | refused with            |
//! |---------------|---------------------------------------|-------------------------|
//! | `Identity`    | any signed-in user (API)              | 401                     |
//! | `Member`      | a user with an active organization    | 401, 400                |
//! | `Manager`     | a member whose role manages billing   | 401, 400, 403           |
//! | `PageUser`    | any signed-in user (page)             | sign-in redirect or 401 |
//! | `PageMember`  | a page user with an organization      | … or 400 page           |
//! | `PageManager` | a page member whose role manages      | … or 403 page           |
//! | `Operator`    | a page user in `ADMIN_USER_IDS`       | … or 404 page           |
//! | `ServiceCaller` | another service with a token of `INTERNAL_API_TOKENS` | 404 when none is configured, 401 |
//!
//! `Posted<G, F>` is a form POST by guard `G`: the guard is checked first,
//! then the form must carry the session's CSRF token and come from our origin.

use std::future::Future;
use std::pin::Pin;

use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::errors::{ApiError, PageError};
use crate::auth::{
    AuthError, Authenticator, Identity, KeyError, OrgMembership, token_from_request,
};
use crate::state::AppState;
use crate::store::{Organization, Store};

type Guarded<T, E> = Pin<Box<dyn Future<Output = Result<T, E>>>>;

const CSRF_KEY: &str = "csrf";

pub const NOT_A_MANAGER: &str =
    "Your role in this organization cannot manage billing. Ask an organization admin.";

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            // We cannot tell a good token from a bad one without Clerk's keys:
            // that is our outage, not the user's mistake.
            AuthError::Key(KeyError::Unavailable) => ApiError::internal(err),
            AuthError::Missing => {
                ApiError::Unauthorized("Authentication required: sign in and try again.")
            }
            other => {
                log::info!("authentication failed: {other}");
                ApiError::Unauthorized("Authentication required: sign in and try again.")
            }
        }
    }
}

fn shared<T: 'static>(req: &HttpRequest) -> Result<web::Data<T>, anyhow::Error> {
    req.app_data::<web::Data<T>>()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("{} is not registered", std::any::type_name::<T>()))
}

impl FromRequest for Identity {
    type Error = ApiError;
    type Future = Guarded<Self, ApiError>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticator = shared::<Authenticator>(req);
        let token = token_from_request(req);
        Box::pin(async move {
            let authenticator = authenticator.map_err(ApiError::Internal)?;
            Ok(authenticator.verify(&token?).await?)
        })
    }
}

/// A JSON API caller with an active organization.
pub struct Member {
    pub identity: Identity,
    pub org: OrgMembership,
}

impl FromRequest for Member {
    type Error = ApiError;
    type Future = Guarded<Self, ApiError>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let identity = Identity::from_request(req, payload);
        Box::pin(async move {
            let identity = identity.await?;
            let org = identity.org.clone().ok_or_else(|| {
                ApiError::Validation(
                    "You are not associated with an organization. Select or create an organization and try again."
                        .to_owned(),
                )
            })?;
            Ok(Self { identity, org })
        })
    }
}

impl Member {
    /// The member's organization, its row created on first sight.
    pub async fn organization(&self, store: &Store) -> Result<Organization, ApiError> {
        store
            .ensure_organization(&self.org.id, self.org.slug.as_deref())
            .await
            .map_err(ApiError::internal)
    }
}

/// A JSON API caller whose role may manage the organization's billing.
pub struct Manager(pub Member);

impl FromRequest for Manager {
    type Error = ApiError;
    type Future = Guarded<Self, ApiError>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = shared::<AppState>(req);
        let member = Member::from_request(req, payload);
        Box::pin(async move {
            let member = member.await?;
            let state = state.map_err(ApiError::Internal)?;
            if !can_manage(&state, &member.org) {
                return Err(ApiError::Forbidden(NOT_A_MANAGER.to_owned()));
            }
            Ok(Self(member))
        })
    }
}

/// Another service of the product, presenting one of `INTERNAL_API_TOKENS`
/// as a bearer token. With no token configured the routes do not exist.
pub struct ServiceCaller;

impl FromRequest for ServiceCaller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(service_caller(req))
    }
}

fn service_caller(req: &HttpRequest) -> Result<ServiceCaller, ApiError> {
    let state = shared::<AppState>(req).map_err(ApiError::Internal)?;
    let tokens = &state.access.internal_tokens;
    if tokens.is_empty() {
        return Err(ApiError::NotFound("No such endpoint.".to_owned()));
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    // Compared as SHA-256 digests, in constant time, so neither a token's
    // bytes nor its length leak through timing.
    let digest = |t: &str| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.as_bytes());
    let presented = digest(presented);
    let known = tokens.iter().fold(false, |found, token| {
        let matches = aws_lc_rs::constant_time::verify_slices_are_equal(
            digest(token.expose_secret()).as_ref(),
            presented.as_ref(),
        )
        .is_ok();
        found | matches
    });
    if known {
        Ok(ServiceCaller)
    } else {
        log::info!("an internal route was called without a valid service token");
        Err(ApiError::Unauthorized(
            "A valid service token is required (Authorization: Bearer …).",
        ))
    }
}

/// `BILLING_MANAGE_ROLES` empty means every member may manage billing.
pub fn can_manage(state: &AppState, membership: &OrgMembership) -> bool {
    let roles = &state.pages.manage_roles;
    roles.is_empty() || membership.role.as_ref().is_some_and(|r| roles.contains(r))
}

/// The signed-in user of a page load (`__session` cookie, or a bearer token).
pub struct PageUser(pub Identity);

impl FromRequest for PageUser {
    type Error = PageError;
    type Future = Guarded<Self, PageError>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = shared::<AppState>(&req).map_err(PageError::Internal)?;
            let auth = shared::<Authenticator>(&req).map_err(PageError::Internal)?;
            let token = token_from_request(&req).map_err(|_| sign_in(&state, &req))?;
            match auth.verify(&token).await {
                Ok(identity) => Ok(Self(identity)),
                Err(AuthError::Key(KeyError::Unavailable)) => Err(PageError::internal(
                    anyhow::anyhow!("Clerk's keys are unavailable"),
                )),
                Err(err) => {
                    log::info!("page sign-in required: {err}");
                    Err(sign_in(&state, &req))
                }
            }
        })
    }
}

/// To Clerk's sign-in page (and back here afterwards), when one is configured.
fn sign_in(state: &AppState, req: &HttpRequest) -> PageError {
    PageError::SignIn(state.pages.sign_in_url.as_ref().map(|url| {
        let mut url = url.clone();
        let back = format!("{}{}", state.origin, req.path());
        url.query_pairs_mut().append_pair("redirect_url", &back);
        url.to_string()
    }))
}

/// A page user with an active organization.
pub struct PageMember {
    pub identity: Identity,
    pub org: OrgMembership,
}

impl FromRequest for PageMember {
    type Error = PageError;
    type Future = Guarded<Self, PageError>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = PageUser::from_request(req, payload);
        Box::pin(async move {
            let PageUser(identity) = user.await?;
            let org = identity.org.clone().ok_or(PageError::NoOrganization)?;
            Ok(Self { identity, org })
        })
    }
}

impl PageMember {
    /// The member's organization, its row created on first sight.
    pub async fn organization(&self, store: &Store) -> Result<Organization, PageError> {
        store
            .ensure_organization(&self.org.id, self.org.slug.as_deref())
            .await
            .map_err(PageError::internal)
    }
}

/// A page member whose role may manage the organization's billing.
pub struct PageManager(pub PageMember);

impl FromRequest for PageManager {
    type Error = PageError;
    type Future = Guarded<Self, PageError>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = shared::<AppState>(req);
        let member = PageMember::from_request(req, payload);
        Box::pin(async move {
            let member = member.await?;
            let state = state.map_err(PageError::Internal)?;
            if !can_manage(&state, &member.org) {
                return Err(PageError::Forbidden(NOT_A_MANAGER));
            }
            Ok(Self(member))
        })
    }
}

/// An operator (`ADMIN_USER_IDS`). Anyone else is shown a 404, so the admin
/// pages do not reveal that they exist.
pub struct Operator(pub Identity);

impl FromRequest for Operator {
    type Error = PageError;
    type Future = Guarded<Self, PageError>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = shared::<AppState>(req);
        let user = PageUser::from_request(req, payload);
        let path = req.path().to_owned();
        Box::pin(async move {
            let PageUser(identity) = user.await?;
            let state = state.map_err(PageError::Internal)?;
            let user_id = identity.user_id.as_str();
            if state.pages.admin_user_ids.iter().any(|id| id == user_id) {
                Ok(Self(identity))
            } else {
                log::warn!("{user_id} tried to open {path} without being an operator");
                Err(PageError::NotFound)
            }
        })
    }
}

/// A form POST by `G`: the guard first, then a genuine form of type `F`.
/// Every form carries the session's CSRF token in a `csrf` field besides
/// its own fields (`F` ignores it); a form with none of its own is `NoFields`.
pub struct Posted<G, F> {
    pub by: G,
    pub form: F,
}

/// The fields every form shares.
#[derive(Deserialize)]
struct CsrfField {
    csrf: String,
}

/// A form that is only a button.
#[derive(Deserialize)]
pub struct NoFields {}

impl<G, F> FromRequest for Posted<G, F>
where
    G: FromRequest<Error = PageError> + 'static,
    F: DeserializeOwned + 'static,
{
    type Error = PageError;
    type Future = Guarded<Self, PageError>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let guard = G::from_request(req, &mut Payload::None);
        let body = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let by = guard.await?;
            let unreadable = |err: &dyn std::fmt::Display| {
                PageError::BadRequest(format!("The form could not be read: {err}."))
            };
            let state = shared::<AppState>(&req).map_err(PageError::Internal)?;
            let body = tokio::time::timeout(state.body_timeout, body)
                .await
                .map_err(|_| unreadable(&"it did not arrive in time"))?
                .map_err(|e| unreadable(&e))?;
            let CsrfField { csrf } =
                serde_urlencoded::from_bytes(&body).map_err(|e| unreadable(&e))?;
            check_csrf(&req, &req.get_session(), &csrf, &state.origin)?;
            let form = serde_urlencoded::from_bytes(&body).map_err(|e| unreadable(&e))?;
            Ok(Self { by, form })
        })
    }
}

/// The session's CSRF token, created on first use.
pub fn csrf_token(session: &Session) -> Result<String, PageError> {
    if let Some(token) = session
        .get::<String>(CSRF_KEY)
        .map_err(PageError::internal)?
    {
        return Ok(token);
    }
    let token =
        uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string();
    session
        .insert(CSRF_KEY, &token)
        .map_err(PageError::internal)?;
    Ok(token)
}

/// A form POST must carry the session's token and come from our own origin.
fn check_csrf(
    req: &HttpRequest,
    session: &Session,
    submitted: &str,
    origin: &str,
) -> Result<(), PageError> {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let same_origin = match (header(header::ORIGIN), header(header::REFERER)) {
        (Some(o), _) => o == origin,
        (None, Some(referer)) => referer.starts_with(&format!("{origin}/")),
        (None, None) => false,
    };
    let expected = session
        .get::<String>(CSRF_KEY)
        .ok()
        .flatten()
        .unwrap_or_default();
    let token_ok = !expected.is_empty()
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            expected.as_bytes(),
            submitted.as_bytes(),
        )
        .is_ok();
    if same_origin && token_ok {
        Ok(())
    } else {
        Err(PageError::Forbidden(
            "This form has expired or did not come from this site. Reload the page and try again.",
        ))
    }
}
