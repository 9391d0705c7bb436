//! A follow-up's start (see `acp_api::resume`): the parent's Claude Code
//! conversation copied from the parent's workspace into this run's agent
//! home, so that `claude --resume` continues it, or, when the transcript is
//! gone, the earlier turns' summaries instead, said as such; and, either
//! way, the commits added to each branch since the parent's turn.

use std::path::{Path, PathBuf};

use acp_api::resume::{Resume, valid_session_id};

/// Most new commits listed per repository.
const MAX_COMMITS: usize = 30;

/// How a follow-up starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    /// The conversation to resume, when its transcript was restored.
    pub session_id: Option<String>,
    /// The prompt: what changed, then the request.
    pub prompt: String,
    /// What happened, for the run's log.
    pub note: String,
}

/// One cloned repository, as the changes see it.
pub struct Checkout<'a> {
    /// Clone URL (the key of `Resume::since`).
    pub url: &'a str,
    /// Branch checked out.
    pub branch: &'a str,
    /// Where it is.
    pub dir: &'a Path,
}

/// Prepares a follow-up: restores the conversation into `home` (the agent's
/// `HOME`, holding `.claude`) for `cwd`, lists what changed in `repos`, and
/// builds the prompt around `request`.
pub fn start(resume: &Resume, home: &Path, cwd: &Path, repos: &[Checkout<'_>], request: &str) -> Start {
    let changes: Vec<String> = repos.iter().filter_map(|repo| changes(resume, repo)).collect();
    match restore(resume, home, cwd) {
        Ok(id) => Start {
            note: format!("resuming the conversation of session {} ({id})", resume.parent),
            prompt: prompt(resume, None, &changes, request),
            session_id: Some(id),
        },
        Err(why) => Start {
            note: format!(
                "the conversation of session {} cannot be resumed ({why}): starting fresh with the earlier turns' summaries",
                resume.parent
            ),
            prompt: prompt(resume, Some(&why), &changes, request),
            session_id: None,
        },
    }
}

/// Copies the conversation's transcript (`<from>/.claude/projects/*/<id>.jsonl`)
/// into `home`'s project directory for `cwd`; returns the conversation id,
/// or why it cannot be resumed. Without a recorded id (the turn was stopped
/// before it recorded one), the newest transcript there is the thread's.
pub fn restore(resume: &Resume, home: &Path, cwd: &Path) -> Result<String, String> {
    if resume.session_id.as_deref().is_some_and(|id| !valid_session_id(id)) {
        return Err("the earlier turn's conversation id is not valid".into());
    }
    let from = resume.from.as_deref().ok_or("the earlier turn's workspace is gone")?;
    let gone = || "the earlier turn's transcript is gone".to_owned();
    // Only regular files: never follow a link out of the earlier workspace.
    let transcripts: Vec<(PathBuf, std::time::SystemTime)> =
        std::fs::read_dir(Path::new(from).join(".claude/projects"))
            .map_err(|_| gone())?
            .filter_map(Result::ok)
            .filter_map(|project| std::fs::read_dir(project.path()).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let meta = std::fs::symlink_metadata(entry.path()).ok()?;
                let named = entry.path().extension().is_some_and(|e| e == "jsonl");
                let modified = meta.modified().ok()?;
                (named && meta.file_type().is_file()).then(|| (entry.path(), modified))
            })
            .collect();
    let stem = |path: &Path| path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let (source, id) = match &resume.session_id {
        Some(id) => {
            transcripts.iter().find(|(path, _)| stem(path) == *id).map(|(path, _)| (path.clone(), id.clone()))
        }
        None => transcripts
            .iter()
            .max_by_key(|(_, modified)| *modified)
            .map(|(path, _)| (path.clone(), stem(path)))
            .filter(|(_, id)| valid_session_id(id)),
    }
    .ok_or_else(gone)?;
    let project = home.join(".claude/projects").join(project_dir(cwd));
    std::fs::create_dir_all(&project).map_err(|e| format!("failed to create {}: {e}", project.display()))?;
    std::fs::copy(&source, project.join(format!("{id}.jsonl")))
        .map_err(|e| format!("failed to copy the transcript: {e}"))?;
    Ok(id)
}

/// Claude Code's project directory name for `cwd`: every character that is
/// not a letter or digit becomes `-`.
pub fn project_dir(cwd: &Path) -> String {
    cwd.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// What changed on `repo`'s branch since the parent's turn, as a paragraph.
fn changes(resume: &Resume, repo: &Checkout<'_>) -> Option<String> {
    let since = resume.since.get(repo.url)?;
    let listed = new_commits(repo.dir, since);
    Some(match listed {
        Ok(commits) if commits.is_empty() => {
            format!("No commits were added to {} since your last turn.", repo.branch)
        }
        Ok(commits) => format!(
            "Since your last turn, these commits were added to {} (newest first):\n{}",
            repo.branch,
            commits.iter().map(|c| format!("- {c}")).collect::<Vec<_>>().join("\n")
        ),
        Err(why) => format!("{} has changed since your last turn ({why}).", repo.branch),
    })
}

/// `<short id> <subject> (<author>)` of each commit after `since` up to HEAD.
fn new_commits(dir: &Path, since: &str) -> Result<Vec<String>, String> {
    let repo = git2::Repository::open(dir).map_err(|e| format!("failed to open the checkout: {e}"))?;
    let since = git2::Oid::from_str(since)
        .ok()
        .filter(|oid| repo.find_commit(*oid).is_ok())
        .ok_or_else(|| format!("commit {} is not in its recent history", short(since)))?;
    let mut walk = repo.revwalk().map_err(|e| e.to_string())?;
    walk.push_head().map_err(|e| e.to_string())?;
    walk.hide(since).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for oid in walk {
        let Ok(oid) = oid else { break };
        if out.len() == MAX_COMMITS {
            out.push("… and more".to_owned());
            break;
        }
        let Ok(commit) = repo.find_commit(oid) else { continue };
        out.push(format!(
            "{} {} ({})",
            short(&oid.to_string()),
            String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()),
            commit.author().name().unwrap_or("")
        ));
    }
    Ok(out)
}

fn short(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

/// The follow-up's prompt (pure): with the conversation resumed, what
/// changed and the request; when it was `not_resumed` (and why), the
/// earlier turns' summaries first, saying so.
pub fn prompt(resume: &Resume, not_resumed: Option<&str>, changes: &[String], request: &str) -> String {
    let mut parts = Vec::new();
    if let Some(why) = not_resumed {
        let turns: Vec<String> =
            resume.turns.iter().map(|t| format!("- {}: {}", t.session, t.summary)).collect();
        let why = format!(" ({why})");
        parts.push(if turns.is_empty() {
            format!("This follows up session {}; its conversation cannot be resumed{why}.", resume.parent)
        } else {
            format!(
                "This follows up earlier sessions on this pull request. Their conversation cannot be resumed{why}; here is what each earlier turn reported:\n{}",
                turns.join("\n")
            )
        });
    }
    parts.extend(changes.iter().cloned());
    parts.push(request.to_owned());
    parts.join("\n\n")
}

#[cfg(test)]
mod tests {
    use acp_api::resume::Turn;

    use super::*;

    fn resume(from: Option<&Path>) -> Resume {
        Resume {
            parent: "t1".into(),
            session_id: Some("conv-1".into()),
            from: from.map(|p| p.to_string_lossy().into_owned()),
            turns: vec![Turn { session: "t1".into(), summary: "Added the entry.".into() }],
            ..Resume::default()
        }
    }

    #[test]
    fn the_transcript_is_copied_into_this_runs_project_directory() {
        let tmp = tempfile::tempdir().expect("tmp");
        let parent = tmp.path().join("parent");
        let old = parent.join(".claude/projects/-ws-old-repos-app");
        std::fs::create_dir_all(&old).expect("dir");
        std::fs::write(old.join("conv-1.jsonl"), "{\"type\":\"user\"}\n").expect("write");
        let home = tmp.path().join("home");
        let cwd = Path::new("/ws/new/repos/app");
        assert_eq!(restore(&resume(Some(&parent)), &home, cwd), Ok("conv-1".into()));
        let copied = home.join(".claude/projects/-ws-new-repos-app/conv-1.jsonl");
        assert_eq!(std::fs::read_to_string(copied).expect("copied"), "{\"type\":\"user\"}\n");

        let start = start(&resume(Some(&parent)), &home, cwd, &[], "Request: more.");
        assert_eq!((start.session_id.as_deref(), start.prompt.as_str()), (Some("conv-1"), "Request: more."));

        // No recorded id (stopped before it recorded one): the newest transcript.
        std::fs::write(old.join("older.jsonl"), "{}\n").expect("write");
        let newest = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        std::fs::File::options()
            .append(true)
            .open(old.join("conv-1.jsonl"))
            .expect("open")
            .set_modified(newest)
            .expect("touch");
        let unrecorded = Resume { session_id: None, ..resume(Some(&parent)) };
        assert_eq!(restore(&unrecorded, &tmp.path().join("home2"), cwd), Ok("conv-1".into()));
        // A link is never followed out of the earlier workspace.
        let other = parent.join(".claude/projects/-x");
        std::fs::create_dir_all(&other).expect("dir");
        std::os::unix::fs::symlink("/etc/hostname", other.join("linked.jsonl")).expect("link");
        let linked = Resume { session_id: Some("linked".into()), ..resume(Some(&parent)) };
        assert_eq!(restore(&linked, &home, cwd), Err("the earlier turn's transcript is gone".into()));
    }

    #[test]
    fn without_a_transcript_the_summaries_come_first_and_say_why() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().join("home");
        let gone = start(&resume(Some(&tmp.path().join("nothing"))), &home, Path::new("/ws"), &[], "More.");
        assert_eq!(gone.session_id, None);
        assert!(
            gone.note.contains("cannot be resumed (the earlier turn's transcript is gone)"),
            "{}",
            gone.note
        );
        assert_eq!(
            gone.prompt,
            "This follows up earlier sessions on this pull request. Their conversation cannot be resumed (the earlier turn's transcript is gone); here is what each earlier turn reported:\n- t1: Added the entry.\n\nMore."
        );
        let no_workspace = start(&resume(None), &home, Path::new("/ws"), &[], "More.");
        assert!(
            no_workspace.prompt.contains("(the earlier turn's workspace is gone)"),
            "{}",
            no_workspace.prompt
        );
        let mut bad = resume(Some(tmp.path()));
        bad.session_id = Some("../../etc/passwd".into());
        assert_eq!(
            restore(&bad, &home, Path::new("/ws")),
            Err("the earlier turn's conversation id is not valid".into())
        );
    }

    #[test]
    fn new_commits_since_the_parents_turn_are_listed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let repo = git2::Repository::init(tmp.path()).expect("init");
        let sig = git2::Signature::now("Alice", "a@example.com").expect("sig");
        let mut parents: Vec<git2::Oid> = Vec::new();
        for subject in ["first", "agent's turn", "review fix"] {
            let tree =
                repo.find_tree(repo.index().expect("index").write_tree().expect("tree")).expect("tree");
            let parent_commits: Vec<git2::Commit<'_>> =
                parents.iter().map(|p| repo.find_commit(*p).expect("commit")).collect();
            let refs: Vec<&git2::Commit<'_>> = parent_commits.iter().collect();
            parents = vec![repo.commit(Some("HEAD"), &sig, &sig, subject, &tree, &refs).expect("commit")];
            if subject == "agent's turn" {
                let mut r = resume(None);
                r.since = [("u".to_owned(), parents[0].to_string())].into();
                let checkout = Checkout { url: "u", branch: "fix", dir: tmp.path() };
                assert_eq!(
                    changes(&r, &checkout).as_deref(),
                    Some("No commits were added to fix since your last turn.")
                );
            }
        }
        let head = repo.head().expect("head").peel_to_commit().expect("commit");
        let since = head.parent(0).expect("parent").id().to_string();
        let mut r = resume(None);
        r.since = [("u".to_owned(), since)].into();
        let checkout = Checkout { url: "u", branch: "fix", dir: tmp.path() };
        let text = changes(&r, &checkout).expect("changes");
        assert!(text.starts_with("Since your last turn, these commits were added to fix"), "{text}");
        assert!(text.ends_with(" review fix (Alice)") && !text.contains("agent's turn"), "{text}");
        r.since = [("u".to_owned(), "0".repeat(40))].into();
        assert!(changes(&r, &checkout).expect("changes").contains("is not in its recent history"));
    }
}
