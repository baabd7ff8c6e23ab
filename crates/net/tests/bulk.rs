//! Bulk data over a logged-in connection, as between the File and Storage
//! daemons: packets fed back to back ([`BSock::feed`]) arrive complete and in
//! order once flushed, in clear and in TLS-PSK, with the bulk tuning on
//! both ends ([`BSock::tune_for_bulk`]) and data flowing both ways; and a
//! corked socket ([`BSock::set_corked`]) holding output until it waits.

use std::time::Duration;

use baculink_net::{BSock, ClientSetup, PeerSetup, ServerSetup};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::handshake::{ClientConfig, Local, ServerConfig, ServerKind};
use baculink_proto::hello::Hello;
use baculink_proto::negotiate::{Dialect, Mode, Need, Needs};
use baculink_proto::Secret;
use tokio::net::TcpListener;

fn local(needs: Needs, authenticate: bool) -> Local {
    Local {
        key: Secret::from_password("bulk-test"),
        needs,
        authenticate,
        dialect: Dialect::V13,
        name: "bulk".into(),
    }
}

/// A logged-in pair (client, server) over loopback, both tuned for bulk.
async fn pair(needs: Needs) -> (BSock, BSock, Mode) {
    let (c, s, mode, _) = pair_with(needs, false).await;
    (c, s, mode)
}

/// The same; with `authenticate` both sides use TLS for the login only
/// (TLS Authenticate) and carry on in clear text. Also says whether the
/// login ran in TLS.
async fn pair_with(needs: Needs, authenticate: bool) -> (BSock, BSock, Mode, bool) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let setup = ServerSetup {
            config: ServerConfig {
                kind: ServerKind::FileDaemon,
                name: "bulk-fd".into(),
                version: 14,
                version_text: String::new(),
                dialect: Dialect::V13,
            },
            timeout: Duration::from_secs(20),
            damping: false,
        };
        let (sock, _) = baculink_net::accept(BSock::new(tcp), &setup, |_| {
            Some(PeerSetup {
                local: local(needs, authenticate),
                cert: None,
                psk: None,
                allowed_cn: vec![],
                label: "bulk client".into(),
            })
        })
        .await
        .unwrap();
        sock
    });
    let setup = ClientSetup {
        config: ClientConfig {
            hello: Hello::Director {
                name: "bulk-dir".into(),
                version: Some(10002),
                tlspsk: None,
            },
            local: local(needs, authenticate),
        },
        cert: None,
        psk: None,
        host: "127.0.0.1".into(),
        allowed_cn: vec![],
        timeout: Duration::from_secs(20),
        label: "bulk server".into(),
    };
    let (mut client, peer) = baculink_net::connect("127.0.0.1", port, &setup)
        .await
        .unwrap();
    let mut server = server.await.unwrap();
    client.tune_for_bulk();
    server.tune_for_bulk();
    (client, server, peer.mode(), peer.login_tls.is_some())
}

/// Deterministic packets of many sizes (1 byte to 64 KiB), with signals
/// between them, about `total` bytes in all.
fn packets(seed: u64, total: usize) -> Vec<Packet> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    let mut sent = 0;
    while sent < total {
        let len = match next() % 4 {
            0 => 1 + (next() % 100) as usize,
            1 => 65_536,
            _ => 1 + (next() % 65_536) as usize,
        };
        let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        sent += len;
        out.push(Packet::Data(body.into()));
        if next() % 8 == 0 {
            out.push(Packet::Signal(Signal::Eod));
        }
    }
    out
}

async fn send_all(sock: &mut BSock, ps: &[Packet]) {
    for p in ps {
        sock.feed(p).await.unwrap();
    }
    sock.flush().await.unwrap();
}

async fn recv_all(sock: &mut BSock, ps: &[Packet]) {
    for (i, want) in ps.iter().enumerate() {
        let got = sock.recv().await.unwrap();
        assert!(got == *want, "packet {i} of {} differs", ps.len());
    }
}

async fn both_ways(needs: Needs, authenticate: bool, expect: Mode) {
    // Lost or reordered bytes would leave a side waiting: fail instead.
    let work = both_ways_inner(needs, authenticate, expect);
    tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .expect("bulk exchange stalled");
}

async fn both_ways_inner(needs: Needs, authenticate: bool, expect: Mode) {
    let (mut client, mut server, mode, login_tls) = pair_with(needs, authenticate).await;
    assert_eq!(mode, expect);
    let tls_kept = expect != Mode::Clear;
    assert_eq!((client.is_tls(), server.is_tls()), (tls_kept, tls_kept));
    assert_eq!(login_tls, tls_kept || authenticate);
    let up = packets(7, 24 << 20);
    let down = packets(11, 8 << 20);
    let (up2, down2) = (up.clone(), down.clone());
    let receiver = tokio::spawn(async move {
        recv_all(&mut server, &up2).await;
        send_all(&mut server, &down2).await;
        server
    });
    send_all(&mut client, &up).await;
    recv_all(&mut client, &down).await;
    let mut server = receiver.await.unwrap();
    // Nothing left over on either side.
    client.send_text("end").await.unwrap();
    assert_eq!(server.recv().await.unwrap(), Packet::data("end"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fed_packets_arrive_whole_and_in_order_in_psk() {
    both_ways(Needs::new(Need::None, Need::Required), false, Mode::Psk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_tls_authenticate_fed_packets_go_in_clear_and_arrive_whole() {
    // TLS is dropped after the login: tune_for_bulk must leave the clear
    // socket as it is, and no byte may stay behind in the dropped session.
    both_ways(Needs::new(Need::None, Need::Required), true, Mode::Clear).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fed_packets_arrive_whole_and_in_order_in_clear() {
    both_ways(Needs::NONE, false, Mode::Clear).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fed_packet_waits_for_the_flush() {
    let (mut client, mut server, _) = pair(Needs::new(Need::None, Need::Required)).await;
    // A large data packet takes the path that hands whole TLS records
    // straight to OpenSSL: it must wait for the flush all the same, as long
    // as less than the bulk TLS write size (64 KiB) is queued.
    let big = Packet::data(vec![7u8; 40 * 1024]);
    client.feed(&Packet::data("queued")).await.unwrap();
    client.feed(&big).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), server.recv()).await;
    assert!(early.is_err(), "a fed packet went out before the flush");
    client.flush().await.unwrap();
    assert_eq!(server.recv().await.unwrap(), Packet::data("queued"));
    assert_eq!(server.recv().await.unwrap(), big);
}

/// A corked socket (the Director's console side) sends a command's output
/// and end signal together: nothing goes out until it next waits for the
/// peer, and what is still queued goes out at close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corked_socket_sends_when_it_next_waits_and_at_close() {
    let (mut client, mut server, _) = pair(Needs::new(Need::None, Need::Required)).await;
    server.set_corked(true);
    server.send_text("line 1\n").await.unwrap();
    server.signal(Signal::Eod).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), client.recv()).await;
    assert!(
        early.is_err(),
        "corked output went out before the server waited"
    );
    let waiting = tokio::spawn(async move {
        let reply = server.recv().await.unwrap();
        (server, reply)
    });
    assert_eq!(client.recv().await.unwrap(), Packet::data("line 1\n"));
    assert_eq!(client.recv().await.unwrap(), Packet::Signal(Signal::Eod));
    client.send_text("next").await.unwrap();
    let (mut server, reply) = waiting.await.unwrap();
    assert_eq!(reply, Packet::data("next"));
    server.send_text("bye\n").await.unwrap();
    server.close().await;
    assert_eq!(client.recv().await.unwrap(), Packet::data("bye\n"));
}

/// Corked output that has already passed into the TLS layer's own buffer
/// (a packet of whole records, none of it left in ours) must still go out
/// when the corked side waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corked_socket_flushes_records_already_encrypted_when_it_waits() {
    let (mut client, mut server, _) = pair(Needs::new(Need::None, Need::Required)).await;
    server.set_corked(true);
    // With its 4-byte header, exactly eight 16 KiB records.
    let big = Packet::data(vec![3u8; 8 * 16 * 1024 - 4]);
    server.send(&big).await.unwrap();
    let waiting = tokio::spawn(async move { server.recv().await.unwrap() });
    let got = tokio::time::timeout(Duration::from_secs(10), client.recv())
        .await
        .expect("corked output never went out");
    assert_eq!(got.unwrap(), big);
    client.send_text("ok").await.unwrap();
    assert_eq!(waiting.await.unwrap(), Packet::data("ok"));
}
