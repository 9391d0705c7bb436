//! Sharding: which objects one controller replica set handles.
//!
//! Kubernetes is the distributed engine, so acp scales out the way Flux does
//! (`sharding.fluxcd.io/key`): objects carry the label
//! [`labels::SHARD`](crate::constants::labels::SHARD), and a controller started
//! with `--shard KEY` selects only objects labelled `KEY` on every watch, and
//! leads a lease of its own. One shard, started with `--shard-unlabelled`,
//! takes the objects without the label. A controller started with neither
//! handles everything (an unsharded installation).

use std::collections::BTreeMap;

use crate::constants::labels::SHARD;

/// The objects a controller handles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Shard {
    /// Every object: no sharding.
    #[default]
    All,
    /// Objects labelled with this key.
    Key(String),
    /// Objects without a shard label.
    Unlabelled,
}

impl Shard {
    /// From the command line's `--shard KEY` and `--shard-unlabelled`.
    pub fn from_flags(key: Option<&str>, unlabelled: bool) -> Self {
        match (key, unlabelled) {
            (Some(key), _) => Self::Key(key.to_owned()),
            (None, true) => Self::Unlabelled,
            (None, false) => Self::All,
        }
    }

    /// The label selector clause of this shard, if it selects.
    pub fn selector(&self) -> Option<String> {
        match self {
            Self::All => None,
            Self::Key(key) => Some(format!("{SHARD}={key}")),
            Self::Unlabelled => Some(format!("!{SHARD}")),
        }
    }

    /// `base` (a label selector, possibly empty) narrowed to this shard.
    pub fn narrow(&self, base: &str) -> String {
        match (base.is_empty(), self.selector()) {
            (_, None) => base.to_owned(),
            (true, Some(shard)) => shard,
            (false, Some(shard)) => format!("{base},{shard}"),
        }
    }

    /// Whether an object with `labels` belongs to this shard.
    pub fn contains(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::All => true,
            Self::Key(key) => labels.get(SHARD) == Some(key),
            Self::Unlabelled => !labels.contains_key(SHARD),
        }
    }

    /// The name of this shard's leader-election lease for `component`: the
    /// component's own name without sharding, one lease per shard with it.
    pub fn lease(&self, component: &str) -> String {
        match self {
            Self::All => component.to_owned(),
            Self::Key(key) => format!("{component}-shard-{key}"),
            Self::Unlabelled => format!("{component}-shard-unlabelled"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_selects_its_key_or_the_unlabelled_and_leads_its_own_lease() {
        let labelled = |v: &str| BTreeMap::from([(SHARD.to_owned(), v.to_owned())]);
        let none = BTreeMap::new();
        let one = Shard::from_flags(Some("one"), false);
        assert_eq!(one.narrow("a=b"), "a=b,ambient-code.io/shard=one");
        assert!(one.contains(&labelled("one")) && !one.contains(&labelled("two")) && !one.contains(&none));
        let rest = Shard::from_flags(None, true);
        assert_eq!(rest.narrow(""), "!ambient-code.io/shard");
        assert!(rest.contains(&none) && !rest.contains(&labelled("one")));
        let all = Shard::from_flags(None, false);
        assert_eq!(all.narrow("a=b"), "a=b");
        assert!(all.contains(&none) && all.contains(&labelled("x")));
        let leases = [all.lease("acp-operator"), one.lease("acp-operator"), rest.lease("acp-operator")];
        assert_eq!(leases, ["acp-operator", "acp-operator-shard-one", "acp-operator-shard-unlabelled"]);
    }
}
