//! Clerk session-token claims, in both organization formats.

use serde::{Deserialize, Serialize};

use crate::domain::{OrgId, UserId};

/// The claims we read. `exp`/`nbf` are checked by `jsonwebtoken` itself.
#[derive(Debug, Deserialize)]
pub struct ClerkClaims {
    pub sub: String,
    pub exp: i64,
    pub sid: Option<String>,
    pub azp: Option<String>,
    pub iat: Option<i64>,
    /// Token format version: absent for v1, `2` for v2.
    pub v: Option<u32>,
    // v1 organization claims.
    pub org_id: Option<String>,
    pub org_role: Option<String>,
    pub org_slug: Option<String>,
    // v2 organization claim.
    pub o: Option<OrgClaimV2>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OrgClaimV2 {
    pub id: String,
    pub rol: Option<String>,
    pub slg: Option<String>,
}

/// The signed-in user, as every handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: UserId,
    pub session_id: Option<String>,
    pub org: Option<OrgMembership>,
}

/// The user's active organization. `role` uses v1's spelling (`org:admin`)
/// whichever format the token had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgMembership {
    pub id: OrgId,
    pub role: Option<String>,
    pub slug: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimsError {
    #[error("sub is not a valid user id")]
    BadSubject,
    #[error("organization claim is malformed: {0}")]
    BadOrganization(String),
}

impl ClerkClaims {
    pub fn into_identity(self) -> Result<Identity, ClaimsError> {
        let user_id = UserId::parse(&self.sub).map_err(|_| ClaimsError::BadSubject)?;
        let org = self.organization()?;
        Ok(Identity {
            user_id,
            session_id: self.sid,
            org,
        })
    }

    fn organization(&self) -> Result<Option<OrgMembership>, ClaimsError> {
        // v2 tokens carry `o`; v1 tokens carry the flat `org_*` claims.
        let v2 = self
            .o
            .as_ref()
            .filter(|_| self.v.unwrap_or(1) >= 2 || self.org_id.is_none());
        let (id, role, slug) = if let Some(o) = v2 {
            (
                o.id.as_str(),
                o.rol.as_deref().map(prefixed_role),
                o.slg.clone(),
            )
        } else if let Some(id) = &self.org_id {
            (id.as_str(), self.org_role.clone(), self.org_slug.clone())
        } else {
            return Ok(None);
        };
        let id = OrgId::parse(id).map_err(|e| ClaimsError::BadOrganization(e.to_string()))?;
        Ok(Some(OrgMembership { id, role, slug }))
    }
}

fn prefixed_role(role: &str) -> String {
    if role.starts_with("org:") {
        role.to_owned()
    } else {
        format!("org:{role}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `json` plus the `exp` every token must carry.
    fn claims(json: &str) -> ClerkClaims {
        let mut value: serde_json::Value = serde_json::from_str(json).unwrap();
        value["exp"] = 4_000_000_000i64.into();
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn v1_organization_claims_are_read() {
        let id = claims(r#"{"sub":"user_1","sid":"sess_1","org_id":"org_a","org_role":"org:admin","org_slug":"acme"}"#)
            .into_identity()
            .unwrap();
        let org = id.org.unwrap();
        assert_eq!(org.id.as_str(), "org_a");
        assert_eq!(org.role.as_deref(), Some("org:admin"));
        assert_eq!(org.slug.as_deref(), Some("acme"));
        assert_eq!(id.session_id.as_deref(), Some("sess_1"));
    }

    #[test]
    fn v2_organization_claims_are_read_and_role_prefixed() {
        let id = claims(r#"{"sub":"user_1","v":2,"o":{"id":"org_b","rol":"member","slg":"beta","per":"","fpm":""}}"#)
            .into_identity()
            .unwrap();
        let org = id.org.unwrap();
        assert_eq!(org.id.as_str(), "org_b");
        assert_eq!(org.role.as_deref(), Some("org:member"));
        assert_eq!(org.slug.as_deref(), Some("beta"));
    }

    #[test]
    fn no_organization_claim_means_no_active_organization() {
        assert!(
            claims(r#"{"sub":"user_1"}"#)
                .into_identity()
                .unwrap()
                .org
                .is_none()
        );
        assert!(
            claims(r#"{"sub":"user_1","v":2}"#)
                .into_identity()
                .unwrap()
                .org
                .is_none()
        );
    }

    #[test]
    fn malformed_claims_are_rejected() {
        assert!(claims(r#"{"sub":""}"#).into_identity().is_err());
        assert!(
            claims(r#"{"sub":"user_1","org_id":"not-an-org"}"#)
                .into_identity()
                .is_err()
        );
        assert!(
            claims(r#"{"sub":"user_1","v":2,"o":{"id":"x y"}}"#)
                .into_identity()
                .is_err()
        );
    }
}
