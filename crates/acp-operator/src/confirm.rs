//! What the watch caches cannot answer, asked of the API server on the rare
//! paths where a wrong answer would cost a run:
//!
//! - a recorded run whose Job the cache does not hold is confirmed with a GET
//!   before it is called lost (a cache can lag: a re-list after a watch
//!   error, a new leader's first list served from the API server's cache);
//! - a Job that exists but is not in this shard's cache belongs to a session
//!   that moved here from another shard (its source's shard label changed):
//!   its children are relabelled into this shard, so the caches see them
//!   from then on.

use acp_api::AgenticSession;
use acp_api::constants::{field_managers, labels};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use tracing::info;

use crate::cache::JOB_NAME_LABEL;
use crate::state::{RunState, job_name};

/// Run `run` of `session` as the API server has it (its Job and newest pod),
/// relabelling its children into the session's shard if they are in
/// another; `None` when the Job does not exist.
pub async fn run(
    client: &Client,
    session: &AgenticSession,
    ns: &str,
    run: i64,
) -> Result<Option<RunState>, kube::Error> {
    let name = job_name(&session.name_any(), run);
    let Some((job, pods)) = adopt(client, session, ns, &name).await? else { return Ok(None) };
    let pod = pods.iter().max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    Ok(Some(RunState { run, name, progress: crate::observe::progress(&job, pod) }))
}

/// Job `name` of `session` and its pods, read from the API server; when the
/// Job's shard label is not the session's, the Job, its pods, the session's
/// Secret and claim are relabelled.
pub async fn adopt(
    client: &Client,
    session: &AgenticSession,
    ns: &str,
    name: &str,
) -> Result<Option<(Job, Vec<Pod>)>, kube::Error> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let Some(job) = jobs.get_opt(name).await? else { return Ok(None) };
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut listed =
        pods.list(&ListParams::default().labels(&format!("{JOB_NAME_LABEL}={name}"))).await?.items;
    let want = session.labels().get(labels::SHARD);
    if job.labels().get(labels::SHARD) == want {
        return Ok(Some((job, listed)));
    }
    let patch = Patch::Merge(json!({"metadata": {"labels": {labels::SHARD: want}}}));
    let params =
        PatchParams { field_manager: Some(field_managers::OPERATOR.into()), ..PatchParams::default() };
    let session_name = session.name_any();
    for pod in &mut listed {
        *pod = pods.patch(&pod.name_any(), &params, &patch).await?;
    }
    let secret = crate::names::secret_name(&session_name);
    ignore_missing(Api::<Secret>::namespaced(client.clone(), ns).patch(&secret, &params, &patch).await)?;
    let claim = crate::names::pvc_name(&session_name);
    ignore_missing(
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns).patch(&claim, &params, &patch).await,
    )?;
    let job = jobs.patch(name, &params, &patch).await?;
    info!(job = %name, shard = ?want, "relabelled a run that moved into this shard");
    Ok(Some((job, listed)))
}

fn ignore_missing<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}
