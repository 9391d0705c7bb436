//! The Kubernetes side of a sync: list the target namespace's objects, apply
//! with server-side apply under git-sync's field manager (optionally as the
//! source's ServiceAccount), and delete pruned ones with a UID precondition
//! so that only the object that was listed is removed; plus the source's
//! git credentials from its Secret, and asking for a sync.

use acp_api::constants::{GROUP, VERSION, field_managers, impersonation};
use futures_util::{StreamExt as _, stream};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions, ValidationDirective,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use serde_json::Value;

use crate::plan::{Desired, Kind};

/// Requests in flight at once during an apply.
pub const CONCURRENCY: usize = 64;

/// The AgenticSession resource for dynamic clients.
pub fn session_resource() -> ApiResource {
    resource(Kind::Session)
}

/// The resource of `kind` for dynamic clients.
pub fn resource(kind: Kind) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, kind.as_str()), kind.plural())
}

/// Sessions of `namespace`.
pub fn sessions(client: Client, namespace: &str) -> Api<DynamicObject> {
    objects(client, namespace, Kind::Session)
}

/// Objects of `kind` in `namespace`.
pub fn objects(client: Client, namespace: &str, kind: Kind) -> Api<DynamicObject> {
    Api::namespaced_with(client, namespace, &resource(kind))
}

/// The API server's message of a failed request, without the client's wrapping.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// A client acting as ServiceAccount `name` of `namespace`. Only the user is
/// impersonated: the API server adds a ServiceAccount's groups itself, so
/// git-sync needs (and its RBAC grants) `impersonate` on serviceaccounts
/// alone, never on groups or users. The identity also carries git-sync's
/// extra ([`impersonation::APPLIED_BY`]), which no tenant can add (it takes
/// `impersonate` on that `userextras`): admission lets it stamp the labels
/// and annotations reserved for acp's components, which the
/// ServiceAccount alone may not write.
pub fn impersonating(config: &Config, namespace: &str, name: &str) -> Result<Client, kube::Error> {
    let mut config = config.clone();
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{namespace}:{name}"));
    config.auth_info.impersonate_groups = None;
    config.auth_info.impersonate_user_extra =
        Some([(impersonation::APPLIED_BY.to_owned(), vec![impersonation::GIT_SYNC.to_owned()])].into());
    Client::try_from(config)
}

/// Every session in the API's namespace, as JSON.
pub async fn list(api: &Api<DynamicObject>) -> Result<Vec<Value>, kube::Error> {
    let list = api.list(&ListParams::default()).await?;
    Ok(list.items.iter().filter_map(|o| serde_json::to_value(o).ok()).collect())
}

/// Applies each of `desired` at `revision`, labelled with the commit that
/// last changed its file (`commits`, by path; `revision` when unknown);
/// returns the failures.
pub async fn apply(
    api: &Api<DynamicObject>,
    desired: Vec<Desired>,
    revision: &str,
    commits: &std::collections::HashMap<String, String>,
) -> Vec<(Desired, kube::Error)> {
    let mut params = PatchParams::apply(field_managers::GIT_SYNC).force();
    params.field_validation = Some(ValidationDirective::Strict);
    let results: Vec<Option<(Desired, kube::Error)>> =
        stream::iter(desired)
            .map(|want| {
                let (api, params) = (api.clone(), params.clone());
                let commit = commits.get(&want.path).map_or(revision, String::as_str);
                let object = want.stamped(revision, commit);
                async move {
                    api.patch(&want.name, &params, &Patch::Apply(&object)).await.err().map(|e| (want, e))
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    results.into_iter().flatten().collect()
}

/// Deletes `(name, uid)` pairs; an object already gone is fine. Returns the failures.
pub async fn prune(
    api: &Api<DynamicObject>,
    victims: Vec<(String, Option<String>)>,
) -> Vec<(String, kube::Error)> {
    let results: Vec<Option<(String, kube::Error)>> = stream::iter(victims)
        .map(|(name, uid)| {
            let api = api.clone();
            async move {
                let params = DeleteParams {
                    preconditions: Some(Preconditions { uid, resource_version: None }),
                    ..DeleteParams::background()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => None,
                    Err(kube::Error::Api(status)) if status.code == 404 => None,
                    Err(e) => Some((name, e)),
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.into_iter().flatten().collect()
}

/// Git credentials from a source's Secret data (Flux's key names).
pub fn secret_credentials(
    data: &std::collections::BTreeMap<String, k8s_openapi::ByteString>,
) -> acp_git::Credentials {
    acp_git::Credentials::from_secret(|k| data.get(k).map(|v| String::from_utf8_lossy(&v.0).into_owned()))
}

/// Asks git-sync to sync `source` now: a new `reconcile-requested-at`
/// value (`token`), as a push delivery or a recorded request does.
pub async fn request_sync(
    client: &Client,
    source: &acp_api::SessionSource,
    token: &str,
) -> Result<(), kube::Error> {
    use kube::ResourceExt as _;
    let api: Api<acp_api::SessionSource> =
        Api::namespaced(client.clone(), &source.namespace().unwrap_or_default());
    let patch = serde_json::json!({"metadata": {"annotations": {acp_api::constants::annotations::RECONCILE_REQUESTED_AT: token}}});
    api.patch(&source.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
}
