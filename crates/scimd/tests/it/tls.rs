//! TLS on the SCIM listener: a real TLS client (rustls) against a certificate made in the test,
//! TLS 1.3 and 1.2 with ALPN, TLS 1.1 refused, and the certificate renewed without a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use scim_core::Registry;
use scimd::clock::SystemClock;
use scimd::config::Settings;
use scimd::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
fn write_cert(dir: &std::path::Path, cn: &str) -> CertificateDer<'static> {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    // Written next to each other and renamed into place, as certbot does.
    std::fs::write(dir.join("cert.tmp"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.tmp"), key.serialize_pem()).unwrap();
    std::fs::rename(dir.join("key.tmp"), dir.join("key.pem")).unwrap();
    std::fs::rename(dir.join("cert.tmp"), dir.join("cert.pem")).unwrap();
    cert.der().clone()
}

async fn tls_server(dir: &std::path::Path) -> std::net::SocketAddr {
    let store = scim_store::open(
        &format!("sqlite://{}", dir.join("t.db").display()),
        Default::default(),
        Arc::new(Registry::standard()),
    )
    .await
    .unwrap();
    let settings = Settings {
        database: String::new(),
        listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        // Idle connections stay open through a renewal (it takes up to WATCH_EVERY to notice).
        http: scimd::http::HttpSettings { header_timeout: Duration::from_secs(120), ..Default::default() },
        store: Default::default(),
        admin_hosts: scimd::admin::default_hosts("127.0.0.1:0"),
        retention: Default::default(),
        webhooks: Default::default(),
        request_log: Default::default(),
        console_session: scimd::config::DEFAULT_CONSOLE_SESSION,
        tls: Some(scimd::tls::TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") }),
    };
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder().handle();
    let server =
        Server::with_store(&settings, store, Arc::new(Registry::standard()), Arc::new(SystemClock), prometheus)
            .await
            .unwrap();
    let addr = server.scim_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

/// A TLS client trusting `cert` only, offering these versions and ALPN protocols.
fn client(
    cert: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn connect(
    addr: std::net::SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
}

/// Sends `GET /healthz` on an HTTP/1.1 connection and returns the status line.
async fn healthz(tls: &mut tokio_rustls::client::TlsStream<TcpStream>) -> String {
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await.unwrap().unwrap();
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned()
}

fn peer_cert(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scim_listener_serves_tls_1_3_and_1_2_with_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let cert = write_cert(dir.path(), "first");
    let addr = tls_server(dir.path()).await;

    let c13 = client(&cert, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let mut tls = connect(addr, &c13).await;
    assert_eq!(tls.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(healthz(&mut tls).await, "HTTP/1.1 200 OK");

    let c12 = client(&cert, &[&rustls::version::TLS12], &[b"h2", b"http/1.1"]);
    let tls = connect(addr, &c12).await;
    assert_eq!(tls.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "HTTP/2 is offered");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), plain.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/"), "{:?}", &buf[..n]);
}

/// A TLS 1.1 ClientHello (record and client version 3.2, no supported_versions extension), with
/// cipher suites a TLS 1.1 server would take.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend([0x42u8; 32]); // random
    body.push(0); // no session id
    body.extend([0x00, 0x06, 0xc0, 0x13, 0xc0, 0x14, 0x00, 0x2f]); // ECDHE-RSA-AES128/256-SHA, RSA-AES128-SHA
    body.extend([0x01, 0x00]); // null compression
    // extensions: server_name "localhost"
    let name = b"localhost";
    let mut sni = vec![0x00, 0x00]; // type server_name
    let list_len = 3 + name.len();
    let ext_len = 2 + list_len;
    sni.extend((ext_len as u16).to_be_bytes());
    sni.extend((list_len as u16).to_be_bytes());
    sni.push(0); // host_name
    sni.extend((name.len() as u16).to_be_bytes());
    sni.extend(name);
    body.extend((sni.len() as u16).to_be_bytes());
    body.extend(sni);
    let mut hs = vec![0x01]; // ClientHello
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut record = vec![0x16, 0x03, 0x02];
    record.extend((hs.len() as u16).to_be_bytes());
    record.extend(hs);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_1_1_client_hello_is_refused_with_a_fatal_alert() {
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path(), "first");
    let addr = tls_server(dir.path()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert!(n >= 7, "an alert, not silence: {:?}", &buf[..n]);
    assert_eq!(buf[0], 0x15, "an alert record, not a ServerHello: {:?}", &buf[..n]);
    // Fatal, and protocol_version (70) or handshake_failure (40): no version in common.
    assert_eq!(buf[5], 2, "a fatal alert: {:?}", &buf[..n]);
    assert!([40, 70].contains(&buf[6]), "refused for its version: {:?}", &buf[..n]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart_and_open_connections_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path(), "first");
    let addr = tls_server(dir.path()).await;
    let c1 = client(&first, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let mut open = connect(addr, &c1).await;
    assert_eq!(peer_cert(&open), first);
    assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK");

    // Files whose modification time is a second later, as a renewal writes them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = write_cert(dir.path(), "second");
    assert_ne!(first, second);
    let c2 = client(&second, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let deadline = Instant::now() + scimd::tls::WATCH_EVERY + Duration::from_secs(10);
    loop {
        let tcp = TcpStream::connect(addr).await.unwrap();
        if let Ok(mut tls) = c2.connect(ServerName::try_from("localhost").unwrap(), tcp).await {
            assert_eq!(peer_cert(&tls), second);
            assert_eq!(healthz(&mut tls).await, "HTTP/1.1 200 OK");
            break;
        }
        assert!(Instant::now() < deadline, "the renewed certificate was not served");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The connection opened before the renewal still answers.
    assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK");

    // A broken renewal (a key that does not match) keeps the current certificate.
    let other = rcgen::KeyPair::generate().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(dir.path().join("key.pem"), other.serialize_pem()).unwrap();
    tokio::time::sleep(scimd::tls::WATCH_EVERY + Duration::from_secs(2)).await;
    let mut tls = connect(addr, &c2).await;
    assert_eq!(peer_cert(&tls), second);
    assert_eq!(healthz(&mut tls).await, "HTTP/1.1 200 OK");
}
