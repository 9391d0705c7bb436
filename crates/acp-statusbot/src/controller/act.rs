//! Carrying out a decision: the refusal event for a session its source did
//! not apply; for a [`Plan`], its effects in order: the write-back commit
//! (serialized per mirror in this process), then GitHub through the source's
//! account (the thread's tracking comment rendered first, then
//! [`post`](super::post)), then the state saved. What did happen is saved
//! before what failed is reported: a retry must not post again what was
//! already posted.

use std::collections::BTreeMap;

use acp_api::constants::{annotations, field_managers};
use acp_api::pull_requests::ThreadPath;
use acp_api::status_bot::BotState;
use acp_api::{AgenticSession, SessionSource};
use acp_git::Credentials;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::json;
use tracing::{info, warn};

use super::{Context, Error, post};
use crate::plan::{Claim, Commit, Plan, kept_by};
use crate::render::Thread;
use crate::report::Report;
use crate::writeback::{WriteBack, Written};
use acp_kube::reconcile::kube_err;

/// Records a warning event on `session`: the bot does not report for it,
/// since `source` did not apply it (`why`).
pub(super) async fn refuse(ctx: &Context, session: &AgenticSession, source: &str, why: &str) {
    warn!(source = %source, %why, "not acting for a session its source did not apply");
    let event = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Warning,
        reason: "SourceNotVerified".into(),
        note: Some(format!(
            "the status bot does not report for this session: source {source} did not apply it ({why})"
        )),
        action: "Report".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &session.object_ref(&())).await {
        warn!(%error, "failed to record an event");
    }
}

/// Carries out `plan`; returns when to look again.
pub(super) async fn report(ctx: &Context, plan: &Plan<'_>) -> Result<Action, Error> {
    let mut next = plan.state.clone();
    if let Some(commit) = &plan.write_back {
        write_back(ctx, plan.claim, commit).await?;
        next.written = Some(commit.digest.clone());
    }
    let source = &plan.claim.source;
    // The source's Secret holds a token, or a GitHub App (appId, privateKey).
    let account = match &plan.github {
        Some(github) => ctx.github.for_source(source, &github.repository).await?.map(|a| (github, a)),
        None => None,
    };
    let Some((github, account)) = account else {
        save(ctx, plan, &next).await?;
        return Ok(Action::await_change());
    };
    // A request's thread is read and its tracking comment rendered first,
    // whatever is then posted.
    let body = match &github.thread {
        Some(asked) => Some(ctx.config.renderer.thread(&thread(ctx, source, asked, &plan.report).await?)?),
        None => None,
    };
    let posted = post::post(&account, &ctx.config, plan, github, body, &mut next).await;
    // Record what did happen before reporting what failed: a retry must
    // not post again what was already posted.
    save(ctx, plan, &next).await?;
    posted
}

/// Commits `commit` to the write-back branch of the claimed source.
async fn write_back(ctx: &Context, claim: &Claim, commit: &Commit) -> Result<(), Error> {
    let credentials = match &claim.source.spec.secret_ref {
        Some(r) => {
            let data = secret_data(&ctx.client, &claim.namespace, &r.name).await?;
            Credentials::from_secret(|k| data.get(k).map(|v| String::from_utf8_lossy(&v.0).into_owned()))
        }
        None => Credentials::default(),
    };
    let target = WriteBack {
        dir: ctx.config.cache_dir.join(&claim.namespace).join(&claim.name),
        url: claim.source.spec.url.clone(),
        branch: commit.branch.clone(),
        credentials,
        author_name: ctx.config.author.0.clone(),
        author_email: ctx.config.author.1.clone(),
    };
    let lock =
        ctx.mirrors.lock().map(|mut m| m.entry(target.dir.clone()).or_default().clone()).unwrap_or_default();
    let files = [(commit.path.clone(), commit.content.clone().into_bytes())];
    let message = commit.message.clone();
    let written = tokio::task::spawn_blocking(move || {
        let _serial = lock.lock();
        target.write(&files, &message)
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??;
    if let Written::Committed { commit, retries } = written {
        info!(%commit, retries, "status written back");
        acp_kube::failpoint::hit("statusbot.written-back");
    }
    Ok(())
}

/// The data of Secret `name` in `ns` (empty when it does not exist).
async fn secret_data(client: &Client, ns: &str, name: &str) -> Result<BTreeMap<String, ByteString>, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets.get_opt(name).await.map_err(kube_err("read a secret"))?;
    Ok(secret.and_then(|s| s.data).unwrap_or_default())
}

/// The reports of `asked`'s sessions, oldest first, `current` (the session
/// being reconciled, with its todo list) in its place.
async fn thread(
    ctx: &Context,
    source: &SessionSource,
    asked: &ThreadPath,
    current: &Report,
) -> Result<Thread, Error> {
    let sessions = acp_kube::threads::sessions(&ctx.client, source, asked)
        .await
        .map_err(kube_err("list the thread's sessions"))?;
    let dashboard = ctx.config.dashboard_url.as_deref();
    let turns =
        sessions
            .iter()
            .map(|s| {
                if s.name_any() == current.name {
                    current.clone()
                } else {
                    crate::report::report(s, dashboard)
                }
            })
            .collect();
    Ok(Thread { repository: asked.repository.clone(), pull: asked.pull, source: kept_by(source), turns })
}

/// Persists `next` in the session's annotation when it differs from the
/// state saved.
async fn save(ctx: &Context, plan: &Plan<'_>, next: &BotState) -> Result<(), Error> {
    if *next != plan.saved {
        let api: Api<AgenticSession> = Api::namespaced(ctx.client.clone(), &plan.namespace);
        let value = serde_json::to_string(next).unwrap_or_default();
        let patch = json!({"metadata": {"annotations": {annotations::STATUS_BOT_STATE: value}}});
        let params =
            PatchParams { field_manager: Some(field_managers::STATUS_BOT.into()), ..Default::default() };
        api.patch(&plan.name, &params, &Patch::Merge(&patch))
            .await
            .map_err(kube_err("record the status bot's progress"))?;
        if let Ok(mut saved) = ctx.saved.lock() {
            saved.insert((plan.namespace.clone(), plan.name.clone()), next.clone());
        }
    }
    Ok(())
}
