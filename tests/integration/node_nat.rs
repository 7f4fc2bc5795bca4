//! Behind a NAT: a node told it is not reachable from outside (`relay_client`, the CLI's
//! `--relay-client`) reserves a slot on a peer offering circuit relay v2, gets a relayed
//! address (in its record too), and another node dials it through that address; hole
//! punching (DCUtR) then gives the two a direct connection. Real libp2p nodes on loopback.

use std::time::{Duration, Instant};

use libp2p::{Multiaddr, multiaddr::Protocol};
use wakurln::node::{self, NodeConfig, NodeHandle};

const CLUSTER: u16 = 61;

fn relayed(a: &Multiaddr) -> bool {
    a.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// The addresses `of` is connected on, as `node` sees them.
async fn addresses_of(node: &NodeHandle, of: &NodeHandle) -> Vec<Multiaddr> {
    node.peers()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.peer == of.peer_id())
        .map(|p| p.addresses)
        .unwrap_or_default()
}

async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_a_nat_is_dialled_through_a_relay_then_directly() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::local(dir.path().join("relay"), CLUSTER);
    config.circuit_relay = true;
    let relay = node::start(config).await.unwrap();
    let relay_address = relay.listen_addrs().await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(relay.peer_id()));

    let mut config = NodeConfig::local(dir.path().join("natted"), CLUSTER);
    config.relay_client = true;
    config.static_peers = vec![relay_address];
    // With discv5, so that its record (what others find) carries the relayed address.
    config.discv5 = Some(wakurln::discovery::Config {
        udp_port: 0,
        ..wakurln::discovery::Config::default()
    });
    let natted = node::start(config).await.unwrap();
    let circuit = wait_for("a relayed listen address", async || {
        natted
            .listen_addrs()
            .await
            .unwrap()
            .into_iter()
            .find(relayed)
    })
    .await;
    assert!(
        circuit.to_string().contains(&relay.peer_id().to_string()),
        "the relayed address goes through the relay: {circuit}"
    );

    // Its record now names the relayed address, with the relay's peer id in it.
    let in_record = wait_for("the relayed address in the node's record", async || {
        natted
            .enr()
            .and_then(|r| r.addresses().into_iter().find(relayed))
    })
    .await;
    assert!(
        in_record.to_string().contains(&relay.peer_id().to_string()),
        "{in_record}"
    );

    // A plain node (no relay client, no relay service) dials it through the relay, at the
    // address its record gives.
    let dialer = node::start(NodeConfig::local(dir.path().join("dialer"), CLUSTER))
        .await
        .unwrap();
    dialer.dial(in_record).await.unwrap();
    let first = wait_for("a connection through the relay", async || {
        addresses_of(&dialer, &natted).await.into_iter().next()
    })
    .await;
    assert!(relayed(&first), "the first connection is relayed: {first}");

    // Hole punching: a direct connection follows, without the dialer ever being given a
    // direct address of the natted node.
    let direct = wait_for("a direct connection after hole punching", async || {
        addresses_of(&dialer, &natted)
            .await
            .into_iter()
            .find(|a| !relayed(a))
    })
    .await;
    assert!(!relayed(&direct));

    for n in [&dialer, &natted, &relay] {
        n.shutdown().await;
    }
}
