//! `--shard` for the controllers that scale out by shard (operator, git-sync).

use acp_api::shard::Shard;

/// Sharding flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ShardArgs {
    /// Handle only objects labelled `ambient-code.io/shard=KEY` (sources,
    /// schedules, sessions and their children), and lead this shard's own
    /// lease. git-sync stamps a source's shard label on every session it
    /// applies, so the operator shard of the same key runs them.
    #[arg(long, env = "ACP_SHARD", value_name = "KEY", value_parser = label_value)]
    pub shard: Option<String>,
    /// Handle only objects without a shard label (the default shard of a
    /// sharded installation).
    #[arg(long, env = "ACP_SHARD_UNLABELLED", conflicts_with = "shard")]
    pub shard_unlabelled: bool,
}

impl ShardArgs {
    /// The shard these flags select; every object without either flag.
    pub fn shard(&self) -> Shard {
        Shard::from_flags(self.shard.as_deref(), self.shard_unlabelled)
    }
}

/// A label value: at most 63 characters, alphanumerics with `-`, `_` or `.`
/// inside.
fn label_value(key: &str) -> Result<String, String> {
    let inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let ends = key.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && key.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if key.len() <= 63 && ends && key.chars().all(inner) {
        Ok(key.to_owned())
    } else {
        Err(format!(
            "{key:?} is not a label value: use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_shard_key_must_be_a_label_value() {
        assert_eq!(super::label_value("shard-1"), Ok("shard-1".into()));
        for bad in ["", "-a", "a b", "a,b", &"x".repeat(64)] {
            assert!(super::label_value(bad).is_err(), "{bad:?}");
        }
    }
}
