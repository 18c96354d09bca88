//! The web console in a real headless Chromium (issue 12's proof), driven through WebDriver
//! (Debian's `chromium` + `chromium-driver`, fantoccini) against real processes: codis-fe
//! serving the built bundle, two product lines on a filesystem coordinator (dashboards,
//! codis-servers, a proxy).
//!
//! An admin logs in, sees both product lines, creates groups and adds servers, adds the proxy,
//! rebalances from the previewed plan and watches the progress bar reach 100%, sees keys
//! written through the proxy counted, finds those changes on the audit page and reads the
//! refusal of a change that breaks isolation. A viewer then finds no enabled action on any
//! page, and a request forced from the page is refused (403). Every page is photographed into
//! `docs/screenshots/`, and the figures of `scripts/bench-ui.sh` are printed as `UI-FIGURE`
//! lines.
//!
//! Needs the bundle (`cargo run -p xtask -- dist`, or `CODIS_UI_DIST`); scripts/test.sh builds
//! it and installs Chromium. Chromedriver runs in its own process group, killed by a guard, so
//! a failing test leaves no browser behind.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::fe::{ADMIN_PW, Fe, start_fe_with, start_fs_dashboard};
use super::support::{Reply, Resp, TempDir, free_port, start_codis_server, start_proxy_on};

const VIEWER_PW: &str = "viewer-pw-1234";

/// The built bundle: `CODIS_UI_DIST`, else `<target>/ui-dist` (where xtask puts it).
fn dist_dir() -> PathBuf {
    let dir = std::env::var_os("CODIS_UI_DIST")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("ui-dist")))
        .unwrap_or_else(|| {
            // tests/ -> workspace root -> target/ui-dist
            std::env::var_os("CARGO_MANIFEST_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
                .join("../target/ui-dist")
        });
    assert!(
        dir.join("index.html").is_file() && dir.join("frontend_bg.wasm").is_file(),
        "no UI bundle in {}: run `cargo run -p xtask -- dist` (scripts/test.sh does) or set \
         CODIS_UI_DIST",
        dir.display()
    );
    dir
}

fn screenshots_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("../docs/screenshots")
}

/// Makes `cmd`'s process receive `signal` when the thread that spawned it ends (also when the
/// test binary is killed, where no Drop runs).
fn die_with_parent(cmd: &mut Command, signal: libc::c_int) -> &mut Command {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe; it touches no memory of the parent.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// chromedriver and every browser it starts: one process group, terminated on drop (also when
/// the test panics), so no Chromium is left behind. When the test binary is killed (no Drop
/// runs), chromedriver gets SIGKILL from the kernel (PR_SET_PDEATHSIG), and a watchdog shell
/// that gets SIGTERM the same way kills the whole group, browsers included.
struct Driver {
    child: Child,
    watchdog: Child,
    port: u16,
}

impl Driver {
    fn start(dir: &Path) -> Driver {
        let port = free_port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0);
        let child = die_with_parent(&mut cmd, libc::SIGKILL).spawn().expect(
            "chromedriver (apt-get install chromium chromium-driver; scripts/test.sh does)",
        );
        let mut wd = Command::new("sh");
        wd.args([
            "-c",
            // dash's kill takes no `--`; $0 is chromedriver's process group.
            "trap 'kill -KILL -$0 2>/dev/null; exit 0' TERM; while sleep 1; do :; done",
            &child.id().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0);
        let watchdog = die_with_parent(&mut wd, libc::SIGTERM).spawn().expect("sh");
        let d = Driver {
            child,
            watchdog,
            port,
        };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }
}

impl Driver {
    /// Empties the browser's HTTP cache (Chromium's DevTools `Network.clearBrowserCache`,
    /// through chromedriver's `goog/cdp/execute`).
    async fn clear_cache(&self, c: &Client) {
        let id = c.session_id().await.unwrap().expect("a session id");
        let body = r#"{"cmd":"Network.clearBrowserCache","params":{}}"#;
        let req = format!(
            "POST /session/{id}/goog/cdp/execute HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        let port = self.port;
        let answer = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            // chromedriver keeps the connection open: read the head, then Content-Length.
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        return text;
                    }
                }
                let n = s.read(&mut chunk).expect("chromedriver's answer");
                assert!(n > 0, "chromedriver closed: {text}");
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "clearBrowserCache: {answer}"
        );
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

async fn session(driver: &Driver, profile: &Path) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1024,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

/// The browser and what it is pointed at.
struct Ui {
    c: Client,
    base: String,
    shots: PathBuf,
}

impl Ui {
    async fn goto(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.unwrap()
    }

    /// Waits until `script` returns something truthy (not false, null, "" or 0), and returns it.
    async fn until(&self, what: &str, secs: u64, script: &str) -> Value {
        let t = Instant::now();
        loop {
            let v = self.js(script).await;
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            if t.elapsed() > Duration::from_secs(secs) {
                let body = self.js("return document.body.innerText").await;
                panic!("timed out after {secs}s waiting for {what}; the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The text of the first element matching `css`, or "" (as a JS expression).
    fn text_of(css: &str) -> String {
        format!("return (document.querySelector({css:?}) || {{}}).innerText || ''")
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Clicks the button whose text is `label` (inside `scope`), then the open dialog's confirm.
    async fn click_button(&self, scope: &str, label: &str) {
        let xpath = format!("{scope}//button[normalize-space()='{label}']");
        let b = self
            .c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button {label:?}: {e}"));
        b.click().await.unwrap();
    }

    async fn confirm(&self) {
        self.click(".modal-backdrop:not([hidden]) .confirm-yes")
            .await;
    }

    async fn shot(&self, name: &str) {
        // Let the last poll land and the layout settle.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let png = self.c.screenshot().await.unwrap();
        std::fs::create_dir_all(&self.shots).unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn login(&self, user: &str, password: &str) {
        self.goto("/login").await;
        self.type_into("input[name=username]", user).await;
        // Enter in the password field submits the form.
        self.type_into("input[name=password]", &format!("{password}\n"))
            .await;
        self.until("the header to name the user", 20, &Ui::text_of("#who-name"))
            .await;
    }

    /// Buttons and fields of actions that are enabled on the page now.
    async fn enabled_actions(&self) -> (usize, Vec<Value>) {
        let v = self
            .js(
                "return [document.querySelectorAll('button.act').length, \
                 Array.from(document.querySelectorAll('button.act:enabled, .action-form \
                 input:enabled, .action-form select:enabled')).map(e => e.outerHTML.slice(0, 120))]",
            )
            .await;
        (
            v[0].as_u64().unwrap_or(0) as usize,
            v[1].as_array().cloned().unwrap_or_default(),
        )
    }
}

fn figure(name: &str, value: impl std::fmt::Display) {
    eprintln!("UI-FIGURE {name} {value}");
}

#[test]
fn ui_console_in_chromium() {
    let _serial = super::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dist = dist_dir();
    let tmp = TempDir::new("ui");
    let root = tmp.path().join("coordinator");
    std::fs::create_dir_all(&root).unwrap();
    let (_s1, p1) = start_codis_server(tmp.path());
    let (_s2, p2) = start_codis_server(tmp.path());
    let (_s3, p3) = start_codis_server(tmp.path());
    let shop_port = free_port();
    let _shop = start_fs_dashboard("shop", &root, shop_port, &tmp.path().join("shop"));
    let ads_port = free_port();
    let mut ads = start_fs_dashboard("ads", &root, ads_port, &tmp.path().join("ads"));
    let fe_port = free_port();
    let _fe = start_fe_with(&root, tmp.path(), fe_port, &dist);
    let proxy = start_proxy_on("shop", None, free_port(), free_port(), tmp.path());

    // Set up through the API what the browser does not do: ads' group, a viewer.
    let api = Fe::login(fe_port);
    let s = |p: u16| format!("127.0.0.1:{p}");
    api.ok(
        "POST",
        "/api/v1/products/ads/groups",
        Some(json!({"group_id": 1})),
    );
    api.ok(
        "POST",
        "/api/v1/products/ads/groups/1/servers",
        Some(json!({"addr": s(p3)})),
    );
    api.ok(
        "POST",
        "/api/v1/users",
        Some(json!({"username": "vera", "password": VIEWER_PW,
                    "roles": [{"product": "*", "role": "viewer"}]})),
    );

    let driver = Driver::start(tmp.path());
    let profile = tmp.path().join("chromium-profile");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = session(&driver, &profile).await;
        let ui = Ui {
            c,
            base: format!("http://127.0.0.1:{fe_port}"),
            shots: screenshots_dir(),
        };

        // First visit: the login page, with an empty cache.
        ui.goto("/").await;
        ui.find("input[name=username]").await;
        assert!(ui.c.current_url().await.unwrap().path().starts_with("/login"));
        let first = ui
            .js(
                "const n = performance.getEntriesByType('navigation')[0]; \
                 const r = performance.getEntriesByType('resource'); \
                 return [n.transferSize + r.reduce((s, e) => s + e.transferSize, 0), \
                 r.map(e => e.name.replace(location.origin, '') + ' ' + e.transferSize)]",
            )
            .await;
        figure("first_visit_transfer_bytes", &first[0]);
        figure("first_visit_files", &first[1]);
        ui.shot("login").await;

        // 1. Log in (Enter in the form); both product lines are listed.
        ui.login("admin", ADMIN_PW).await;
        ui.find("tr[data-product=shop]").await;
        ui.find("tr[data-product=ads]").await;
        assert_eq!(
            ui.js(&Ui::text_of("#who-role")).await,
            "global admin",
            "the header shows the role"
        );
        // Navigation to an interactive product list: first with an empty cache (as a first
        // visit of a logged-in user), then a reload with the bundle cached (revalidated:
        // codis-fe sends the UI files with `Cache-Control: no-cache`).
        let mark = "const m = performance.getEntriesByName('codis:products')[0]; \
                    return m ? m.startTime : null";
        driver.clear_cache(&ui.c).await;
        ui.goto("/").await;
        let cold = ui.until("the products mark", 20, mark).await;
        let fetched = ui
            .js("return performance.getEntriesByType('resource').filter(e => \
                 e.name.endsWith('_bg.wasm')).map(e => e.transferSize)[0] || 0")
            .await;
        assert!(
            fetched.as_u64().unwrap_or(0) > 100_000,
            "the empty-cache visit downloads the wasm: {fetched}"
        );
        figure("products_interactive_cold_ms", cold);
        ui.goto("/").await;
        let ms = ui.until("the products mark", 20, mark).await;
        figure("products_interactive_ms", ms);
        ui.find("tr[data-product=ads]").await;
        ui.shot("products").await;

        // 2. Groups: create two, add a server to each.
        ui.click("tr[data-product=shop] a").await;
        ui.find("nav[aria-label='Product line']").await;
        ui.c.find(Locator::XPath("//nav[@aria-label='Product line']//a[normalize-space()='Groups']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        for (gid, port) in [(1, p1), (2, p2)] {
            ui.type_into("input[name=group-id]", &gid.to_string()).await;
            ui.click_button("//form[@aria-label='Create a group']", "Create group")
                .await;
            ui.find(&format!("section[data-group='{gid}']")).await;
            ui.type_into(&format!("input[name=server-addr-{gid}]"), &s(port))
                .await;
            ui.click_button(
                &format!("//form[@aria-label='Add a server to group {gid}']"),
                "Add server",
            )
            .await;
            ui.until(
                "the server in its group",
                20,
                &format!(
                    "return Array.from(document.querySelectorAll(\"section[data-group='{gid}'] \
                     tbody th\")).some(e => e.innerText == '{}')",
                    s(port)
                ),
            )
            .await;
        }
        ui.shot("groups").await;

        // Polls (every 3 s) update the rows in place: typed text and an open confirmation
        // survive more than two of them.
        ui.type_into("input[name=server-addr-1]", "10.9.9.9:6379")
            .await;
        ui.click_button(
            &format!("//tr[@data-server='{}']", s(p2)),
            "Remove",
        )
        .await;
        ui.find("section[data-group='2'] .modal-backdrop:not([hidden])")
            .await;
        ui.js("performance.clearResourceTimings()").await;
        tokio::time::sleep(Duration::from_secs(7)).await;
        let polls = ui
            .js("return performance.getEntriesByType('resource').filter(e => \
                 e.name.endsWith('/api/v1/products/shop')).length")
            .await;
        assert!(
            polls.as_u64().unwrap_or(0) >= 2,
            "at least two polls in 7 s: {polls}"
        );
        assert_eq!(
            ui.js("return document.querySelector('input[name=server-addr-1]').value").await,
            "10.9.9.9:6379",
            "the typed address survived the polls"
        );
        assert_eq!(
            ui.js("return document.querySelectorAll(\"section[data-group='2'] .modal-backdrop:not([hidden])\").length")
                .await,
            1,
            "the confirmation stayed open through the polls"
        );
        ui.click("section[data-group='2'] .modal-backdrop:not([hidden]) .modal-buttons button:first-child")
            .await;
        ui.type_into("input[name=server-addr-1]", "").await;

        // 3. Proxies: add the proxy by its admin address; it goes online.
        ui.goto("/products/shop/proxies").await;
        ui.type_into("input[name=proxy-addr]", &s(proxy.admin)).await;
        ui.click_button("//form[@aria-label='Add a proxy']", "Add proxy")
            .await;
        ui.until(
            "the proxy online",
            30,
            "return Array.from(document.querySelectorAll('td.good')).some(e => e.innerText == 'online')",
        )
        .await;
        ui.shot("proxies").await;

        // 4. Slots: preview the rebalance, run it, watch the bar reach 100%.
        ui.goto("/products/shop/slots").await;
        ui.click_button("", "Preview rebalance").await;
        let plan = ui.find("#rebalance-plan").await.text().await.unwrap();
        assert!(plan.contains("512 slots: offline → group 1"), "{plan}");
        assert!(plan.contains("512 slots: offline → group 2"), "{plan}");
        ui.shot("slots-plan").await;
        ui.click_button("//div[@id='rebalance-plan']", "Run this plan")
            .await;
        ui.confirm().await;
        // One bar for that run; its total is the plan's size from the start (the fe fixes it
        // when it accepts the plan, while the actions are still being queued).
        let mut seen = Vec::new();
        let t = Instant::now();
        loop {
            let p = ui
                .js("const e = document.querySelectorAll('.migration-run .progress'); \
                     return e.length ? [e.length, Number(e[0].dataset.percent), \
                     Number(e[0].dataset.total)] : null")
                .await;
            if let Some(v) = p.as_array() {
                assert_eq!(v[0], 1, "one bar per run");
                assert_eq!(v[2], 1024, "the total is the plan's slot count");
                let p = v[1].as_i64().unwrap();
                if seen.last() != Some(&p) {
                    seen.push(p);
                }
                if p == 100 {
                    break;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(90),
                "the bar never reached 100%: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("progress bar values seen: {seen:?}");
        assert!(
            seen.len() > 1 && seen[0] < 100,
            "a value below 100% is seen before 100%: {seen:?}"
        );
        ui.until(
            "the finished run to say so",
            20,
            "return (document.querySelector('.migration-run .progress-text') || {}).innerText \
             == 'rebalance: 1024 of 1024 slots moved (100%): done'",
        )
        .await;
        ui.until(
            "every slot online",
            60,
            "return document.querySelector('.legend').innerText.indexOf('offline') < 0",
        )
        .await;
        ui.shot("slots").await;

        // 5. Keys written through the proxy are counted on the product list and overview.
        let mut r = Resp::connect(proxy.port).unwrap();
        for i in 0..50 {
            let k = format!("k{i}");
            assert_eq!(
                r.call(&[b"SET", k.as_bytes(), b"v"]).unwrap(),
                Reply::Status("OK".into())
            );
        }
        ui.goto("/").await;
        ui.until(
            "50 keys on shop's row",
            30,
            "return (document.querySelector('tr[data-product=shop] td.keys') || {}).innerText == '50'",
        )
        .await;
        ui.goto("/products/shop").await;
        ui.until(
            "50 keys on the overview",
            30,
            "return Array.from(document.querySelectorAll('.stat')).some(e => \
             e.innerText.indexOf('Keys') >= 0 && e.querySelector('.stat-value').innerText == '50')",
        )
        .await;
        ui.shot("overview").await;

        // 6. A change that breaks isolation: the refusal is shown where it was tried.
        ui.goto("/products/ads/groups").await;
        ui.type_into("input[name=server-addr-1]", &format!("localhost:{p1}"))
            .await;
        ui.click_button(
            "//form[@aria-label='Add a server to group 1']",
            "Add server",
        )
        .await;
        let refusal = ui
            .until(
                "the isolation refusal",
                20,
                "const e = document.querySelector(\"section[data-group='1'] .action-form .err\"); \
                 return e ? e.innerText : ''",
            )
            .await;
        let refusal = refusal.as_str().unwrap();
        assert!(
            refusal.contains("master of group 1 in product \"shop\""),
            "{refusal}"
        );
        ui.shot("isolation-refused").await;
        ui.goto("/isolation").await;
        ui.find("tr[data-product=ads]").await;
        ui.until(
            "the server inventory",
            20,
            &format!("return document.body.innerText.indexOf('{}') >= 0", s(p3)),
        )
        .await;
        ui.shot("isolation").await;

        // 7. The audit page finds those changes (filtered to shop) and the refusal.
        ui.goto("/audit").await;
        ui.type_into("input[name=product]", "shop").await;
        ui.click_button("//form[@aria-label='Filter the audit history']", "Apply")
            .await;
        let actions = ui
            .until(
                "shop's changes in the audit",
                20,
                "const a = Array.from(document.querySelectorAll('td.audit-action')).map(e => e.innerText); \
                 const p = Array.from(document.querySelectorAll('td.audit-product')).map(e => e.innerText); \
                 return p.every(x => x == 'shop') && ['group.create', 'group.add-server', \
                 'proxy.create', 'rebalance'].every(x => a.includes(x)) ? a : null",
            )
            .await;
        eprintln!("audit actions for shop: {actions}");
        ui.shot("audit").await;
        ui.type_into("input[name=product]", "ads").await;
        ui.click_button("//form[@aria-label='Filter the audit history']", "Apply")
            .await;
        ui.until(
            "the refused change in ads' audit",
            20,
            "return Array.from(document.querySelectorAll('td.audit-product')).every(e => e.innerText == 'ads') \
             && document.body.innerText.indexOf('master of group 1 in product') >= 0",
        )
        .await;

        // 8. The remaining pages, for the record.
        ui.goto("/products/shop/sentinels").await;
        ui.find("form[aria-label='Add a sentinel']").await;
        ui.shot("sentinels").await;
        ui.goto("/users").await;
        ui.find("input[name=new-username]").await;
        ui.until(
            "vera in the user list",
            20,
            "return document.body.innerText.indexOf('vera') >= 0",
        )
        .await;
        ui.shot("users").await;

        // One product line's dashboard dies: its tabs say so (never "No group yet.") and
        // disable their actions; the other product line stays live.
        ads.kill();
        ui.goto("/products/ads/groups").await;
        let trouble = ui
            .until(
                "ads' groups page to say its dashboard is unreachable",
                30,
                &Ui::text_of(".live-trouble"),
            )
            .await;
        assert!(
            trouble.as_str().unwrap().contains("dashboard unreachable"),
            "{trouble}"
        );
        ui.find("section[data-group='1']").await;
        assert_eq!(
            ui.js("return document.body.innerText.indexOf('No group yet.')").await,
            -1,
            "the last answer is shown, not an empty list"
        );
        let (total, enabled) = ui.enabled_actions().await;
        assert!(total > 0);
        assert!(
            enabled.is_empty(),
            "actions enabled while the dashboard is down: {enabled:?}"
        );
        ui.shot("unreachable").await;
        ui.goto("/products/shop/groups").await;
        ui.find(&format!("tr[data-server='{}']", s(p1))).await;
        ui.until(
            "shop's dashboard up",
            20,
            "return (document.querySelector('.product-head .good') || {}).innerText == 'dashboard up'",
        )
        .await;
        assert_eq!(ui.js(&Ui::text_of(".live-trouble")).await, "");
        let (_, enabled) = ui.enabled_actions().await;
        assert!(!enabled.is_empty(), "shop's actions stay enabled");

        // Requests per minute of an idle open page (only when asked: it takes the time).
        if let Some(secs) = std::env::var("CODIS_UI_IDLE_SECS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            for page in ["/", "/products/shop"] {
                ui.goto(page).await;
                ui.find("nav").await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                ui.js("performance.setResourceTimingBufferSize(10000); performance.clearResourceTimings()")
                    .await;
                tokio::time::sleep(Duration::from_secs(secs)).await;
                let n = ui
                    .js("return performance.getEntriesByType('resource').length")
                    .await
                    .as_f64()
                    .unwrap_or(0.0);
                figure(
                    &format!("idle_requests_per_minute {page}"),
                    format!("{:.1}", n * 60.0 / secs as f64),
                );
            }
        }

        // 9. Log out; a viewer finds no enabled action, and a forced change is refused.
        ui.click("#logout").await;
        ui.find("input[name=username]").await;
        ui.login("vera", VIEWER_PW).await;
        ui.find("tr[data-product=shop]").await;
        for page in [
            "/products/shop/groups",
            "/products/shop/proxies",
            "/products/shop/slots",
            "/products/shop/sentinels",
            "/products/ads/groups",
            "/isolation",
        ] {
            ui.goto(page).await;
            ui.until(
                "the page's actions",
                20,
                "return document.querySelectorAll('button.act').length",
            )
            .await;
            // Wait for the live data (rows with their own buttons).
            tokio::time::sleep(Duration::from_millis(800)).await;
            let (total, enabled) = ui.enabled_actions().await;
            assert!(total > 0, "{page}: no action at all");
            assert!(
                enabled.is_empty(),
                "{page}: a viewer has enabled actions: {enabled:?}"
            );
            if page == "/products/shop/groups" {
                ui.shot("viewer-groups").await;
            }
        }
        let forced = ui
            .c
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 fetch('/api/v1/me').then(r => r.json()).then(me => \
                   fetch('/api/v1/products/shop/groups', {method: 'POST', headers: \
                     {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token}, \
                     body: JSON.stringify({group_id: 9})})) \
                 .then(r => r.text().then(t => done([r.status, t])))",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(forced[0], 403, "a viewer's forced change: {forced}");
        eprintln!("viewer's forced change: {forced}");
        ui.c.close().await.unwrap();
    });
    drop(driver);
}
