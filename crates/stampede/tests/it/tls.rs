//! Managed backing services over TLS (issue 21): Redis (`rediss://`), RabbitMQ (`amqps://`) and
//! the OpenTelemetry collector (`https://`), each on loopback with a certificate a private CA
//! signed, as a cloud's managed services present them. Redis speaks TLS itself; RabbitMQ and
//! the collector sit behind a TLS terminator in this test (the broker's own TLS listener needs a
//! node restarted with a new configuration, which the shared test broker cannot be).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use stampede_test_support::{AppOptions, TestDb, amqp_url, test_env, unique};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::process::{Proc, collector, free_port, media_canaries, migrate, spawn, wait_ready};

/// A private CA and a certificate it signed for 127.0.0.1, made with the `openssl` command.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = std::env::temp_dir().join(unique("tls-"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        let key = "ec_paramgen_curve:prime256v1";
        let subject = "/CN=Stampede test";
        openssl(
            &dir,
            &[
                "req", "-x509", "-newkey", "ec", "-pkeyopt", key, "-nodes", "-keyout", "ca.key",
                "-out", "ca.pem", "-days", "2", "-subj", subject,
            ],
        );
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                key,
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                subject,
            ],
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the openssl command is installed");
    assert!(status.success(), "openssl {args:?}");
}

/// A Redis server speaking only TLS on a free loopback port.
async fn redis_over_tls(pki: &Pki) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", "0", "--bind", "127.0.0.1", "--tls-port"])
        .arg(port.to_string())
        .args(["--tls-cert-file", &pki.path("server.pem")])
        .args(["--tls-key-file", &pki.path("server.key")])
        .args(["--tls-ca-cert-file", &pki.path("ca.pem")])
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "redis-server never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (Proc(child), port)
}

/// Terminates TLS on a free loopback port with the CA-signed certificate and forwards each
/// connection in plain TCP to `upstream`. Counts completed handshakes.
async fn tls_front(pki: &Pki, upstream: String) -> (u16, Arc<AtomicUsize>) {
    let certs = CertificateDer::pem_file_iter(pki.path("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counter = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, upstream, counter) =
                (acceptor.clone(), upstream.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut plain) = TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    (port, handshakes)
}

// Multi-threaded: the terminators and the collector keep serving while the test waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rabbitmq_and_the_collector_over_tls_with_a_private_ca() {
    let pki = Pki::new();
    let (_redis, redis_port) = redis_over_tls(&pki).await;
    let broker = url::Url::parse(&amqp_url()).unwrap();
    let upstream = format!(
        "{}:{}",
        broker.host_str().unwrap(),
        broker.port().unwrap_or(5672)
    );
    let (amqp_port, amqp_handshakes) = tls_front(&pki, upstream).await;
    let (collector_port, received) = collector().await;
    let (otlp_port, _) = tls_front(&pki, format!("127.0.0.1:{collector_port}")).await;

    let db = TestDb::new().await.unwrap();
    let mut amqps = broker.clone();
    amqps.set_scheme("amqps").unwrap();
    amqps.set_port(Some(amqp_port)).unwrap();
    let ca = pki.path("ca.pem");
    let endpoints = vec![
        ("AMQP_URL".to_string(), amqps.to_string()),
        ("AMQP_QUEUE_PREFIX".to_string(), unique("t")),
        (
            "REDIS_URL".to_string(),
            format!("rediss://127.0.0.1:{redis_port}/0"),
        ),
        ("REDIS_NAMESPACE".to_string(), unique("t")),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
            format!("https://127.0.0.1:{otlp_port}"),
        ),
        ("RUST_LOG".to_string(), "info".to_string()),
    ];
    let trust = vec![
        ("AMQP_TLS_CA_FILE".to_string(), ca.clone()),
        ("REDIS_TLS_CA_FILE".to_string(), ca.clone()),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE".to_string(), ca.clone()),
    ];
    let base = test_env(&db, &AppOptions::default());
    let env: Vec<_> = [base.clone(), endpoints.clone(), trust].concat();
    migrate(&env).await;

    // Without the private CA the same servers are not trusted: the process runs, not ready.
    let untrusting: Vec<_> = [base, endpoints].concat();
    let port = free_port();
    let mut web = spawn(&untrusting, &["web"], port);
    wait_ready(port, 503).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/health/ready"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body = ready.text().await.unwrap();
    assert!(
        body.contains("redis") && body.contains("rabbitmq"),
        "{body}"
    );
    web.signal("TERM");
    assert!(web.wait_exit(Duration::from_secs(20)).is_some());

    // With it, `stampede all` is ready: PostgreSQL, Redis and RabbitMQ answer its checks.
    let (port, streaming) = (free_port(), free_port());
    let mut all_env = env.clone();
    all_env.push(("STREAMING_PORT".into(), streaming.to_string()));
    let mut all = spawn(&all_env, &["all"], port);
    wait_ready(port, 200).await;
    assert!(
        amqp_handshakes.load(Ordering::SeqCst) >= 1,
        "no AMQP connection crossed the TLS terminator"
    );

    // Jobs cross RabbitMQ over TLS: the CLI writes canaries, `all`'s relay publishes them and
    // its workers apply them.
    media_canaries(&env, 3);

    // Spans reach the collector over HTTPS; stopping flushes the last batch.
    for _ in 0..3 {
        reqwest::get(format!("http://127.0.0.1:{port}/api/v1/instance"))
            .await
            .unwrap();
    }
    all.signal("TERM");
    let status = all
        .wait_exit(Duration::from_secs(30))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        received.load(Ordering::SeqCst) >= 1,
        "the collector received no trace export over HTTPS"
    );
}
