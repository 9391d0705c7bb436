use super::*;

fn commands(body: &str) -> Vec<Result<Command, ParseError>> {
    parse(body).into_iter().map(|f| f.command).collect()
}

#[test]
fn run_with_flags_and_a_prompt_that_runs_to_the_next_command() {
    let body = "Thanks!\n/acp run --model opus --max-turns 12 --timeout 20m -- add a CHANGELOG entry\nfor the login fix\n/acp status\n";
    let found = parse(body);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].line, 2);
    assert_eq!(
        found[0].command,
        Ok(Command::Run(RunFlags {
            model: Some("opus".into()),
            max_turns: Some(12),
            timeout_seconds: Some(1200),
            prompt: Some("add a CHANGELOG entry\nfor the login fix".into()),
        }))
    );
    assert_eq!(found[1].command, Ok(Command::Status));
    assert_eq!(commands("/acp run"), vec![Ok(Command::Run(RunFlags::default()))]);
    assert_eq!(
        commands("/acp run --timeout=90"),
        vec![Ok(Command::Run(RunFlags { timeout_seconds: Some(90), ..RunFlags::default() }))]
    );
}

#[test]
fn follow_ups_keep_their_text_verbatim() {
    assert_eq!(
        commands("@acp add a CHANGELOG entry\n\n```\nkeep this\n```"),
        vec![Ok(Command::FollowUp("add a CHANGELOG entry\n\n```\nkeep this\n```".into()))]
    );
    assert!(commands("@acp").iter().all(Result::is_err));
    // Not a mention of acp: another handle that starts the same.
    assert!(commands("@acpbot do it").is_empty());
    assert!(commands("/acpx run").is_empty());
}

#[test]
fn quotes_and_code_are_never_commands() {
    let body = "> /acp run -- quoted from someone\n```\n/acp stop\n```\n~~~sh\n@acp in a tilde fence\n~~~\n    /acp run -- indented code\nsee `/acp run` inline\n   /acp help\n";
    assert_eq!(commands(body), vec![Ok(Command::Help)], "only the line indented three spaces counts");
}

#[test]
fn simple_verbs_take_no_arguments_and_typos_get_a_suggestion() {
    assert_eq!(
        commands("/acp stop\n/acp retry\n/acp approve"),
        vec![Ok(Command::Stop), Ok(Command::Retry), Ok(Command::Approve)]
    );
    let error = commands("/acp stpo").remove(0).expect_err("unknown");
    assert!(error.message.contains("did you mean /acp stop?"), "{error}");
    let error = commands("/acp deploy").remove(0).expect_err("unknown");
    assert!(!error.message.contains("did you mean"), "{error}");
    assert!(error.message.contains("commands: run, stop"), "{error}");
    let error = commands("/acp stop now").remove(0).expect_err("arguments");
    assert!(error.message.contains("takes no arguments"), "{error}");
    assert!(commands("/acp").remove(0).is_err());
}

#[test]
fn bad_flags_say_what_to_write() {
    for (body, needle) in [
        ("/acp run --image evil:latest", "unknown flag --image"),
        ("/acp run --max-turns lots", "is not a number"),
        ("/acp run --max-turns 0", "at least 1"),
        ("/acp run --timeout 3d", "not a duration"),
        ("/acp run --timeout 48h", "between 1s and 24h"),
        ("/acp run --model", "--model needs a value"),
        ("/acp run fix it", "put the prompt after --"),
    ] {
        let error = commands(body).remove(0).expect_err(body);
        assert!(error.message.contains(needle), "{body}: {error}");
    }
}

#[test]
fn an_edit_counts_only_for_the_commands_it_adds() {
    let before = "/acp run -- fix it\nthanks";
    assert!(
        added(before, "/acp run -- fix it\nthanks a lot").is_empty(),
        "a typo fix elsewhere starts nothing"
    );
    let new = added(before, "/acp run -- fix it\n/acp stop");
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].command, Ok(Command::Stop));
    assert_eq!(added("", "@acp go").len(), 1);
}
