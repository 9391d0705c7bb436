//! The names of a session's children, shared by the state machine (which
//! runs exist) and the builders (what they are called): deterministic, and
//! shortened with a stable hash to fit Kubernetes' 63-character limits.

/// `<name>-<suffix>`, at most 63 characters (a label value), unique per input.
pub fn child_name(name: &str, suffix: &str) -> String {
    let full = format!("{name}-{suffix}");
    if full.len() <= 63 {
        return full;
    }
    // FNV-1a: stable across releases, unlike std's hasher.
    let hash = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let keep = 63 - suffix.len() - 10;
    let mut end = keep.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{:08x}-{suffix}", name[..end].trim_end_matches('-'), hash as u32)
}

/// `name` as a label value: itself when it fits in 63 characters, else a
/// shortened, hashed form (the pod annotation keeps the full name).
pub fn label_value(name: &str) -> String {
    if name.len() <= 63 { name.to_owned() } else { child_name(&name[..name.len() - 2], "s") }
}

/// Name of the session's credentials Secret.
pub fn secret_name(session: &str) -> String {
    child_name(session, "runner")
}

/// Name of the session's workspace PVC.
pub fn pvc_name(session: &str) -> String {
    child_name(session, "workspace")
}

/// Name of run `run`'s Job for `session` (at most 63 characters).
pub fn job_name(session: &str, run: i64) -> String {
    child_name(session, &run.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_and_bounded() {
        assert_eq!(child_name("fix-bug", "3"), "fix-bug-3");
        let long = "a".repeat(100);
        let name = child_name(&long, "workspace");
        assert!(name.len() <= 63, "{name}");
        assert_eq!(name, child_name(&long, "workspace"));
        assert_ne!(name, child_name(&"a".repeat(99), "workspace"));
        assert_eq!(job_name("fix", 2), "fix-2");
    }
}
