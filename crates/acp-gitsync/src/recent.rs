//! A bounded memory of keys seen recently (webhook delivery ids, comment
//! commands): the oldest are forgotten first, so memory stays flat however
//! many deliveries arrive.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

/// The last `capacity` keys seen.
#[derive(Debug)]
pub struct Recent<K> {
    capacity: usize,
    seen: Mutex<(HashSet<K>, VecDeque<K>)>,
}

impl<K: Clone + Eq + Hash> Recent<K> {
    /// Remembers up to `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, seen: Mutex::new((HashSet::new(), VecDeque::new())) }
    }

    /// Records `key`; false when it was seen (and not yet forgotten).
    pub fn first(&self, key: K) -> bool {
        let Ok(mut seen) = self.seen.lock() else { return true };
        let (set, order) = &mut *seen;
        if !set.insert(key.clone()) {
            return false;
        }
        order.push_back(key);
        if order.len() > self.capacity
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        true
    }

    /// Forgets `key` (its work failed: a redelivery may try again).
    pub fn forget(&self, key: &K) {
        if let Ok(mut seen) = self.seen.lock() {
            let (set, order) = &mut *seen;
            set.remove(key);
            order.retain(|k| k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_caught_until_forgotten() {
        let recent = Recent::new(2);
        assert!(recent.first("a"));
        assert!(!recent.first("a"));
        assert!(recent.first("b"));
        assert!(recent.first("c"));
        assert!(recent.first("a"), "the oldest is forgotten first");
        assert!(!recent.first("c"));
    }
}
