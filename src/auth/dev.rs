//! Development sign-in without a Clerk account: a locally generated RSA key
//! that signs Clerk-shaped tokens. The server trusts it only with `DEV_AUTH`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;

use super::claims::OrgClaimV2;
use crate::domain::{OrgId, UserId, unix_now};

pub struct DevKey {
    pub kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// What a development token says about its user.
pub struct DevTokenRequest<'a> {
    pub user: &'a UserId,
    pub org: Option<&'a OrgId>,
    pub role: &'a str,
    pub slug: Option<&'a str>,
    pub ttl_secs: i64,
}

#[derive(Serialize)]
struct DevClaims<'a> {
    sub: &'a str,
    sid: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    v: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    o: Option<OrgClaimV2>,
}

impl DevKey {
    /// Reads the key at `path`, generating it (mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            Self::generate(path)?;
        }
        let pem = std::fs::read(path)
            .with_context(|| format!("could not read the development key {}", path.display()))?;
        Self::from_pkcs8_pem(&pem)
            .with_context(|| format!("{} is not a PKCS#8 RSA private key", path.display()))
    }

    fn generate(path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
        let der = pair
            .as_der()
            .map_err(|_| anyhow::anyhow!("could not serialize the RSA key"))?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => file.write_all(pem.as_bytes())?,
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).context(format!("could not create {}", path.display())),
        }
        Ok(())
    }

    pub fn from_pkcs8_pem(pem_bytes: &[u8]) -> anyhow::Result<Self> {
        let parsed = pem::parse(pem_bytes)?;
        let pair = KeyPair::from_pkcs8(parsed.contents())
            .map_err(|e| anyhow::anyhow!("invalid RSA key: {e}"))?;
        let public_der = pair.public_key().as_ref().to_vec();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &public_der);
        let kid = format!("dev-{}", hex::encode(&digest.as_ref()[..8]));
        Ok(Self {
            kid,
            encoding: EncodingKey::from_rsa_pem(pem_bytes)?,
            decoding: DecodingKey::from_rsa_der(&public_der),
        })
    }

    pub fn decoding_key(&self) -> DecodingKey {
        self.decoding.clone()
    }

    /// A Clerk v2-format session token signed with this key.
    pub fn mint(&self, req: &DevTokenRequest<'_>) -> anyhow::Result<String> {
        let now = unix_now();
        let claims = DevClaims {
            sub: req.user.as_str(),
            sid: format!("sess_dev_{}", uuid::Uuid::new_v4().simple()),
            iat: now,
            nbf: now,
            exp: now + req.ttl_secs,
            v: 2,
            o: req.org.map(|org| OrgClaimV2 {
                id: org.to_string(),
                rol: Some(req.role.trim_start_matches("org:").to_owned()),
                slg: req.slug.map(str::to_owned),
            }),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }
}
