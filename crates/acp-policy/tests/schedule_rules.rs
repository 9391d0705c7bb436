//! The SessionSchedule CRD's CEL rules on `spec.schedule` and `spec.timeZone`
//! (what the API server and `acp validate` enforce) admit exactly what the
//! operator's parser (`acp_api::schedule::cron`) accepts, field by field.

use acp_api::schedule::cron::{Cron, syntax_errors};
use acp_policy::{Finding, SessionSchema};
use serde_json::{Value, json};

fn schedule(cron: &str, zone: Option<&str>) -> Value {
    let mut spec = json!({"schedule": cron, "template": {"spec": {"initialPrompt": "go"}}});
    if let Some(zone) = zone {
        spec["timeZone"] = json!(zone);
    }
    json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSchedule", "metadata": {"name": "s"}, "spec": spec})
}

fn findings(schema: &SessionSchema, cron: &str, zone: Option<&str>) -> Vec<Finding> {
    let found = schema.check(&schedule(cron, zone)).1;
    for f in &found {
        // A rule that fails to evaluate would refuse everything: never expected.
        assert!(!f.message.contains("rule evaluation error"), "{cron:?}: {f}");
        assert!(!f.message.contains("does not support"), "{cron:?}: {f}");
    }
    found
}

/// Asserts the CRD's verdict on `cron` is the parser's, and that each finding
/// names the cron field the parser names.
fn same_verdict(schema: &SessionSchema, cron: &str) {
    let found = findings(schema, cron, None);
    let parsed = Cron::parse(cron, None);
    assert_eq!(found.is_empty(), parsed.is_ok(), "{cron:?}: CRD says {found:?}, the parser {parsed:?}");
    let errors = syntax_errors(cron);
    for field in ["minute", "hour", "day-of-month", "month", "day-of-week"] {
        let crd = found.iter().any(|f| f.message.starts_with(&format!("{field} ")));
        let parser = errors.iter().any(|e| e.starts_with(&format!("{field} ")));
        assert_eq!(crd, parser, "{cron:?}: {field}: CRD {found:?}, parser {errors:?}");
    }
}

#[test]
fn the_crd_refuses_what_the_parser_refuses_with_the_field_and_its_range() {
    let schema = SessionSchema::for_kind("SessionSchedule");
    for cron in [
        "0 3 * * 1-5",
        "*/15 9-17 * * *",
        "0 0 1,15 * *",
        "5/10 * * * *",
        "0 0-12/2 * * *",
        "0 0 ? * mon-fri",
        "0 0 * jan-mar,Dec sun",
        "0 0 * * SAT-SUN",
        "0 0 * * MON-SUN",
        "0 0 * * SUN-0",
        "0 0 * * 7",
        "0 0 * * 7-SUN",
        "00 03 01 01 00",
        "59 23 31 12 7",
        "  0\t3 * * *  ",
        "0 3 * * *\n",
        "@hourly",
        "@Daily",
        "@MIDNIGHT",
        "@annually",
        "61 * * * *",
        "0 24 * * *",
        "0 0 0 * *",
        "0 0 32 * *",
        "0 0 * 0 *",
        "0 0 * 13 *",
        "0 0 * * 8",
        "*/0 * * * *",
        "*/60 * * * *",
        "30-10 * * * *",
        "30-10/0 * * * *",
        "0 0 * DEC-JAN *",
        "0 0 * * 7-MON",
        "0 0 * * MON-0",
        "1,,2 * * * *",
        "1, * * * *",
        "1,* * * * *",
        "? * * * *",
        "0 0 ?/2 * *",
        "0 0 L * *",
        "0 0 15W * *",
        "0 0 * * 5#2",
        "0 0 * * +1",
        "MON * * * *",
        "0 0 * * JAN",
        "0 0 * JAN-MON *",
        "* * * *",
        "0 * * * * *",
        "@every 5m",
        "@reboot",
        "@weekly daily",
        "TZ=UTC 0 * * * *",
        "cron_tz=UTC 0 * * *",
        "0 0 * * ſun",
        "0 0 * * \u{a0}",
        "@wee\u{212a}ly",
        "0 0 * * 1-2-3",
        "1/2/3 * * * *",
        "-5 * * * *",
        "5- * * * *",
        "000000000000061 * * * *",
        "0000000000000059 * * * *",
        "   ",
    ] {
        same_verdict(&schema, cron);
    }
    // The messages: the field and its range, as the operator's status says.
    let messages = |cron: &str| -> Vec<String> {
        findings(&schema, cron, None).iter().map(ToString::to_string).collect()
    };
    assert_eq!(
        messages("61 * * * *"),
        [
            "spec.schedule: minute must be 0-59: a number, a range a-b, a list a,b, *, or a step */n, a/n or a-b/n with n 1-59 (schema)"
        ]
    );
    assert_eq!(
        messages("0 0 * * 7-MON"),
        ["spec.schedule: day-of-week range a-b must have a <= b, within 0-7 or SUN-SAT (schema)"]
    );
    assert_eq!(
        messages("0 3 * *"),
        [
            "spec.schedule: it has 4 fields, not 5; use five fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * 1-5\", or a macro: @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly (schema)"
        ]
    );
}

/// Random expressions from the grammar's pieces and some that are not: the
/// two verdicts agree on every one.
#[test]
fn random_schedules_get_the_same_verdict() {
    let schema = SessionSchema::for_kind("SessionSchedule");
    let mut state: u64 = 0x5eed_cafe_f00d;
    let mut next = move |n: usize| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % n
    };
    // Per field: mostly its own values and names (some just out of range),
    // sometimes anything.
    let own: [&[&str]; 5] = [
        &["0", "5", "30", "59", "60", "07", "*", "*", "*"],
        &["0", "9", "17", "23", "24", "*", "*", "*"],
        &["1", "15", "31", "0", "32", "?", "*"],
        &["1", "6", "12", "13", "0", "JAN", "dec", "Feb", "*"],
        &["0", "1", "6", "7", "8", "SUN", "mon", "SAT", "?", "*"],
    ];
    let noise = ["000", "JAN", "SUN", "FOO", "L", "W", "#", "", "-", ",", "/"];
    let pick = |field: usize, next: &mut dyn FnMut(usize) -> usize| -> String {
        let atom = |next: &mut dyn FnMut(usize) -> usize| {
            let own = own[field.min(4)];
            if next(12) == 0 { noise[next(noise.len())] } else { own[next(own.len())] }.to_string()
        };
        let mut item = atom(next);
        if next(5) == 0 {
            item = format!("{item}-{}", atom(next));
        }
        if next(6) == 0 {
            item = format!("{item}/{}", ["1", "2", "5", "15", "0", "24", "60", "x"][next(8)]);
        }
        item
    };
    let mut agreed = 0;
    for _ in 0..400 {
        let count = [5, 5, 5, 5, 5, 5, 4, 6][next(8)];
        let fields: Vec<String> = (0..count)
            .map(|field| {
                if next(2) == 0 {
                    // A plain value, or *: most fields are.
                    let own = own[field.min(4)];
                    return own[next(own.len())].to_string();
                }
                let items: Vec<String> = (0..1 + next(3) * next(2)).map(|_| pick(field, &mut next)).collect();
                items.join(",")
            })
            .map(|f| if f.is_empty() { "*".to_string() } else { f })
            .collect();
        let cron = fields.join(" ");
        same_verdict(&schema, &cron);
        agreed += usize::from(Cron::parse(&cron, None).is_ok());
    }
    assert!(agreed > 20, "enough valid expressions to mean something: {agreed}");
}

#[test]
fn the_crd_refuses_the_zones_the_operator_does_not_know() {
    let schema = SessionSchema::for_kind("SessionSchedule");
    for zone in ["UTC", "Europe/Paris", "America/Argentina/ComodRivadavia", "Etc/GMT+5", "US/Pacific"] {
        assert_eq!(findings(&schema, "0 3 * * *", Some(zone)), vec![], "{zone}");
        assert!(Cron::parse("0 3 * * *", Some(zone)).is_ok(), "{zone}");
    }
    for zone in ["Mars/Olympus", "europe/paris", "Europe/Paris ", "UTC+1", "Local"] {
        let found = findings(&schema, "0 3 * * *", Some(zone));
        assert_eq!(found.len(), 1, "{zone}: {found:?}");
        assert_eq!(found[0].field.to_string(), "spec.timeZone");
        let operator = Cron::parse("0 3 * * *", Some(zone)).expect_err(zone).to_string();
        assert_eq!(found[0].message, operator, "the operator's message, word for word");
    }
}

/// Both at once: each is reported.
#[test]
fn a_bad_cron_and_a_bad_zone_are_both_reported() {
    let schema = SessionSchema::for_kind("SessionSchedule");
    let found: Vec<String> =
        findings(&schema, "61 * * * *", Some("Mars/Olympus")).iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("spec.schedule: minute must be 0-59"), "{found:?}");
    assert!(found[1].starts_with("spec.timeZone: unknown time zone \"Mars/Olympus\""), "{found:?}");
}
