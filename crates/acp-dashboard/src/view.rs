//! What the dashboard shows, computed from cached objects without I/O: the
//! session row of lists (and of `GET /api/v1/sessions`), the list query
//! (filters, search, sort, page), and web links to files, commits, pull
//! requests and branches. Schedules have their own module, [`schedule`].

use std::cmp::Ordering;
use std::sync::Arc;

use acp_api::constants::{annotations, labels};
use acp_api::{AgenticSession, SessionPhase, SessionSource};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub mod schedule;

/// Most rows one page or API call returns.
pub const MAX_LIMIT: usize = 500;
/// Rows per page when the query does not say.
pub const DEFAULT_LIMIT: usize = 50;

/// One session as lists show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRow {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.displayName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Phase (`Pending` when the operator has not written one yet).
    pub phase: SessionPhase,
    /// The SessionSource that applied it, `<namespace>/<name>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Repository path of its manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Commit it was applied from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Model (`spec.llmSettings.model`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// When the runner started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    /// When the run ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<Timestamp>,
    /// Run duration in milliseconds, from the result or the timestamps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Agent turns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<i64>,
    /// Cost in US dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_cost_usd: Option<f64>,
    /// The operator's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Lowercase text the search matches against.
    #[serde(skip)]
    search: String,
}

fn time(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<Timestamp> {
    t.map(|t| t.0)
}

impl SessionRow {
    /// The row of `session`.
    pub fn new(session: &AgenticSession) -> Self {
        let meta = &session.metadata;
        let status = session.status.as_ref();
        let result = status.and_then(|s| s.result.as_ref());
        let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key)).cloned();
        let started = time(status.and_then(|s| s.start_time.as_ref()));
        let completed = time(status.and_then(|s| s.completion_time.as_ref()));
        let duration_ms = result.and_then(|r| r.duration_ms).or_else(|| {
            let (start, end) = (started?, completed?);
            Some(end.duration_since(start).as_millis() as i64)
        });
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let display_name = session.spec.display_name.clone();
        let path = annotation(annotations::SOURCE_PATH);
        let search = [Some(name.as_str()), display_name.as_deref(), path.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n")
            .to_lowercase();
        Self {
            namespace,
            name,
            display_name,
            phase: status.and_then(|s| s.phase).unwrap_or_default(),
            source: annotation(annotations::SOURCE),
            path,
            commit: meta.labels.as_ref().and_then(|l| l.get(labels::SOURCE_COMMIT)).cloned(),
            model: session.spec.llm_settings.as_ref().and_then(|l| l.model.clone()),
            created: time(meta.creation_timestamp.as_ref()),
            started,
            completed,
            duration_ms,
            num_turns: result.and_then(|r| r.num_turns),
            total_cost_usd: result.and_then(|r| r.total_cost_usd),
            message: status.and_then(|s| s.message.clone()),
            search,
        }
    }

    /// True when the search text contains every word of `query` (lowercase).
    fn matches_words(&self, words: &[String]) -> bool {
        words.iter().all(|w| self.search.contains(w.as_str()))
    }
}

/// The order of a list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    /// Creation time (the default, newest first).
    #[default]
    Created,
    /// Name.
    Name,
    /// Namespace, then name.
    Namespace,
    /// Phase in lifecycle order.
    Phase,
    /// Run duration.
    Duration,
    /// Cost.
    Cost,
}

/// Ascending or descending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// Filters, search, order and page of a session list (query string).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct SessionQuery {
    /// Only this namespace.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "empty_none")]
    pub namespace: Option<String>,
    /// Only this phase.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "empty_none")]
    pub phase: Option<String>,
    /// Only sessions of this source (`<namespace>/<name>`).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "empty_none")]
    pub source: Option<String>,
    /// Only sessions applied from this commit (a prefix of at least 7 hex digits).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "empty_none")]
    pub commit: Option<String>,
    /// Words that must all appear in the name, display name or file path.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "empty_none")]
    pub q: Option<String>,
    /// Sort key.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "empty_none")]
    pub sort: Option<SortKey>,
    /// Sort order (default: descending for created, duration and cost).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "empty_none")]
    pub order: Option<Order>,
    /// Page number, from 1.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "empty_none")]
    pub page: Option<usize>,
    /// Rows per page (at most [`MAX_LIMIT`]).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "empty_none")]
    pub limit: Option<usize>,
}

/// Empty query parameters (`?phase=`, as an HTML form sends them) mean "any".
fn empty_none<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let raw = Option::<String>::deserialize(de)?;
    let Some(s) = raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let value = s.parse::<u64>().map_or_else(|_| serde_json::Value::from(s), serde_json::Value::from);
    serde_json::from_value(value)
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("invalid value {s:?}")))
}

impl SessionQuery {
    /// Sort key in effect.
    pub fn sort_key(&self) -> SortKey {
        self.sort.unwrap_or_default()
    }

    /// Order in effect.
    pub fn order(&self) -> Order {
        self.order.unwrap_or(match self.sort_key() {
            SortKey::Created | SortKey::Duration | SortKey::Cost => Order::Desc,
            SortKey::Name | SortKey::Namespace | SortKey::Phase => Order::Asc,
        })
    }

    /// Rows per page in effect.
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }

    /// Page in effect (from 1).
    pub fn page(&self) -> usize {
        self.page.unwrap_or(1).max(1)
    }

    fn matches(&self, row: &SessionRow, words: &[String]) -> bool {
        self.namespace.as_deref().is_none_or(|ns| row.namespace == ns)
            && self.phase.as_deref().is_none_or(|p| row.phase.as_str().eq_ignore_ascii_case(p))
            && self.source.as_deref().is_none_or(|s| row.source.as_deref() == Some(s))
            && self
                .commit
                .as_deref()
                .is_none_or(|c| c.len() >= 7 && row.commit.as_deref().is_some_and(|rc| rc.starts_with(c)))
            && row.matches_words(words)
    }

    /// The query string for the same list with `page` changed.
    pub fn with_page(&self, page: usize) -> String {
        let mut query = self.clone();
        query.page = Some(page);
        query_string(&query)
    }
}

/// `key=value&…` in key order, values percent-encoded (a stable form for
/// links; `serde_urlencoded` would follow field order and encode spaces as `+`).
fn query_string(query: &SessionQuery) -> String {
    let value = serde_json::to_value(query).unwrap_or_default();
    let mut out = Vec::new();
    if let serde_json::Value::Object(map) = value {
        for (key, value) in map {
            let value = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            out.push(format!("{key}={}", percent_encode(&value)));
        }
    }
    out.join("&")
}

/// Characters kept as they are in a path segment: RFC 3986's unreserved.
const UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// The page of session `namespace/name`.
pub fn session_path(namespace: &str, name: &str) -> String {
    format!("/sessions/{}/{}", percent_encode(namespace), percent_encode(name))
}

/// One page of a filtered, sorted list.
#[derive(Clone, Debug, Serialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Rows matching the filters, over all pages.
    pub total: usize,
    /// This page's number, from 1.
    pub page: usize,
    /// Rows per page.
    pub limit: usize,
}

impl<T> Page<T> {
    /// Number of pages (at least 1).
    pub fn pages(&self) -> usize {
        self.total.div_ceil(self.limit).max(1)
    }
}

fn phase_rank(phase: SessionPhase) -> usize {
    SessionPhase::ALL.iter().position(|p| *p == phase).unwrap_or(0)
}

fn compare(key: SortKey, a: &SessionRow, b: &SessionRow) -> Ordering {
    let by_name = || a.namespace.cmp(&b.namespace).then_with(|| a.name.cmp(&b.name));
    match key {
        SortKey::Created => a.created.cmp(&b.created).then_with(by_name),
        SortKey::Name => a.name.cmp(&b.name).then_with(|| a.namespace.cmp(&b.namespace)),
        SortKey::Namespace => by_name(),
        SortKey::Phase => phase_rank(a.phase).cmp(&phase_rank(b.phase)).then_with(by_name),
        SortKey::Duration => a.duration_ms.cmp(&b.duration_ms).then_with(by_name),
        SortKey::Cost => {
            a.total_cost_usd.partial_cmp(&b.total_cost_usd).unwrap_or(Ordering::Equal).then_with(by_name)
        }
    }
}

/// Sorts rows in the default order (newest first), the order of the index.
pub fn sort_default(rows: &mut [Arc<SessionRow>]) {
    rows.sort_unstable_by(|a, b| compare(SortKey::Created, b, a));
}

/// Session rows in the default order (newest first), also grouped by
/// namespace, so that a namespace's page reads only its rows and an
/// unfiltered page stops once it is full.
#[derive(Debug, Default)]
pub struct Index {
    /// Every row, newest first.
    pub rows: Vec<Arc<SessionRow>>,
    /// Each namespace's rows, newest first.
    pub by_namespace: std::collections::BTreeMap<String, Vec<Arc<SessionRow>>>,
}

impl Index {
    /// The index of `rows` (any order).
    pub fn new(mut rows: Vec<Arc<SessionRow>>) -> Self {
        sort_default(&mut rows);
        let mut by_namespace: std::collections::BTreeMap<String, Vec<Arc<SessionRow>>> = Default::default();
        for row in &rows {
            match by_namespace.get_mut(&row.namespace) {
                Some(list) => list.push(row.clone()),
                None => {
                    by_namespace.insert(row.namespace.clone(), vec![row.clone()]);
                }
            }
        }
        Self { rows, by_namespace }
    }
}

/// Applies `query` to the rows of `index`, keeping only namespaces `visible`
/// allows.
pub fn select(index: &Index, query: &SessionQuery, visible: impl Fn(&str) -> bool) -> Page<Arc<SessionRow>> {
    let words: Vec<String> =
        query.q.as_deref().unwrap_or_default().split_whitespace().map(str::to_lowercase).collect();
    let (limit, page) = (query.limit(), query.page());
    let skip = (page - 1).saturating_mul(limit);
    let rows: &[Arc<SessionRow>] = match &query.namespace {
        Some(ns) => index.by_namespace.get(ns).map_or(&[], Vec::as_slice),
        None => &index.rows,
    };
    let key = query.sort_key();
    let order = query.order();
    let unfiltered =
        query.phase.is_none() && query.source.is_none() && query.commit.is_none() && words.is_empty();
    if key == SortKey::Created && order == Order::Desc && unfiltered {
        // Only visibility filters: the total is counted per namespace, and
        // the page is read and no further.
        let total = match &query.namespace {
            Some(ns) if visible(ns) => rows.len(),
            Some(_) => 0,
            None => index.by_namespace.iter().filter(|(ns, _)| visible(ns)).map(|(_, list)| list.len()).sum(),
        };
        let items = rows.iter().filter(|r| visible(&r.namespace)).skip(skip).take(limit).cloned().collect();
        return Page { items, total, page, limit };
    }
    let matching = rows.iter().filter(|r| visible(&r.namespace) && query.matches(r, &words));
    if key == SortKey::Created && order == Order::Desc {
        // The index is already in this order: count, and clone only one page.
        let mut total = 0;
        let mut items = Vec::with_capacity(limit);
        for row in matching {
            if total >= skip && items.len() < limit {
                items.push(row.clone());
            }
            total += 1;
        }
        return Page { items, total, page, limit };
    }
    let mut all: Vec<Arc<SessionRow>> = matching.cloned().collect();
    all.sort_by(|a, b| match order {
        Order::Asc => compare(key, a, b),
        Order::Desc => compare(key, b, a),
    });
    let total = all.len();
    let items = all.into_iter().skip(skip).take(limit).collect();
    Page { items, total, page, limit }
}

/// Whether `text` may be a link's target: an absolute `http` or `https` URL.
pub fn is_web_link(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// A web URL for a git remote URL, when it is on a known forge
/// (`https://host/owner/repo`, `git@host:owner/repo.git`, `ssh://git@host/…`).
pub fn web_url(remote: &str) -> Option<String> {
    acp_api::remote::Remote::parse(remote)?.web_url()
}

fn is_gitlab(web: &str) -> bool {
    web.contains("gitlab")
}

/// Link to `path` at `commit` in the repository at `web`.
pub fn file_url(web: &str, commit: &str, path: &str) -> String {
    let sep = if is_gitlab(web) { "/-/blob/" } else { "/blob/" };
    format!("{web}{sep}{commit}/{}", path.trim_start_matches('/'))
}

/// Link to `commit` in the repository at `web`.
pub fn commit_url(web: &str, commit: &str) -> String {
    let sep = if is_gitlab(web) { "/-/commit/" } else { "/commit/" };
    format!("{web}{sep}{commit}")
}

/// Link to `branch` in the repository at `web`.
pub fn branch_url(web: &str, branch: &str) -> String {
    let sep = if is_gitlab(web) { "/-/tree/" } else { "/tree/" };
    format!("{web}{sep}{branch}")
}

/// The links of a session's detail page.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Links {
    /// The manifest at the applied commit.
    pub file: Option<String>,
    /// The applied commit.
    pub commit: Option<String>,
    /// The pull request that brought the session in (from the status bot).
    pub pull_request: Option<String>,
}

/// The links of `session`, given the source that applied it.
pub fn links(session: &AgenticSession, source: Option<&SessionSource>) -> Links {
    let row = SessionRow::new(session);
    // The repository's web pages: from its URL when the host is a known
    // forge, else from the GitHub repository the source reports to (a source
    // may fetch through a mirror).
    let web = source.and_then(|s| {
        web_url(&s.spec.url).or_else(|| {
            let repository = s.spec.github.as_ref()?.repository.trim_matches('/');
            (repository.split('/').count() == 2).then(|| format!("https://github.com/{repository}"))
        })
    });
    let Some(web) = web else {
        return Links::default();
    };
    let pull = session
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::STATUS_BOT_STATE))
        .and_then(|s| acp_api::status_bot::BotState::parse(s))
        .and_then(|state| state.pull_request());
    Links {
        file: row.commit.as_deref().zip(row.path.as_deref()).map(|(c, p)| file_url(&web, c, p)),
        commit: row.commit.as_deref().map(|c| commit_url(&web, c)),
        pull_request: pull.map(|n| {
            let sep = if is_gitlab(&web) { "/-/merge_requests/" } else { "/pull/" };
            format!("{web}{sep}{n}")
        }),
    }
}

/// A duration for people: `850 ms`, `42 s`, `3 min 5 s`, `2 h 4 min`.
pub fn human_duration(ms: i64) -> String {
    let secs = ms / 1000;
    match ms {
        ..0 => "—".to_owned(),
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{secs} s"),
        60_000..3_600_000 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// How long ago `then` was, seen at `now`: `just now`, `5 min ago`, `3 h ago`, `2 d ago`.
pub fn ago(then: Timestamp, now: Timestamp) -> String {
    let secs = now.duration_since(then).as_secs();
    match secs {
        ..10 => "just now".to_owned(),
        10..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// One source as lists show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRow {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Repository URL.
    pub url: String,
    /// The ref followed, as `branch main`, `tag v1` or `commit abc…`.
    #[serde(skip_serializing_if = "Option::is_none", rename = "ref")]
    pub git_ref: Option<String>,
    /// Directory of manifests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The Ready condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<acp_api::Condition>,
    /// `spec.suspend`.
    pub suspended: bool,
    /// Last fetched revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_fetched_revision: Option<String>,
    /// Last applied revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// Sessions in the inventory.
    pub sessions: usize,
    /// Files with errors.
    pub errors: usize,
    /// When the last recorded sync started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<Timestamp>,
}

impl SourceRow {
    /// The row of `source`.
    pub fn new(source: &SessionSource) -> Self {
        let status = source.status.as_ref();
        let git_ref = source.spec.git_ref.as_ref().and_then(|r| {
            r.commit
                .as_ref()
                .map(|c| format!("commit {c}"))
                .or_else(|| r.tag.as_ref().map(|t| format!("tag {t}")))
                .or_else(|| r.branch.as_ref().map(|b| format!("branch {b}")))
        });
        Self {
            namespace: source.metadata.namespace.clone().unwrap_or_default(),
            name: source.metadata.name.clone().unwrap_or_default(),
            url: source.spec.url.clone(),
            git_ref,
            path: source.spec.path.clone(),
            ready: status
                .and_then(|s| {
                    acp_api::condition::find(&s.conditions, acp_api::constants::condition_types::READY)
                })
                .cloned(),
            suspended: source.spec.suspend,
            last_fetched_revision: status.and_then(|s| s.last_fetched_revision.clone()),
            last_applied_revision: status.and_then(|s| s.last_applied_revision.clone()),
            sessions: status.map_or(0, |s| s.inventory.len()),
            errors: status.map_or(0, |s| s.errors.len()),
            last_sync: status
                .and_then(|s| s.history.iter().filter_map(|h| h.started_at.as_ref()).map(|t| t.0).max()),
        }
    }
}

/// `main@sha1:0123456789abcdef…` shortened to `main@0123456789ab`.
pub fn short_revision(revision: &str) -> String {
    match revision.split_once("@sha1:") {
        Some((name, sha)) => format!("{name}@{}", &sha[..sha.len().min(12)]),
        None => revision.chars().take(40).collect(),
    }
}

/// Conditions oldest transition first, for a timeline.
pub fn timeline(conditions: &[acp_api::Condition]) -> Vec<acp_api::Condition> {
    let mut out = conditions.to_vec();
    out.sort_by_key(|c| c.last_transition_time.as_ref().map(|t| t.0));
    out
}

#[cfg(test)]
#[path = "view/tests.rs"]
mod tests;
