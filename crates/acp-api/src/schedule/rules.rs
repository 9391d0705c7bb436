//! The CRD's validation rules of a schedule: CEL regular expressions
//! generated from the very grammar [`super::cron`] parses ([`schedule_rules`]:
//! the shape, each field's values and ranges, a zone inside the schedule)
//! and the zone names its library knows ([`time_zone_rules`]), so that the
//! API server, `acp validate` and the operator give one verdict, naming the
//! field and its range.

use serde_json::{Value, json};

use super::cron::{FIELDS, Field, MACROS, SHAPE_HINT, SPACE_CLASS, TOKEN_CLASS, ZONE_INSIDE};

/// `[a-b]` for the digits `a..=b`.
fn digit_class(a: u32, b: u32) -> String {
    match b - a {
        0 => a.to_string(),
        1 => format!("[{a}{b}]"),
        _ => format!("[{a}-{b}]"),
    }
}

/// A regular expression (an alternation, to be grouped) matching the
/// numbers `lo..=hi` written without leading zeros.
fn numbers(lo: u32, hi: u32) -> String {
    let mut pieces: Vec<String> = Vec::new();
    let mut full: Option<(u32, u32)> = None;
    let flush = |full: &mut Option<(u32, u32)>, pieces: &mut Vec<String>| {
        if let Some((a, b)) = full.take() {
            pieces.push(format!("{}[0-9]", digit_class(a, b)));
        }
    };
    for tens in lo / 10..=hi / 10 {
        let first = if tens == lo / 10 { lo % 10 } else { 0 };
        let last = if tens == hi / 10 { hi % 10 } else { 9 };
        if tens > 0 && first == 0 && last == 9 {
            full = Some((full.map_or(tens, |(a, _)| a), tens));
            continue;
        }
        flush(&mut full, &mut pieces);
        let prefix = if tens == 0 { String::new() } else { tens.to_string() };
        pieces.push(format!("{prefix}{}", digit_class(first, last)));
    }
    flush(&mut full, &mut pieces);
    pieces.join("|")
}

/// Matches `text` in any ASCII case without `(?i)` (which also folds
/// `ſ` into `s` and the Kelvin sign into `k`): `[Dd][Aa][Ii][Ll][Yy]`.
fn any_case(text: &str) -> String {
    text.chars()
        .map(|c| match (c.to_ascii_uppercase(), c.to_ascii_lowercase()) {
            (u, l) if u != l => format!("[{u}{l}]"),
            _ => c.to_string(),
        })
        .collect()
}

impl Field {
    /// A value: digits with leading zeros, or a name.
    fn value_re(&self) -> String {
        let mut alternatives = vec![format!("0*(?:{})", numbers(self.min, self.max))];
        alternatives.extend(self.names.iter().map(|n| n.to_string()));
        format!("(?:{})", alternatives.join("|"))
    }

    /// The whole field, as [`Field::check`] accepts it.
    fn field_re(&self) -> String {
        let value = self.value_re();
        let step = format!("/0*(?:{})", numbers(1, self.max));
        let item = format!("(?:[*]{step}|{value}(?:-{value})?(?:{step})?)");
        let question = if self.question { "|[?]" } else { "" };
        format!("(?:[*]{question}|{item}(?:,{item})*)")
    }

    /// A range `a-b` with `a > b`.
    fn backwards_re(&self) -> String {
        let mut alternatives = Vec::new();
        for a in self.min..=self.max {
            let mut starts = vec![format!("0*{a}")];
            let mut ends = Vec::new();
            if a > self.min {
                ends.push(format!("0*(?:{})", numbers(self.min, a - 1)));
            }
            for (i, name) in self.names.iter().enumerate() {
                if self.name_value(i, false) == a {
                    starts.push(name.to_string());
                }
                if self.name_value(i, true) < a {
                    ends.push(name.to_string());
                }
            }
            if !ends.is_empty() {
                alternatives.push(format!("(?:{})-(?:{})", starts.join("|"), ends.join("|")));
            }
        }
        format!("(?:{})", alternatives.join("|"))
    }
}

/// The CRD's `x-kubernetes-validations` of `spec.schedule`: the grammar of
/// [`syntax_errors`] as RE2 regular expressions on the whole string (whose
/// cost the API server bounds by its `maxLength`): the shape (five fields or
/// a macro), no `TZ=`, and per field its values, ranges and steps, then its
/// ranges' order. A field's rules run only on five printable-ASCII fields
/// (so `(?i)` folds ASCII only), the shape rule reporting anything else.
pub fn schedule_rules() -> Value {
    let (space, token) = (SPACE_CLASS, TOKEN_CLASS);
    let five = format!("^{space}*{token}+(?:{space}+{token}+){{4}}{space}*$");
    let macros: Vec<String> = MACROS.iter().map(|m| any_case(m)).collect();
    let zoned = format!("^{space}*(?:{}|{})", any_case("tz="), any_case("cron_tz="));
    let count = "size(self.findAll('[^ \\t\\n\\r]+'))";
    // The count as text, digit by digit: the cost estimator gives
    // `string(int)` no size bound, so it refuses it in a message.
    let digits = "['0','1','2','3','4','5','6','7','8','9']";
    let count_text = format!(
        "({count} >= 100 ? {digits}[{count} / 100] : '') + ({count} >= 10 ? {digits}[{count} / 10 % 10] : '') + {digits}[{count} % 10]"
    );
    let mut rules = vec![
        json!({
            "rule": format!(
                "self.matches('^{space}*(?:{token}+(?:{space}+{token}+){{4}}|@(?:{})){space}*$') || self.matches('{zoned}')",
                macros.join("|")
            ),
            "message": format!("must be five fields or a macro; {SHAPE_HINT}"),
            "messageExpression": format!(
                "({count} == 5 ? 'a field holds a character other than printable ASCII' : {count} == 1 ? 'it has 1 field, not 5' : 'it has ' + {count_text} + ' fields, not 5') + '; {SHAPE_HINT}'"
            ),
        }),
        json!({"rule": format!("!self.matches('{zoned}')"), "message": ZONE_INSIDE}),
    ];
    for (i, field) in FIELDS.iter().enumerate() {
        let case = if field.names.is_empty() { "" } else { "(?i)" };
        let skip = format!("^{space}*(?:{token}+{space}+){{{i}}}");
        rules.push(json!({
            "rule": format!(
                "!self.matches('{five}') || self.matches('{case}{skip}{}(?:{space}|$)')",
                field.field_re()
            ),
            "message": format!("{} must be {}: {}", field.name, field.range(), field.usage()),
        }));
        rules.push(json!({
            "rule": format!(
                "!self.matches('{five}') || !self.matches('{case}{skip}(?:{token}*,)?{}(?:/[0-9]+)?(?:,|{space}|$)')",
                field.backwards_re()
            ),
            "message": format!("{} range a-b must have a <= b, within {}", field.name, field.range()),
        }));
    }
    Value::Array(rules)
}

/// The CRD's `x-kubernetes-validations` of `spec.timeZone`: one of the names
/// of the IANA database this operator carries (chrono-tz's, links
/// included), so the API server refuses exactly what [`Cron::parse`] does.
pub fn time_zone_rules() -> Value {
    let names: Vec<String> = chrono_tz::TZ_VARIANTS.iter().map(|tz| format!("'{}'", tz.name())).collect();
    json!([{
        "rule": format!("self in [{}]", names.join(",")),
        "message": format!(
            "must be an IANA time zone name (tz database {}) such as Europe/Paris or America/New_York",
            chrono_tz::IANA_TZDB_VERSION
        ),
        "messageExpression": "'unknown time zone \"' + self + '\": use an IANA name such as \"Europe/Paris\" or \"America/New_York\"'",
    }])
}

#[cfg(test)]
mod tests {
    use chrono_tz::Tz;

    use super::*;

    #[test]
    fn number_regexes_match_exactly_their_range() {
        for (lo, hi) in [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7), (1, 1), (0, 0), (3, 47), (10, 19)] {
            let alternatives = numbers(lo, hi);
            let matches = |n: u32| {
                let text = n.to_string();
                alternatives.split('|').any(|alt| class_match(alt, &text))
            };
            for n in 0..100 {
                assert_eq!(matches(n), (lo..=hi).contains(&n), "{n} in {alternatives} ({lo}-{hi})");
            }
        }
    }

    /// Whether `text` matches `pattern`, a sequence of digits and `[a-b]`/`[ab]` classes.
    fn class_match(pattern: &str, text: &str) -> bool {
        let mut classes: Vec<Vec<char>> = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c == '[' {
                let inner: String = chars.by_ref().take_while(|c| *c != ']').collect();
                let inner: Vec<char> = inner.chars().collect();
                classes.push(match inner.as_slice() {
                    [a, '-', b] => (*a..=*b).collect(),
                    other => other.to_vec(),
                });
            } else {
                classes.push(vec![c]);
            }
        }
        classes.len() == text.chars().count()
            && classes.iter().zip(text.chars()).all(|(class, c)| class.contains(&c))
    }

    #[test]
    fn every_zone_of_the_rule_parses() {
        let rules = time_zone_rules();
        let rule = rules[0]["rule"].as_str().expect("a rule");
        let names: Vec<&str> = rule
            .trim_start_matches("self in [")
            .trim_end_matches(']')
            .split(',')
            .map(|n| n.trim_matches('\''))
            .collect();
        assert_eq!(names.len(), chrono_tz::TZ_VARIANTS.len());
        for name in &names {
            assert!(name.parse::<Tz>().is_ok(), "{name}");
        }
        assert!(
            names.contains(&"Europe/Paris") && names.contains(&"UTC") && !names.contains(&"Mars/Olympus")
        );
    }
}
