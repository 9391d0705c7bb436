//! The runner's output of a session's current run: from its Job's pod log
//! (the `job` executor), or from the run directory of the `process` executor
//! (`<runs-dir>/<namespace>/<job>/runner.log`). Lines are the runner's JSON
//! progress events ([`acp_api::progress`]). The dashboard streams it; the
//! status bot shows the todo list.

use std::path::PathBuf;
use std::time::Duration;

use acp_api::AgenticSession;
use futures_util::stream::BoxStream;
use futures_util::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};
use tokio::io::{AsyncBufReadExt as _, AsyncSeekExt};

/// The run directory's log file, written by the `process` executor's runner.
pub const RUN_LOG: &str = "runner.log";
/// The run directory's exit-code file, written when the runner ended.
pub const RUN_EXIT: &str = "exit";

/// Lines shown from before the moment a reader connects.
pub const TAIL_LINES: i64 = 1000;
/// How often a followed run log file is checked for growth.
const FILE_POLL: Duration = Duration::from_millis(200);

/// Failures reading a session's output.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The session has not started a run.
    #[error("failed to find the session's run: it has not started one yet")]
    NoRun,
    /// No pod of the run exists (any more).
    #[error("failed to find a pod of job {0}")]
    NoPod(String),
    /// The API server refused.
    #[error("failed to read the pod log")]
    Kube(#[source] kube::Error),
    /// The run directory's log could not be read.
    #[error("failed to read {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl LogError {
    /// A bounded label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::NoRun => "no_run",
            Self::NoPod(_) => "no_pod",
            Self::Kube(_) => "kube",
            Self::File { .. } => "file",
        }
    }
}

/// Where runs write their output.
#[derive(Clone)]
pub enum LogSource {
    /// Pod logs, through the API server.
    Pods(kube::Client),
    /// The `process` executor's run directories under this root.
    Files(PathBuf),
}

/// A stream of output lines.
pub type Lines = BoxStream<'static, Result<String, LogError>>;

impl LogSource {
    /// The output of `session`'s current run: the last [`TAIL_LINES`] lines,
    /// then (with `follow`) new lines as they are written, until the run ends.
    pub async fn lines(&self, session: &AgenticSession, follow: bool) -> Result<Lines, LogError> {
        let job = session.status.as_ref().and_then(|s| s.job_name.clone()).ok_or(LogError::NoRun)?;
        let namespace = session.namespace().unwrap_or_default();
        match self {
            Self::Pods(client) => pod_lines(client.clone(), &namespace, &job, follow).await,
            Self::Files(root) => file_lines(root.join(&namespace).join(&job), follow).await,
        }
    }
}

async fn pod_lines(
    client: kube::Client,
    namespace: &str,
    job: &str,
    follow: bool,
) -> Result<Lines, LogError> {
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .map_err(LogError::Kube)?;
    let pod = list
        .items
        .into_iter()
        .max_by_key(|p| p.creation_timestamp())
        .ok_or_else(|| LogError::NoPod(job.to_owned()))?;
    let params = LogParams {
        follow,
        tail_lines: Some(TAIL_LINES),
        container: Some(acp_api::constants::runner_pod::RUNNER_CONTAINER.to_owned()),
        ..Default::default()
    };
    let reader = pods.log_stream(&pod.name_any(), &params).await.map_err(LogError::Kube)?;
    Ok(reader.lines().map_err(|e| LogError::Kube(kube::Error::ReadEvents(e))).boxed())
}

async fn file_lines(dir: PathBuf, follow: bool) -> Result<Lines, LogError> {
    let path = dir.join(RUN_LOG);
    let io = |source| LogError::File { path: path.clone(), source };
    let content = tokio::fs::read(&path).await.map_err(io)?;
    let mut offset = content.len() as u64;
    // Only whole lines: a partial last line is read again once it is complete.
    let complete = content.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    offset -= (content.len() - complete) as u64;
    let text = String::from_utf8_lossy(&content[..complete]);
    let all: Vec<&str> = text.lines().collect();
    let tail: Vec<Result<String, LogError>> =
        all[all.len().saturating_sub(TAIL_LINES as usize)..].iter().map(|l| Ok((*l).to_owned())).collect();
    let head = futures_util::stream::iter(tail);
    if !follow {
        return Ok(head.boxed());
    }
    let more = futures_util::stream::unfold(Some((path, dir, offset)), |state| async move {
        let (path, dir, mut offset) = state?;
        loop {
            let ended = tokio::fs::try_exists(dir.join(RUN_EXIT)).await.unwrap_or(false);
            match read_from(&path, offset).await {
                Ok((lines, next)) if !lines.is_empty() => {
                    offset = next;
                    let lines: Vec<Result<String, LogError>> = lines.into_iter().map(Ok).collect();
                    return Some((futures_util::stream::iter(lines), Some((path, dir, offset))));
                }
                Ok(_) if ended => return None,
                Ok(_) => tokio::time::sleep(FILE_POLL).await,
                Err(source) => {
                    let error = LogError::File { path: path.clone(), source };
                    return Some((futures_util::stream::iter(vec![Err(error)]), None));
                }
            }
        }
    })
    .flatten();
    Ok(head.chain(more).boxed())
}

/// Whole lines of `path` from byte `offset`, and the offset after them.
async fn read_from(path: &std::path::Path, offset: u64) -> std::io::Result<(Vec<String>, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut reader = tokio::io::BufReader::new(file);
    let (mut lines, mut next) = (Vec::new(), offset);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).await?;
        if n == 0 || buf.last() != Some(&b'\n') {
            return Ok((lines, next));
        }
        next += n as u64;
        lines.push(String::from_utf8_lossy(&buf[..n - 1]).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn follows_a_run_file_until_the_run_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("runner.log");
        std::fs::write(&log, "one\ntwo\npart").expect("write");
        let mut lines = file_lines(dir.path().to_owned(), true).await.expect("lines");
        assert_eq!(lines.next().await.and_then(Result::ok).as_deref(), Some("one"));
        assert_eq!(lines.next().await.and_then(Result::ok).as_deref(), Some("two"));
        std::fs::write(&log, "one\ntwo\npartial\nthree\n").expect("write");
        assert_eq!(lines.next().await.and_then(Result::ok).as_deref(), Some("partial"));
        assert_eq!(lines.next().await.and_then(Result::ok).as_deref(), Some("three"));
        std::fs::write(dir.path().join("exit"), "0").expect("write");
        assert!(lines.next().await.is_none(), "the stream ends with the run");
        let all: Vec<String> =
            file_lines(dir.path().to_owned(), false).await.expect("lines").try_collect().await.expect("read");
        assert_eq!(all, ["one", "two", "partial", "three"]);
    }
}
