use serde_json::{Value, json};

use super::*;

fn binding() -> PullRequestBinding {
    serde_json::from_value(json!({
        "repositories": ["acme/*"], "template": {"spec": {}}, "allowedBotAppIds": [42]
    }))
    .expect("binding")
}

/// An `issue_comment` delivery on pull request 7.
fn event(action: &str, author: &str, body: &str) -> CommentEvent {
    from(json!({
        "action": action, "repository": {"full_name": "acme/webapp"},
        "issue": {"number": 7, "pull_request": {"url": "https://api.github.com/repos/acme/webapp/pulls/7"}},
        "comment": {"id": 11, "body": body, "user": {"login": author, "type": "User"}},
        "sender": {"login": author}
    }))
}

fn from(value: Value) -> CommentEvent {
    serde_json::from_value(value).expect("event")
}

/// GitHub's record of what `claim` says.
fn record(claim: &Claim<'_>) -> CommentRecord {
    CommentRecord {
        id: claim.id,
        pull: Some(claim.pull_number),
        login: claim.author.to_ascii_uppercase(),
        bot: claim.bot,
        app_id: None,
        body: claim.body.to_owned(),
        url: "https://github.com/acme/webapp/pull/7#issuecomment-11".into(),
        created_at: "2026-12-07T10:00:00Z".into(),
        updated_at: "2026-12-07T11:00:00Z".into(),
    }
}

#[test]
fn only_a_claimed_command_on_a_pull_request_by_its_own_author_is_looked_at() {
    let created = event("created", "alice", "/acp run");
    let claim = claim(&created, false).expect("a command");
    assert_eq!((claim.id, claim.pull_number, claim.author, claim.bot), (11, 7, "alice", false));
    assert!(super::claim(&event("created", "alice", "looks good"), false).is_none(), "no command");
    let own = "<!-- acp:thread x -->\n/acp run";
    assert!(super::claim(&event("created", "acp", own), false).is_none(), "acp's own comment");
    let mut on_issue = event("created", "alice", "/acp run");
    on_issue.issue = serde_json::from_value(json!({"number": 8})).expect("issue");
    assert!(super::claim(&on_issue, false).is_none(), "a plain issue");
    let mut no_id = event("created", "alice", "/acp run");
    no_id.comment.id = None;
    assert!(super::claim(&no_id, false).is_none());
    let mut edited_by_other = event("edited", "alice", "/acp run");
    edited_by_other.sender.login = "mallory".into();
    assert!(super::claim(&edited_by_other, false).is_none(), "an edit is its author's only");
    let mut nobodys = event("edited", "", "/acp run");
    nobodys.sender.login = String::new();
    assert!(super::claim(&nobodys, false).is_none(), "a comment without an author is nobody's");
    assert!(super::claim(&event("created", "", "/acp run"), false).is_none(), "a comment names its author");
    let mut edited_by_self = event("edited", "alice", "/acp run");
    edited_by_self.sender.login = "ALICE".into();
    assert!(super::claim(&edited_by_self, false).is_some(), "logins are one whatever their case");
    let mut no_sender = event("edited", "alice", "/acp run");
    no_sender.sender.login = String::new();
    assert!(super::claim(&no_sender, false).is_none(), "an edit without an editor is not the author's");
    let review = from(json!({
        "action": "edited", "pull_request": {"number": 7},
        "comment": {"id": 12, "body": "/acp run", "user": {"login": "alice", "type": "Bot"}},
        "sender": {"login": "alice"}
    }));
    assert!(super::claim(&review, true).is_none(), "an edited review comment is no command");
}

#[test]
fn an_edit_claims_only_the_commands_it_added() {
    let mut edited = event("edited", "alice", "/acp status\n/acp run -- again");
    edited.changes = serde_json::from_value(json!({"body": {"from": "/acp status"}})).expect("changes");
    let claim = claim(&edited, false).expect("a command added");
    let added: Vec<String> = claim.commands(claim.body).into_iter().map(|f| f.text).collect();
    assert_eq!(added, ["/acp run -- again"]);
    let mut unchanged = edited.clone();
    unchanged.comment.body = "/acp status".into();
    assert!(super::claim(&unchanged, false).is_none());
}

#[test]
fn githubs_record_must_say_what_the_delivery_said() {
    let event = event("created", "alice", "/acp run");
    let claim = claim(&event, false).expect("a command");
    let Verdict::Genuine(comment) = verify(&claim, &record(&claim), &binding()) else { panic!("genuine") };
    assert_eq!(comment.commenter, Commenter { login: "ALICE".into(), bot: false, app_id: None });
    assert_eq!((comment.id, comment.review), (11, false));
    assert_eq!(comment.created_at, "2026-12-07T10:00:00Z");
    assert_eq!(comment.digest, request::digest("/acp run"));
    let forged: [fn(&mut CommentRecord); 4] = [
        |r| r.login = "mallory".into(),
        |r| r.pull = Some(8),
        |r| r.body = "/acp run -- something else".into(),
        |r| r.bot = true,
    ];
    for forge in forged {
        let mut record = record(&claim);
        forge(&mut record);
        assert_eq!(verify(&claim, &record, &binding()), Verdict::Mismatch, "{record:?}");
    }
}

#[test]
fn a_bot_speaks_only_through_an_allowed_app_and_an_edit_asks_when_it_is_made() {
    let mut by_bot = event("created", "ci[bot]", "/acp run");
    by_bot.comment.user.kind = "Bot".into();
    let bot = claim(&by_bot, false).expect("a command");
    let mut bots = record(&bot);
    assert_eq!(verify(&bot, &bots, &binding()), Verdict::Mismatch, "no App");
    bots.app_id = Some(7);
    assert_eq!(verify(&bot, &bots, &binding()), Verdict::Mismatch, "not allowed");
    bots.app_id = Some(42);
    assert!(matches!(verify(&bot, &bots, &binding()), Verdict::Genuine(_)));
    let edited = event("edited", "alice", "/acp run");
    let edit = claim(&edited, false).expect("a command added");
    let Verdict::Genuine(comment) = verify(&edit, &record(&edit), &binding()) else { panic!("genuine") };
    assert_eq!(comment.created_at, "2026-12-07T11:00:00Z", "the edit's time");
}

fn found(body: &str) -> Found {
    grammar::parse(body).pop().expect("a command line")
}

fn comment(bot: bool) -> Comment {
    Comment {
        id: 11,
        commenter: Commenter { login: "alice".into(), bot, app_id: bot.then_some(42) },
        ..Comment::default()
    }
}

#[test]
fn the_answer_to_each_command_is_the_gates_and_typos_are_told_to_who_may_run_commands() {
    let b = binding();
    let typo = found("/acp rnu");
    let Answer::Reply(line) = answer(&b, "acme/webapp", &comment(false), Role::Triage, &typo) else {
        panic!("a reply")
    };
    assert!(line.starts_with("@alice: `"), "quoted inertly: {line}");
    assert_eq!(answer(&b, "acme/webapp", &comment(false), Role::Read, &typo), Answer::Unanswered);
    assert_eq!(answer(&b, "acme/webapp", &comment(true), Role::Write, &typo), Answer::Unanswered);
    let run = found("/acp run");
    let Ok(command) = run.command.clone() else { panic!("a command") };
    assert_eq!(answer(&b, "acme/webapp", &comment(false), Role::None, &run), Answer::Ignored);
    assert_eq!(
        answer(&b, "acme/webapp", &comment(false), Role::Write, &run),
        Answer::Act { command: command.clone(), waits: None }
    );
    let Answer::Act { waits: Some(why), .. } = answer(&b, "acme/webapp", &comment(false), Role::Read, &run)
    else {
        panic!("waits for approval")
    };
    assert!(why.contains("needs write access"), "{why}");
    let stop = found("/acp stop");
    assert_eq!(
        answer(&b, "acme/webapp", &comment(false), Role::Read, &stop),
        Answer::Reply("@alice: `/acp stop` needs write access to acme/webapp; you have read.".into())
    );
}
