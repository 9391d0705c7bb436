//! The dashboard in headless Chromium (Debian's chromium + chromedriver,
//! driven over WebDriver with fantoccini): list and detail pages load, their
//! content and links are right, a phase change and new runner output arrive
//! live over server-sent events, and the pages fit a phone. Screenshots are
//! saved under `target/tmp/dashboard-screenshots/`.

mod common;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use acp_dashboard::auth::Mode;
use acp_dashboard::logs::LogSource;
use acp_testenv::bench::free_port;
use acp_testenv::eventually;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads its own process group: Chromium goes with it,
        // even when a failing test never closed the browser.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ =
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    assert!(Path::new(CHROMEDRIVER).exists(), "{CHROMEDRIVER} is missing: run scripts/setup");
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let status = format!("{url}/status");
    let driver = Driver { child, url };
    eventually("chromedriver to answer", TIMEOUT, || {
        let status = status.clone();
        async move { (status_of(&status).await == Some(200)).then_some(()) }
    })
    .await;
    driver
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.display())]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = screenshots().join(name);
    std::fs::write(&path, png).expect("screenshot saved");
    println!("screenshot: {}", path.display());
}

async fn text(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Waits until the text of `css` satisfies `want`.
async fn until_text(browser: &Client, what: &str, css: &str, want: impl Fn(&str) -> bool) -> String {
    eventually(what, TIMEOUT, || async {
        let el = browser.find(Locator::Css(css)).await.ok()?;
        let text = el.text().await.ok()?;
        want(&text).then_some(text)
    })
    .await
}

async fn script_bool(browser: &Client, script: &str) -> bool {
    browser.execute(script, vec![]).await.expect("script runs").as_bool().unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_in_chromium_with_live_updates() {
    let (env, client) = env().await;
    let ns = env.namespace("dash-browser").await.name;
    let runs = tempfile::tempdir().expect("tempdir");
    let source = format!("{ns}/src");
    let api: kube::Api<acp_api::SessionSource> = kube::Api::namespaced(client.clone(), &ns);
    let src: acp_api::SessionSource = serde_json::from_value(json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource",
        "metadata": {"name": "src", "namespace": ns}, "spec": {"url": "https://github.com/acme/sessions"}
    }))
    .expect("source");
    api.create(&Default::default(), &src).await.expect("source created");
    create_session(&client, &ns, "alpha", &source).await;
    create_session(&client, &ns, "beta", &source).await;
    // The schedule and its run live apart, so the session list above stays two.
    let sched_ns = env.namespace("dash-browser-sched").await.name;
    let nightly = create_schedule(
        &client,
        &sched_ns,
        "nightly",
        Some("Europe/Paris"),
        Some(json!({"nextRunTime": "2099-11-25T08:00:00Z", "active": ["nightly-29400480"],
            "runs": [{"name": "nightly-29400480", "scheduledTime": "2026-11-24T08:00:00Z", "phase": "Running"}]})),
    )
    .await;
    create_run(&client, &nightly, "nightly-29400480").await;
    set_status(
        &client,
        &ns,
        "alpha",
        json!({"phase": "Completed", "result": {"outcome": "success",
        "summary": "Bumped the version", "numTurns": 3, "totalCostUsd": 0.01, "durationMs": 61000}}),
    )
    .await;
    set_status(&client, &ns, "beta", json!({"phase": "Running", "jobName": "beta-1", "run": 1})).await;
    let run_dir = runs.path().join(&ns).join("beta-1");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    std::fs::write(
        run_dir.join("runner.log"),
        "{\"event\":\"step\",\"step\":\"clone\",\"message\":\"cloning 1 repository\"}\n{\"event\":\"step\",\"step\":\"agent\",\"message\":\"running claude\"}\n",
    )
    .expect("log");
    let dashboard =
        Dashboard::start(client.clone(), Mode::None, LogSource::Files(runs.path().to_owned())).await;
    let list = format!("{}/sessions?namespace={ns}", dashboard.url);
    eventually("both sessions in the cache", TIMEOUT, || {
        let url = format!("{}/api/v1/sessions?namespace={ns}&phase=Running", dashboard.url);
        async move { (get_json(&url, None).await["total"] == 1).then_some(()) }
    })
    .await;

    let driver = driver().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let browser = browser(&driver, profile.path()).await;

    // The list: content, filters, landmarks.
    browser.goto(&list).await.expect("list page loads");
    assert!(browser.title().await.expect("title").starts_with("Sessions"));
    assert_eq!(text(&browser, "#total").await, "2");
    let rows = browser.find_all(Locator::Css("tbody tr")).await.expect("rows");
    assert_eq!(rows.len(), 2);
    assert!(text(&browser, "tbody").await.contains("Session alpha"));
    assert!(script_bool(&browser, "return !!document.querySelector('header nav') && !!document.querySelector('main') && !!document.querySelector('footer')").await);
    assert!(
        script_bool(
            &browser,
            "return [...document.querySelectorAll('input,select')].every(e => e.closest('label'))"
        )
        .await,
        "every form control is labelled"
    );
    screenshot(&browser, "sessions-list.png").await;

    // Filtering with the form (a plain GET form).
    let phase = browser.find(Locator::Css("select[name=phase]")).await.expect("phase filter");
    phase.select_by_value("Completed").await.expect("select Completed");
    browser.find(Locator::Css("form.filters button")).await.expect("apply").click().await.expect("submit");
    until_text(&browser, "the filtered list", "#total", |t| t == "1").await;
    assert!(browser.current_url().await.expect("url").as_str().contains("phase=Completed"));
    browser.goto(&list).await.expect("list again");

    // Follow the link to the running session.
    browser.find(Locator::LinkText("Session beta")).await.expect("link").click().await.expect("click");
    until_text(&browser, "the detail page", "h1", |t| t.contains("Session beta")).await;
    assert!(browser.current_url().await.expect("url").path().ends_with(&format!("/sessions/{ns}/beta")));
    assert_eq!(text(&browser, "h1 [data-phase]").await, "Running");
    until_text(&browser, "the runner's output so far", "#log", |t| t.contains("running claude")).await;
    eventually("the live connection", TIMEOUT, || async {
        script_bool(&browser, "return document.body.dataset.live === 'connected'").await.then_some(())
    })
    .await;
    screenshot(&browser, "session-running.png").await;

    // Live: new output and the end of the run arrive without a reload.
    browser.execute("window.__still_this_page = true", vec![]).await.expect("marker");
    let mut log = std::fs::OpenOptions::new().append(true).open(run_dir.join("runner.log")).expect("log");
    std::io::Write::write_all(&mut log, b"{\"event\":\"text\",\"text\":\"renamed the module\"}\n")
        .expect("append");
    until_text(&browser, "the new output line", "#log", |t| t.contains("renamed the module")).await;
    set_status(&client, &ns, "beta", json!({"phase": "Completed", "result": {"outcome": "success",
        "summary": "Renamed the module and fixed imports", "numTurns": 5, "totalCostUsd": 0.02, "durationMs": 95000}}))
    .await;
    std::fs::write(run_dir.join("exit"), "0").expect("exit");
    until_text(&browser, "the phase change over SSE", "h1 [data-phase]", |t| t == "Completed").await;
    until_text(&browser, "the result", "#summary-text", |t| t.contains("Renamed the module")).await;
    assert!(
        script_bool(&browser, "return window.__still_this_page === true").await,
        "updated in place, not reloaded"
    );
    eventually("the log stream to end", TIMEOUT, || async {
        script_bool(&browser, "return document.getElementById('log').dataset.ended === 'true'")
            .await
            .then_some(())
    })
    .await;
    screenshot(&browser, "session-completed.png").await;

    // Follow the source link.
    browser.find(Locator::LinkText(&source)).await.expect("source link").click().await.expect("click");
    until_text(&browser, "the source page", "h1", |t| t.contains(&source)).await;
    screenshot(&browser, "source.png").await;

    // Schedules: from the nav to the list, to a schedule, to its run.
    browser.find(Locator::LinkText("Schedules")).await.expect("nav link").click().await.expect("click");
    until_text(&browser, "the schedule list", "h1", |t| t == "Schedules").await;
    browser.goto(&format!("{}/schedules?namespace={sched_ns}", dashboard.url)).await.expect("schedules");
    assert!(text(&browser, "#schedule-list tbody").await.contains("Europe/Paris"));
    screenshot(&browser, "schedules.png").await;
    browser.find(Locator::LinkText("nightly")).await.expect("schedule link").click().await.expect("click");
    until_text(&browser, "the schedule page", "h1", |t| t.contains(&format!("{sched_ns}/nightly"))).await;
    assert_eq!(text(&browser, "#runs [data-phase]").await, "Running");
    screenshot(&browser, "schedule.png").await;
    browser
        .find(Locator::LinkText("nightly-29400480"))
        .await
        .expect("run link")
        .click()
        .await
        .expect("click");
    until_text(&browser, "the run's page", "h1", |t| t.contains("Session nightly-29400480")).await;
    assert!(text(&browser, "#schedule").await.contains("Run of schedule nightly"));

    // A phone: nothing wider than the screen but the scrolling table.
    browser.set_window_size(390, 844).await.expect("phone size");
    browser.goto(&list).await.expect("list on a phone");
    assert!(
        script_bool(&browser, "return document.documentElement.scrollWidth <= window.innerWidth + 1").await,
        "the page fits a phone's width"
    );
    screenshot(&browser, "sessions-phone.png").await;

    browser.close().await.expect("browser closes");
    dashboard.stop().await;
    drop(driver);
}
