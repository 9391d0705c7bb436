//! Matching an ssh server's host key against an OpenSSH `known_hosts` file.
//!
//! Parsing is the `ssh-key` crate's (markers, host patterns, key types and
//! their encodings); matching a host name against the patterns is ours, since
//! that crate does not do it: plain names, `[host]:port` (libgit2 gives the
//! host without its port, so any port matches), `*` and `?` wildcards and `!`
//! negations. `@revoked` keys never match, and `@cert-authority` lines (a CA,
//! not a host key) are not host keys. Hashed entries (`|1|…`) never match.

use ssh_key::known_hosts::{Entry, HostPatterns, KnownHosts, Marker};

/// True when `known_hosts` lists `key` (the raw key blob libgit2 hands over)
/// for `host`, and no `@revoked` line revokes it.
pub fn matches(known_hosts: &str, host: &str, key: &[u8]) -> bool {
    let mut found = false;
    for entry in KnownHosts::new(known_hosts).filter_map(Result::ok) {
        if !listed(&entry, host) || !same_key(&entry, key) {
            continue;
        }
        match entry.marker() {
            Some(Marker::Revoked) => return false,
            Some(Marker::CertAuthority) => {}
            None => found = true,
        }
    }
    found
}

fn same_key(entry: &Entry, key: &[u8]) -> bool {
    entry.public_key().to_bytes().is_ok_and(|blob| blob == key)
}

fn listed(entry: &Entry, host: &str) -> bool {
    let HostPatterns::Patterns(patterns) = entry.host_patterns() else { return false };
    let host = host.to_ascii_lowercase();
    let mut matched = false;
    for pattern in patterns {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern.as_str()),
        };
        let name = pattern.strip_prefix('[').and_then(|p| p.split_once("]:")).map_or(pattern, |(h, _)| h);
        if glob(&name.to_ascii_lowercase(), &host) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// OpenSSH's pattern match: `*` any run of characters, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two real ed25519 public keys (their blobs are what libgit2 hands over).
    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIHQQVlJ6Ss5ZQ9BQfcA+phM9n5cZ0E5mmFKS8Wu3P9Nv";

    fn blob(key: &str) -> Vec<u8> {
        ssh_key::PublicKey::from_openssh(&format!("ssh-ed25519 {key}"))
            .expect("key")
            .to_bytes()
            .expect("blob")
    }

    #[test]
    fn matches_listed_keys_only() {
        let file = format!(
            "# comment\ngit.example.com,10.0.0.1 ssh-ed25519 {KEY_A}\n[127.0.0.1]:2222 ssh-ed25519 {KEY_A}\n"
        );
        assert!(matches(&file, "git.example.com", &blob(KEY_A)));
        assert!(matches(&file, "GIT.example.com", &blob(KEY_A)));
        assert!(matches(&file, "127.0.0.1", &blob(KEY_A)));
        assert!(!matches(&file, "other.example.com", &blob(KEY_A)));
        assert!(!matches(&file, "git.example.com", &blob(KEY_B)));
        let revoked = format!("{file}@revoked git.example.com ssh-ed25519 {KEY_A}\n");
        assert!(!matches(&revoked, "git.example.com", &blob(KEY_A)));
    }

    #[test]
    fn wildcards_negations_and_cert_authorities() {
        let file = format!("*.example.com,!evil.example.com ssh-ed25519 {KEY_A}\n");
        assert!(matches(&file, "git.example.com", &blob(KEY_A)));
        assert!(!matches(&file, "evil.example.com", &blob(KEY_A)));
        assert!(!matches(&file, "example.org", &blob(KEY_A)));
        let ca = format!("@cert-authority *.example.com ssh-ed25519 {KEY_B}\n");
        assert!(!matches(&ca, "git.example.com", &blob(KEY_B)), "a CA key is not a host key");
        assert!(glob("g?t*", "git.example.com") && !glob("g?t", "gits"));
    }
}
