//! The `metav1.Condition`-shaped entries in every acp status, and the helpers
//! that keep their transition times stable.
//!
//! A condition's `lastTransitionTime` only moves when its `status` changes, so
//! re-reconciling an unchanged object never churns status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Status of a condition, as in `metav1.ConditionStatus`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The controller cannot tell yet.
    #[default]
    Unknown,
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value { Self::True } else { Self::False }
    }
}

/// One observation about an object, in the standard Kubernetes condition shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of condition in CamelCase, for example `Ready`. Unique within the list.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub type_: String,
    /// Whether the condition holds: True, False or Unknown.
    pub status: ConditionStatus,
    /// Machine-readable CamelCase reason for the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
    /// Human-readable details about the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32768))]
    pub message: Option<String>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The `metadata.generation` this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// A condition of `type_` with the given status, reason and message; the
    /// transition time is filled in by [`set_condition`].
    pub fn new(
        type_: &str,
        status: impl Into<ConditionStatus>,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_: type_.to_owned(),
            status: status.into(),
            reason: Some(reason.to_owned()),
            message: Some(message.into()),
            last_transition_time: None,
            observed_generation: None,
        }
    }

    /// Sets the generation this condition describes.
    #[must_use]
    pub fn observed(mut self, generation: Option<i64>) -> Self {
        self.observed_generation = generation;
        self
    }

    /// True when the condition's status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// Finds the condition of the given type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when a condition of `type_` exists and is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(Condition::is_true)
}

/// Inserts or replaces the condition of `new.type_`.
///
/// The transition time is kept from the existing condition when the status did
/// not change, and set to `now` when it did (or when the condition is new). Returns
/// whether anything about the list changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: &Time) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            new.last_transition_time = if existing.status == new.status {
                existing.last_transition_time.clone().or_else(|| Some(now.clone()))
            } else {
                Some(now.clone())
            };
            if *existing == new {
                return false;
            }
            *existing = new;
            true
        }
        None => {
            new.last_transition_time = Some(now.clone());
            conditions.push(new);
            true
        }
    }
}

/// Removes the condition of `type_`; returns whether one was removed.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    #[test]
    fn new_condition_gets_now() {
        let mut list = Vec::new();
        assert!(set_condition(&mut list, Condition::new("Ready", true, "Succeeded", "ok"), &at(10)));
        assert_eq!(list[0].last_transition_time, Some(at(10)));
    }

    #[test]
    fn same_status_keeps_transition_time_and_reports_message_change() {
        let mut list = Vec::new();
        set_condition(&mut list, Condition::new("Ready", false, "Progressing", "a"), &at(10));
        assert!(!set_condition(&mut list, Condition::new("Ready", false, "Progressing", "a"), &at(20)));
        assert!(set_condition(&mut list, Condition::new("Ready", false, "Progressing", "b"), &at(30)));
        assert_eq!(list[0].last_transition_time, Some(at(10)));
        assert_eq!(list[0].message.as_deref(), Some("b"));
    }

    #[test]
    fn status_flip_moves_transition_time() {
        let mut list = Vec::new();
        set_condition(&mut list, Condition::new("Ready", false, "Progressing", "a"), &at(10));
        set_condition(&mut list, Condition::new("Ready", true, "Succeeded", "done"), &at(40));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].last_transition_time, Some(at(40)));
        assert!(is_true(&list, "Ready"));
        assert!(remove_condition(&mut list, "Ready"));
        assert!(find(&list, "Ready").is_none());
    }
}
