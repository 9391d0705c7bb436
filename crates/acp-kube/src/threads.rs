//! A pull request's thread in the cluster: the sessions a SessionSource
//! applied for it, in the order they were asked for. The thread is what the
//! source's inventory (git-sync's record) holds under the pull request's
//! directory, never a session whose name or labels look alike; the order is
//! the chain of parent links ([`acp_api::pull_requests::chain`]).

use acp_api::constants::annotations;
use acp_api::pull_requests::{ThreadPath, chain};
use acp_api::{AgenticSession, SessionSource};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt as _};

/// The sessions of `thread` that `source` applied, oldest request first:
/// one list of the source's sessions, not a read per turn.
pub async fn sessions(
    client: &Client,
    source: &SessionSource,
    thread: &ThreadPath,
) -> Result<Vec<AgenticSession>, kube::Error> {
    let namespace = source.target_namespace();
    let names = source.thread_of(namespace, thread);
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let api: Api<AgenticSession> = Api::namespaced(client.clone(), namespace);
    let selector =
        acp_api::source::applied_by(source.namespace().as_deref().unwrap_or_default(), &source.name_any());
    let listed = api.list(&ListParams::default().labels(&selector)).await?;
    Ok(in_order(&names, listed.items))
}

/// `sessions` restricted to `names`, in the order the parent links give.
fn in_order(names: &[String], sessions: Vec<AgenticSession>) -> Vec<AgenticSession> {
    let mut mine: Vec<AgenticSession> =
        sessions.into_iter().filter(|s| names.contains(&s.name_any())).collect();
    let links: Vec<(String, Option<String>)> = names
        .iter()
        .map(|name| {
            let session = mine.iter().find(|s| &s.name_any() == name);
            (name.clone(), session.and_then(|s| s.annotations().get(annotations::PARENT_SESSION).cloned()))
        })
        .collect();
    let order = chain(&links);
    mine.sort_by_key(|s| order.iter().position(|n| *n == s.name_any()));
    mine
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(name: &str, parent: Option<&str>) -> AgenticSession {
        let mut session = AgenticSession::new(name, acp_api::SessionSpec::default());
        if let Some(parent) = parent {
            session.annotations_mut().insert(annotations::PARENT_SESSION.into(), parent.into());
        }
        session
    }

    #[test]
    fn only_the_threads_sessions_in_the_order_they_were_asked_for() {
        // An edited older comment (smaller id) asked last: it follows its parent.
        let names = vec!["w-pr7-5".to_owned(), "w-pr7-9".to_owned(), "w-pr7-3".to_owned()];
        let listed = vec![
            session("w-pr7-3", Some("w-pr7-9")),
            session("lookalike-w-pr7-4", None),
            session("w-pr7-9", Some("w-pr7-5")),
            session("w-pr7-5", None),
        ];
        let order: Vec<String> = in_order(&names, listed).iter().map(|s| s.name_any()).collect();
        assert_eq!(order, ["w-pr7-5", "w-pr7-9", "w-pr7-3"]);
    }
}
