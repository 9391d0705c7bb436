//! GitHub for a SessionSource: the client acting with the source's
//! credentials and the login it acts as. The credentials are in the Secret
//! `spec.github.tokenSecretRef` names, in the source's namespace: a token
//! (under the ref's key, default `token`), or a GitHub App (`appId`,
//! `privateKey`), whose installation token is minted for the one
//! repository asked about. Tokens and logins are cached here, per
//! credential, for every component that writes to GitHub.

use std::collections::BTreeMap;
use std::time::Duration;

use acp_api::SessionSource;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt as _};

use crate::app::{Tokens, credentials};
use crate::client::{GitHub, GitHubError};

/// Who acts on GitHub for a source.
pub struct Account {
    /// The client, for one repository.
    pub github: GitHub,
    /// Its login: the App's bot user, or the token's user.
    pub login: String,
}

/// GitHub for sources, with the caches their credentials need.
pub struct Accounts {
    api_url: String,
    client: Client,
    tokens: Tokens,
    /// The login of each plain token (`GET /user`), by token digest.
    logins: moka::future::Cache<String, String>,
}

impl Accounts {
    /// Accounts on the GitHub API at `api_url`, reading Secrets with `client`.
    pub fn new(client: Client, api_url: &str) -> Self {
        let logins = moka::future::Cache::builder()
            .time_to_live(Duration::from_secs(3600))
            .max_capacity(10_000)
            .build();
        Self { api_url: api_url.to_owned(), client, tokens: Tokens::default(), logins }
    }

    /// The API base URL.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// GitHub for `repository` (`owner/name`) with `source`'s credentials;
    /// `None` when the source names no Secret or the Secret holds neither
    /// a token nor an App.
    pub async fn for_source(
        &self,
        source: &SessionSource,
        repository: &str,
    ) -> Result<Option<Account>, GitHubError> {
        let Some(reference) = source.spec.github.as_ref().and_then(|g| g.token_secret_ref.as_ref()) else {
            return Ok(None);
        };
        let data = self.secret(&source.namespace().unwrap_or_default(), &reference.name).await?;
        let found = credentials(&data, reference.key.as_deref(), &self.api_url, repository, &self.tokens)
            .await
            .map_err(GitHubError::App)?;
        let Some((token, app_login)) = found else { return Ok(None) };
        let github = GitHub::new(&self.api_url, &token, repository)?;
        let login = match app_login {
            Some(login) => login,
            None => {
                let key = digest(&token);
                self.logins.try_get_with(key, github.login()).await.map_err(GitHubError::Shared)?
            }
        };
        Ok(Some(Account { github, login }))
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<BTreeMap<String, ByteString>, GitHubError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = api.get_opt(name).await.map_err(|source| GitHubError::Secret { source })?;
        Ok(secret.and_then(|s| s.data).unwrap_or_default())
    }
}

/// A token's cache key: never the token itself.
fn digest(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
