//! Exporter tests against local sockets (UDP for statsd, TCP for the HTTP ones).

use std::sync::atomic::{AtomicUsize, Ordering};

use codis_model::proxy::{OpStats, Proxy};
use tokio::net::TcpListener;

use super::*;
use crate::proxy::admin::tests::{FakeApi, read_request, write_response};

fn model() -> Proxy {
    FakeApi::model_value()
}

#[test]
fn influx_line_format() {
    let api = FakeApi::default();
    let stats = api.stats(STATS_RUNTIME);
    let line = influx_line(&model(), &stats, 1_500_000_000_000_000_000);
    assert_eq!(
        line,
        "codis_usage,admin_addr=10.0.0.1:11080,hostname=host1,product_name=demo,\
         proxy_addr=10.0.0.1:19000,token=tok \
         ops_fails=3i,ops_qps=7i,ops_redis_errors=2i,ops_total=100i,runtime_gc_num=0i,\
         runtime_gc_total_pausems=0i,runtime_num_cgo_call=0i,runtime_num_goroutines=5i,\
         runtime_num_mem_offheap=0i,runtime_num_procs=2i,rusage_cpu=0.5,rusage_mem=1048576i,\
         sessions_alive=4i,sessions_total=9i 1500000000000000000\n"
    );
    let mut m = model();
    m.hostname = "my host,1=x".into();
    m.token = String::new();
    let line = influx_line(&m, &Stats::default(), 1);
    assert!(line.starts_with("codis_usage,admin_addr=10.0.0.1:11080,hostname=my\\ host\\,1\\=x,product_name=demo,proxy_addr=10.0.0.1:19000 ops_fails=0i"), "{line}");
    assert!(line.contains(",rusage_cpu=0,"), "{line}");
}

#[test]
fn statsd_line_format() {
    let api = FakeApi::default();
    let lines = statsd_lines("codis", &model(), &api.stats(STATS_RUNTIME));
    assert_eq!(lines.len(), 14);
    assert_eq!(
        lines[0],
        "codis.demo.10_0_0_1_11080.10_0_0_1_19000.ops_fails:3|g"
    );
    assert!(
        lines.contains(&"codis.demo.10_0_0_1_11080.10_0_0_1_19000.rusage_cpu:0.5|g".to_string())
    );
    let lines = statsd_lines("", &model(), &Stats::default());
    assert!(lines[0].starts_with(".demo."), "{}", lines[0]);
}

#[test]
fn prometheus_text() {
    let mut stats = Stats {
        online: true,
        ..Stats::default()
    };
    stats.ops.cmd = vec![OpStats {
        opstr: "A\"B".into(),
        calls: 1,
        ..OpStats::default()
    }];
    let text = render_prometheus(&stats);
    assert!(text.contains("codis_proxy_online 1\n"));
    assert!(text.contains("codis_proxy_cmd_calls_total{opstr=\"A\\\"B\"} 1\n"));
    // Every sample line belongs to a declared metric.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(text.contains(&format!("# TYPE {name} ")), "{line}");
    }
    assert!(!render_prometheus(&Stats::default()).contains("codis_proxy_cmd_"));
}

#[test]
fn raw_usage_parsing() {
    let stat = "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 500 0 0 0 \
                250 120 3 4 20 0 7 0 100 123456789 2000 18446744073709551615";
    let status = "Name:\tx\nVmRSS:\t    8192 kB\nThreads:\t7\n";
    let u = parse_raw_usage(stat, status).unwrap();
    assert_eq!(u.utime, 2_500_000_000);
    assert_eq!(u.stime, 1_200_000_000);
    assert_eq!(u.cutime, 30_000_000);
    assert_eq!(u.cstime, 40_000_000);
    assert_eq!(u.num_threads, 7);
    assert_eq!(u.vm_size, 123_456_789);
    assert_eq!(u.vm_rss, 8192 * 1024);
    assert!(parse_raw_usage("garbage", status).is_none());
    // And on this machine.
    let live = read_raw_usage().unwrap();
    assert!(live.vm_rss > 0 && live.num_threads >= 1);
}

#[tokio::test]
async fn usage_sampler_and_runtime() {
    let (_stop, rx) = watch::channel(false);
    let sampler = UsageSampler::spawn(rx);
    let r = sampler.rusage();
    assert!(r.mem > 0);
    assert!(r.raw.is_some());
    assert!(r.now.ends_with("UTC"));
    let rt = runtime_stats(12345);
    assert_eq!(rt.general.alloc, 12345);
    assert!(rt.num_procs >= 1);
    assert!(rt.num_goroutines >= 1);
}

#[tokio::test]
async fn statsd_over_udp() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let sock = statsd_socket(&addr.to_string()).await.unwrap();
    let api = FakeApi::default();
    report_statsd(&sock, "pre", &api).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let n = server.recv(&mut buf).await.unwrap();
    let text = std::str::from_utf8(&buf[..n]).unwrap();
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.len(), 14, "{text}");
    assert!(lines.contains(&"pre.demo.10_0_0_1_11080.10_0_0_1_19000.ops_total:100|g"));
    assert!(lines.contains(&"pre.demo.10_0_0_1_11080.10_0_0_1_19000.runtime_num_procs:2|g"));
}

#[tokio::test]
async fn statsd_packets_stay_small() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sock = statsd_socket(&server.local_addr().unwrap().to_string())
        .await
        .unwrap();
    let prefix = "p".repeat(200);
    report_statsd(&sock, &prefix, &FakeApi::default())
        .await
        .unwrap();
    let mut total = 0;
    let mut buf = vec![0u8; 65536];
    while total < 14 {
        let n = server.recv(&mut buf).await.unwrap();
        assert!(n <= STATSD_MAX_PACKET, "{n}");
        total += std::str::from_utf8(&buf[..n]).unwrap().split('\n').count();
    }
    assert_eq!(total, 14);
}

#[tokio::test]
async fn statsd_exporter_task() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let config = ProxyConfig {
        metrics_report_statsd_server: server.local_addr().unwrap().to_string(),
        metrics_report_statsd_prefix: "x".into(),
        metrics_report_statsd_period: TimeSize::default(), // 0 => at least 1 s
        ..ProxyConfig::default()
    };
    let (stop, rx) = watch::channel(false);
    let api: Arc<dyn AdminApi> = Arc::new(FakeApi::default());
    let tasks = spawn_exporters(&config, api, rx);
    assert_eq!(tasks.len(), 1);
    let mut buf = vec![0u8; 65536];
    let n = tokio::time::timeout(Duration::from_secs(5), server.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        std::str::from_utf8(&buf[..n])
            .unwrap()
            .starts_with("x.demo.")
    );
    stop.send(true).unwrap();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn influxdb_write() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ProxyConfig {
        metrics_report_influxdb_server: format!("http://{addr}/ignored/path"),
        metrics_report_influxdb_username: "user".into(),
        metrics_report_influxdb_password: "pass".into(),
        metrics_report_influxdb_database: "codis db".into(),
        ..ProxyConfig::default()
    };
    let target = InfluxTarget::from_config(&config);
    assert_eq!(
        target.url,
        format!("http://{addr}/write?db=codis%20db&precision=ns")
    );
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let req = read_request(&mut s).await;
        write_response(&mut s, 204, "").await;
        let (mut s, _) = listener.accept().await.unwrap();
        let _ = read_request(&mut s).await;
        write_response(&mut s, 400, "{\"error\":\"bad\"}").await;
        req
    });
    let client = HttpClient::new();
    let api = FakeApi::default();
    report_influxdb(&client, &target, &api).await.unwrap();
    let err = report_influxdb(&client, &target, &api).await.unwrap_err();
    assert!(
        matches!(err, MetricsError::Influx { status: 400, .. }),
        "{err}"
    );
    let req = server.await.unwrap();
    assert_eq!(
        req.request_line,
        "POST /write?db=codis%20db&precision=ns HTTP/1.1"
    );
    assert_eq!(req.headers["authorization"], "Basic dXNlcjpwYXNz");
    assert!(
        req.body
            .starts_with("codis_usage,admin_addr=10.0.0.1:11080,"),
        "{}",
        req.body
    );
    assert!(req.body.contains(" ops_fails=3i,"));
    assert!(req.body.ends_with('\n'));
    assert_eq!(*api.stats_flags.lock(), vec![STATS_RUNTIME, STATS_RUNTIME]);
}

#[test]
fn influx_target_without_scheme_or_user() {
    let config = ProxyConfig {
        metrics_report_influxdb_server: "localhost:8086".into(),
        metrics_report_influxdb_database: "d".into(),
        ..ProxyConfig::default()
    };
    let t = InfluxTarget::from_config(&config);
    assert_eq!(t.url, "http://localhost:8086/write?db=d&precision=ns");
    assert!(t.authorization.is_none());
}

#[tokio::test]
async fn json_report() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let req = read_request(&mut s).await;
        write_response(&mut s, 200, "").await;
        req
    });
    let client = HttpClient::new();
    report_json(
        &client,
        &format!("http://{addr}/report"),
        &FakeApi::default(),
    )
    .await
    .unwrap();
    let req = server.await.unwrap();
    assert_eq!(req.request_line, "POST /report HTTP/1.1");
    assert_eq!(req.headers["content-type"], "application/json");
    let o: codis_model::proxy::Overview = serde_json::from_str(&req.body).unwrap();
    assert_eq!(o.model.token, "tok");
    assert!(o.stats.runtime.is_some());
    assert!(o.stats.ops.cmd.is_empty());
    assert!(o.slots.is_empty());
    assert!(req.body.starts_with("{\n    \"version\""));
}

#[tokio::test(start_paused = true)]
async fn reporter_backs_off_after_failures() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (stop, rx) = watch::channel(false);
    let c = calls.clone();
    let task = spawn_reporter("test", TimeSize::from_secs(1), rx, move || {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            Err(MetricsError::Influx {
                status: 500,
                body: String::new(),
            })
        }
    });
    // Failures at t=1, then back-offs of 1, 2, 4, 8 s on top of the 1 s period:
    // calls at about 1, 3, 6, 11, 20 s.
    tokio::time::sleep(Duration::from_millis(21_500)).await;
    let n = calls.load(Ordering::SeqCst);
    assert!((4..=6).contains(&n), "{n} calls");
    stop.send(true).unwrap();
    task.await.unwrap();

    // Success keeps the plain period.
    let ok_calls = Arc::new(AtomicUsize::new(0));
    let (_stop2, rx2) = watch::channel(false);
    let c = ok_calls.clone();
    let _task = spawn_reporter("ok", TimeSize::from_secs(2), rx2, move || {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    assert_eq!(ok_calls.load(Ordering::SeqCst), 5);
}
