//! The workspace layout and what goes into it before the agent starts:
//! cloned repositories, the workflow, the MCP configuration.

use std::path::{Path, PathBuf};

use acp_api::session::McpServers;
use serde_json::{Value, json};

/// Directories of one run's workspace.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Workspace root.
    pub root: PathBuf,
    /// `repos/`: one directory per repository.
    pub repos: PathBuf,
    /// `workflows/`: the active workflow.
    pub workflows: PathBuf,
    /// `.acp/`: transcript, result, MCP config, the agent's HOME.
    pub state: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            repos: root.join("repos"),
            workflows: root.join("workflows"),
            state: root.join(".acp"),
        }
    }

    /// Creates the directories.
    pub fn create(&self) -> std::io::Result<()> {
        for dir in [&self.repos, &self.workflows, &self.state, &self.state.join("home")] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(())
    }

    /// The full transcript (every CLI line, redacted).
    pub fn transcript(&self) -> PathBuf {
        self.state.join("transcript.jsonl")
    }

    /// The full result document.
    pub fn result(&self) -> PathBuf {
        self.state.join("result.json")
    }

    /// The MCP configuration handed to the CLI.
    pub fn mcp_config(&self) -> PathBuf {
        self.state.join("mcp.json")
    }
}

/// The workflow's startup prompt: `startupPrompt` in `.ambient/ambient.json`
/// of the workflow directory, as in the Ambient Code Platform.
pub fn startup_prompt(workflow_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(workflow_dir.join(".ambient/ambient.json")).ok()?;
    let config: Value = serde_json::from_str(&text).ok()?;
    config.get("startupPrompt")?.as_str().map(str::to_owned).filter(|s| !s.trim().is_empty())
}

/// The prompt the agent gets: the workflow's startup prompt, then the session's.
pub fn compose_prompt(startup: Option<&str>, initial: Option<&str>) -> String {
    [startup, initial].into_iter().flatten().filter(|s| !s.trim().is_empty()).collect::<Vec<_>>().join("\n\n")
}

/// Claude Code's `--mcp-config` document for `servers` (minus the disabled
/// ones), with the server names; `None` when there is nothing to configure.
pub fn mcp_config(servers: Option<&McpServers>) -> Option<(Value, Vec<String>)> {
    let servers = servers?;
    let enabled: serde_json::Map<String, Value> = servers
        .custom
        .iter()
        .filter(|(name, _)| !servers.disabled.contains(name))
        .map(|(name, config)| (name.clone(), config.clone()))
        .collect();
    if enabled.is_empty() {
        return None;
    }
    let names = enabled.keys().cloned().collect();
    Some((json!({ "mcpServers": enabled }), names))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn prompt_puts_the_workflow_first() {
        assert_eq!(compose_prompt(Some("Start here."), Some("Fix it.")), "Start here.\n\nFix it.");
        assert_eq!(compose_prompt(None, Some("Fix it.")), "Fix it.");
        assert_eq!(compose_prompt(Some(" "), None), "");
    }

    #[test]
    fn mcp_config_drops_disabled_servers() {
        let servers = McpServers {
            custom: BTreeMap::from([
                ("docs".to_owned(), json!({"type": "http", "url": "https://m/docs"})),
                ("web".to_owned(), json!({"command": "web-mcp"})),
            ]),
            disabled: vec!["web".into()],
        };
        let (config, names) = mcp_config(Some(&servers)).expect("one server left");
        assert_eq!(names, ["docs"]);
        assert_eq!(config, json!({"mcpServers": {"docs": {"type": "http", "url": "https://m/docs"}}}));
        assert!(mcp_config(None).is_none());
    }

    #[test]
    fn reads_the_startup_prompt() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(startup_prompt(dir.path()), None);
        std::fs::create_dir_all(dir.path().join(".ambient")).expect("mkdir");
        std::fs::write(dir.path().join(".ambient/ambient.json"), r#"{"name":"t","startupPrompt":"Triage."}"#)
            .expect("write");
        assert_eq!(startup_prompt(dir.path()).as_deref(), Some("Triage."));
    }
}
