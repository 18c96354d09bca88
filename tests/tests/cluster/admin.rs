//! codis-admin as an operator runs it, against a live cluster on a filesystem coordinator:
//! three codis-servers, a dashboard, two proxies and a redis-sentinel, all real processes.
//! Every dashboard, proxy and coordinator flag of Codis 3.2 (spec §7) is run, with its
//! output checked, and each failure an operator meets (dashboard down, bad address, unknown
//! group, unknown proxy, lock held, wrong product auth, a usage mistake) must give a non-zero
//! exit code and exactly one line on stderr.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::support::{
    Proc, Reply, Resp, TempDir, free_port, start_codis_server, start_proxy_on, start_sentinel,
    wait_for, workspace_bin,
};

const PRODUCT: &str = "adm";

/// One codis-admin run: (exit code, stdout, stderr).
fn admin(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(workspace_bin("codis-admin"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs codis-admin, which must succeed; returns stdout.
fn ok(args: &[&str]) -> String {
    let (code, out, err) = admin(args);
    assert_eq!(code, 0, "codis-admin {args:?} failed: {err}");
    out
}

/// Runs codis-admin, which must succeed and print Codis's `"OK"`.
fn ok_ok(args: &[&str]) {
    assert_eq!(ok(args).trim(), "\"OK\"", "codis-admin {args:?}");
}

/// Runs codis-admin, which must print JSON.
fn ok_json(args: &[&str]) -> Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("codis-admin {args:?}: {e}: {out}"))
}

/// Runs codis-admin, which must fail with `code` and one stderr line containing `want`.
fn fails(args: &[&str], code: i32, want: &str) -> String {
    let (got, out, err) = admin(args);
    assert_eq!(
        got, code,
        "codis-admin {args:?}: stdout {out:?} stderr {err:?}"
    );
    assert!(out.is_empty(), "codis-admin {args:?} printed {out:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("codis-admin: "), "{err:?}");
    assert!(
        err.contains(want),
        "codis-admin {args:?}: want {want:?} in {err:?}"
    );
    err
}

/// A dashboard of this test's product over the filesystem coordinator at `root`.
fn start_fs_dashboard(root: &Path, port: u16, dir: &Path) -> Proc {
    super::fe::start_fs_dashboard(PRODUCT, root, port, dir)
}

fn set_get(port: u16, key: &str) {
    let mut c = Resp::connect(port).unwrap();
    assert_eq!(
        c.call(&[b"SET", key.as_bytes(), b"v"]).unwrap(),
        Reply::Status("OK".into())
    );
    assert_eq!(
        c.call(&[b"GET", key.as_bytes()]).unwrap(),
        Reply::bulk(b"v")
    );
}

#[test]
fn codis_admin_drives_a_live_cluster() {
    let dir = TempDir::new("admin");
    let root = dir.path().join("coord");
    let (_s1, p1) = start_codis_server(dir.path());
    let (_s2, p2) = start_codis_server(dir.path());
    let (_s3, p3) = start_codis_server(dir.path());
    let (s1, s2, s3) = (
        format!("127.0.0.1:{p1}"),
        format!("127.0.0.1:{p2}"),
        format!("127.0.0.1:{p3}"),
    );
    let dport = free_port();
    let mut dash = start_fs_dashboard(&root, dport, &dir.path().join("dashboard"));
    let d = format!("--dashboard=127.0.0.1:{dport}");
    let d = d.as_str();
    let fs = format!("--filesystem={}", root.display());
    let fs = fs.as_str();

    // Reads of an empty product.
    assert_eq!(ok(&[d, "--proxy-status"]).trim(), "no proxy");
    assert_eq!(ok(&[d, "--group-status"]).trim(), "no group");
    assert!(ok(&[d, "--slots-status"]).contains("1024 slots: 0 assigned, 1024 offline"));
    assert_eq!(ok_json(&[d, "model"])["product_name"], PRODUCT);
    assert_eq!(ok_json(&[d, "config"])["product_name"], PRODUCT);
    assert_eq!(
        ok_json(&[d, "stats"])["slots"].as_array().unwrap().len(),
        1024
    );
    assert_eq!(ok_json(&[d, "slots"]).as_array().unwrap().len(), 1024);
    assert!(ok_json(&[d, "group"])["models"].is_array());
    assert!(ok_json(&[d, "proxy"])["models"].is_array());
    assert!(ok_json(&[d])["version"].is_string());
    ok_ok(&[d, "--reload"]);
    ok_ok(&[d, "--log-level=info"]);

    // Groups: 1 = s1 (master) + s2 (replica, SLAVEOF through a sync action); 2 = s3.
    ok_ok(&[d, "--create-group", "--gid=1"]);
    ok_ok(&[d, "--create-group", "-g", "2"]);
    ok_ok(&[d, "--create-group", "--gid=3"]);
    ok_ok(&[d, "--remove-group", "--gid=3"]);
    ok_ok(&[d, "--group-add", "--gid=1", &format!("--addr={s1}")]);
    ok_ok(&[d, "--group-add", "--gid=1", "-x", &s2, "--datacenter=dc2"]);
    ok_ok(&[d, "--group-add", "--gid=2", &format!("--addr={s3}")]);
    // Adding a replica queues its SLAVEOF; clear the finished action and queue it again.
    let synced = || {
        wait_for("s2 replicates s1", Duration::from_secs(30), || {
            let status = ok_json(&[d, "--group-status", "--json"]);
            let s = status
                .as_array()?
                .iter()
                .find(|s| s["server"] == s2.as_str())?;
            (s["status"] == "ok"
                && s["replication"] == format!("{s1}:up")
                && s["sync_action"] == "synced")
                .then_some(())
        })
    };
    synced();
    // The test's servers run without a config file, so CONFIG REWRITE fails after the
    // SLAVEOF: the dashboard must say so (the replica would come back as a master).
    let dash_log = dir.path().join("dashboard").join("dashboard.out");
    wait_for(
        "the CONFIG REWRITE warning",
        Duration::from_secs(10),
        || {
            let log = std::fs::read_to_string(&dash_log).ok()?;
            log.lines()
                .any(|l| {
                    l.contains("CONFIG REWRITE failed") && l.contains(&s2) && l.contains("WARN")
                })
                .then_some(())
        },
    );
    ok_ok(&[d, "--sync-action", "--remove", &format!("--addr={s2}")]);
    ok_ok(&[d, "--sync-action", "--create", &format!("--addr={s2}")]);
    synced();
    let table = ok(&[d, "--group-status"]);
    assert!(table.starts_with("     GROUP"), "{table}");
    assert!(
        table.contains(&format!("[ ]  group-0001  1  {s2}  replica  {s1}:up")),
        "{table}"
    );
    let groups = ok_json(&[d, "--list-group"]);
    assert_eq!(groups[0]["servers"][1]["datacenter"], "dc2");
    assert_eq!(groups.as_array().unwrap().len(), 2);

    // Proxies: one waits for the dashboard (--create-proxy), one is onlined (--online-proxy).
    let (px1, pa1) = (free_port(), free_port());
    let proxy1 = start_proxy_on(PRODUCT, None, px1, pa1, dir.path());
    let (px2, pa2) = (free_port(), free_port());
    let proxy2 = start_proxy_on(PRODUCT, None, px2, pa2, dir.path());
    let (a1, a2) = (format!("127.0.0.1:{pa1}"), format!("127.0.0.1:{pa2}"));
    ok_ok(&[d, "--create-proxy", &format!("--addr={a1}")]);
    ok_ok(&[d, "--online-proxy", &format!("--addr={a2}")]);
    let proxies = ok_json(&[d, "--list-proxy"]);
    assert_eq!(proxies.as_array().unwrap().len(), 2);
    let token1 = proxies[0]["token"].as_str().unwrap().to_string();
    wait_for("both proxies healthy", Duration::from_secs(20), || {
        let s = ok_json(&[d, "--proxy-status", "--json"]);
        s.as_array()?
            .iter()
            .all(|p| p["status"] == "ok" && p["online"] == true)
            .then_some(())
    });
    let table = ok(&[d, "--proxy-status"]);
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("[ ]  proxy-1  {token1}  {a1}")),
        "{table}"
    );

    // Slots: preview a rebalance, run it, watch every slot land.
    let preview = ok(&[d, "--rebalance"]);
    assert!(preview.trim_end().ends_with("done"), "{preview}");
    assert!(preview.contains("] => 1"), "{preview}");
    let plan = ok_json(&[d, "--rebalance", "--json"]);
    assert_eq!(plan.as_object().unwrap().len(), 1024);
    assert!(ok(&[d, "--rebalance", "--confirm"]).contains("done"));
    wait_for("every slot assigned", Duration::from_secs(60), || {
        ok(&[d, "--slots-status"])
            .contains("1024 slots: 1024 assigned, 0 offline, 0 with an action")
            .then_some(())
    });
    let table = ok(&[d, "--slots-status"]);
    assert!(
        table.contains(&format!("[0000,0511]  512    group-0001  {s1}")),
        "{table}"
    );
    let slots = ok_json(&[d, "--slots-status", "--json"]);
    assert_eq!(slots[0]["backend_addr"], s1.as_str());
    assert_eq!(slots[1023]["backend_addr"], s3.as_str());
    set_get(px1, "k1");
    set_get(px2, "k2");
    assert_eq!(ok(&[d, "--rebalance"]).trim(), "nothing changes");

    // Slot actions, paused so that the pending ones can be seen and removed.
    ok_ok(&[d, "--slot-action", "--disabled=1"]);
    ok_ok(&[d, "--slot-action", "--interval=100"]);
    ok_ok(&[d, "--slot-action", "--create", "--sid=0", "--gid=2"]);
    ok_ok(&[
        d,
        "--slot-action",
        "--create-range",
        "--beg=1",
        "--end=2",
        "--gid=2",
    ]);
    ok_ok(&[
        d,
        "--slot-action",
        "--create-some",
        "--gid-from=1",
        "--gid-to=2",
        "--num-slots=1",
    ]);
    let table = ok(&[d, "--slots-status"]);
    assert!(table.contains("pending -> group 2"), "{table}");
    assert!(table.contains("4 with an action"), "{table}");
    let stats = ok_json(&[d, "stats"]);
    assert_eq!(stats["slot_action"]["interval"], 100);
    assert_eq!(stats["slot_action"]["disabled"], true);
    for sid in 0..4 {
        ok_ok(&[d, "--slot-action", "--remove", &format!("--sid={sid}")]);
    }
    ok_ok(&[d, "--slot-action", "--disabled=0"]);
    // Direct assignment: without --confirm only the body is printed.
    let body = ok_json(&[d, "--slots-assign", "--beg=1020", "--end=1023", "--gid=1"]);
    assert_eq!(body.as_array().unwrap().len(), 4);
    assert_eq!(body[0]["group_id"], 1);
    fails(
        &[
            d,
            "--slots-assign",
            "--beg=0",
            "--end=1",
            "--gid=9",
            "--confirm",
        ],
        1,
        "group-[9] doesn't exist",
    );
    let backend =
        |sid: usize| ok_json(&[d, "--slots-status", "--json"])[sid]["backend_addr"].clone();
    let assign = ["--slots-assign", "--beg=1020", "--end=1023", "--confirm"];
    ok_ok(&[&[d, "--gid=1"][..], &assign[..]].concat());
    assert_eq!(backend(1023), s1.as_str());
    ok_ok(&[&[d, "--offline"][..], &assign[..]].concat());
    assert!(ok(&[d, "--slots-status"]).contains("1020 assigned, 4 offline"));
    ok_ok(&[&[d, "--gid=2"][..], &assign[..]].concat());
    assert_eq!(backend(1023), s3.as_str());

    // Replica groups, resync, promotion.
    ok_ok(&[
        d,
        "--replica-groups",
        "--gid=1",
        &format!("--addr={s2}"),
        "--enable",
    ]);
    assert_eq!(
        ok_json(&[d, "--list-group"])[0]["servers"][1]["replica_group"],
        true
    );
    ok_ok(&[d, "--replica-groups", "--all", "--disable"]);
    assert_eq!(
        ok_json(&[d, "--list-group"])[0]["servers"][1]["replica_group"],
        false
    );
    ok_ok(&[d, "--resync-group", "--gid=1"]);
    ok_ok(&[d, "--resync-group", "--all"]);
    let after = ok(&[d, "--promote-server", "--gid=1", &format!("--addr={s2}")]);
    assert!(
        after.contains(&format!("group-0001  0  {s2}  master")),
        "{after}"
    );
    assert_eq!(
        ok_json(&[d, "--list-group"])[0]["servers"][0]["server"],
        s2.as_str()
    );
    set_get(px1, "after-promote");
    // The old master is last in the group; it can be removed.
    ok_ok(&[d, "--group-del", "--gid=1", &format!("--addr={s1}")]);

    // Sentinels.
    let (_sentinel, sport) = start_sentinel(dir.path());
    let sa = format!("127.0.0.1:{sport}");
    ok_ok(&[d, "--sentinel-add", &format!("--addr={sa}")]);
    ok_ok(&[d, "--sentinel-resync"]);
    ok_ok(&[d, "--sentinel-del", &format!("--addr={sa}")]);
    let servers = ok_json(&[d, "stats"])["sentinels"]["model"]["servers"].clone();
    assert!(servers.as_array().is_none_or(Vec::is_empty), "{servers}");
    ok_ok(&[d, "--sentinel-add", &format!("--addr={sa}")]);
    ok_ok(&[d, "--sentinel-del", &format!("--addr={sa}"), "--force"]);

    // The proxy's own flags.
    let p = format!("--proxy={a1}");
    let p = p.as_str();
    assert_eq!(ok_json(&[p, "model"])["token"], token1.as_str());
    assert_eq!(ok_json(&[p, "config"])["product_name"], PRODUCT);
    assert_eq!(ok_json(&[p, "stats"])["online"], true);
    assert_eq!(ok_json(&[p, "slots"]).as_array().unwrap().len(), 1024);
    assert!(ok_json(&[p])["model"].is_object());
    ok_ok(&[p, "--start"]);
    ok_ok(&[p, "--reset-stats"]);
    ok_ok(&[p, "--forcegc"]);
    ok_ok(&[p, "--log-level=warn"]);
    assert_eq!(ok_json(&[p, "--auth="])["model"]["token"], token1.as_str());
    // Reads need no product auth (Codis xpings before mutations only).
    assert_eq!(ok_json(&[p, "--auth=wrong", "stats"])["online"], true);
    fails(
        &[p, "--auth=wrong", "--reset-stats"],
        1,
        "refused the xauth",
    );
    fails(&[p, "--log-level=loud"], 2, "invalid log level 'loud'");
    fails(&[d, "--log-level=loud"], 2, "invalid log level 'loud'");
    // A proxy whose product has a product_auth: reads without --auth, mutations only with
    // the right one; --start then --shutdown.
    let (qx, qa) = (free_port(), free_port());
    let qconf = dir.path().join("proxy-auth.toml");
    std::fs::write(
        &qconf,
        format!(
            "product_name = \"adm-auth\"\nproduct_auth = \"secret\"\n\
             proxy_addr = \"127.0.0.1:{qx}\"\nadmin_addr = \"127.0.0.1:{qa}\"\n"
        ),
    )
    .unwrap();
    let qlog = dir.path().join("proxy-auth.out");
    let qout = std::fs::File::create(&qlog).unwrap();
    let mut qproxy = Proc::spawn(
        "codis-proxy:adm-auth",
        Command::new(workspace_bin("codis-proxy"))
            .arg("--config")
            .arg(&qconf)
            .current_dir(dir.path())
            .stdout(qout.try_clone().unwrap())
            .stderr(qout),
        vec![qlog],
    );
    let q = format!("--proxy=127.0.0.1:{qa}");
    let q = q.as_str();
    wait_for(
        "the auth proxy's admin port",
        Duration::from_secs(20),
        || {
            assert!(
                qproxy.alive(),
                "codis-proxy exited:\n{}",
                qproxy.log_tail(20)
            );
            (admin(&[q, "model"]).0 == 0).then_some(())
        },
    );
    assert_eq!(ok_json(&[q, "stats"])["online"], false);
    fails(&[q, "--start"], 1, "refused the xauth");
    fails(&[q, "--auth=wrong", "--start"], 1, "refused the xauth");
    ok_ok(&[q, "--auth=secret", "--start"]);
    assert_eq!(ok_json(&[q, "stats"])["online"], true);
    ok_ok(&[q, "-a", "secret", "--shutdown"]);
    wait_for("the auth proxy exits", Duration::from_secs(15), || {
        (!qproxy.alive()).then_some(())
    });
    // Fill slot 5 locked by hand, then let the dashboard put the truth back.
    let file = dir.path().join("slots.json");
    std::fs::write(
        &file,
        format!("[{{\"id\": 5, \"backend_addr\": \"{s3}\"}}]"),
    )
    .unwrap();
    let fill = format!("--fillslots={}", file.display());
    ok_ok(&[p, &fill, "--locked"]);
    let slots = ok_json(&[p, "slots"]);
    assert_eq!(slots[5]["locked"], true);
    std::fs::write(&file, "[{\"id\": 1024}]").unwrap();
    fails(&[p, &fill], 1, "invalid slot id = 1024");
    ok_ok(&[d, "--reinit-proxy", "--pid=1"]);
    assert!(ok_json(&[p, "slots"])[5]["locked"].is_null());
    ok_ok(&[d, "--reinit-proxy", &format!("--token={token1}")]);
    ok_ok(&[d, "--reinit-proxy", "--all"]);
    ok_ok(&[d, "--reinit-proxy", &format!("--addr={a2}")]);

    // Failures, each one line.
    fails(
        &[d, "--group-add", "--gid=99", &format!("--addr={s1}")],
        1,
        "group-[99] doesn't exist",
    );
    fails(&[d, "--remove-group", "--gid=2"], 1, "group-[2]");
    fails(
        &[d, "--remove-proxy", "--pid=99"],
        1,
        "has no proxy with id 99",
    );
    fails(
        &[d, "--remove-proxy", "--all"],
        2,
        "--all goes with --reinit-proxy",
    );
    fails(
        &[d, "--slot-action", "--create", "--sid=1"],
        2,
        "missing --gid",
    );
    fails(&[d, "nonsense"], 2, "unknown part 'nonsense'");
    fails(
        &[d, "--create-group", "--gid=abc"],
        2,
        "invalid value 'abc' for '--gid",
    );
    fails(
        &[d, "--creat-group", "--gid=1"],
        2,
        "unexpected argument '--creat-group'",
    );
    assert_eq!(admin(&["--help"]).0, 0);
    for args in [
        &[d, "--remove-proxy", "--pid=99", "--force"][..],
        &[d, "--reinit-proxy", "--pid=99", "--force"],
        &[d, "--remove-proxy", "--addr=127.0.0.1:1", "--force"],
        &[d, "--reinit-proxy", "--token=nope", "--force"],
    ] {
        assert_eq!(admin(args), (0, String::new(), String::new()), "{args:?}");
    }
    fails(
        &["--dashboard=localhost"],
        2,
        "bad --dashboard address 'localhost'",
    );
    fails(
        &["--dashboard=127.0.0.1:1", "--group-status"],
        1,
        "dashboard 127.0.0.1:1 is not reachable: connection refused",
    );
    fails(
        &[&format!("--dashboard={a1}"), "model"],
        1,
        "is it a codis-dashboard?",
    );
    fails(
        &[fs, "--remove-lock", &format!("--product={PRODUCT}")],
        1,
        &format!("locked by a running dashboard at 127.0.0.1:{dport}"),
    );
    fails(&[fs, "--config-dump"], 2, "missing --product");

    // The coordinator while the dashboard runs.
    let list = ok_json(&[fs, "--dashboard-list"]);
    assert_eq!(list[0]["dashboard"], format!("127.0.0.1:{dport}"));
    let dump = ok_json(&[fs, "--config-dump", &format!("--product={PRODUCT}")]);
    assert_eq!(dump["slots"].as_array().unwrap().len(), 1024);
    assert_eq!(dump["group"].as_array().unwrap().len(), 2);
    assert_eq!(dump["proxy"].as_array().unwrap().len(), 2);
    let dump_file = dir.path().join("dump.json");
    std::fs::write(&dump_file, serde_json::to_string(&dump).unwrap()).unwrap();
    let restore = format!("--config-restore={}", dump_file.display());
    let this = format!("--product={PRODUCT}");
    fails(
        &[fs, &restore, &this, "--confirm"],
        1,
        &format!("locked by a running dashboard at 127.0.0.1:{dport}"),
    );
    // --force passes the lock; the product is not empty, so the restore is still refused.
    fails(
        &[fs, &restore, &this, "--confirm", "--force"],
        1,
        &format!("product '{PRODUCT}' is not empty"),
    );
    // --force deletes a live dashboard's lock; the dashboard writes it back.
    ok_ok(&[fs, "--remove-lock", &this, "--force"]);
    wait_for(
        "the dashboard restores its lock",
        Duration::from_secs(20),
        || {
            (ok_json(&[fs, "--dashboard-list"])[0]["dashboard"] == format!("127.0.0.1:{dport}"))
                .then_some(())
        },
    );

    // Remove both proxies (by address and by token); the first exits.
    let mut proxy1 = proxy1;
    ok_ok(&[d, "--remove-proxy", &format!("--addr={a1}")]);
    wait_for("proxy 1 exits", Duration::from_secs(15), || {
        (!proxy1.proc.alive()).then_some(())
    });
    fails(&[p, "stats"], 1, &format!("proxy {a1} is not reachable"));
    let pid2 = ok_json(&[d, "--list-proxy"])[0]["id"].as_i64().unwrap();
    let mut proxy2 = proxy2;
    ok_ok(&[d, "--remove-proxy", &format!("--pid={pid2}")]);
    wait_for("proxy 2 exits", Duration::from_secs(15), || {
        (!proxy2.proc.alive()).then_some(())
    });
    assert_eq!(ok_json(&[d, "--list-proxy"]), serde_json::json!([]));

    // Shut the dashboard down; the lock is gone and the dashboard is unreachable.
    ok_ok(&[d, "--shutdown"]);
    wait_for("the dashboard exits", Duration::from_secs(15), || {
        (!dash.alive()).then_some(())
    });
    fails(&[d, "--proxy-status"], 1, "is not reachable");
    assert_eq!(ok_json(&[fs, "--dashboard-list"])[0]["dashboard"], "");
    ok_ok(&[fs, "--remove-lock", &format!("--product={PRODUCT}")]);

    // Restore the dump into a new product, as a move between coordinators would.
    let printed = ok_json(&[fs, &restore, "--product=copy"]);
    assert_eq!(printed["group"], dump["group"]);
    assert!(ok_json(&[fs, "--dashboard-list"]).as_array().unwrap().len() == 1);
    ok_ok(&[fs, &restore, "--product=copy", "--confirm"]);
    fails(
        &[fs, &restore, "--product=copy", "--confirm"],
        1,
        "product 'copy' is not empty",
    );
    let copy = ok_json(&[fs, "--config-dump", "--product=copy"]);
    assert_eq!(copy, dump);
    // The copy has no lock; removing a missing lock is fine (Codis's delete ignores it).
    ok_ok(&[fs, "--remove-lock", "--product=copy"]);
}
