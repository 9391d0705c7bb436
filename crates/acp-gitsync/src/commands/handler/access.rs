//! Who a comment's author is: the commenter's role (remembered, lookups
//! limited per source); and the source's Secrets (GitHub for a source is
//! [`acp_github::Accounts`]).

use acp_api::SessionSource;
use acp_api::pull_requests::Role;
use acp_github::GitHub;
use acp_kube::reconcile::kube_err;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::Api;

use super::{Commands, Error, REMEMBERED, ROLE_TTL, STRANGER_TTL, scope};

impl Commands {
    /// The role of `login` on `repository` for `source`, while it is
    /// remembered ([`ROLE_TTL`]; a stranger for [`STRANGER_TTL`]).
    pub(super) fn remembered(&self, source: &SessionSource, repository: &str, login: &str) -> Option<Role> {
        let key = (scope(source), repository.to_ascii_lowercase(), login.to_ascii_lowercase());
        let now = std::time::Instant::now();
        let fresh = |role: &Role, at: &std::time::Instant| {
            now.duration_since(*at) < if *role == Role::None { STRANGER_TTL } else { ROLE_TTL }
        };
        let mut roles = self.roles.lock().ok()?;
        if roles.len() > REMEMBERED {
            roles.retain(|_, (role, at)| fresh(role, at));
        }
        roles.get(&key).filter(|(role, at)| fresh(role, at)).map(|(role, _)| *role)
    }

    /// The role of `login` on `repository` for `source`: remembered for
    /// [`ROLE_TTL`]; a lookup not remembered is limited per source.
    pub(super) async fn role(
        &self,
        source: &SessionSource,
        github: &GitHub,
        repository: &str,
        login: &str,
    ) -> Result<Role, Error> {
        if let Some(role) = self.remembered(source, repository, login) {
            return Ok(role);
        }
        let key = (scope(source), repository.to_ascii_lowercase(), login.to_ascii_lowercase());
        let now = std::time::Instant::now();
        if self.lookups.len() > REMEMBERED {
            self.lookups.retain_recent();
        }
        if self.lookups.check_key(&key.0).is_err() {
            return Err(Error::Limited { scope: key.0, login: login.to_owned() });
        }
        let role = Role::parse(&github.role(login).await?).unwrap_or(Role::None);
        if let Ok(mut roles) = self.roles.lock() {
            roles.insert(key, (role, now));
        }
        Ok(role)
    }

    pub(super) async fn secret(
        &self,
        source: &SessionSource,
        name: &str,
    ) -> Result<std::collections::BTreeMap<String, k8s_openapi::ByteString>, Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &source.namespace().unwrap_or_default());
        let secret = api.get_opt(name).await.map_err(kube_err("read the source's secret"))?;
        Ok(secret.and_then(|s| s.data).unwrap_or_default())
    }
}
