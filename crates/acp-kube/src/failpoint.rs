//! Failpoints for crash tests: named points in the controllers where a test
//! can make the process die, as a crash or a SIGKILL would, between two
//! steps that must survive it (a comment created but its id not yet saved, a
//! Job created but not yet recorded).
//!
//! `ACP_FAILPOINTS="operator.job-created=0.3,statusbot.comment-created=1"`
//! makes the process exit with code 137 at each listed point with that
//! probability; `ACP_FAILPOINTS_SEED` seeds the draws (default 1). Unset, a
//! point costs one read of a lazily parsed, empty table.

use std::sync::{Mutex, OnceLock};

struct Table {
    points: Vec<(String, f64)>,
    rng: Mutex<u64>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let spec = std::env::var("ACP_FAILPOINTS").unwrap_or_default();
        let seed = std::env::var("ACP_FAILPOINTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1u64);
        Table { points: parse(&spec), rng: Mutex::new(seed.max(1)) }
    })
}

/// `name=probability` pairs, comma-separated; malformed entries are skipped.
fn parse(spec: &str) -> Vec<(String, f64)> {
    spec.split(',')
        .filter_map(|entry| {
            let (name, p) = entry.trim().split_once('=')?;
            Some((name.trim().to_owned(), p.trim().parse::<f64>().ok()?.clamp(0.0, 1.0)))
        })
        .collect()
}

/// xorshift64: a uniform draw in [0, 1).
fn draw(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// Dies here (exit code 137) if point `name` is armed and its draw says so.
pub fn hit(name: &str) {
    let table = table();
    let Some((_, probability)) = table.points.iter().find(|(n, _)| n == name) else { return };
    let fire = {
        let mut rng = table.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        draw(&mut rng) < *probability
    };
    if fire {
        eprintln!("acp: failpoint {name} fired: exiting");
        std::process::exit(137);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_draws_are_uniform_enough() {
        assert_eq!(
            parse("a.b=0.5, c=1,bad,d=x,e=7"),
            vec![("a.b".to_owned(), 0.5), ("c".to_owned(), 1.0), ("e".to_owned(), 1.0)]
        );
        let mut state = 42;
        let draws: Vec<f64> = (0..1000).map(|_| draw(&mut state)).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let below = draws.iter().filter(|d| **d < 0.3).count();
        assert!((200..400).contains(&below), "{below} of 1000 below 0.3");
    }
}
