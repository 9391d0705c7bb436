//! Process-tree control: finding every descendant of the CLI through `/proc`
//! and killing them all, so a stop leaves no orphan (the agent's tools may
//! start their own process groups).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Makes this process the reaper of orphaned descendants, so processes the
/// agent leaves behind stay in our tree (and are found by [`kill_tree`]).
pub fn become_subreaper() {
    // Best effort: without it, orphans are still killed if found before exit.
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

/// Parent pid of every process, from `/proc/<pid>/stat`.
fn parents() -> BTreeMap<i32, i32> {
    let mut map = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return map };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // Format: pid (comm) state ppid …; comm may contain spaces and ')'.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
            map.insert(pid, ppid);
        }
    }
    map
}

/// `root` and all its descendants.
pub fn tree(root: i32) -> BTreeSet<i32> {
    let parents = parents();
    let mut found = BTreeSet::from([root]);
    loop {
        let before = found.len();
        for (pid, ppid) in &parents {
            if found.contains(ppid) {
                found.insert(*pid);
            }
        }
        if found.len() == before {
            return found;
        }
    }
}

fn signal_all(pids: &BTreeSet<i32>, root: i32, signal: Signal) {
    // The CLI leads its own process group; signal the group, then each
    // descendant (and its group) in case it made a new one.
    let _ = killpg(Pid::from_raw(root), signal);
    for pid in pids {
        let _ = killpg(Pid::from_raw(*pid), signal);
        let _ = kill(Pid::from_raw(*pid), signal);
    }
}

fn alive(pids: &BTreeSet<i32>) -> BTreeSet<i32> {
    let current = parents();
    pids.iter().copied().filter(|pid| current.contains_key(pid) && !is_zombie(*pid)).collect()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 1..].trim_start().starts_with('Z')))
        .unwrap_or(true)
}

/// SIGTERM to the whole tree of `root`, then SIGKILL to whatever is still
/// alive after `grace`. Returns every pid it signalled.
pub async fn kill_tree(root: u32, grace: Duration) -> BTreeSet<i32> {
    let Ok(root) = i32::try_from(root) else { return BTreeSet::new() };
    let mut pids = tree(root);
    signal_all(&pids, root, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        pids.extend(tree(root));
        if alive(&pids).is_empty() {
            return pids;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pids.extend(tree(root));
    signal_all(&alive(&pids), root, Signal::SIGKILL);
    pids
}

/// After the CLI (`root`) exited: kills what is left of its process group and
/// reaps the given descendants if they were reparented to us. Only these pids
/// are waited for, never other children of this process.
pub fn clean_up(root: u32, descendants: &BTreeSet<i32>) {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let Ok(root) = i32::try_from(root) else { return };
    let _ = killpg(Pid::from_raw(root), Signal::SIGKILL);
    for pid in descendants.iter().filter(|pid| **pid != root) {
        let _ = waitpid(Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG));
    }
}
