//! GitHub App authentication: a JSON Web Token signed with the App's private
//! key (RS256) is exchanged for an installation token of the repository's
//! installation, cached until shortly before it expires.
//!
//! The JWT is signed with `ring` (already in the build for TLS) rather than a
//! JWT crate: the token is three base64url parts and one RSA signature, and
//! the JWT crates would add a second RSA implementation or a C toolchain.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use k8s_openapi::ByteString;
use octocrab::Octocrab;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};

/// Renew an installation token this long before GitHub expires it.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Failures of App authentication.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The Secret's `appId` is not a number.
    #[error("failed to read the GitHub App id: {0:?} is not a number")]
    AppId(String),
    /// The private key is not an RSA key in PEM (PKCS#1 or PKCS#8).
    #[error("failed to read the GitHub App private key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("failed to sign the GitHub App token")]
    Sign,
    /// GitHub refused or answered unexpectedly.
    #[error("failed to {action}")]
    Request {
        /// What was being done.
        action: &'static str,
        /// The client's error.
        #[source]
        source: octocrab::Error,
    },
    /// GitHub's answer lacked a field.
    #[error("failed to {0}: unexpected answer")]
    Shape(&'static str),
    /// A token request another caller made failed (its error, shared).
    #[error(transparent)]
    Shared(Arc<AppError>),
}

/// A GitHub App's credentials.
#[derive(Clone)]
pub struct App {
    id: u64,
    key: Arc<RsaKeyPair>,
    /// SHA-256 of the public key: caches are keyed by the credential, so
    /// a Secret naming someone else's App id with another key never gets
    /// that App's tokens from the cache.
    fingerprint: [u8; 32],
    installation: Option<u64>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("id", &self.id)
            .field("installation", &self.installation)
            .finish_non_exhaustive()
    }
}

fn text(data: &std::collections::BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key).map(|v| String::from_utf8_lossy(&v.0).trim().to_owned()).filter(|v| !v.is_empty())
}

impl App {
    /// The App in a Secret's data (`appId`, `privateKey`, optional
    /// `installationId`); `None` when the Secret holds no App.
    pub fn from_secret_data(
        data: &std::collections::BTreeMap<String, ByteString>,
    ) -> Option<Result<Self, AppError>> {
        let (id, pem) = (text(data, "appId")?, text(data, "privateKey")?);
        let installation = text(data, "installationId").and_then(|i| i.parse().ok());
        Some(Self::new(&id, &pem, installation))
    }

    /// An App from its id and PEM private key.
    pub fn new(id: &str, pem: &str, installation: Option<u64>) -> Result<Self, AppError> {
        let id = id.parse().map_err(|_| AppError::AppId(id.to_owned()))?;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
        let der = STANDARD.decode(body).map_err(|e| AppError::Key(e.to_string()))?;
        let key = if pem.contains("BEGIN RSA PRIVATE KEY") {
            RsaKeyPair::from_der(&der)
        } else {
            RsaKeyPair::from_pkcs8(&der)
        }
        .map_err(|e| AppError::Key(e.to_string()))?;
        let mut fingerprint = [0; 32];
        fingerprint
            .copy_from_slice(ring::digest::digest(&ring::digest::SHA256, key.public().as_ref()).as_ref());
        Ok(Self { id, key: Arc::new(key), fingerprint, installation })
    }

    /// The App's JWT at `now` (seconds since the epoch): valid from a minute
    /// ago (clock skew) for nine minutes, under GitHub's ten-minute limit.
    pub fn jwt(&self, now: u64) -> Result<String, AppError> {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
        let claims = URL_SAFE_NO_PAD.encode(
            json!({"iat": now.saturating_sub(60), "exp": now + 540, "iss": self.id.to_string()}).to_string(),
        );
        let signed = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), signed.as_bytes(), &mut signature)
            .map_err(|_| AppError::Sign)?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Whose token: (API URL, App id, the key's fingerprint, installation,
/// repository). A hit needs the same key: one team's Secret never gets a
/// token another team's key earned.
type TokenKey = (String, u64, [u8; 32], Option<u64>, String);

/// Whose login: (API URL, App id, the key's fingerprint).
type LoginKey = (String, u64, [u8; 32]);

/// An installation token and when it expires (seconds since the epoch).
#[derive(Clone)]
struct Token {
    token: String,
    expires: u64,
}

/// Each token leaves the cache [`RENEW_BEFORE`] its expiry.
struct UntilRenewal;

impl moka::Expiry<TokenKey, Token> for UntilRenewal {
    fn expire_after_create(&self, _: &TokenKey, token: &Token, _: std::time::Instant) -> Option<Duration> {
        Some(Duration::from_secs(token.expires.saturating_sub(now() + RENEW_BEFORE.as_secs())))
    }
}

/// Installation tokens, kept until shortly before they expire (`moka`);
/// concurrent callers with the same credential for the same repository
/// share one request. Entries are per credential (App id, key, installation),
/// never per App id alone.
pub struct Tokens {
    cached: moka::future::Cache<TokenKey, Token>,
    logins: moka::future::Cache<LoginKey, String>,
}

impl Default for Tokens {
    fn default() -> Self {
        Self {
            cached: moka::future::Cache::builder().max_capacity(10_000).expire_after(UntilRenewal).build(),
            logins: moka::future::Cache::builder()
                .max_capacity(1_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }
}

impl Tokens {
    /// An installation token of `app` for `repository` (`owner/name`).
    pub async fn token(&self, api_url: &str, app: &App, repository: &str) -> Result<String, AppError> {
        let key = (api_url.to_owned(), app.id, app.fingerprint, app.installation, repository.to_owned());
        let token = self.cached.try_get_with(key, create(api_url, app, repository)).await;
        token.map(|t| t.token).map_err(AppError::Shared)
    }

    /// The login of `app`'s bot user (`<slug>[bot]`), who writes its comments.
    pub async fn login(&self, api_url: &str, app: &App) -> Result<String, AppError> {
        let key = (api_url.to_owned(), app.id, app.fingerprint);
        self.logins.try_get_with(key, bot_login(api_url, app)).await.map_err(AppError::Shared)
    }
}

/// `GET /app` as the App itself: its slug names its bot user.
async fn bot_login(api_url: &str, app: &App) -> Result<String, AppError> {
    let jwt = app.jwt(now())?;
    let client = Octocrab::builder()
        .base_uri(api_url)
        .and_then(|b| b.personal_token(jwt).build())
        .map_err(|source| AppError::Request { action: "set up the GitHub App client", source })?;
    let action = "read the GitHub App";
    let found: Value =
        client.get("/app", None::<&()>).await.map_err(|source| AppError::Request { action, source })?;
    let slug = found["slug"].as_str().ok_or(AppError::Shape(action))?;
    Ok(format!("{slug}[bot]"))
}

/// Asks GitHub for a new installation token.
async fn create(api_url: &str, app: &App, repository: &str) -> Result<Token, AppError> {
    let jwt = app.jwt(now())?;
    let client = Octocrab::builder()
        .base_uri(api_url)
        .and_then(|b| b.personal_token(jwt).build())
        .map_err(|source| AppError::Request { action: "set up the GitHub App client", source })?;
    let installation = match app.installation {
        Some(id) => id,
        None => {
            let action = "find the GitHub App's installation on the repository";
            let found: Value = client
                .get(format!("/repos/{repository}/installation"), None::<&()>)
                .await
                .map_err(|source| AppError::Request { action, source })?;
            found["id"].as_u64().ok_or(AppError::Shape(action))?
        }
    };
    let action = "create a GitHub App installation token";
    // For this repository only, not every repository of the installation.
    let name = repository.rsplit('/').next().unwrap_or(repository);
    let created: Value = client
        .post(
            format!("/app/installations/{installation}/access_tokens"),
            Some(&json!({"repositories": [name]})),
        )
        .await
        .map_err(|source| AppError::Request { action, source })?;
    let token = created["token"].as_str().ok_or(AppError::Shape(action))?.to_owned();
    let expires = created["expires_at"]
        .as_str()
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map_or(now() + 3600, |t| t.as_second().max(0) as u64);
    Ok(Token { token, expires })
}

/// Who acts on GitHub for a Secret: the token it holds under `key`
/// (default `token`), or an installation token of the GitHub App it holds
/// (`appId`, `privateKey`) for `repository`, with the App's bot login.
/// `None` when the Secret holds neither.
pub async fn credentials(
    data: &std::collections::BTreeMap<String, ByteString>,
    key: Option<&str>,
    api_url: &str,
    repository: &str,
    tokens: &Tokens,
) -> Result<Option<(String, Option<String>)>, AppError> {
    match App::from_secret_data(data) {
        Some(app) => {
            let app = app?;
            let token = tokens.token(api_url, &app, repository).await?;
            Ok(Some((token, Some(tokens.login(api_url, &app).await?))))
        }
        None => Ok(text(data, key.unwrap_or("token")).map(|t| (t, None))),
    }
}
