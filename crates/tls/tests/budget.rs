//! A handshake must survive its stream's flush returning "not yet".
//!
//! OpenSSL flushes its write BIO inside the handshake. Through the `openssl`
//! crate a flush that would block is not marked retryable, so OpenSSL reports
//! `SSL_ERROR_SYSCALL` with "operation would block" instead of "want write".
//! A buffering stream's flush can be pending for a full socket, or simply
//! because tokio's cooperative budget ran out in the middle of a task's poll.
//! These tests run the handshake with the budget used up at every point.

mod common;

use baculink_conf::tls::TlsRole;
use baculink_proto::Secret;
use baculink_tls::{accept_cert, accept_psk, connect_cert, connect_psk, CertContext};
use common::{within, Fixture};
use tokio::io::BufWriter;
use tokio::net::{TcpListener, TcpStream};

/// Enough spent units to cover every I/O call of a handshake.
const POINTS: usize = 140;

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
    (c.unwrap(), s.unwrap().0)
}

/// Spends `n` units of this task's budget without yielding (when `n` is
/// below the budget), so that a later I/O call in the same poll finds it empty.
async fn spend(n: usize) {
    for _ in 0..n {
        tokio::task::coop::consume_budget().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psk_handshake_with_the_budget_spent_anywhere() {
    let key = Secret::from_password("budget");
    for n in 0..POINTS {
        let (c, s) = tcp_pair().await;
        let k = key.clone();
        let server = tokio::spawn(async move {
            spend(n).await;
            accept_psk(&k, BufWriter::new(s)).await.map(|_| ())
        });
        let client = within("psk handshake", async {
            spend(n).await;
            connect_psk(&key, BufWriter::new(c)).await.map(|_| ())
        })
        .await;
        let server = within("psk server", server).await.unwrap();
        assert!(client.is_ok(), "client, {n} units spent: {client:?}");
        assert!(server.is_ok(), "server, {n} units spent: {server:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_handshake_with_the_budget_spent_anywhere() {
    let fx = Fixture::new();
    let sctx = CertContext::new(&fx.settings(Some(&fx.server)), TlsRole::Server).unwrap();
    let cctx = CertContext::new(&fx.settings(Some(&fx.client)), TlsRole::Client).unwrap();
    for n in 0..POINTS {
        let (c, s) = tcp_pair().await;
        let sc = sctx.clone();
        let server = tokio::spawn(async move {
            spend(n).await;
            accept_cert(&sc, BufWriter::new(s), &[]).await.map(|_| ())
        });
        let client = within("cert handshake", async {
            spend(n).await;
            connect_cert(&cctx, BufWriter::new(c), "localhost", &[])
                .await
                .map(|_| ())
        })
        .await;
        let server = within("cert server", server).await.unwrap();
        assert!(client.is_ok(), "client, {n} units spent: {client:?}");
        assert!(server.is_ok(), "server, {n} units spent: {server:?}");
    }
}
